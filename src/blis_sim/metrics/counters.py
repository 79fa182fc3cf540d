"""What one instance counts while it runs: plain counters and histograms, filled by the engine (ENGINE.md §13)."""

from __future__ import annotations

from .histogram import IntHistogram


class InstanceStats:
    __slots__ = (
        "injected",
        "completed",
        "dropped_unservable",
        "dropped_by_reason",
        "total_input_tokens",
        "total_output_tokens",
        "last_event_time",
        "ttft",
        "e2e",
        "itl",
        "scheduling_delay",
        "hol_sum",
        "hol_steps",
        "num_steps",
    )

    def __init__(self) -> None:
        self.injected = 0
        self.completed = 0
        self.dropped_unservable = 0
        self.dropped_by_reason: dict[str, int] = {}
        self.total_input_tokens = 0
        self.total_output_tokens = 0
        self.last_event_time = 0
        self.ttft = IntHistogram()
        self.e2e = IntHistogram()
        self.itl = IntHistogram()
        self.scheduling_delay = IntHistogram()
        self.hol_sum = 0  # waiting-queue length after each batch formation (head-of-line blocking signal)
        self.hol_steps = 0
        self.num_steps = 0

"""What one engine step scheduled: the record that batch formation builds and the latency model prices.

Deciding (``Scheduler.schedule``) and applying (``Instance.apply``) stay separate, as in vLLM's
``SchedulerOutput``: this record is the only thing that passes between them.
"""

from __future__ import annotations

from ..request import Request


class StepRecord:
    """One scheduled batch. Lists are parallel and in scheduling order."""

    __slots__ = (
        "requests",
        "num_new_tokens",
        "prefill_items",
        "num_prefill_tokens",
        "num_decodes",
        "decode_context_sum",
        "preempted",
        "num_admitted",
        "emits",
        "start",
        "end",
    )

    def __init__(self, start: int) -> None:
        self.requests: list[Request] = []  # scheduled requests
        self.num_new_tokens: list[int] = []  # k per scheduled request
        # (c_before, k) of every non-decode item: prompt chunks and recomputation after preemption
        self.prefill_items: list[tuple[int, int]] = []
        self.num_prefill_tokens = 0  # X: sum of k over prefill items (prefix hits excluded)
        self.num_decodes = 0  # Y: decode items, one token each
        self.decode_context_sum = 0  # sum of c_before over decode items (KV each decode reads)
        self.preempted: list[Request] = []  # requests preempted while forming this batch
        self.num_admitted = 0  # requests taken from the waiting queue into this batch
        self.emits: list[Request] = []  # requests whose computed tokens catch up: each gets a token at the end
        self.start = start  # tick the step starts
        self.end = start  # tick its results apply (set once priced)

    @property
    def num_scheduled_tokens(self) -> int:
        return self.num_prefill_tokens + self.num_decodes

    def __len__(self) -> int:
        return len(self.requests)

    @classmethod
    def decode_only(cls, start: int, requests: list[Request], context_sum: int) -> "StepRecord":
        """The record of a step in which every request of ``requests`` decodes one token."""
        step = cls(start)
        step.requests = requests
        step.emits = requests
        step.num_new_tokens = [1] * len(requests)
        step.num_decodes = len(requests)
        step.decode_context_sum = context_sum
        return step

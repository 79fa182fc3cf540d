"""What one engine step scheduled: the record that batch formation builds and the latency model prices.

Deciding (``Scheduler.schedule``) and applying (``Instance.apply_step``) stay separate, as in vLLM's
``SchedulerOutput``: this record is the only thing that passes between them. It lives below both the engine and the
latency models (which price it), so that neither imports the other.
"""

from __future__ import annotations

from typing import Final

from .request import Request

NEVER: Final = 2**63  # a tick no event reaches


class StepRecord:
    """One scheduled batch. Lists are parallel and in scheduling order; the decode cohort's members (fast path)
    are counted in the decode totals and ``cohort_size`` only."""

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
        "cohort_size",
        "cohort_level",
        "transfer_time",
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
        # the instance's decode cohort (engine/cohort.py): members decoding in this step, outside ``requests``
        self.cohort_size = 0
        self.cohort_level = 0  # the cohort's level when this step was formed
        # ticks of KV transfers the step waits for (a CPU tier's reloads), added to the latency model's duration
        self.transfer_time = 0

    @property
    def num_scheduled_tokens(self) -> int:
        return self.num_prefill_tokens + self.num_decodes

    def __len__(self) -> int:
        return len(self.requests)

    @classmethod
    def priced(cls, prefills=(), decodes=()) -> "StepRecord":
        """A record carrying only what a latency model reads: prefill items ``(c_before, k)`` and decodes given
        by their contexts (for pricing steps outside a simulation: scripts, tests)."""
        step = cls(0)
        step.prefill_items = list(prefills)
        step.num_prefill_tokens = sum(k for _, k in step.prefill_items)
        step.num_decodes = len(decodes)
        step.decode_context_sum = sum(decodes)
        return step

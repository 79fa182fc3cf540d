"""What one instance counts while it runs: plain counters and histograms, filled by the engine (ENGINE.md §13),
and ``InstanceCounters``, the read-only view of them that the metrics and reports work from (they never see an
instance)."""

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


class InstanceCounters:
    """One instance's counters at the end of a run (``Instance.counters``); read, never written."""

    __slots__ = (
        "name", "stats", "still_queued", "still_running", "preemptions", "self_preemptions", "prefix_query_tokens",
        "prefix_hit_tokens", "offloads", "thrash",
    )

    def __init__(
        self,
        name: str,
        stats: InstanceStats,
        still_queued: int,
        still_running: int,
        preemptions: int,
        self_preemptions: int,
        prefix_query_tokens: int,
        prefix_hit_tokens: int,
        offloads: int = 0,
        thrash: int = 0,
    ) -> None:
        self.name = name
        self.stats = stats
        self.still_queued = still_queued  # waiting, or routed and not yet arrived
        self.still_running = still_running
        self.preemptions = preemptions
        self.self_preemptions = self_preemptions  # a request that could not get a block preempted itself
        self.prefix_query_tokens = prefix_query_tokens  # prefix-cache queries and hits, in tokens (§8.7)
        self.prefix_hit_tokens = prefix_hit_tokens
        self.offloads = offloads  # CPU KV tier: keys offloaded, and reloads that came soon after (§8.6)
        self.thrash = thrash

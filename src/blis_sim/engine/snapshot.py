"""What a router may see of an instance (ENGINE.md §6.2), and how stale its KV signals may be.

Queue depth, batch size and pending requests are read fresh on every call. The KV fields (utilisation, free blocks,
prefix-cache hit rate) come from a per-instance cache refreshed only when ``clock - last_refresh >= interval``
(``--snapshot-refresh-interval``; 0, the default, refreshes on every call). The cache starts at 0 with
``last_refresh`` 0, so with an interval I calls before tick I see zero utilisation: real routers read such signals
from metrics scraped every few seconds, and acting on a lagging signal is part of what a policy study measures.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One instance as the control plane sees it."""

    queue_depth: int
    batch_size: int
    pending_requests: int
    kv_utilization: float
    free_kv_blocks: int
    cache_hit_rate: float = 0.0

    @property
    def effective_load(self) -> int:
        return self.queue_depth + self.batch_size + self.pending_requests


class KVSignals:
    """The KV fields of an instance's snapshots, refreshed at most every ``interval`` ticks."""

    __slots__ = ("interval", "last_refresh", "kv_utilization", "free_kv_blocks", "cache_hit_rate")

    def __init__(self, interval: int) -> None:
        self.interval = interval
        self.last_refresh = 0
        self.kv_utilization = 0.0
        self.free_kv_blocks = 0
        self.cache_hit_rate = 0.0

    def stale(self, now: int) -> bool:
        return self.interval == 0 or now - self.last_refresh >= self.interval

    def refresh(self, now: int, kv_utilization: float, free_kv_blocks: int, cache_hit_rate: float) -> None:
        self.last_refresh = now
        self.kv_utilization = kv_utilization
        self.free_kv_blocks = free_kv_blocks
        self.cache_hit_rate = cache_hit_rate

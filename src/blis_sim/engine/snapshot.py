"""What a router may see of an instance (ENGINE.md §6.2), and how stale its KV signals may be.

Queue depth, batch size and pending requests are read fresh on every call. The KV fields (utilisation, free blocks,
prefix-cache hit rate) come from a per-instance cache refreshed only when ``clock - last_refresh >= interval``
(``--snapshot-refresh-interval``; 0, the default, refreshes on every call). The cache starts at 0 with
``last_refresh`` 0, so with an interval I calls before tick I see zero utilisation: real routers read such signals
from metrics scraped every few seconds, and acting on a lagging signal is part of what a policy study measures.
"""

from __future__ import annotations


class Snapshot:
    """One instance as the control plane sees it; read, never written (a plain class: routers build one per
    instance at every arrival, and a frozen dataclass costs several times more to construct)."""

    __slots__ = ("queue_depth", "batch_size", "pending_requests", "kv_utilization", "free_kv_blocks", "cache_hit_rate")

    def __init__(
        self,
        queue_depth: int,
        batch_size: int,
        pending_requests: int,
        kv_utilization: float,
        free_kv_blocks: int,
        cache_hit_rate: float = 0.0,
    ) -> None:
        self.queue_depth = queue_depth
        self.batch_size = batch_size
        self.pending_requests = pending_requests
        self.kv_utilization = kv_utilization
        self.free_kv_blocks = free_kv_blocks
        self.cache_hit_rate = cache_hit_rate

    @property
    def effective_load(self) -> int:
        return self.queue_depth + self.batch_size + self.pending_requests

    def __repr__(self) -> str:
        return (f"Snapshot(queue_depth={self.queue_depth}, batch_size={self.batch_size}, "
                f"pending_requests={self.pending_requests}, kv_utilization={self.kv_utilization}, "
                f"free_kv_blocks={self.free_kv_blocks}, cache_hit_rate={self.cache_hit_rate})")


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

"""The CPU KV tier of ENGINE.md §8.6 (``--kv-cpu-blocks C > 0``): offload on eviction, reload at admission.

A ``CPUTier`` is one instance's store of prefix keys in CPU memory, plugged into the KV manager through the tier seam
(kv/tier.py):

* **store**: an LRU map key -> the tick it was offloaded, at most ``capacity`` entries (the least recently offloaded
  or reloaded key leaves first);
* **offload on eviction** (``on_evict``): a cached free GPU block is reused, no other GPU block holds its key, and the
  GPU was more than ``threshold`` full before the reuse: the key is written to the store (inserted, or refreshed to
  most recent with the current tick) and counted as an offload. Offloading takes no simulated time (the copy
  overlaps compute);
* **reload at admission** (``on_lookup`` / ``on_load``): a waiting request's keys that follow its GPU hits and sit in
  the store are loaded into newly allocated GPU blocks; each loaded block adds ``base_latency +
  ceil(block_size / bandwidth)`` ticks to the step being formed, and refreshes its key to most recent (the key
  stays in the store). A key reloaded less than ``THRASH_TICKS`` after it was offloaded counts as a thrash.

The instance sets ``now`` to the tick of each batch formation (the only moment blocks are taken, hence evicted or
loaded). The KV manager calls ``on_load`` before it takes the request's new blocks, so that the evictions those
takes cause cannot push the keys being loaded out of a full store.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Final

from .tier import KVTier

THRASH_TICKS: Final = 1000  # a reload this soon after the offload counts as thrashing (§8.6)


def block_transfer_ticks(block_size: int, bandwidth: float, base_latency: int) -> int:
    """Ticks to move one block between CPU and GPU: ``base_latency + ceil(block_size / bandwidth)``, the ceiling
    taken on the real quotient (bandwidth in tokens per tick; §8.6). Both tier models price transfers so."""
    return base_latency + math.ceil(block_size / bandwidth)


class CPUTier(KVTier):
    """One instance's CPU store (module docstring). Counters: ``offloads`` (keys written), ``thrash`` (reloads within
    ``THRASH_TICKS`` of their offload), ``loaded_blocks`` (blocks reloaded), ``dropped`` (keys the LRU rule removed)."""

    def __init__(
        self, capacity: int, num_gpu_blocks: int, block_size: int, threshold: float = 0.9,
        bandwidth: float = 100.0, base_latency: int = 0,
    ) -> None:
        if capacity < 1:
            raise ValueError("a CPU tier needs a capacity of at least one block")
        self.capacity = capacity
        self.num_gpu_blocks = num_gpu_blocks
        self.threshold = threshold
        self.block_ticks = block_transfer_ticks(block_size, bandwidth, base_latency)  # per reloaded block
        self.store: OrderedDict[int, int] = OrderedDict()  # key -> offload tick, least recently used first
        self.now = 0
        self.offloads = 0
        self.thrash = 0
        self.loaded_blocks = 0
        self.dropped = 0

    def on_evict(self, key: int, num_used: int) -> None:
        if num_used / self.num_gpu_blocks <= self.threshold:
            return
        store = self.store
        if key in store:
            store.move_to_end(key)
        elif len(store) >= self.capacity:
            store.popitem(last=False)
            self.dropped += 1
        store[key] = self.now
        self.offloads += 1

    def on_lookup(self, keys: list[int], first: int, limit: int) -> int:
        store = self.store
        j = first
        while j < limit and keys[j] in store:
            j += 1
        return j - first

    def on_load(self, keys: list[int]) -> int:
        store = self.store
        now = self.now
        for key in keys:
            if now - store[key] < THRASH_TICKS:
                self.thrash += 1
            store.move_to_end(key)
        self.loaded_blocks += len(keys)
        return self.block_ticks * len(keys)

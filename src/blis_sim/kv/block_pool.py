"""GPU KV blocks: reference counts, prefix keys, the LRU free queue and the key index (ENGINE.md §8.1, §8.4.1).

Blocks are plain integers; their state lives in two parallel lists. Block ids are handed out in order the first
time (0, 1, 2, ...), so blocks that were never used need no state at all: the free queue is "the untouched ids
from ``num_touched`` up", followed by the released blocks in release order (an OrderedDict: O(1) pop from the
head, append at the tail and removal from the middle when a prefix hit revives a cached free block).
"""

from __future__ import annotations

from collections import OrderedDict


class BlockPool:
    __slots__ = ("num_blocks", "ref_cnt", "key", "num_touched", "released", "index", "num_used")

    def __init__(self, num_blocks: int) -> None:
        self.num_blocks = num_blocks
        self.ref_cnt: list[int] = []  # per touched block
        self.key: list[bytes | None] = []  # prefix key of a full block, kept while the block is free
        self.num_touched = 0  # ids >= this were never used: they sit at the head of the free queue, in order
        self.released: OrderedDict[int, None] = OrderedDict()  # free touched blocks, LRU first
        self.index: dict[bytes, list[int]] = {}  # key -> blocks holding it, earliest first
        self.num_used = 0

    @property
    def num_free(self) -> int:
        return self.num_blocks - self.num_used

    def take(self) -> int:
        """Pop the head of the free queue for a new use; evicts the block's old key (§8.4.1)."""
        if self.num_touched < self.num_blocks:
            block = self.num_touched
            self.num_touched += 1
            self.ref_cnt.append(1)
            self.key.append(None)
        else:
            block, _ = self.released.popitem(last=False)
            old = self.key[block]
            if old is not None:
                self._unindex(old, block)
                self.key[block] = None
            self.ref_cnt[block] = 1
        self.num_used += 1
        return block

    def take_many(self, n: int) -> list[int]:
        """``n`` blocks from the head of the free queue, in order (untouched ids first, in one slice)."""
        fresh = min(n, self.num_blocks - self.num_touched)
        if fresh == n:
            start = self.num_touched
            self.num_touched = start + n
            self.ref_cnt.extend([1] * n)
            self.key.extend([None] * n)
            self.num_used += n
            return list(range(start, start + n))
        return [self.take() for _ in range(n)]

    def revive(self, block: int) -> None:
        """Share a cached block found by a prefix lookup (it may be free: then it leaves the free queue)."""
        if self.ref_cnt[block] == 0:
            del self.released[block]
            self.num_used += 1
        self.ref_cnt[block] += 1

    def release(self, blocks: list[int]) -> None:
        """Drop one reference on each block, last block first, so a request's tail is reused first (§8.5)."""
        ref_cnt = self.ref_cnt
        released = self.released
        for block in reversed(blocks):
            ref_cnt[block] -= 1
            if ref_cnt[block] == 0:
                released[block] = None
                self.num_used -= 1

    def register(self, block: int, key: bytes) -> None:
        """Give a newly full block its prefix key; other blocks already holding the key stay listed."""
        self.key[block] = key
        holders = self.index.get(key)
        if holders is None:
            self.index[key] = [block]
        else:
            holders.append(block)

    def cached_block(self, key: bytes) -> int | None:
        """Earliest-registered block still holding ``key``, if any."""
        holders = self.index.get(key)
        return holders[0] if holders is not None else None

    def _unindex(self, key: bytes, block: int) -> None:
        holders = self.index[key]
        if len(holders) == 1:
            del self.index[key]
        else:
            holders.remove(block)

    def check_invariants(self, owners: list[list[int]]) -> None:
        """§8.8, for tests: ``owners`` are the block lists of every request that holds blocks."""
        counts: dict[int, int] = {}
        for blocks in owners:
            for b in blocks:
                counts[b] = counts.get(b, 0) + 1
        used = [b for b in range(self.num_touched) if self.ref_cnt[b] > 0]
        assert len(used) == self.num_used, (len(used), self.num_used)
        assert self.num_used + len(self.released) + (self.num_blocks - self.num_touched) == self.num_blocks
        for b in range(self.num_touched):
            assert self.ref_cnt[b] == counts.get(b, 0), (b, self.ref_cnt[b], counts.get(b, 0))
            assert (b in self.released) == (self.ref_cnt[b] == 0)
        for key, holders in self.index.items():
            assert len(set(holders)) == len(holders)
            for b in holders:
                assert self.key[b] == key
        keyed = sum(1 for b in range(self.num_touched) if self.key[b] is not None)
        assert keyed == sum(len(h) for h in self.index.values())

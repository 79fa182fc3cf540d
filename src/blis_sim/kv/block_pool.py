"""GPU KV blocks: reference counts, prefix keys, the LRU free queue and the key index (ENGINE.md §8.1, §8.4.1).

Blocks are plain integers; their state lives in two parallel lists. Block ids are handed out in order the first time
(0, 1, 2, ...), so blocks that were never used need no state at all: the free queue is "the untouched ids from
``num_touched`` up", followed by the released blocks in release order. Those sit in a list read from a moving head
(O(1) at both ends, compacted once the consumed part is half of it); a prefix hit that revives a cached free block
from the middle of the queue leaves its entry in place and counts it in ``stale``, and the entry is skipped when it
reaches the head. A block's stale entry always precedes any later entry of the same block (the queue is first-in
first-out), so the first one met is the stale one.
"""

from __future__ import annotations

from typing import Callable, Final

COMPACT_AT: Final = 4096  # entries consumed from the head of ``released`` before the list is compacted


class BlockPool:
    __slots__ = (
        "num_blocks", "ref_cnt", "key", "num_touched", "released", "head_pos", "stale", "index", "num_used", "on_evict"
    )

    def __init__(self, num_blocks: int, on_evict: Callable[[int, int], None] | None = None) -> None:
        self.num_blocks = num_blocks
        # called with (key, blocks in use before the reuse) when a key leaves the GPU: the KV manager's tier hook
        self.on_evict = on_evict
        self.ref_cnt: list[int] = []  # per touched block
        self.key: list[int | None] = []  # prefix key of a full block, kept while the block is free
        self.num_touched = 0  # ids >= this were never used: they sit at the head of the free queue, in order
        self.released: list[int] = []  # free touched blocks from ``head_pos`` on, LRU first, plus stale entries
        self.head_pos = 0
        self.stale: dict[int, int] = {}  # block -> entries of it in ``released`` that a revival made stale
        self.index: dict[int, list[int]] = {}  # key -> blocks holding it, earliest first
        self.num_used = 0

    @property
    def num_free(self) -> int:
        return self.num_blocks - self.num_used

    def take(self) -> int:
        """Pop the head of the free queue for a new use; evicts the block's old key (§8.4.1)."""
        self.num_used += 1
        if self.num_touched < self.num_blocks:
            block = self.num_touched
            self.num_touched = block + 1
            self.ref_cnt.append(1)
            self.key.append(None)
            return block
        block = self._pop_released()
        if self.stale:
            while block in self.stale:
                self._drop_stale(block)
                block = self._pop_released()
        self.ref_cnt[block] = 1
        old = self.key[block]
        if old is not None:
            self._evict(block, old)
        return block

    def _evict(self, block: int, old: int) -> None:
        """Drop the prefix key ``old`` of a cached free block that is being reused."""
        self.key[block] = None
        holders = self.index[old]
        if len(holders) == 1:
            del self.index[old]
            if self.on_evict is not None:
                self.on_evict(old, self.num_used - 1)
        else:
            holders.remove(block)

    def _pop_released(self) -> int:
        released = self.released
        pos = self.head_pos
        block = released[pos]
        pos += 1
        if pos >= COMPACT_AT and 2 * pos >= len(released):
            del released[:pos]
            pos = 0
        self.head_pos = pos
        return block

    def _drop_stale(self, block: int) -> None:
        left = self.stale[block] - 1
        if left:
            self.stale[block] = left
        else:
            del self.stale[block]

    def take_many(self, n: int) -> list[int]:
        """``n`` blocks from the head of the free queue, in order: untouched ids first, then released blocks in
        one slice of the queue (the caller checked that ``n`` are free)."""
        start = self.num_touched
        fresh = min(n, self.num_blocks - start)
        if fresh:
            self.num_touched = start + fresh
            self.ref_cnt.extend([1] * fresh)
            self.key.extend([None] * fresh)
            self.num_used += fresh
        out = list(range(start, start + fresh))
        rest = n - fresh
        if not rest:
            return out
        if self.stale or self.on_evict is not None:  # stale entries to skip, or evictions to report: one at a time
            for _ in range(rest):
                out.append(self.take())
            return out
        # Every untouched id is taken, so the queue holds exactly the free blocks. A slice moves the block
        # objects as they are, where taking them one by one would unbox and rebox each.
        released = self.released
        pos = self.head_pos
        end = pos + rest
        taken = released[pos:end]
        self.num_used += rest
        ref_cnt = self.ref_cnt
        key = self.key
        for block in taken:
            ref_cnt[block] = 1
            old = key[block]
            if old is not None:
                self._evict(block, old)
        if end >= COMPACT_AT and 2 * end >= len(released):
            del released[:end]
            end = 0
        self.head_pos = end
        if fresh:
            out.extend(taken)
            return out
        return taken

    def revive(self, block: int) -> None:
        """Share a cached block found by a prefix lookup (it may be free: then it leaves the free queue)."""
        if self.ref_cnt[block] == 0:
            self.stale[block] = self.stale.get(block, 0) + 1  # its queue entry is skipped when met
            self.num_used += 1
        self.ref_cnt[block] += 1

    def release(self, blocks: list[int]) -> None:
        """Drop one reference on each block, last block first, so a request's tail is reused first (§8.5)."""
        ref_cnt = self.ref_cnt
        order = blocks[::-1]  # a request holds a block once
        shared = False
        for block in order:
            n = ref_cnt[block] - 1
            ref_cnt[block] = n
            if n:
                shared = True
        if not shared:  # the usual case: all of them are free now, and join the queue as they are (no reboxing)
            self.released.extend(order)
            self.num_used -= len(order)
            return
        freed = [block for block in order if not ref_cnt[block]]
        self.released.extend(freed)
        self.num_used -= len(freed)

    def free_queue(self) -> list[int]:
        """The released blocks in the order they will be reused (untouched ids come before all of them)."""
        skip = dict(self.stale)
        out = []
        for block in self.released[self.head_pos :]:
            if skip.get(block):
                skip[block] -= 1
            else:
                out.append(block)
        return out

    def head(self) -> int | None:
        """The block the next ``take`` returns."""
        if self.num_touched < self.num_blocks:
            return self.num_touched
        queue = self.free_queue()
        return queue[0] if queue else None

    def check_invariants(self, owners: list[list[int]]) -> None:
        """§8.8, for tests: ``owners`` are the block lists of every request that holds blocks."""
        counts: dict[int, int] = {}
        for blocks in owners:
            for b in blocks:
                counts[b] = counts.get(b, 0) + 1
        used = [b for b in range(self.num_touched) if self.ref_cnt[b] > 0]
        assert len(used) == self.num_used, (len(used), self.num_used)
        queue = self.free_queue()
        assert len(set(queue)) == len(queue)
        assert self.num_used + len(queue) + (self.num_blocks - self.num_touched) == self.num_blocks
        free = set(queue)
        for b in range(self.num_touched):
            assert self.ref_cnt[b] == counts.get(b, 0), (b, self.ref_cnt[b], counts.get(b, 0))
            assert (b in free) == (self.ref_cnt[b] == 0)
        for key, holders in self.index.items():
            assert len(set(holders)) == len(holders)
            for b in holders:
                assert self.key[b] == key
        keyed = sum(1 for b in range(self.num_touched) if self.key[b] is not None)
        assert keyed == sum(len(h) for h in self.index.values())

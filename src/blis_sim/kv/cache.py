"""Per-instance KV cache manager: the four questions the scheduler asks (ENGINE.md §8.3–§8.5).

``lookup`` (prefix-cache hits of a waiting request), ``allocate_running`` / ``allocate_waiting`` (all-or-nothing:
``False`` means "does not fit", and the caller picks a victim), ``free``, and ``usage``; for the fast path, which
moves the decode cohort's blocks itself, ``num_free``, ``grow`` and ``grow_by``. Every GPU block that enters or leaves
a request goes through these methods, and the manager owns the counters of them (prefix-cache queries and hits,
§8.7). A KV tier below the GPU (kv/tier.py) is called from here, at eviction and at admission. The key of block j is the
128-bit XXH3 digest of every token up to the end of block j (so it depends on the whole prefix, like vLLM's
chained block hashes), computed for all of a request's blocks in one pass and cached on the request; equal
prefixes give equal keys in every process.

Deferred keys: a request whose source drew its tokens independently and uniformly (``Request.keys_deferred``)
cannot share a full block with any other request (with blocks of at least ``MIN_DEFERRED_BLOCK`` tokens, two such
first blocks coincide less often than two 128-bit keys collide), so only the request itself could ever look its
keys up, and it does so only after a preemption. Its keys are therefore counted but not computed or registered
while it runs; a preemption registers the ones registered so far in vLLM before freeing the blocks, and from then
on the request is keyed like any other. The index then holds exactly what it would hold with every key registered
at once, for every key that any lookup can ask for.
"""

from __future__ import annotations

from typing import Final

from xxhash import xxh3_128

from ..request import Request
from .block_pool import BlockPool
from .tier import KVTier

MIN_DEFERRED_BLOCK: Final = 8  # tokens per block from which independent random requests never share a block (135 bits)


def add_prefix_keys(keys: list[int], data: bytes, block_size: int) -> None:
    """Append to ``keys`` the key of every full block of the int64 tokens in ``data``: the 128-bit XXH3 digest of all
    tokens up to the end of the block. The same function serves routers that keep their own index of where prefixes
    were sent (prefix-affinity routing): equal prefixes give equal keys everywhere."""
    step = block_size * 8  # int64 tokens
    hasher = xxh3_128()
    update = hasher.update
    digest = hasher.intdigest
    append = keys.append
    for start in range(0, len(data) - step + 1, step):
        update(data[start : start + step])
        append(digest())


class KVCacheManager:
    __slots__ = (
        "pool", "block_size", "num_blocks", "query_tokens", "hit_tokens", "can_defer", "tier", "transfer_time",
        "write_through", "async_loads",
    )

    def __init__(self, num_blocks: int, block_size: int, tier: KVTier | None = None) -> None:
        self.tier = tier
        self.pool = BlockPool(num_blocks, None if tier is None else tier.on_evict)
        self.transfer_time = 0  # ticks of tier loads since the scheduler last moved them into a step
        # the tier's keys go through the index like any other: deferring them would hide blocks from it
        self.can_defer = block_size >= MIN_DEFERRED_BLOCK and tier is None
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.query_tokens = 0  # prefix-cache queries, in tokens, per successful admission (§8.7)
        self.hit_tokens = 0
        # vLLM's connector model (kv/vllm_offload.py): blocks stored as they fill; loads the request waits for
        self.write_through = tier is not None and tier.write_through
        self.async_loads = tier is not None and tier.async_loads

    # -- keys -------------------------------------------------------------------------------------------------
    def keys_of(self, req: Request) -> list[int]:
        """Keys of every full block of the request's whole token sequence (prompt and the outputs it will
        generate): block j's key is the digest of its tokens up to the end of that block. Computed in one pass
        of an incremental hasher on first use and cached on the request."""
        keys = req.block_keys
        if not keys:
            add_prefix_keys(keys, req.tokens.tobytes(), self.block_size)
        return keys

    def register_full_blocks(self, req: Request, num_computed: int) -> None:
        """Key every block that is full once ``num_computed`` tokens are in the cache (§8.4.2)."""
        full = num_computed // self.block_size
        first = req.num_cached_blocks
        if full > first:
            if req.keys_deferred:
                req.num_cached_blocks = full  # counted, registered only if it is preempted (module docstring)
                return
            keys = req.block_keys or self.keys_of(req)
            blocks = req.blocks
            pool = self.pool
            key_of = pool.key
            index = pool.index
            for j in range(first, full):  # BlockPool.register, inlined
                key = keys[j]
                block = blocks[j]
                key_of[block] = key
                holders = index.get(key)
                if holders is None:
                    index[key] = [block]
                else:
                    holders.append(block)
            req.num_cached_blocks = full
            if self.write_through:
                self.tier.on_store(req.index, keys[first:full])  # type: ignore[union-attr]

    # -- the scheduler's interface ----------------------------------------------------------------------------
    def lookup(self, req: Request) -> list[int]:
        """GPU blocks caching the longest prefix of the request's first ``num_tokens - 1`` known tokens."""
        if req.keys_deferred:
            if self.can_defer:
                return []  # no other request holds its blocks, and it was never preempted
            req.keys_deferred = False  # small blocks: random requests may share one, key it like any other
        limit = (req.num_tokens - 1) // self.block_size
        if not limit:
            return []
        keys = req.block_keys or self.keys_of(req)
        index = self.pool.index
        hits: list[int] = []
        for j in range(limit):
            holders = index.get(keys[j])
            if holders is None:
                break
            hits.append(holders[0])  # the earliest-registered block holding the key
        tier = self.tier
        if tier is not None and len(hits) < limit:
            # blocks the tier can load follow the GPU hits; -1 marks each (a block to allocate and fill)
            hits.extend([-1] * tier.on_lookup(keys, len(hits), limit))
        return hits

    def allocate_running(self, req: Request, num_new_tokens: int, key_limit: int) -> bool:
        """Room for ``num_new_tokens`` more computed tokens of a running request, or False (nothing changes).

        Blocks that fill get their keys, but only over the first ``key_limit`` tokens: with asynchronous
        scheduling a block holding a token still in flight is keyed when that token's result arrives (§7.8).
        """
        target = req.num_computed_tokens + num_new_tokens
        needed = -(-target // self.block_size) - len(req.blocks)
        if needed > 0:
            pool = self.pool
            if needed > pool.num_blocks - pool.num_used:
                return False
            req.blocks.extend(pool.take_many(needed) if needed > 1 else [pool.take()])
        self.register_full_blocks(req, target if target < key_limit else key_limit)
        return True

    def allocate_waiting(self, req: Request, hits: list[int], num_new_tokens: int) -> bool:
        """Admit a waiting request: share its hit blocks, add blocks for ``num_new_tokens`` more, or False. On
        success the admission counts as one prefix-cache query of the request's known tokens, with the hits as
        its hit tokens (§8.7). Hits a tier loads (-1, after the GPU hits) are allocated like new blocks, keyed, and
        their transfer time is kept for the step being formed."""
        pool = self.pool
        bs = self.block_size
        num_hits = len(hits)
        loading = self.tier is not None and num_hits > 0 and hits[-1] < 0
        gpu = [b for b in hits if b >= 0] if loading else hits
        target = num_hits * bs + num_new_tokens
        needed = -(-target // bs) - len(gpu)  # loaded blocks are new blocks too
        ref_cnt = pool.ref_cnt
        revive = sum(1 for b in gpu if ref_cnt[b] == 0)
        if needed > pool.num_blocks - pool.num_used - revive:
            return False
        blocks = req.blocks
        for b in gpu:
            pool.revive(b)
            blocks.append(b)
        if loading:  # before the takes: the evictions they cause must not push these keys out of the tier
            keys = req.block_keys or self.keys_of(req)
            self.transfer_time += self.tier.on_load(keys[len(gpu) : num_hits])  # type: ignore[union-attr]
        blocks.extend(pool.take_many(needed))
        req.num_cached_blocks = len(gpu)
        self.register_full_blocks(req, target)
        if self.write_through and gpu:  # vLLM stores a request's GPU prefix hits too when the CPU lacks them
            keys = req.block_keys or self.keys_of(req)
            self.tier.on_store(req.index, keys[: len(gpu)])  # type: ignore[union-attr]
        self.query_tokens += req.num_prompt_tokens + req.num_generated
        self.hit_tokens += num_hits * bs
        return True

    # -- asynchronous tier loads (``async_loads``: vLLM's connector model) ----------------------------------------
    def start_load(self, req: Request, hits: list[int], start: int) -> None:
        """A waiting request whose GPU hits (blocks >= 0) are followed by tier hits (-1 each): begin loading the tier
        hits at ``start``. The request keeps waiting until ``load_end``; it is then admitted with ``allocate_waiting``
        (the loaded blocks allocated, keyed and counted as hits, at no further cost)."""
        keys = req.block_keys or self.keys_of(req)
        gpu = len(hits) - hits.count(-1)
        self.tier.start_load(req.index, keys[gpu : len(hits)], start)  # type: ignore[union-attr]

    def load_end(self, req: Request) -> int:
        """Tick the request's tier load ends, or -1 when none is under way."""
        return self.tier.load_end(req.index)  # type: ignore[union-attr]

    def next_load_end(self) -> int:
        return self.tier.next_load_end()  # type: ignore[union-attr]

    def finish_load(self, req: Request) -> None:
        """The request's load is done: its blocks wait in GPU memory for its admission."""
        self.tier.finish_load(req.index)  # type: ignore[union-attr]

    def loaded(self, req: Request) -> bool:
        """Whether the request's tier load is done and it was not admitted since."""
        return self.tier.loaded(req.index)  # type: ignore[union-attr]

    def admitted(self, req: Request) -> None:
        self.tier.admitted(req.index)  # type: ignore[union-attr]

    # -- the fast path's block moves (the decode cohort; the caller checked ``num_free``) -------------------------
    def num_free(self) -> int:
        return self.pool.num_blocks - self.pool.num_used

    def grow(self, req: Request) -> None:
        """One more block at the end of a running request."""
        req.blocks.append(self.pool.take())

    def grow_by(self, req: Request, n: int) -> None:
        """``n`` more blocks at the end of a running request."""
        req.blocks.extend(self.pool.take_many(n))

    def preempt(self, req: Request) -> None:
        """Free the blocks of a preempted request, registering its deferred keys first: it will look them up."""
        if req.keys_deferred:
            req.keys_deferred = False
            keyed = req.num_cached_blocks
            req.num_cached_blocks = 0
            self.register_full_blocks(req, keyed * self.block_size)
        self.free(req)

    def free(self, req: Request) -> None:
        """Release every block of the request (completion or preemption); blocks keep their keys."""
        self.pool.release(req.blocks)
        req.blocks = []
        req.num_cached_blocks = 0
        if self.write_through:  # its stores complete: they become readable
            self.tier.on_release(req.index)  # type: ignore[union-attr]

    @property
    def num_used(self) -> int:
        return self.pool.num_used

    def usage(self) -> float:
        """Fraction of GPU blocks in use."""
        return self.pool.num_used / self.num_blocks

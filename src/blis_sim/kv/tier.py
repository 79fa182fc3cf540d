"""The seam for a KV tier below the GPU (CPU memory, in the manner of vLLM's KV offloading connectors).

The KV manager (kv/cache.py) is the only place where GPU blocks enter or leave the pool, and it calls its tier, when
it has one, at exactly two moments:

* ``on_evict(key, num_used)``: a free GPU block holding ``key`` is reused and no other GPU block holds the key any
  more; ``num_used`` is the number of GPU blocks in use before the reuse (the tier decides whether to keep the key);
* ``on_lookup(keys, first, limit)`` at admission: the GPU holds the request's first ``first`` block keys; the tier
  answers how many of ``keys[first:limit]``, in order from ``first``, it can load. Those blocks are then allocated
  like new ones, keyed, and counted as computed tokens of the request, and ``on_load(keys)`` returns the ticks their
  transfer adds to the step being formed (``StepRecord.transfer_time``).

Without a tier (``None``, the default) none of this costs anything. ENGINE.md §8.6 specifies the reference's CPU
tier; vLLM's own connector is a write-through variant of the same three calls.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr


@mypyc_attr(allow_interpreted_subclasses=True)
class KVTier:
    """Base class of KV tiers: holds nothing, loads nothing."""

    def on_evict(self, key: int, num_used: int) -> None:
        """``key`` left the GPU (module docstring)."""

    def on_lookup(self, keys: list[int], first: int, limit: int) -> int:
        """How many consecutive keys from ``keys[first]`` (at most ``limit - first``) this tier can load."""
        return 0

    def on_load(self, keys: list[int]) -> int:
        """Load ``keys`` into GPU blocks; returns the transfer ticks added to the step being formed."""
        return 0

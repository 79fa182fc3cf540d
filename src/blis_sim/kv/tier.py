"""The seam for a KV tier below the GPU (CPU memory, in the manner of vLLM's KV offloading connectors).

The KV manager (kv/cache.py) is the only place where GPU blocks enter or leave the pool, and it calls its tier, when
it has one, at exactly two moments:

* ``on_evict(key, num_used)``: a free GPU block holding ``key`` is reused and no other GPU block holds the key any
  more; ``num_used`` is the number of GPU blocks in use before the reuse (the tier decides whether to keep the key);
* ``on_lookup(keys, first, limit)`` at admission: the GPU holds the request's first ``first`` block keys; the tier
  answers how many of ``keys[first:limit]``, in order from ``first``, it can load. Those blocks are then allocated
  like new ones, keyed, and counted as computed tokens of the request, and ``on_load(keys)`` (called after the
  capacity check, before the new blocks are taken) returns the ticks their transfer adds to the step being formed
  (``StepRecord.transfer_time``).

Without a tier (``None``, the default) none of this costs anything. ENGINE.md §8.6 specifies the reference's CPU
tier; vLLM's own connector is a write-through variant of the same three calls.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr


@mypyc_attr(allow_interpreted_subclasses=True)
class KVTier:
    """Base class of KV tiers: holds nothing, loads nothing. ``now`` is the tick of the batch formation under way,
    set by the instance before it forms each batch (the only moment blocks are evicted or loaded). The class is
    compiled: a subclass sets the attributes below on its instances (in ``__init__``), never as class attributes."""

    now: int = 0
    offloads: int = 0  # keys written to the tier (its KV thrashing rate's denominator, §8.6)
    thrash: int = 0  # reloads soon after their offload
    # vLLM's connector model (kv/vllm_offload.py): blocks stored as they fill, loads that the request waits for
    write_through: bool = False
    async_loads: bool = False

    def on_evict(self, key: int, num_used: int) -> None:
        """``key`` left the GPU (module docstring)."""

    def on_lookup(self, keys: list[int], first: int, limit: int) -> int:
        """How many consecutive keys from ``keys[first]`` (at most ``limit - first``) this tier can load."""
        return 0

    def on_load(self, keys: list[int]) -> int:
        """Load ``keys`` into GPU blocks; returns the transfer ticks added to the step being formed."""
        return 0

    # -- write-through tiers with asynchronous loads (``write_through`` / ``async_loads``) -------------------------
    def on_store(self, owner: int, keys: list[int]) -> None:
        """Blocks of request ``owner`` with these keys became full in the step being formed."""

    def on_release(self, owner: int) -> None:
        """Request ``owner`` gave back its GPU blocks (it finished or was preempted)."""

    def start_load(self, owner: int, keys: list[int], start: int) -> int:
        """Begin loading ``keys`` for request ``owner`` at ``start``; returns the tick the load ends."""
        return start

    def load_end(self, owner: int) -> int:
        """Tick the load of request ``owner`` ends, or -1 when it has none under way."""
        return -1

    def finish_load(self, owner: int) -> None:
        """The load of request ``owner`` is done; it is admitted next (``loaded`` until then)."""

    def loaded(self, owner: int) -> bool:
        """Whether request ``owner`` finished a load and was not admitted since."""
        return False

    def admitted(self, owner: int) -> None:
        """Request ``owner`` was admitted (after its load, if it had one)."""

    def next_load_end(self) -> int:
        """The earliest end of a load under way, or -1."""
        return -1

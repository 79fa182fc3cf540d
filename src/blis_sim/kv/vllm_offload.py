"""vLLM 0.15.1's CPU offloading connector as a KV tier (``--kv-offload-mode vllm``; docs/kv-tier.md has the rules).

Where the reference tier (kv/cpu_tier.py, ENGINE.md §8.6) writes a key to CPU when its GPU block is evicted and
loads CPU hits inside the step that admits the request, vLLM's ``OffloadingConnector`` (with its CPU backend and LRU
manager) works differently, and this class follows it:

* **write-through stores**: every block that becomes full in a scheduled step is stored to CPU at once (a block
  already in the store, or being stored, is not stored again; GPU prefix hits of a request that loads nothing are
  stored too). A stored block is readable only once the request that stored it has finished or been preempted
  (vLLM completes a request's stores when it reports the request finished, and at preemption);
* **LRU store of ``capacity`` blocks**: room for a store is made by evicting the least recently used readable
  blocks; blocks being stored or loaded are never evicted; a store that finds no room is skipped (vLLM retries it
  at the request's next step; skipped stores are counted in ``store_skips``). Every lookup of a request refreshes
  all its stored blocks, its first block last (so prefixes outlive their suffixes);
* **asynchronous loads**: a waiting request whose GPU prefix hits are followed by readable CPU blocks starts loading
  them and leaves the scheduling pass without computing; the copy runs on one copy stream (loads one after the
  other), ``base_latency + ceil(block_size / bandwidth)`` ticks per block, from the start of the step that issued
  it. Until it is done the request waits (no token budget, no running slot) and its CPU blocks are pinned; the
  first batch formed at or after its end admits it with the loaded blocks computed and schedules the rest of its
  prompt. Loads never lengthen a step. (vLLM allocates the GPU blocks when the load starts; here they are allocated
  at the admission, so that waiting requests never hold GPU blocks: docs/kv-tier.md says why.)

The scheduler asks ``start_load`` / ``load_end`` / ``finish_load`` / ``loaded`` / ``admitted`` through
``KVCacheManager`` (kv/cache.py), which calls ``on_store`` when it registers keys and ``on_release`` when a request
gives its blocks back.
"""

from __future__ import annotations

from collections import OrderedDict

from .cpu_tier import THRASH_TICKS, block_transfer_ticks
from .tier import KVTier

_STORING = -1  # a block being written: neither readable nor evictable


class VLLMOffloadTier(KVTier):
    """One instance's CPU store in vLLM's connector model (module docstring). Counters: ``offloads`` (blocks
    stored), ``loaded_blocks``, ``store_skips``, ``dropped`` (blocks evicted from the store), ``thrash`` (blocks
    loaded within ``THRASH_TICKS`` of their store, as the reference tier counts them)."""

    def __init__(self, capacity: int, block_size: int, bandwidth: float = 100.0, base_latency: int = 0) -> None:
        if capacity < 1:
            raise ValueError("a CPU tier needs a capacity of at least one block")
        # set on the instance: the compiled base class keeps its attributes in native slots, which a class attribute
        # of an interpreted subclass would not reach
        self.write_through = True
        self.async_loads = True
        self.capacity = capacity
        self.block_ticks = block_transfer_ticks(block_size, bandwidth, base_latency)
        # key -> readers (0: readable; > 0: being loaded by that many requests; -1: being stored), LRU first
        self.state: OrderedDict[int, int] = OrderedDict()
        self.stored_at: dict[int, int] = {}  # key -> tick of its store
        self.storing: dict[int, list[int]] = {}  # request index -> keys it is storing (readable at its release)
        self.loads: dict[int, tuple[int, list[int]]] = {}  # request index -> (tick the load ends, its keys)
        self.done: set[int] = set()  # requests whose load ended, not admitted yet
        self.copy_free = 0  # tick the load copy stream is free again
        self.now = 0
        self.offloads = 0
        self.thrash = 0
        self.loaded_blocks = 0
        self.store_skips = 0
        self.dropped = 0

    # -- stores --------------------------------------------------------------------------------------------------
    def on_store(self, owner: int, keys: list[int]) -> None:
        state = self.state
        new = [k for k in keys if k not in state]
        if not new:
            return
        room = self.capacity - len(state)
        if room < len(new):
            victims = []
            for key, readers in state.items():  # least recently used first
                if readers == 0:
                    victims.append(key)
                    if room + len(victims) == len(new):
                        break
            if room + len(victims) < len(new):
                self.store_skips += len(new)  # all or nothing, as vLLM's prepare_store
                return
            for key in victims:
                del state[key]
                del self.stored_at[key]
            self.dropped += len(victims)
        now = self.now
        for key in new:
            state[key] = _STORING
            self.stored_at[key] = now
        self.storing.setdefault(owner, []).extend(new)
        self.offloads += len(new)

    def on_release(self, owner: int) -> None:
        keys = self.storing.pop(owner, None)
        if keys is not None:
            state = self.state
            for key in keys:
                if state.get(key) == _STORING:
                    state[key] = 0

    # -- lookups and loads ---------------------------------------------------------------------------------------
    def on_lookup(self, keys: list[int], first: int, limit: int) -> int:
        state = self.state
        for key in reversed(keys[:limit]):  # refresh the request's stored blocks, its first block most recent
            if key in state:
                state.move_to_end(key)
        j = first
        while j < limit and state.get(keys[j], _STORING) >= 0:
            j += 1
        return j - first

    def start_load(self, owner: int, keys: list[int], start: int) -> int:
        """Begin copying ``keys`` to GPU blocks for request ``owner`` at ``start``; returns the tick it ends."""
        state = self.state
        now = self.now
        for key in keys:
            state[key] += 1
            if now - self.stored_at[key] < THRASH_TICKS:
                self.thrash += 1
        end = max(start, self.copy_free) + self.block_ticks * len(keys)
        self.copy_free = end
        self.loads[owner] = (end, keys)
        self.loaded_blocks += len(keys)
        return end

    def load_end(self, owner: int) -> int:
        """Tick the load of request ``owner`` ends, or -1 when it has none under way."""
        load = self.loads.get(owner)
        return -1 if load is None else load[0]

    def finish_load(self, owner: int) -> None:
        _, keys = self.loads.pop(owner)
        state = self.state
        for key in keys:
            state[key] -= 1
        self.done.add(owner)

    def loaded(self, owner: int) -> bool:
        return owner in self.done

    def on_load(self, keys: list[int]) -> int:
        return 0  # the admission of a request whose load ended: the copy is done, the request already waited

    def admitted(self, owner: int) -> None:
        self.done.discard(owner)

    def next_load_end(self) -> int:
        """The earliest end of a load under way, or -1."""
        return min((end for end, _ in self.loads.values()), default=-1)

"""The CPU KV tier (ENGINE.md §8.6): the store's accounting on hand-made sequences, then the engine with the tier on
random tight-KV workloads (both engine loops): no block lost or duplicated across offload and reload."""

from __future__ import annotations

import pytest
from harness import LinearLatency, fresh, make_request, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_invariants import engines, workloads

from blis_sim.config import EngineConfig
from blis_sim.engine.observer import Observer
from blis_sim.kv.cpu_tier import THRASH_TICKS, CPUTier
from blis_sim.kv.vllm_offload import VLLMOffloadTier
from blis_sim.metrics.summary import kv_rates
from blis_sim.request import RequestStatus


# ------------------------------------------------------------------------------------------ the store on its own
def test_offload_only_above_the_threshold():
    tier = CPUTier(capacity=4, num_gpu_blocks=10, block_size=16, threshold=0.5)
    tier.on_evict(101, 5)  # 5/10 is not above 0.5
    assert tier.offloads == 0 and not tier.store
    tier.now = 70
    tier.on_evict(101, 6)
    assert tier.offloads == 1 and dict(tier.store) == {101: 70}


def test_lru_replacement_and_refresh():
    tier = CPUTier(capacity=2, num_gpu_blocks=10, block_size=16, threshold=0.0)
    for t, key in [(0, 1), (10, 2), (20, 1), (30, 3)]:  # key 1 offloaded again at 20: refreshed, key 2 is now LRU
        tier.now = t
        tier.on_evict(key, 5)
    assert list(tier.store.items()) == [(1, 20), (3, 30)]
    assert tier.offloads == 4 and tier.dropped == 1
    tier.now = 40
    tier.on_load([1])  # a reload refreshes the position (not the offload tick)
    tier.on_evict(4, 5)
    assert list(tier.store.items()) == [(1, 20), (4, 40)]
    assert tier.dropped == 2


def test_lookup_counts_consecutive_keys_from_first_up_to_the_limit():
    tier = CPUTier(capacity=8, num_gpu_blocks=10, block_size=16, threshold=0.0)
    for key in (11, 12, 14):
        tier.on_evict(key, 9)
    keys = [10, 11, 12, 13, 14]
    assert tier.on_lookup(keys, 1, 5) == 2  # 11, 12, then 13 misses
    assert tier.on_lookup(keys, 1, 2) == 1  # the limit
    assert tier.on_lookup(keys, 0, 5) == 0  # 10 misses at once
    assert tier.on_lookup(keys, 4, 5) == 1


def test_load_prices_each_block_and_counts_thrash():
    tier = CPUTier(capacity=8, num_gpu_blocks=10, block_size=16, threshold=0.0, bandwidth=5.0, base_latency=10)
    assert tier.block_ticks == 10 + 4  # ceil(16 / 5) on the real quotient
    tier.now = 100
    tier.on_evict(1, 9)
    tier.now = 2000
    tier.on_evict(2, 9)
    tier.now = 100 + THRASH_TICKS  # key 1 came back exactly THRASH_TICKS later: not a thrash; key 2 did
    assert tier.on_load([1, 2]) == 28
    assert tier.thrash == 1 and tier.loaded_blocks == 2
    assert list(tier.store) == [1, 2]  # both stay in the store


def test_thrashing_rate_pools_instances():
    class Counters:  # what kv_rates reads of an instance
        def __init__(self, offloads, thrash):
            self.offloads, self.thrash = offloads, thrash
            self.preemptions = self.prefix_query_tokens = self.prefix_hit_tokens = 0

    rates = kv_rates([Counters(3, 1), Counters(1, 1), Counters(0, 0)], completed=5)
    assert rates["kv_thrashing_rate"] == 0.5


# ------------------------------------------------------------------------------------------ inside the engine
SHARED = list(range(500, 532))  # a 32-token shared prefix: 8 blocks of 4


def _tight_reuse():
    # the shared prefix returns after other traffic has pushed it out of a 12-block GPU cache
    reqs = [make_request(0, 0, SHARED + [1], range(1000, 1004))]
    reqs += [make_request(i, 2000 * i, range(100 * i, 100 * i + 30), range(2000, 2004)) for i in range(1, 4)]
    reqs += [make_request(4, 9000, SHARED + [2], range(3000, 3004))]
    return reqs


class Transfers(Observer):
    def __init__(self):
        self.total = 0

    def on_step(self, instance, step, queue_depth, kv_used):
        self.total += step.transfer_time


@pytest.mark.parametrize("asynchronous", [False, True])
def test_the_tier_reloads_an_evicted_prefix_and_charges_the_step(asynchronous):
    engine = EngineConfig(total_kv_blocks=12, block_size_in_tokens=4, async_scheduling=asynchronous)
    tiers = []

    def tier():
        tiers.append(CPUTier(64, 12, 4, threshold=0.0, bandwidth=2.0, base_latency=5))
        return tiers[-1]

    obs = Transfers()
    with_tier = simulate(fresh(_tight_reuse()), engine, LinearLatency(), tier=tier, observer=obs)
    without = simulate(fresh(_tight_reuse()), engine, LinearLatency())
    store, inst = tiers[0], with_tier.instances[0]
    # the prefix's first two blocks left the GPU while it was in use and were offloaded; the third left it when the
    # GPU was empty (0 / 12 is not above the threshold), so the tier's hits stop there
    assert store.offloads > 0 and store.loaded_blocks == 2
    assert obs.total == 2 * (5 + 2)
    assert inst.kv.hit_tokens == without.instances[0].kv.hit_tokens + 2 * 4
    assert all(r.status == RequestStatus.FINISHED for r in with_tier.routed)
    assert inst.kv.num_used == 0
    assert inst.counters().offloads == store.offloads and inst.counters().thrash == store.thrash


def test_a_high_threshold_offloads_nothing_and_changes_nothing():
    engine = EngineConfig(total_kv_blocks=12, block_size_in_tokens=4)
    tiers = []

    def tier():
        tiers.append(CPUTier(64, 12, 4, threshold=1.0))
        return tiers[-1]

    a = simulate(fresh(_tight_reuse()), engine, tier=tier)
    b = simulate(fresh(_tight_reuse()), engine)
    assert tiers[0].offloads == 0
    assert [(r.ttft, r.e2e) for r in a.routed] == [(r.ttft, r.e2e) for r in b.routed]


class Audited(CPUTier):
    """A CPU tier that checks its own conservation at every call: the store never exceeds its capacity, every key it
    held was written by an offload and leaves only by the LRU rule, a loaded key is one it holds."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.written = set()
        self.loads = []

    def on_evict(self, key, num_used):
        super().on_evict(key, num_used)
        if key in self.store:
            self.written.add(key)
        assert len(self.store) <= self.capacity
        assert len(set(self.store) - self.written) == 0

    def on_load(self, keys):
        assert all(k in self.store for k in keys), "loading a key the store does not hold"
        self.loads.append(list(keys))
        return super().on_load(keys)


class AuditedVLLM(VLLMOffloadTier):
    """vLLM's connector model checking itself: capacity, a block's readers never negative, every request's stores
    readable once it gave its blocks back; loads recorded for the GPU check (once they are done)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.finished = []

    def _check(self):
        assert len(self.state) <= self.capacity
        assert all(v >= -1 for v in self.state.values())
        pinned = sum(v for v in self.state.values() if v > 0)
        assert pinned == sum(len(keys) for _, keys in self.loads.values())

    def on_store(self, owner, keys):
        super().on_store(owner, keys)
        self._check()

    def on_release(self, owner):
        super().on_release(owner)
        assert owner not in self.storing
        self._check()

    def start_load(self, owner, keys, start):
        assert all(self.state[k] >= 0 for k in keys), "loading a block that is not readable"
        end = super().start_load(owner, keys, start)
        self._check()
        return end

    def finish_load(self, owner):
        super().finish_load(owner)
        self._check()

    def on_load(self, keys):  # an admission after the load: these blocks are allocated and keyed now
        assert all(self.state[k] >= 0 for k in keys)
        self.finished.append(list(keys))
        return super().on_load(keys)



class LoadedKeysOnGPU(Observer):
    """After each formed batch, every key the tier loaded for it is held by exactly one more GPU block."""

    def __init__(self):
        self.sim = None
        self.tiers = []

    def on_step(self, instance, step, queue_depth, kv_used):
        tier = self.tiers[instance]
        inst = self.sim_instances[instance]
        if isinstance(tier, AuditedVLLM):
            loads = list(tier.finished)
            tier.finished.clear()
        else:
            loads = list(tier.loads)
            tier.loads.clear()
        for keys in loads:
            for k in keys:
                assert k in inst.kv.pool.index, "a reloaded block lost its key"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=workloads(), engine=engines, n_inst=st.integers(1, 2), capacity=st.integers(1, 40),
       threshold=st.sampled_from([0.0, 0.3, 0.9]), asynchronous=st.booleans(), vllm=st.booleans())
def test_no_block_lost_or_duplicated_across_offload_and_reload(reqs, engine, n_inst, capacity, threshold,
                                                                asynchronous, vllm):
    engine = engine.model_copy(update={"async_scheduling": asynchronous})
    obs = LoadedKeysOnGPU()
    B = engine.total_kv_blocks

    def tier():
        if vllm:
            t = AuditedVLLM(capacity, engine.block_size_in_tokens, bandwidth=3.0, base_latency=2)
        else:
            t = Audited(capacity, B, engine.block_size_in_tokens, threshold=threshold, bandwidth=3.0, base_latency=2)
        obs.tiers.append(t)
        return t

    # harness.simulate builds checked instances: GPU block conservation (§8.8) after every formation and application
    obs.sim_instances = []
    sim = simulate(fresh(reqs), engine, LinearLatency(b0=700, b1=5, b2=3), n_inst, observer=obs, tier=tier,
                   instances_out=obs.sim_instances)
    done = 0
    for inst, t in zip(sim.instances, obs.tiers):
        store = t.state if vllm else t.store
        assert len(store) <= capacity
        # blocks written, minus LRU removals (the reference tier also counts an offload that refreshes a key)
        assert (t.offloads - t.dropped == len(store)) if vllm else (t.offloads - t.dropped >= len(store))
        if vllm:
            assert not t.loads and not t.storing and not t.done  # every load admitted, every store readable
        assert not inst.scheduler.waiting and not inst.scheduler.running
        assert inst.kv.num_used == 0  # every GPU block came back to the pool
        done += inst.stats.completed + inst.stats.dropped_unservable
    assert done == len(reqs)
    # the tier's hits are computed tokens the GPU did not recompute: the run's hit tokens include them
    assert sum(i.kv.hit_tokens for i in sim.instances) >= sum(t.loaded_blocks for t in obs.tiers) * \
        engine.block_size_in_tokens


def test_the_cli_tier_is_deterministic_and_reported():
    """Through the Python API: the KV section's thrashing rate is pooled thrash / offloads, reruns are identical."""
    from blis_sim import api
    from blis_sim.config import SimulationConfig

    cfg = SimulationConfig.model_validate({
        "latency": {"model": "meta-llama/llama-3.1-8b-instruct"},
        "engine": {"total_kv_blocks": 300, "kv_cpu_blocks": 4000, "kv_transfer_bandwidth": 50.0},
        "workload": {"num_requests": 200, "rate": 20.0, "prefix_tokens": 1024},
    })
    a, b = api.run(cfg), api.run(cfg)
    assert a.stdout_text() == b.stdout_text()
    off = api.run(cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"kv_cpu_blocks": 0})}))
    assert a.kv["cache_hit_rate"] > off.kv["cache_hit_rate"]


# ------------------------------------------------------------------------------------------ vLLM's connector model
def test_vllm_stores_are_readable_after_release_and_deduplicated():
    tier = VLLMOffloadTier(capacity=4, block_size=16)
    tier.now = 5
    tier.on_store(1, [10, 11])
    tier.on_store(2, [10, 12])  # 10 is being stored already: only 12 is new
    assert tier.offloads == 3 and dict(tier.state) == {10: -1, 11: -1, 12: -1}
    assert tier.on_lookup([10, 11, 12], 0, 3) == 0  # nothing readable while being stored
    tier.on_release(1)
    assert tier.on_lookup([10, 11, 12], 0, 3) == 2  # request 1's blocks are; 12 (request 2's) is not yet
    tier.on_release(2)
    assert tier.on_lookup([10, 11, 12], 0, 3) == 3


def test_vllm_store_evicts_readable_lru_blocks_only_and_skips_when_full_of_inflight():
    tier = VLLMOffloadTier(capacity=3, block_size=16)
    tier.on_store(1, [1, 2])
    tier.on_release(1)
    tier.on_store(2, [3])  # in flight
    # a lookup refreshes the request's stored blocks, its first block last: 1 becomes the most recent
    assert tier.on_lookup([1, 2], 0, 2) == 2
    tier.on_store(3, [4])  # evicts 2, the least recently used readable block
    assert list(tier.state) == [3, 1, 4] and tier.dropped == 1
    tier.on_store(4, [5, 6, 7])  # room for 3 needs 3 readable blocks: only 1 is readable
    assert tier.store_skips == 3 and list(tier.state) == [3, 1, 4]


def test_vllm_loads_queue_on_one_copy_stream_and_pin_their_blocks():
    tier = VLLMOffloadTier(capacity=8, block_size=16, bandwidth=4.0, base_latency=6)
    tier.on_store(9, [1, 2, 3])
    tier.on_release(9)
    tier.now = 5000
    assert tier.start_load(1, [1, 2], start=100) == 100 + 2 * 10
    assert tier.start_load(2, [3], start=105) == 120 + 10  # waits for the first copy
    assert tier.load_end(1) == 120 and tier.next_load_end() == 120 and tier.load_end(3) == -1
    tier.on_store(5, [4, 5, 6, 7, 8, 9])  # needs 3 evictions: only block 3's... all are pinned by loads
    assert tier.store_skips == 6
    tier.finish_load(1)
    tier.finish_load(2)
    assert all(v == 0 for v in tier.state.values()) and tier.next_load_end() == -1


class LoadRecorder(Observer):
    def __init__(self):
        self.steps = []

    def on_step(self, instance, step, queue_depth, kv_used):
        self.steps.append((step.start, step.end, [r.index for r in step.requests], step.transfer_time))


@pytest.mark.parametrize("asynchronous", [False, True])
def test_vllm_mode_loads_before_the_request_computes_in_a_later_step(asynchronous):
    engine = EngineConfig(total_kv_blocks=12, block_size_in_tokens=4, async_scheduling=asynchronous)
    tiers = []

    def tier():
        tiers.append(VLLMOffloadTier(64, 4, bandwidth=4.0, base_latency=99))  # 100 ticks per block
        return tiers[-1]

    obs = LoadRecorder()
    sim = simulate(fresh(_tight_reuse()), engine, LinearLatency(), tier=tier, observer=obs)
    t = tiers[0]
    last = {r.index: r for r in sim.routed}[4]
    assert t.offloads > 0 and t.loaded_blocks > 0
    assert all(transfer == 0 for *_, transfer in obs.steps)  # loads never lengthen a step
    # request 4 is in no batch formed before its load ended; the load began when it was first considered (9000 at
    # the earliest) and took 100 ticks per block
    first = min(start for start, _, reqs, _ in obs.steps if 4 in reqs)
    assert first >= 9000 + 100 * t.loaded_blocks
    assert last.first_scheduled == first and last.status == RequestStatus.FINISHED
    inst = sim.instances[0]
    assert inst.kv.num_used == 0 and not t.loads and not t.storing and not t.done


def test_vllm_mode_gpu_hits_come_first():
    """A request sharing a prefix that is still on the GPU hits it there and loads nothing."""
    engine = EngineConfig(total_kv_blocks=64, block_size_in_tokens=4)
    tiers = []

    def tier():
        tiers.append(VLLMOffloadTier(64, 4))
        return tiers[-1]

    reqs = [make_request(0, 0, SHARED + [1], range(1000, 1004)), make_request(1, 50_000, SHARED + [2], range(9, 13))]
    sim = simulate(fresh(reqs), engine, LinearLatency(), tier=tier)
    assert tiers[0].loaded_blocks == 0 and tiers[0].offloads >= 8
    assert sim.instances[0].kv.hit_tokens == 32

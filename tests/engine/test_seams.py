"""The engine's extension seams: scheduling policies, the observer, snapshots with stale KV signals, a KV tier."""

from __future__ import annotations

import pytest
from harness import LinearLatency, fresh, make_request, simulate

from blis_sim.config import EngineConfig
from blis_sim.engine.instance import Instance
from blis_sim.engine.observer import Observer
from blis_sim.engine.policy import FCFS, SCHEDULING_POLICIES, SchedulingPolicy
from blis_sim.kv.tier import KVTier
from blis_sim.request import RequestStatus

SHARED = list(range(500, 532))  # a 32-token prefix several requests share


def _outcome(sim):
    return sorted((r.index, r.status, r.ttft, r.e2e, r.num_generated) for r in sim.routed)


def _workload(n=12, gap=300, out=6):
    return [make_request(i, i * gap, SHARED + [i, i + 1, i + 2], range(1000 + 10 * i, 1000 + 10 * i + out))
            for i in range(n)]


# ---------------------------------------------------------------------------------------------- scheduling policy
class ShortestPromptFirst(SchedulingPolicy):
    """A policy of the tests: the waiting queue sorted by prompt length at every step start."""

    name = "spf"

    def __init__(self):
        super().__init__()
        self.reorders = True
        self.fast_path = False  # the order changes between step starts: the cohort does not apply

    def before_formation(self, now):
        self.queue = type(self.queue)(sorted(self.queue, key=lambda r: (r.num_prompt_tokens, r.index)))


def _queue_of_three():
    # request 0 runs alone (one running slot); 1, 2, 3 wait with prompts of 30, 10 and 20 tokens
    return [make_request(0, 0, range(8), range(100, 104)), make_request(1, 10, range(30), [1]),
            make_request(2, 20, range(40, 50), [2]), make_request(3, 30, range(60, 80), [3])]


def test_fcfs_is_the_default_and_admits_in_arrival_order():
    engine = EngineConfig(total_kv_blocks=64, block_size_in_tokens=4, max_num_running_reqs=1)
    sim = simulate(_queue_of_three(), engine)
    inst = sim.instances[0]
    assert isinstance(inst.scheduler.policy, FCFS) and SCHEDULING_POLICIES["fcfs"] is FCFS and inst.fast
    order = sorted(sim.routed, key=lambda r: r.first_scheduled)
    assert [r.index for r in order] == [0, 1, 2, 3]


def test_a_policy_orders_the_waiting_queue_and_turns_the_fast_path_off():
    engine = EngineConfig(total_kv_blocks=64, block_size_in_tokens=4, max_num_running_reqs=1)
    sim = simulate(_queue_of_three(), engine, policy=ShortestPromptFirst)
    inst = sim.instances[0]
    order = sorted(sim.routed, key=lambda r: r.first_scheduled)
    assert [r.index for r in order] == [0, 2, 3, 1]  # by prompt length once request 0 is done
    assert all(r.status == RequestStatus.FINISHED for r in sim.routed)
    assert not inst.fast and inst.scheduler.num_formations == inst.stats.num_steps  # the reference scheduler


class OldestFirstVictim(SchedulingPolicy):
    """Victims from the tail still (the seam's contract), counted, to see the scheduler asks the policy."""

    def __init__(self):
        super().__init__()
        self.fast_path = False
        self.victims = []

    def victim(self, running):
        v = running.pop()
        self.victims.append(v.index)
        return v


def test_the_scheduler_asks_the_policy_for_victims():
    reqs = [make_request(i, i, range(10 * i, 10 * i + 12), range(200, 240)) for i in range(4)]
    engine = EngineConfig(total_kv_blocks=14, block_size_in_tokens=4, max_num_running_reqs=4)
    policies = []

    def factory():
        policies.append(OldestFirstVictim())
        return policies[-1]

    sim = simulate(fresh(reqs), engine, policy=factory)
    reference = simulate(fresh(reqs), engine, skip_ahead=False)
    assert policies[0].victims and len(policies[0].victims) == sim.instances[0].scheduler.num_preemptions
    assert _outcome(sim) == _outcome(reference)  # the same victims as FCFS: the same run


# ---------------------------------------------------------------------------------------------- observer
class Recorder(Observer):
    def __init__(self):
        self.admissions, self.routings, self.steps, self.completions = [], [], [], []

    def on_admission(self, req, now, admitted, reason):
        self.admissions.append((req.index, now, admitted))

    def on_routing(self, req, now, target, snapshots, scores):
        self.routings.append((req.index, now, target, len(snapshots)))

    def on_step(self, instance, step, queue_depth, kv_used):
        self.steps.append((instance, step.start, step.end, step.num_prefill_tokens, step.num_decodes))

    def on_completion(self, instance, req, now):
        self.completions.append((instance, req.index, now, req.finish_time))


@pytest.mark.parametrize("asynchronous", [False, True])
def test_the_observer_hears_every_decision_and_changes_nothing(asynchronous):
    engine = EngineConfig(total_kv_blocks=40, block_size_in_tokens=4, max_num_running_reqs=4,
                          async_scheduling=asynchronous)
    reqs = _workload()
    rec = Recorder()
    seen = simulate(fresh(reqs), engine, num_instances=2, observer=rec)
    plain = simulate(fresh(reqs), engine, num_instances=2)
    assert _outcome(seen) == _outcome(plain)
    assert [(i, t, ok) for i, t, ok in rec.admissions] == [(r.index, r.arrival, True) for r in reqs]
    assert [(i, target, n) for i, _, target, n in rec.routings] == [(r.index, r.index % 2, 2) for r in reqs]
    for k, inst in enumerate(seen.instances):
        mine = [s for s in rec.steps if s[0] == k]
        assert len(mine) == inst.stats.num_steps > 0
        assert all(start < end for _, start, end, _, _ in mine)  # causality: a step takes time
        assert all(a[2] <= b[1] for a, b in zip(mine, mine[1:]))  # one device: steps do not overlap
    assert sorted(c[1] for c in rec.completions) == [r.index for r in reqs]
    assert all(now == finish for _, _, now, finish in rec.completions)


# ---------------------------------------------------------------------------------------------- snapshots
def _busy_instance(refresh):
    engine = EngineConfig(total_kv_blocks=100, block_size_in_tokens=4)
    inst = Instance(0, engine, engine.total_kv_blocks, LinearLatency(), snapshot_refresh_interval=refresh)
    reqs = [make_request(0, 0, range(40), range(100, 110)), make_request(1, 0, range(50, 58), range(200, 210)),
            make_request(9, 0, [1], [2])]
    for r in reqs:
        inst.assign(r)  # routed here: pending until it reaches the waiting queue
    inst.enqueue(reqs[0], 0)
    inst.enqueue(reqs[1], 0)  # request 9 is still on its way
    return inst


def test_snapshot_fields_are_exact_without_a_refresh_interval():
    inst = _busy_instance(0)
    s = inst.snapshot(0)
    assert (s.queue_depth, s.batch_size, s.pending_requests, s.kv_utilization, s.free_kv_blocks) == (2, 0, 1, 0.0, 100)
    inst.step(0, bound=1)  # forms the first batch: both admitted, 10 + 2 blocks
    s = inst.snapshot(1)
    assert (s.queue_depth, s.batch_size, s.effective_load) == (0, 2, 3)
    assert (s.kv_utilization, s.free_kv_blocks) == (0.12, 88)


def test_kv_signals_are_stale_between_refreshes():
    inst = _busy_instance(1000)
    inst.step(0, bound=1)
    s = inst.snapshot(1)  # before the first refresh at tick 1000: the cache's zeros
    assert (s.queue_depth, s.batch_size, s.kv_utilization, s.free_kv_blocks) == (0, 2, 0.0, 0)
    s = inst.snapshot(1000)
    assert (s.kv_utilization, s.free_kv_blocks) == (0.12, 88)
    inst.step(1200, bound=1201)  # results applied, next batch formed: the counts move, the KV signal does not
    assert inst.snapshot(1999).kv_utilization == 0.12
    assert inst.snapshot(2000).free_kv_blocks == 100 - inst.kv.num_used


# ---------------------------------------------------------------------------------------------- KV tier
class CPUStore(KVTier):
    """A tier of the tests: keeps every evicted key, loads any it holds at a fixed cost per block."""

    def __init__(self, cost=7):
        self.keys = set()
        self.evictions = []
        self.loaded = 0
        self.cost = cost

    def on_evict(self, key, num_used):
        self.evictions.append((key, num_used))
        self.keys.add(key)

    def on_lookup(self, keys, first, limit):
        n = 0
        while first + n < limit and keys[first + n] in self.keys:
            n += 1
        return n

    def on_load(self, keys):
        self.loaded += len(keys)
        return self.cost * len(keys)


class Priced(Recorder):
    def __init__(self, latency):
        super().__init__()
        self.latency = latency
        self.transfers = 0

    def on_step(self, instance, step, queue_depth, kv_used):
        super().on_step(instance, step, queue_depth, kv_used)
        assert step.end - step.start == self.latency.step_time(step) + step.transfer_time
        self.transfers += step.transfer_time


def _tight_reuse():
    # the same 32-token prefix returns after other traffic has pushed it out of a small GPU cache
    reqs = [make_request(0, 0, SHARED + [1], range(1000, 1004))]
    reqs += [make_request(i, 2000 * i, range(100 * i, 100 * i + 30), range(2000, 2004)) for i in range(1, 4)]
    reqs += [make_request(4, 9000, SHARED + [2], range(3000, 3004))]
    return reqs


@pytest.mark.parametrize("asynchronous", [False, True])
def test_a_tier_hears_evictions_and_loads_hits_into_new_blocks(asynchronous):
    engine = EngineConfig(total_kv_blocks=12, block_size_in_tokens=4, async_scheduling=asynchronous)
    latency = LinearLatency()
    tiers = []

    def tier():
        tiers.append(CPUStore())
        return tiers[-1]

    obs = Priced(latency)
    with_tier = simulate(fresh(_tight_reuse()), engine, latency, tier=tier, observer=obs)  # invariants every step
    without = simulate(fresh(_tight_reuse()), engine, latency)
    store, inst = tiers[0], with_tier.instances[0]
    assert store.evictions and all(0 <= used < 12 for _, used in store.evictions)
    assert len({k for k, _ in store.evictions}) == len(store.evictions)  # a key leaves the GPU once per stay
    last = {r.index: r for r in with_tier.routed}[4]
    assert store.loaded == 8 and obs.transfers == 7 * 8  # the shared prefix's 8 blocks came back from the tier
    assert inst.kv.hit_tokens == without.instances[0].kv.hit_tokens + 32
    assert last.status == RequestStatus.FINISHED and last.num_generated == 4
    assert inst.kv.num_used == 0  # every block came back to the pool


def test_no_tier_reports_nothing_and_costs_nothing():
    engine = EngineConfig(total_kv_blocks=12, block_size_in_tokens=4)
    a = simulate(fresh(_tight_reuse()), engine, tier=KVTier)  # the base class: holds nothing
    b = simulate(fresh(_tight_reuse()), engine)
    assert _outcome(a) == _outcome(b)
    assert b.instances[0].kv.pool.on_evict is None and b.instances[0].kv.tier is None


# ---------------------------------------------------------------------------------------------- closed loop
class Sessions(Observer):
    """Each first-round request gets a second round ``think`` ticks after it completes: its prompt, its answer and
    a new question (so the second round can hit the first round's blocks)."""

    def __init__(self, think):
        self.think = think
        self.sim = None
        self.parents = {}

    def on_completion(self, instance, req, now):
        if req.index >= 100:
            return
        tokens = list(req.tokens) + [7, 7, 7]
        follow = make_request(req.index + 100, now + self.think, tokens, range(900, 905))
        self.parents[follow.index] = (req, now)
        self.sim.add_arrival(follow)


@pytest.mark.parametrize("think", [0, 2500])
def test_a_closed_loop_run_accepts_arrivals_created_during_the_run(think):
    from harness import CheckedInstance

    from blis_sim.cluster.policies import AlwaysAdmit, RoundRobin
    from blis_sim.cluster.simulator import ClusterSimulator

    engine = EngineConfig(total_kv_blocks=200, block_size_in_tokens=4)
    sessions = Sessions(think)
    instances = [CheckedInstance(i, engine, 200, LinearLatency(), observer=sessions) for i in range(2)]
    sim = ClusterSimulator(instances, AlwaysAdmit(), RoundRobin(2), 0, 0, 2**63 - 1, keep_routed=True,
                           observer=sessions, closed_loop=True)
    sessions.sim = sim
    sim.run(_workload(n=6, gap=700))
    rounds = {r.index: r for r in sim.routed}
    assert sorted(rounds) == [0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105]
    for index, (parent, done) in sessions.parents.items():
        child = rounds[index]
        assert child.arrival == done + think == parent.finish_time + think  # causality: after the answer
        assert child.status == RequestStatus.FINISHED and child.first_scheduled >= child.arrival
    assert sum(i.kv.hit_tokens for i in instances) > 0  # second rounds found their first round's blocks


def test_add_arrival_needs_a_closed_loop_run():
    from blis_sim.cluster.policies import AlwaysAdmit, RoundRobin
    from blis_sim.cluster.simulator import ClusterSimulator

    engine = EngineConfig(total_kv_blocks=20, block_size_in_tokens=4)
    sim = ClusterSimulator([Instance(0, engine, 20, LinearLatency())], AlwaysAdmit(), RoundRobin(1), 0, 0, 10)
    with pytest.raises(RuntimeError, match="closed_loop=True"):
        sim.add_arrival(make_request(0, 0, [1], [2]))

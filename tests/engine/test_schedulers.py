"""Schedulers and priority policies (ENGINE.md §11.3-§11.4) and vLLM 0.15.1's priority policy (vllm-priority).

* each scheduler's waiting-queue order on hand-built queues (ties, preempted requests, stability);
* priority values at a step start (the literal mode), and the keyed queues giving the literal order;
* vllm-priority's victim rule: the largest (priority, arrival), same-tick arrivals in arrival order (no livelock),
  a victim already scheduled in the pass (its share of the step taken back), an empty batch, equal priorities
  (not FCFS);
* hypothesis: request and KV-block conservation, and a consistent step record, under every scheduler and both
  engine loops; the fast path (decode cohort and skip-ahead) equals single stepping under every scheduler.
"""

from __future__ import annotations

import pytest
from harness import LinearLatency, fresh, make_request, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_invariants import engines, workloads
from test_skip_ahead import _state

from blis_sim.cluster.policies import LeastLoaded
from blis_sim.config import EngineConfig
from blis_sim.config.names import PRIORITY_POLICIES as PRIORITY_NAMES
from blis_sim.config.names import SCHEDULERS
from blis_sim.engine.observer import Observer
from blis_sim.engine.policy import (
    FCFS,
    PRIORITY_POLICIES,
    SCHEDULING_POLICIES,
    InvertedSLO,
    PriorityFCFS,
    PriorityPolicy,
    ReversePriority,
    SLOBased,
    VLLMPriority,
)
from blis_sim.engine.scheduler import Scheduler
from blis_sim.kv.cache import KVCacheManager
from blis_sim.metrics.summary import cluster_block
from blis_sim.request import RequestStatus

# every (scheduler, priority policy) pair a run accepts (vllm-priority reads the requests' own priorities only)
COMBINATIONS = [(s, p) for s in SCHEDULERS for p in PRIORITY_NAMES if s != "vllm-priority" or p == "constant"]


def _req(index, arrival, prompt_len=4, priority=0, request_id=None):
    return make_request(index, arrival, range(100 * index, 100 * index + prompt_len), [1, 2], priority, request_id)


def _drain(policy):
    out = []
    while len(policy):
        out.append(policy.pop_head().index)
    return out


def _policy(scheduler, priority="constant", **kw):
    return SCHEDULING_POLICIES[scheduler](EngineConfig(scheduler=scheduler, priority_policy=priority), **kw)


# ---------------------------------------------------------------------------------------------- the tables
def test_every_name_has_its_code():
    assert set(SCHEDULING_POLICIES) == set(SCHEDULERS) and set(PRIORITY_POLICIES) == set(PRIORITY_NAMES)
    assert SCHEDULING_POLICIES["fcfs"] is FCFS
    assert [f().name for f in PRIORITY_POLICIES.values()] == list(PRIORITY_POLICIES)
    assert [f(EngineConfig()).name for f in SCHEDULING_POLICIES.values()] == list(SCHEDULING_POLICIES)


def test_the_instance_builds_its_policy_from_the_engine_settings():
    engine = EngineConfig(scheduler="reverse-priority", priority_policy="inverted-slo", total_kv_blocks=50)
    sim = simulate([_req(0, 0)], engine)
    policy = sim.instances[0].scheduler.policy
    assert isinstance(policy, ReversePriority) and isinstance(policy.priorities, InvertedSLO)
    assert sim.instances[0].fast  # a keyed queue: the fast path stays on


def test_vllm_priority_refuses_a_priority_policy():
    with pytest.raises(ValidationError, match="--priority-policy slo-based cannot be combined with --scheduler "
                                              "vllm-priority"):
        EngineConfig(scheduler="vllm-priority", priority_policy="slo-based")


# ---------------------------------------------------------------------------------------------- priority values
def test_priority_values():
    r = _req(0, 2_000_000)
    assert PriorityPolicy().priority(r, 5_000_000) == 0.0
    assert SLOBased().priority(r, 5_000_000) == 1e-6 * 3_000_000 == 3.0
    assert InvertedSLO().priority(r, 5_000_000) == -3.0
    assert SLOBased().priority(r, 2_000_000) == 0.0  # t = arrival: age 0


@pytest.mark.parametrize("scheduler", ["priority-fcfs", "sjf", "reverse-priority"])
@pytest.mark.parametrize("priority", ["constant", "slo-based", "inverted-slo"])
def test_the_literal_mode_recomputes_priorities_at_each_step_start(scheduler, priority):
    policy = _policy(scheduler, priority, literal=True)
    assert policy.reorders and not policy.fast_path
    reqs = [_req(0, 1_000), _req(1, 250_000), _req(2, 40)]
    for r in reqs:
        r.priority = 123.0  # whatever the request carried: recomputed at the step start
        policy.add(r)
    expected = PRIORITY_POLICIES[priority]()
    for t in (300_000, 7_000_000):
        policy.before_formation(t)
        assert [r.priority for r in reqs] == [expected.priority(r, t) for r in reqs]
    assert reqs[0].priority == {"constant": 0.0, "slo-based": 6.999, "inverted-slo": -6.999}[priority]


# ---------------------------------------------------------------------------------------------- queue order
def _mixed_queue():
    # index: arrival, prompt length, vllm priority
    return [_req(0, 500, 9, 2), _req(1, 100, 3, 0), _req(2, 500, 3, 0), _req(3, 100, 9, 1), _req(4, 300, 5, 0),
            _req(5, 100, 3, 2)]


EXPECTED_ORDER = {
    # enqueue order 0..5; arrival ties broken by index
    ("fcfs", "constant"): [0, 1, 2, 3, 4, 5],
    ("priority-fcfs", "constant"): [1, 3, 5, 4, 0, 2],  # all priorities 0: arrival, then index
    ("priority-fcfs", "slo-based"): [1, 3, 5, 4, 0, 2],  # the oldest first
    ("priority-fcfs", "inverted-slo"): [0, 2, 4, 1, 3, 5],  # the youngest first, ties by index
    ("reverse-priority", "constant"): [1, 3, 5, 4, 0, 2],
    ("reverse-priority", "slo-based"): [0, 2, 4, 1, 3, 5],
    ("reverse-priority", "inverted-slo"): [1, 3, 5, 4, 0, 2],  # the two cancel out (§11.4)
    ("sjf", "constant"): [1, 5, 2, 4, 3, 0],  # P, then arrival, then index
    ("sjf", "slo-based"): [1, 5, 2, 4, 3, 0],
    ("vllm-priority", "constant"): [1, 4, 2, 3, 5, 0],  # (priority, arrival, id)
}


@pytest.mark.parametrize("scheduler, priority", sorted(EXPECTED_ORDER))
@pytest.mark.parametrize("literal", [False, True], ids=["keyed", "literal"])
def test_queue_order(scheduler, priority, literal):
    if literal and scheduler in ("fcfs", "vllm-priority"):
        pytest.skip("no literal mode")
    policy = _policy(scheduler, priority, literal=True) if literal else _policy(scheduler, priority)
    for r in _mixed_queue():
        policy.add(r)
    if policy.reorders:
        policy.before_formation(1_000_000)
    assert [r.index for r in policy] == EXPECTED_ORDER[scheduler, priority]  # the view, in order
    assert _drain(policy) == EXPECTED_ORDER[scheduler, priority]


def test_a_preempted_request_goes_back_by_its_key_except_under_fcfs():
    for name, expected in [("fcfs", [3, 0, 1, 2]), ("priority-fcfs", [0, 1, 2, 3]), ("sjf", [0, 1, 2, 3]),
                           ("vllm-priority", [0, 1, 2, 3])]:
        policy = _policy(name)
        reqs = [_req(i, 10 * i) for i in range(4)]
        for r in reqs[:3]:
            policy.add(r)
        policy.add_preempted(reqs[3])  # the latest arrival, preempted: FCFS puts it in front
        assert _drain(policy) == expected, name


def test_vllm_priority_orders_same_tick_arrivals_by_arrival_order():
    # vLLM's stamps are unique and in arrival order: same-tick requests by index, never by id ("request_10" would
    # come before "request_2" as a string, vLLM's tie rule for exactly equal stamps)
    policy = _policy("vllm-priority")
    for i in (2, 10, 1):
        policy.add(_req(i, 0, request_id=f"request_{i}"))
    policy.add(_req(7, 0, priority=-1, request_id="request_7"))
    assert _drain(policy) == [7, 1, 2, 10]


def test_equal_keys_keep_insertion_order():
    policy = _policy("vllm-priority")
    a, b = _req(3, 5), _req(3, 5)  # the same index twice (not from a workload): insertion order
    b.id = "b"
    policy.add(b)
    policy.add(a)
    assert [r.id for r in policy] == ["b", "request_3"]


def test_retain_waiting_keeps_the_heap_order():
    policy = _policy("sjf")
    reqs = [_req(i, i, prompt_len=10 - i) for i in range(6)]
    for r in reqs:
        r.status = RequestStatus.WAITING
        policy.add(r)
    reqs[3].status = RequestStatus.FINISHED
    reqs[5].status = RequestStatus.FINISHED
    policy.retain_waiting()
    assert _drain(policy) == [4, 2, 1, 0]


def test_the_literal_sort_is_stable_under_a_time_varying_priority_policy():
    """A priority policy whose order changes with t gets the literal recompute-and-sort, fast path off."""

    class Deadline(PriorityPolicy):  # priority rises with age divided by a per-request budget (its index + 1)
        name = "deadline"

        def __init__(self):
            super().__init__()
            self.time_invariant = False

        def priority(self, req, now):
            return (now - req.arrival) / (req.index + 1)

    import blis_sim.engine.policy as policy_module

    policy_module.PRIORITY_POLICIES["deadline"] = Deadline
    try:
        policy = PriorityFCFS(EngineConfig().model_copy(update={"priority_policy": "deadline"}))
    finally:
        del policy_module.PRIORITY_POLICIES["deadline"]
    assert policy.literal and policy.reorders and not policy.fast_path
    a, b = _req(0, 0), _req(1, 50)
    policy.add(a)
    policy.add(b)
    policy.before_formation(60)  # a: 60, b: 5
    assert [r.index for r in policy] == [0, 1]
    policy.before_formation(500)  # a: 500, b: 225
    assert [r.index for r in policy] == [0, 1]
    c = _req(2, 0)
    policy.add(c)
    policy.before_formation(3000)  # a: 3000, b: 1475, c: 1000
    assert [r.index for r in policy] == [0, 1, 2]
    policy.before_formation(90)  # a: 90, b: 20, c: 30: c overtakes b
    assert [r.index for r in policy] == [0, 2, 1]


# ---------------------------------------------------------------------------------------------- vllm-priority victims
def _sched(policy, blocks, bs=4, budget=64, max_running=8, thr=0):
    cfg = EngineConfig(total_kv_blocks=blocks, block_size_in_tokens=bs, max_num_scheduled_tokens=budget,
                       max_num_running_reqs=max_running, long_prefill_token_threshold=thr)
    return Scheduler(cfg, KVCacheManager(blocks, bs), {}, policy)


def _enqueue(sched, *reqs):
    for r in reqs:
        r.status = RequestStatus.WAITING
        sched.policy.add(r)


def _apply(step):
    """The results of a synchronous step, for these hand-driven schedulers (no request finishes here)."""
    for r in step.emits:
        r.num_placeholders -= 1
        r.num_generated += 1


def test_victim_is_the_largest_priority_then_arrival():
    policy = VLLMPriority()
    running = [_req(0, 30, priority=1), _req(3, 50, priority=2), _req(2, 10, priority=2), _req(1, 50, priority=2),
               _req(4, 90, priority=0)]
    # (2, 50) is the largest; of the two same-tick requests the later arrival (index 3) goes first
    assert policy.victim(running).index == 3
    assert [r.index for r in running] == [0, 2, 1, 4]
    assert [policy.victim(running).index for _ in range(4)] == [1, 2, 0, 4]
    assert FCFS().victim([_req(0, 0), _req(1, 5)]).index == 1  # FCFS: the most recently admitted


def _stages(sched, *stages):
    """Enqueue each group of requests and form one step after it (applying its results), so that the running list
    is in the order the stages give, whatever the priorities."""
    for t, group in enumerate(stages):
        _enqueue(sched, *group)
        _apply(sched.schedule(1000 * t))


def _victim_scenario(policy):
    """A (priority 5: served last), then B and C (priority 0) are admitted, in that order; at the step checked A is
    scheduled (a decode), then B cannot get a block."""
    a = make_request(0, 0, range(8), range(100, 110), priority=5)
    b = make_request(1, 1, range(20, 28), range(200, 210))
    c = make_request(2, 2, range(40, 46), range(300, 310))  # 6 tokens: its decode needs no new block
    sched = _sched(policy, blocks=7)
    _stages(sched, [a], [b, c])
    assert [r.index for r in sched.running] == [0, 1, 2] and sched.kv.num_free() == 0
    return sched, a, b, c


def test_an_already_scheduled_victim_gives_its_share_of_the_step_back():
    sched, a, b, c = _victim_scenario(VLLMPriority())
    step = sched.schedule(2000)
    # A was scheduled (a decode), B failed, A (priority 5) was the victim: its decode left the step, its token went
    # back to the budget, and C, after B in the running list, was still visited (the index stepped back)
    assert [r.index for r in step.requests] == [1, 2] and step.num_new_tokens == [1, 1]
    assert step.num_decodes == 2 and step.decode_context_sum == 8 + 6
    assert step.prefill_items == [] and step.num_prefill_tokens == 0
    assert [r.index for r in step.emits] == [1, 2]
    assert [r.index for r in step.preempted] == [0] and sched.num_self_preemptions == 0
    assert a.status == RequestStatus.WAITING and a.num_computed_tokens == 0 and a.num_placeholders == 0
    assert a.blocks == [] and a.num_generated == 2  # keeps its output tokens
    assert [r.index for r in sched.running] == [1, 2] and [r.index for r in sched.waiting] == [0]
    assert b.num_computed_tokens == 9 and c.num_computed_tokens == 7
    assert sched.kv.num_used == 3 + 2


def test_fcfs_preempts_the_most_recently_admitted_in_the_same_scenario():
    sched = _victim_scenario(FCFS())[0]
    step = sched.schedule(2000)
    assert [r.index for r in step.requests] == [0, 1] and [r.index for r in step.preempted] == [2]


def test_a_taken_back_prefill_chunk_leaves_its_prefill_item():
    """The victim's item is a prompt chunk between a decode and another chunk: only its own entries leave."""
    d = make_request(0, 0, range(4), range(100, 120))  # decodes
    a = make_request(1, 1, range(20, 40), range(200, 210), priority=3)  # 20 prompt tokens, chunks of 4
    e = make_request(2, 2, range(40, 60), range(300, 310), priority=1)
    b = make_request(3, 3, range(60, 64), range(400, 410))  # its first decode needs a second block
    sched = _sched(VLLMPriority(), blocks=10, thr=4)
    _stages(sched, [d], [a], [e], [b])
    assert [r.index for r in sched.running] == [0, 1, 2, 3] and sched.kv.num_free() == 2
    step = sched.schedule(5000)
    # D decodes (no new block), A takes a block for its chunk 12..16, E the last one for its chunk 8..12, B cannot
    # get one: A (priority 3) is the victim; E's chunk and the two decodes stay
    assert [r.index for r in step.preempted] == [1]
    assert [r.index for r in step.requests] == [0, 2, 3] and step.num_new_tokens == [1, 4, 1]
    assert step.prefill_items == [(8, 4)] and step.num_prefill_tokens == 4
    assert step.num_decodes == 2 and step.decode_context_sum == 7 + 4
    assert [r.index for r in step.emits] == [0, 3]
    assert a.num_computed_tokens == 0 and a.blocks == []


def _empty_batch_case():
    # request 0 (priority 1) runs; request 1 (priority 0) is admitted beside it and takes the last block; at the next
    # step request 0 needs a block and is itself the victim (the lowest priority), while request 1, after it in the
    # running list, keeps its block: the pass schedules nothing
    return [make_request(0, 5, [1, 2, 3], [4, 5, 6, 7], priority=1), make_request(1, 105, [8, 9], [10, 11, 12])]


@pytest.mark.parametrize("asynchronous", [False, True])
def test_an_empty_batch_is_formed_again_at_once(asynchronous):
    """A pass can preempt every request it scheduled: vLLM runs the empty batch (no tokens, no device time) and
    schedules again. The loops form the next batch at the same tick; the empty one is not a step."""
    engine = EngineConfig(total_kv_blocks=2, block_size_in_tokens=4, scheduler="vllm-priority",
                          async_scheduling=asynchronous)
    latency = LinearLatency(b0=1000, b1=10, b2=1)
    single = simulate(_empty_batch_case(), engine, latency, skip_ahead=False)
    fast = simulate(_empty_batch_case(), engine, latency, skip_ahead=True)
    assert _state(fast) == _state(single)
    inst = single.instances[0]
    assert all(r.status == RequestStatus.FINISHED for r in single.routed) and inst.kv.num_used == 0
    assert all(n >= 1 for _, _, n in inst.steps)  # every counted step scheduled tokens
    if not asynchronous:  # (asynchronous: the batch formed meanwhile keeps request 1 going; no empty batch here)
        assert inst.scheduler.num_self_preemptions == 1
        assert inst.scheduler.num_formations == inst.stats.num_steps + 1 == len(inst.steps) + 1
        # [5, 1035) prefills request 0; [1035, 2056) decodes it and prefills request 1; at 2056 the empty batch
        # preempts request 0, and the batch formed at once decodes request 1 alone
        assert inst.steps[:3] == [(5, 1035, 3), (1035, 2056, 3), (2056, 3057, 1)]
        fcfs = simulate(_empty_batch_case(), engine.model_copy(update={"scheduler": "fcfs"}), latency,
                        skip_ahead=False)
        assert fcfs.instances[0].scheduler.num_formations == fcfs.instances[0].stats.num_steps


def test_equal_priorities_the_victim_is_the_latest_arrival_not_the_latest_admission():
    """Every priority 0. With a per-token queueing delay a later arrival with a short prompt reaches the queue, and
    the running list, first. vLLM then preempts the running request that arrived last, which may be the first
    admitted (here already scheduled in the pass, so its decode is taken back); FCFS preempts the last admitted."""
    b = make_request(1, 10, range(20, 28), range(200, 210))  # arrived last, admitted first
    a = make_request(0, 0, range(8), range(100, 110))
    c = make_request(2, 5, range(40, 46), range(300, 310))  # 6 tokens: its decode needs no new block
    for policy, victim, scheduled in ((VLLMPriority(), 1, [0, 2]), (FCFS(), 2, [1, 0])):
        sched = _sched(policy, blocks=7)
        x, y, z = fresh([b, a, c])
        _stages(sched, [x], [y, z])
        assert [r.index for r in sched.running] == [1, 0, 2] and sched.kv.num_free() == 0
        # x (B) was at a block boundary at the last step; now y (A) needs a block
        step = sched.schedule(2000)
        assert [r.index for r in step.preempted] == [victim]
        assert [r.index for r in step.requests] == scheduled


def test_equal_priorities_the_queue_is_ordered_by_arrival_not_by_enqueue():
    """Every priority 0, per-token queueing delays: request 2 (arrived at 5, one prompt token) reaches the queue at
    15, before request 0 (arrived at 0, four tokens) at 40. FCFS admits in enqueue order, vLLM's heap by arrival."""
    reqs = [make_request(0, 0, range(4), [50]), make_request(1, 0, [60], [61, 62, 63]), make_request(2, 5, [70], [71])]
    engine = EngineConfig(total_kv_blocks=1, block_size_in_tokens=4, max_num_scheduled_tokens=16)
    latency = LinearLatency(b0=1000, b1=10, b2=1, a1=10)
    first = {}
    for name in ("fcfs", "vllm-priority"):
        sim = simulate(fresh(reqs), engine.model_copy(update={"scheduler": name}), latency)
        assert all(r.status == RequestStatus.FINISHED for r in sim.routed)
        first[name] = [r.index for r in sorted(sim.routed, key=lambda r: r.first_scheduled)]
    assert first == {"fcfs": [1, 2, 0], "vllm-priority": [1, 0, 2]}


def test_same_tick_requests_with_equal_priorities_do_not_livelock():
    """vLLM's rule for equal stamps taken with tied ticks (the first tied request in running order is the victim)
    made these four same-tick requests preempt each other forever (found by the vLLM oracle, which loops the same
    way); with arrival-ordered stamps the run completes."""
    prompts = [[1, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 1, 2],
               [1, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 1, 2, 2, 1, 2, 2, 2, 2, 1, 2, 2, 2, 1],
               [1, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 1, 1, 1, 2, 1, 1, 1, 1, 2, 1, 1, 2, 1, 2, 2, 1, 1, 1, 2, 1, 2, 2, 1,
                2, 2, 1, 2, 1],
               [1, 2, 1, 1, 1, 2, 2, 2, 2, 2, 2, 1, 2]]
    outputs = [[1, 2], [1, 1, 1], [2], [2, 2]]
    reqs = [make_request(i, 0, p, o) for i, (p, o) in enumerate(zip(prompts, outputs))]
    engine = EngineConfig(total_kv_blocks=8, block_size_in_tokens=5, long_prefill_token_threshold=2,
                          max_model_len=60, scheduler="vllm-priority")
    latency = LinearLatency(b0=4934, b1=25, b2=15, a0=80, a1=4)
    sim = simulate(reqs, engine, latency, horizon=10**9)
    assert all(r.status == RequestStatus.FINISHED for r in sim.routed)


@st.composite
def prioritised(draw):
    """The invariants' workloads, each request with a priority (a few levels: ties are common)."""
    reqs = draw(workloads())
    levels = draw(st.sampled_from([[0], [0, 1], [-2, 0, 3], list(range(-5, 6))]))
    for r in reqs:
        r.priority = float(draw(st.sampled_from(levels)))
    return reqs


class StepChecker(Observer):
    """Checks every formed step record against its requests: counts, prefill items, decodes, emits."""

    def __init__(self):
        self.steps = 0

    def on_step(self, instance, step, queue_depth, kv_used):
        self.steps += 1
        reqs, counts = step.requests, step.num_new_tokens
        assert len(reqs) == len(counts) == len({id(r) for r in reqs})
        emitting = {id(r) for r in step.emits}
        assert emitting <= {id(r) for r in reqs}
        assert not ({id(r) for r in step.preempted} & {id(r) for r in reqs})
        items, decodes, context = [], 0, 0
        for r, k in zip(reqs, counts):
            assert r.status == RequestStatus.RUNNING and k >= 1
            c_before = r.num_computed_tokens - k
            if k == 1 and id(r) in emitting and r.num_generated + r.num_placeholders >= 2:
                decodes += 1
                context += c_before
            else:
                items.append((c_before, k))
        assert step.prefill_items == items
        assert step.num_prefill_tokens == sum(k for _, k in items)
        assert step.num_decodes == decodes + step.cohort_size
        if not step.cohort_size:
            assert step.decode_context_sum == context


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=prioritised(), engine=engines, combo=st.sampled_from(COMBINATIONS), n_inst=st.integers(1, 2),
       asynchronous=st.booleans(), horizon=st.sampled_from([2**63 - 1, 2**63 - 1, 20_000]))
def test_invariants_under_every_scheduler(reqs, engine, combo, n_inst, asynchronous, horizon):
    engine = engine.model_copy(update={"scheduler": combo[0], "priority_policy": combo[1],
                                       "async_scheduling": asynchronous})
    checker = StepChecker()
    sim = simulate(reqs, engine, LinearLatency(b0=700, b1=5, b2=3, a0=11, a2=7), n_inst, horizon,
                   observer=checker)  # CheckedInstance: KV invariants after every formation and application
    for inst in sim.instances:
        block = cluster_block([inst.counters()])
        assert block["injected_requests"] == (
            block["completed_requests"] + block["still_queued"] + block["still_running"] + block["dropped_unservable"]
        )
        if horizon == 2**63 - 1:
            assert not len(inst.scheduler.waiting) and not inst.scheduler.running and inst.kv.num_used == 0
    if horizon == 2**63 - 1:
        assert all(r.status in (RequestStatus.FINISHED, RequestStatus.DROPPED) for r in reqs)
        assert all(r.num_generated == r.num_output_tokens for r in reqs if r.status == RequestStatus.FINISHED)
    assert sum(r.num_generated for r in reqs) == sum(i.stats.total_output_tokens for i in sim.instances)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=prioritised(), engine=engines, combo=st.sampled_from(COMBINATIONS), n_inst=st.integers(1, 3),
       asynchronous=st.booleans(), horizon=st.sampled_from([2**63 - 1, 5_000, 20_000, 60_000]),
       b2=st.integers(0, 40), a1=st.sampled_from([0, 0, 3]), least_loaded=st.booleans())
def test_skip_ahead_equals_single_stepping_under_every_scheduler(reqs, engine, combo, n_inst, asynchronous, horizon,
                                                                 b2, a1, least_loaded):
    """Also with a router that reads instance state (instances then hand control back at every arrival)."""
    engine = engine.model_copy(update={"scheduler": combo[0], "priority_policy": combo[1],
                                       "async_scheduling": asynchronous})
    latency = LinearLatency(b0=700, b1=5, b2=b2, a0=11, a2=9, a1=a1)
    routing = (lambda n: LeastLoaded()) if least_loaded else None
    single = simulate(fresh(reqs), engine, latency, n_inst, horizon, skip_ahead=False, routing=routing)
    fast = simulate(fresh(reqs), engine, latency, n_inst, horizon, skip_ahead=True, routing=routing)
    assert fast.instances[0].fast == (not asynchronous)  # every built-in policy allows the fast path
    assert _state(fast) == _state(single)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=prioritised(), engine=engines, combo=st.sampled_from([c for c in COMBINATIONS if c[0] not in
                                                                  ("fcfs", "vllm-priority")]),
       n_inst=st.integers(1, 2), asynchronous=st.booleans(), horizon=st.sampled_from([2**63 - 1, 20_000]))
def test_keyed_queues_give_the_literal_sort(reqs, engine, combo, n_inst, asynchronous, horizon):
    """The reference schedulers keep their queue as a heap by a fixed key (the built-in priority policies order
    waiting requests the same way at every t); recomputing every priority and re-sorting the whole queue at each
    step start, as §7.2 words it, gives exactly the same run."""
    engine = engine.model_copy(update={"scheduler": combo[0], "priority_policy": combo[1],
                                       "async_scheduling": asynchronous})
    latency = LinearLatency(b0=700, b1=5, b2=3, a0=11, a2=9)
    cls = SCHEDULING_POLICIES[combo[0]]
    literal = simulate(fresh(reqs), engine, latency, n_inst, horizon, policy=lambda: cls(engine, literal=True))
    keyed = simulate(fresh(reqs), engine, latency, n_inst, horizon)
    assert not literal.instances[0].fast and keyed.instances[0].fast == (not asynchronous)
    # the literal queue is in order at step starts only: sort what is left as a step start after the run would
    for inst in literal.instances:
        inst.scheduler.policy.before_formation(max(r.arrival for r in reqs))
    assert _state(keyed) == _state(literal)


def test_schedulers_change_the_order_of_admissions():
    """One running slot; the queue behind it is served in each scheduler's order."""
    reqs = [make_request(0, 0, range(8), range(100, 104))]
    reqs += [make_request(i, 10 * i, range(50 * i, 50 * i + (40 - 10 * i)), [7], priority=(i * 7) % 4)
             for i in range(1, 4)]  # prompts 30, 20, 10; vllm priorities 3, 2, 1
    orders = {}
    for name in SCHEDULERS:
        engine = EngineConfig(total_kv_blocks=64, block_size_in_tokens=4, max_num_running_reqs=1, scheduler=name)
        sim = simulate(fresh(reqs), engine)
        orders[name] = [r.index for r in sorted(sim.routed, key=lambda r: r.first_scheduled)]
    assert orders == {"fcfs": [0, 1, 2, 3], "priority-fcfs": [0, 1, 2, 3], "reverse-priority": [0, 1, 2, 3],
                      "sjf": [0, 3, 2, 1], "vllm-priority": [0, 3, 2, 1]}

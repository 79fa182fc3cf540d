"""Decode skip-ahead is exact: every observable of a run equals single stepping (ENGINE.md §7.6)."""

from __future__ import annotations

import pytest
from harness import LinearLatency, fresh, make_request, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_invariants import engines, workloads

from blis_sim.cluster.policies import (
    AdmissionPolicy,
    AlwaysBusiest,
    LeastLoaded,
    PrefixAffinity,
    Weighted,
)
from blis_sim.config import EngineConfig
from blis_sim.config.names import DEFAULT_SCORERS


def _state(sim):
    reqs = sorted(sim.routed, key=lambda r: r.index)
    per_request = [
        (r.index, r.status, r.ttft, r.e2e, r.first_scheduled, r.first_token, r.last_token, r.finish_time,
         r.num_generated, r.num_computed_tokens, list(r.blocks), r.num_cached_blocks, r.instance)
        for r in reqs
    ]
    per_instance = []
    for inst in sim.instances:
        st_, pool = inst.stats, inst.kv.pool
        per_instance.append((
            st_.completed, st_.total_output_tokens, st_.total_input_tokens, st_.last_event_time, st_.num_steps,
            st_.hol_sum, st_.hol_steps, st_.ttft.counts, st_.e2e.counts, st_.itl.counts, st_.scheduling_delay.counts,
            list(pool.ref_cnt), list(pool.key), pool.free_queue(), {k: list(v) for k, v in pool.index.items()},
            pool.num_used, pool.num_touched, inst.kv.hit_tokens, inst.kv.query_tokens,
            inst.scheduler.num_preemptions, inst.scheduler.num_self_preemptions,
            [r.index for r in inst.scheduler.running], [r.index for r in inst.scheduler.waiting],
        ))
    return per_request, per_instance


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=workloads(), engine=engines, n_inst=st.integers(1, 3), a2=st.integers(0, 50),
       horizon=st.sampled_from([2**63 - 1, 5_000, 20_000, 60_000]), b2=st.integers(0, 40),
       a1=st.sampled_from([0, 0, 3]), cheap=st.booleans())
def test_skip_ahead_equals_single_stepping(reqs, engine, n_inst, a2, horizon, b2, a1, cheap):
    # a1 > 0: a later arrival with a shorter prompt reaches the waiting queue first (found by the vLLM oracle)
    latency = LinearLatency(b0=700, b1=5, b2=b2, a0=11, a2=a2, a1=a1, cheap=cheap)
    single = simulate(fresh(reqs), engine, latency, n_inst, horizon, skip_ahead=False)
    fast = simulate(fresh(reqs), engine, latency, n_inst, horizon, skip_ahead=True)
    assert _state(fast) == _state(single)


class SnapshotReadingAdmit(AdmissionPolicy):
    """Admits everything, but asks for snapshots: the cluster then queues admissions as events."""

    def __init__(self):
        super().__init__()
        self.needs_snapshots = True
        self.admits_everything = True

    def admit(self, req, snapshots, now):
        assert len(snapshots) >= 1
        return True, ""


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=workloads(), engine=engines, n_inst=st.integers(1, 3), horizon=st.sampled_from([2**63 - 1, 20_000]))
def test_admitting_at_the_arrival_equals_admission_events(reqs, engine, n_inst, horizon):
    """Without latencies the cluster admits and routes an arrival at once (no heap events); same-tick arrivals
    (the workloads have them) must come out exactly as with queued admission events."""
    latency = LinearLatency(b0=700, b1=5, b2=3, a0=11, a2=7)
    queued = simulate(fresh(reqs), engine, latency, n_inst, horizon, admission=SnapshotReadingAdmit())
    at_once = simulate(fresh(reqs), engine, latency, n_inst, horizon)
    assert _state(at_once) == _state(queued)
    assert [r.index for r in at_once.routed] == [r.index for r in queued.routed]


@pytest.mark.parametrize("cheap", [False, True], ids=["memo", "priced-each-step"])
def test_long_decode_stretch_crosses_many_blocks(cheap):
    """Two long decodes with a context-dependent step time: the stretch crosses block boundaries in bulk."""

    class ContextLatency(LinearLatency):
        def step_time(self, step):
            return 500 + 7 * step.num_prefill_tokens + (step.decode_context_sum // 3)

        def decode_step_time(self, num_decodes, context_sum):
            return 500 + context_sum // 3

    reqs = [make_request(0, 0, range(10), range(100, 400)), make_request(1, 50, range(5, 30), range(500, 700))]
    engine = EngineConfig(block_size_in_tokens=16, total_kv_blocks=64)
    single = simulate(fresh(reqs), engine, ContextLatency(cheap=cheap), skip_ahead=False)
    fast = simulate(fresh(reqs), engine, ContextLatency(cheap=cheap), skip_ahead=True)
    assert _state(fast) == _state(single)
    assert len(fast.instances[0].steps) < len(single.instances[0].steps) / 20
    assert bool(fast.instances[0].fast_path.decode_memo) != cheap  # the memo is used exactly when the model is not cheap


def test_stretch_stops_where_a_new_key_lets_the_waiting_head_in():
    """Found by the vLLM oracle: request_0's decode fills a block whose key starts request_1's prompt, so vLLM
    admits request_1 at that step (with 8 cached tokens) although it did not fit before."""
    a = make_request(0, 0, [1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11, 12, 13])
    w = make_request(1, 0, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 99], [50])
    engine = EngineConfig(block_size_in_tokens=4, total_kv_blocks=4, max_num_running_reqs=4,
                          max_num_scheduled_tokens=64, max_model_len=64)
    latency = LinearLatency(b0=1000, b1=10, b2=1)
    single = simulate(fresh([a, w]), engine, latency, skip_ahead=False)
    fast = simulate(fresh([a, w]), engine, latency, skip_ahead=True)
    assert _state(fast) == _state(single)
    w_single = next(r for r in single.routed if r.index == 1)
    assert w_single.first_scheduled == 3052  # the oracle's step 3
    assert single.instances[0].kv.hit_tokens == 8


def test_decode_cohort_takes_the_steady_batch_without_the_reference_scheduler():
    """With ample budget and blocks the fast path never calls the reference scheduler (O(changes) per step), and
    a tight budget sends it back to the reference scheduler, with the same results either way."""
    reqs = [make_request(i, 300 * i, range(i, i + 20), range(1000 + 50 * i, 1040 + 50 * i)) for i in range(12)]
    for budget, reference_calls in [(512, 0), (13, None)]:
        engine = EngineConfig(block_size_in_tokens=4, total_kv_blocks=400, max_num_scheduled_tokens=budget)
        fast = simulate(fresh(reqs), engine, LinearLatency(b0=700, b1=5, b2=3), skip_ahead=True)
        fast_calls = fast.instances[0].scheduler.num_formations
        single = simulate(fresh(reqs), engine, LinearLatency(b0=700, b1=5, b2=3), skip_ahead=False)
        assert _state(fast) == _state(single)
        assert all(r.num_generated == 40 for r in fast.routed)
        if reference_calls is not None:
            assert fast_calls == reference_calls
        else:
            assert fast_calls > 0  # 12 requests at 20 tokens each do not fit 13 tokens per step


def test_a_later_arrival_with_a_shorter_prompt_is_enqueued_first():
    """Found by the vLLM oracle: with a per-token queueing delay two same-tick arrivals reach the waiting queue in
    the order of their prompt lengths, so an instance may not advance to the first one's enqueue time."""
    a = make_request(0, 0, range(30), range(100, 140))
    long = make_request(1, 3000, range(1000, 1300), range(300, 310))
    short = make_request(2, 3000, range(400, 418), range(500, 506))
    engine = EngineConfig(block_size_in_tokens=4, total_kv_blocks=200, max_num_scheduled_tokens=512)
    latency = LinearLatency(b0=500, b1=1, b2=3, a1=3)
    single = simulate(fresh([a, long, short]), engine, latency, skip_ahead=False)
    fast = simulate(fresh([a, long, short]), engine, latency, skip_ahead=True)
    assert _state(fast) == _state(single)
    by_index = {r.index: r for r in single.routed}
    assert by_index[2].first_scheduled < by_index[1].first_scheduled


ROUTERS = {
    "least-loaded": lambda n: LeastLoaded(),
    "always-busiest": lambda n: AlwaysBusiest(),
    "prefix-affinity": lambda n: PrefixAffinity(4),
    "weighted-default": lambda n: Weighted(DEFAULT_SCORERS, n, 4),
    "weighted-kv": lambda n: Weighted((("kv-utilization", 1.0),), n, 4, index_capacity=8),
    "weighted-prefix-small-index": lambda n: Weighted((("prefix-affinity", 2.0), ("load-balance", 1.0)), n, 2,
                                                      index_capacity=5),
}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=workloads(), engine=engines, n_inst=st.integers(2, 3), router=st.sampled_from(sorted(ROUTERS)),
       horizon=st.sampled_from([2**63 - 1, 20_000]), refresh=st.sampled_from([0, 0, 3_000]),
       latencies=st.sampled_from([(0, 0), (0, 0), (400, 250)]), b2=st.integers(0, 40))
def test_skip_ahead_equals_single_stepping_under_state_dependent_routing(reqs, engine, n_inst, router, horizon,
                                                                        refresh, latencies, b2):
    """Routers that read instance state bound each instance by the next arrival; stretches resume from the step in
    flight when nothing reached the instance. Every observable equals single stepping."""
    latency = LinearLatency(b0=700, b1=5, b2=b2, a0=11, a2=5)
    runs = [simulate(fresh(reqs), engine, latency, n_inst, horizon, skip_ahead=skip, routing=ROUTERS[router],
                     refresh=refresh, latencies=latencies) for skip in (False, True)]
    assert _state(runs[1]) == _state(runs[0])

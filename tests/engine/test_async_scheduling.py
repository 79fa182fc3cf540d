"""Asynchronous scheduling (ENGINE.md §7.8): the worked example, invariants, and agreement with the oracle."""

from __future__ import annotations

from harness import LinearLatency, make_request, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_invariants import engines, workloads

from blis_sim.config import EngineConfig
from blis_sim.metrics.summary import cluster_block
from blis_sim.request import RequestStatus


def _pair():
    return [make_request(0, 0, range(100), range(5)), make_request(1, 3000, range(1000, 1100), range(5))]


def test_worked_example_sync():
    sim = simulate(_pair(), EngineConfig(), LinearLatency(b0=5000, b1=10, b2=1))
    b = next(r for r in sim.routed if r.index == 1)
    assert b.first_scheduled == 6000 and b.first_token == 12001 and b.ttft == 9001


def test_worked_example_async():
    sim = simulate(_pair(), EngineConfig(async_scheduling=True), LinearLatency(b0=5000, b1=10, b2=1))
    a, b = sorted(sim.routed, key=lambda r: r.index)
    # the step after A's prefill was formed at 0 with A's decode only; B joins the batch after that
    assert b.first_scheduled == 11001 and b.first_token == 17002 and b.ttft == 14002
    assert a.ttft == 6000 and a.status == b.status == RequestStatus.FINISHED
    assert sim.instances[0].kv.num_used == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=workloads(), engine=engines, n_inst=st.integers(1, 3), a2=st.integers(0, 50))
def test_async_invariants(reqs, engine, n_inst, a2):
    engine = engine.model_copy(update={"async_scheduling": True})
    sim = simulate(reqs, engine, LinearLatency(b0=700, b1=5, b2=3, a0=11, a2=a2), n_inst)
    for inst in sim.instances:
        block = cluster_block([inst.counters()])
        assert block["injected_requests"] == block["completed_requests"] + block["dropped_unservable"]
        assert not inst.scheduler.waiting and not inst.scheduler.running and not inst.fifo
        assert inst.kv.num_used == 0
    total = 0
    for r in reqs:
        total += r.num_generated
        assert r.num_placeholders == 0
        if r.status == RequestStatus.FINISHED:
            assert r.num_generated == r.num_output_tokens
            assert r.arrival <= r.enqueue_time <= r.first_scheduled <= r.first_token <= r.finish_time
            assert r.ttft <= r.e2e
    assert total == sum(i.stats.total_output_tokens for i in sim.instances)
    # steps on one device never overlap
    for inst in sim.instances:
        spans = sorted((s, e) for s, e, _ in inst.steps)
        assert all(e0 <= s1 for (_, e0), (s1, _) in zip(spans, spans[1:]))

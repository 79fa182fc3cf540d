"""ENGINE.md §16 invariants on randomised workloads and engine settings (hypothesis)."""

from __future__ import annotations

from harness import LinearLatency, fresh, make_request, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blis_sim.config import EngineConfig
from blis_sim.metrics.summary import cluster_block
from blis_sim.request import RequestStatus

SEGMENTS = [list(range(s * 100, s * 100 + 7)) for s in range(4)]  # shared prompt pieces -> prefix hits


@st.composite
def workloads(draw):
    n = draw(st.integers(1, 25))
    reqs = []
    t = 0
    for i in range(n):
        t += draw(st.integers(0, 4000))
        prompt = []
        for _ in range(draw(st.integers(0, 3))):
            prompt += SEGMENTS[draw(st.integers(0, 3))]
        prompt += draw(st.lists(st.integers(0, 50), min_size=1, max_size=30))
        out_len = draw(st.integers(0, 25))
        if reqs and draw(st.booleans()):
            # a follow-up turn: an earlier request's prompt and outputs, then new tokens (keys made by decodes)
            base = reqs[draw(st.integers(0, len(reqs) - 1))]
            prompt = base.tokens.tolist() + prompt
        reqs.append(make_request(i, t, prompt, range(1000 + i * 100, 1000 + i * 100 + out_len)))
    return reqs


engines = st.builds(
    EngineConfig,
    total_kv_blocks=st.integers(8, 60),
    block_size_in_tokens=st.sampled_from([1, 2, 4, 16]),
    max_num_running_reqs=st.integers(1, 8),
    max_num_scheduled_tokens=st.integers(1, 96),
    long_prefill_token_threshold=st.sampled_from([0, 0, 3, 17]),
    max_model_len=st.sampled_from([40, 2048]),
)


def _outcome(reqs, sim):
    return [(r.status, r.ttft, r.e2e, r.first_scheduled, r.num_generated) for r in reqs]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reqs=workloads(), engine=engines, n_inst=st.integers(1, 3), a2=st.integers(0, 50),
       horizon=st.sampled_from([2**63 - 1, 2**63 - 1, 20_000]))
def test_invariants(reqs, engine, n_inst, a2, horizon):
    sim = simulate(reqs, engine, LinearLatency(b0=700, b1=5, b2=3, a0=11, a2=a2), n_inst, horizon)
    instances = sim.instances
    # 1. request conservation per instance and for the cluster
    for inst in instances:
        block = cluster_block([inst.counters()])
        assert block["injected_requests"] == (
            block["completed_requests"] + block["still_queued"] + block["still_running"] + block["dropped_unservable"]
        )
    arrived = [r for r in reqs if r.arrival <= horizon]
    assert sim.num_arrived == len(arrived)
    if horizon == 2**63 - 1:
        for inst in instances:
            assert not inst.scheduler.waiting and not inst.scheduler.running and inst.num_pending == 0
            assert inst.kv.num_used == 0
        assert all(r.status in (RequestStatus.FINISHED, RequestStatus.DROPPED) for r in reqs)
    # 3. causality, 7. token accounting
    total_tokens = 0
    for r in reqs:
        total_tokens += r.num_generated
        if r.status == RequestStatus.DROPPED:
            assert r.num_prompt_tokens + r.num_output_tokens > engine.max_model_len or \
                -(-(r.num_prompt_tokens + max(r.num_output_tokens - 1, 0)) // engine.block_size_in_tokens) \
                > engine.total_kv_blocks
            continue
        if r.first_scheduled >= 0:
            assert r.arrival <= r.enqueue_time <= r.first_scheduled
        if r.first_token >= 0:
            assert r.first_scheduled <= r.first_token <= max(r.last_token, r.first_token)
            assert r.first_scheduled - r.arrival <= r.ttft
        if r.status == RequestStatus.FINISHED:
            assert r.num_generated == r.num_output_tokens
            assert r.first_token <= r.finish_time <= horizon
            assert r.ttft <= r.e2e
            assert r.e2e == r.finish_time - r.arrival + max(r.num_output_tokens, 0) * a2 or (
                r.num_output_tokens == 0 and r.e2e == r.ttft)
            assert r.num_prompt_tokens + r.num_output_tokens <= engine.max_model_len
    assert total_tokens == sum(i.stats.total_output_tokens for i in instances)
    itl_count = sum(sum(i.stats.itl.counts.values()) for i in instances)
    finished = [r for r in reqs if r.status == RequestStatus.FINISHED]
    unfinished_tokens = sum(max(r.num_generated - 1, 0) for r in reqs if r.status != RequestStatus.FINISHED)
    assert itl_count == sum(r.num_output_tokens - 1 for r in finished if r.num_output_tokens) + unfinished_tokens
    assert all(v >= a2 for i in instances for v in i.stats.itl.counts)
    # 6. every step scheduled at least one token; steps chain without overlap
    for inst in instances:
        for (s0, e0, n0), (s1, _, _) in zip(inst.steps, inst.steps[1:]):
            assert n0 >= 1 and e0 <= s1


@settings(max_examples=40, deadline=None)
@given(reqs=workloads(), engine=engines)
def test_determinism(reqs, engine):
    first = simulate(fresh(reqs), engine)
    second = simulate(fresh(reqs), engine)
    blocks = [cluster_block([i.counters() for i in sim.instances]) for sim in (first, second)]
    assert blocks[0] == blocks[1]

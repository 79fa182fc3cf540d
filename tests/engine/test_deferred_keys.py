"""Deferred prefix keys (kv/cache.py): requests with independently drawn tokens are keyed only when preempted, and
every observable result equals keying them at once."""

from __future__ import annotations

import numpy as np
from harness import LinearLatency, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blis_sim.config import EngineConfig
from blis_sim.metrics.summary import cluster_block
from blis_sim.request import Request


def _requests(spec, independent):
    """Requests with distinct random tokens (no two share a first block), flagged independent or not."""
    rng = np.random.default_rng(7)
    return [Request(i, t, rng.integers(0, 128_000, size=p + n, dtype=np.int64), p, independent_tokens=independent)
            for i, (t, p, n) in enumerate(spec)]


def _observed(sim):
    per_request = sorted((r.index, r.status, r.ttft, r.e2e, r.first_scheduled, r.num_generated, r.finish_time)
                         for r in sim.routed)
    kv = [(i.kv.query_tokens, i.kv.hit_tokens, i.scheduler.num_preemptions, i.kv.num_used) for i in sim.instances]
    return per_request, kv, cluster_block([i.counters() for i in sim.instances])


specs = st.lists(st.tuples(st.integers(0, 30_000), st.integers(1, 70), st.integers(1, 60)), min_size=1, max_size=20)
engines = st.builds(
    EngineConfig,
    total_kv_blocks=st.integers(12, 40),  # tight: preemptions, and re-admissions that hit their own blocks
    block_size_in_tokens=st.sampled_from([2, 8, 16]),  # 2: below MIN_DEFERRED_BLOCK, keyed at once
    max_num_running_reqs=st.integers(1, 8),
    max_num_scheduled_tokens=st.integers(8, 96),
    long_prefill_token_threshold=st.sampled_from([0, 5]),
    async_scheduling=st.booleans(),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, engine=engines, skip_ahead=st.booleans())
def test_deferred_keys_change_nothing_observable(spec, engine, skip_ahead):
    spec = sorted(spec)
    latency = LinearLatency(b0=700, b1=5, b2=3)
    eager = simulate(_requests(spec, False), engine, latency, skip_ahead=skip_ahead)
    deferred = simulate(_requests(spec, True), engine, latency, skip_ahead=skip_ahead)
    assert _observed(deferred) == _observed(eager)


def test_a_preempted_request_finds_its_own_deferred_blocks():
    """Preemption registers the deferred keys, so the re-admitted request hits its own still-cached blocks."""
    engine = EngineConfig(total_kv_blocks=14, block_size_in_tokens=8, max_num_running_reqs=4,
                          max_num_scheduled_tokens=64)
    spec = [(0, 40, 30), (100, 40, 30), (200, 40, 30)]
    eager = simulate(_requests(spec, False), engine, LinearLatency(b0=700, b1=5, b2=3))
    deferred = simulate(_requests(spec, True), engine, LinearLatency(b0=700, b1=5, b2=3))
    inst = deferred.instances[0]
    assert inst.scheduler.num_preemptions > 0
    assert inst.kv.hit_tokens > 0  # only its own blocks can be hit
    assert _observed(deferred) == _observed(eager)


def test_small_blocks_key_independent_requests_at_once():
    engine = EngineConfig(total_kv_blocks=64, block_size_in_tokens=4)
    sim = simulate(_requests([(0, 20, 5)], True), engine)
    assert not sim.routed[0].keys_deferred

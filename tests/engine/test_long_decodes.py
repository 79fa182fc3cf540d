"""Long decodes in a full KV cache: preempted requests wait while the others decode (issue 24, pathological speed).

Before the fix, each skip-ahead stretch priced every decode step up to the first completion (hundreds of thousands
of durations) and stopped at every block that a once-preempted member filled while a request waited, so 10 requests
of 200,000 output tokens took minutes. The stretches must stay exact: skip-ahead equals single stepping, also when a
running request fills blocks whose keys the waiting head shares (identical token sequences), where the stretch must
stop and let the head in with its new prefix hits.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from harness import LinearLatency, fresh, simulate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_skip_ahead import _state

from blis_sim.config import EngineConfig
from blis_sim.request import Request


def _requests(specs, seed=0):
    """(arrival, prompt length, output length, token pool index or -1 for its own random tokens)."""
    rng = np.random.default_rng(seed)
    pools: dict[int, np.ndarray] = {}
    out = []
    for i, (arrival, p, n, pool) in enumerate(specs):
        if pool >= 0:
            if pool not in pools:
                pools[pool] = rng.integers(0, 32000, size=4096, dtype=np.int64)
            tokens = pools[pool][: p + n].copy()
        else:
            tokens = rng.integers(0, 32000, size=p + n, dtype=np.int64)
        out.append(Request(i, arrival, tokens, p, request_id=f"r{i}"))
    return out


def _engine(blocks, bs=16, **kw):
    return EngineConfig(total_kv_blocks=blocks, block_size_in_tokens=bs, max_model_len=1_000_000,
                        max_num_running_reqs=kw.pop("max_running", 64), max_num_scheduled_tokens=kw.pop("budget", 512),
                        **kw)


def test_long_decodes_in_a_full_cache_equal_single_stepping():
    reqs = _requests([(i * 3_000, 40 + 7 * i, 1_500 + 37 * i, -1) for i in range(8)])
    engine = _engine(300)  # 4,800 tokens for 8 x ~1,700: preemptions, requests waiting while the others decode
    latency = LinearLatency(b0=700, b1=5, b2=3, a0=11, a2=7)
    single = simulate(fresh(reqs), engine, latency, skip_ahead=False)
    fast = simulate(fresh(reqs), engine, latency, skip_ahead=True)
    assert _state(fast) == _state(single)
    assert sum(i.scheduler.num_preemptions for i in single.instances) >= 5


@pytest.mark.skipif(os.environ.get("BLIS_SIM_PURE") != "1", reason="counts calls of the Python sources")
def test_a_waiting_preempted_request_does_not_end_every_stretch(monkeypatch):
    from blis_sim.engine import fast_path

    formed = {"n": 0}
    real = fast_path.FastPath.form

    def form(self, now):
        formed["n"] += 1
        return real(self, now)

    monkeypatch.setattr(fast_path.FastPath, "form", form)
    reqs = _requests([(0, 64, 20_000, -1) for _ in range(6)])
    sim = simulate(fresh(reqs), _engine(4_000), LinearLatency(b0=700, b1=5, b2=3), checked=False)
    inst = sim.instances[0]
    assert inst.scheduler.num_preemptions >= 3
    steps = inst.stats.num_steps
    assert steps > 20_000
    # the reference scheduler forms the steps around preemptions and prefills; the rest are stretches
    assert formed["n"] < 200, (formed["n"], steps)  # 668 when every keyed block ended a stretch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    specs=st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 300), st.integers(1, 900), st.integers(-1, 2)),
                   min_size=2, max_size=9),
    blocks=st.integers(40, 200), bs=st.sampled_from([4, 8, 16]), budget=st.sampled_from([64, 256, 2048]),
    max_running=st.sampled_from([2, 4, 64]), seed=st.integers(0, 3),
)
def test_shared_sequences_in_a_tight_cache_equal_single_stepping(specs, blocks, bs, budget, max_running, seed):
    """Requests drawing from a few shared token sequences: a running request fills blocks the waiting head could
    hit; the stretch stops exactly where single stepping would let the head in."""
    reqs = _requests(specs, seed)
    engine = _engine(blocks, bs, budget=budget, max_running=max_running)
    latency = LinearLatency(b0=700, b1=5, b2=3, a0=11, a2=7)
    single = simulate(fresh(reqs), engine, latency, skip_ahead=False)
    fast = simulate(fresh(reqs), engine, latency, skip_ahead=True)
    assert _state(fast) == _state(single)

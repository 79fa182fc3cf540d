"""Random valid configurations through the whole run (``api.prepare`` / ``api.execute``) satisfy the run's invariants.

Configurations: 1-8 instances; every admission policy, routing policy, scheduler and priority policy of the tables
(``cluster/policies.py``, ``engine/policy.py``, the names of ``config/names.py``); KV caches down to a few blocks;
chunked prefill (a long-prefill threshold, small token budgets); both engine loops (synchronous, with and without
skip-ahead, and ``--async-scheduling``); admission and routing latencies; a horizon that cuts the run; distribution
workloads with shared prefixes, and workload specs with closed-loop multi-turn sessions.

Invariants, per run:

1. request conservation, per instance and for the cluster: injected = completed + queued + running + dropped;
   with no horizon every admitted request ends (finished or dropped as unservable) and every block is free;
2. KV block conservation after every formation and every applied step (``harness.check_instance``: reference
   counts, the free queue and the prefix index agree with the blocks the requests hold; the engine's own
   invariant checks, reused, not copied);
3. causality, per request: arrival <= first scheduled <= first token <= completion (the records' scheduling delay,
   TTFT and E2E), and E2E >= TTFT;
4. monotone clocks: each instance's steps, in formation order, start at or after the previous one's end and end at
   or after they start;
5. byte-identical reruns (stdout and the results file), and the same output with single stepping (the fast path
   and skip-ahead change only the cost) and with an observer listening (it must change nothing).

The CPU KV tier (both models, docs/kv-tier.md) is drawn from ``KV_TIERS`` (engine fields merged into a
configuration), and its store checked by ``_check_tier``.

CI runs a few dozen examples (the default profile); ``pytest -m fuzz --hypothesis-profile long
tests/fuzz/test_fuzz_invariants.py`` many more. ``TRIED`` counts the configurations run (printed with ``-s``;
``BLIS_FUZZ_TALLY=FILE`` keeps the count in FILE as it goes).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from harness import CheckedInstance  # noqa: E402

from blis_sim import api  # noqa: E402
from blis_sim.cluster.policies import ADMISSION_POLICIES, ROUTING_POLICIES  # noqa: E402
from blis_sim.config import SimulationConfig  # noqa: E402
from blis_sim.engine.observer import Observer  # noqa: E402
from blis_sim.engine.policy import PRIORITY_POLICIES, SCHEDULING_POLICIES  # noqa: E402
from blis_sim.errors import InputError  # noqa: E402

pytestmark = pytest.mark.fuzz

# Engine settings of a KV tier below the GPU, merged into a configuration ({}: none)
KV_TIERS: list[dict] = [
    {}, {},
    {"kv_cpu_blocks": 16, "kv_offload_mode": "reference", "kv_offload_threshold": 0.0},
    {"kv_cpu_blocks": 3, "kv_offload_mode": "reference", "kv_offload_threshold": 0.5, "kv_transfer_bandwidth": 0.5},
    {"kv_cpu_blocks": 16, "kv_offload_mode": "vllm", "kv_transfer_base_latency": 40},
    {"kv_cpu_blocks": 2, "kv_offload_mode": "vllm", "kv_transfer_bandwidth": 0.2},
]

TRIED = {"configurations": 0}


def _examples(ci: int) -> int:
    """``ci`` examples in the default profile; the loaded profile's count when it asks for more (``long``)."""
    return max(ci, settings.default.max_examples) if settings.default.max_examples > 100 else ci


def _fuzz(ci: int):
    return settings(max_examples=_examples(ci), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@st.composite
def engines(draw) -> dict:
    scheduler = draw(st.sampled_from(sorted(SCHEDULING_POLICIES)))
    priority = "constant" if scheduler == "vllm-priority" else draw(st.sampled_from(sorted(PRIORITY_POLICIES)))
    return {
        "total_kv_blocks": draw(st.integers(4, 80)),
        "block_size_in_tokens": draw(st.sampled_from([1, 2, 4, 8, 16])),
        "max_num_running_reqs": draw(st.integers(1, 8)),
        "max_num_scheduled_tokens": draw(st.integers(4, 256)),
        "long_prefill_token_threshold": draw(st.sampled_from([0, 0, 5, 33])),
        "max_model_len": draw(st.sampled_from([64, 200, 4096])),
        "async_scheduling": draw(st.booleans()),
        "scheduler": scheduler,
        "priority_policy": priority,
        **draw(st.sampled_from(KV_TIERS)),
    }


@st.composite
def clusters(draw) -> dict:
    return {
        "num_instances": draw(st.integers(1, 8)),
        "admission_policy": draw(st.sampled_from(sorted(ADMISSION_POLICIES))),
        "routing_policy": draw(st.sampled_from(sorted(ROUTING_POLICIES))),
        "admission_latency": draw(st.sampled_from([0, 0, 150])),
        "routing_latency": draw(st.sampled_from([0, 0, 90])),
        "token_bucket_capacity": draw(st.sampled_from([50.0, 400.0, 10000.0])),
        "token_bucket_refill_rate": draw(st.sampled_from([100.0, 5000.0])),
        "snapshot_refresh_interval": draw(st.sampled_from([0, 0, 2000])),
    }


@st.composite
def distribution_workloads(draw) -> dict:
    p_min = draw(st.integers(1, 20))
    p_max = p_min + draw(st.integers(0, 120))
    o_min = draw(st.integers(1, 10))
    o_max = o_min + draw(st.integers(0, 60))
    return {
        "num_requests": draw(st.integers(1, 30)),
        "rate": draw(st.sampled_from([5.0, 50.0, 400.0])),
        "arrival_process": draw(st.sampled_from(["constant", "poisson"])),
        "prefix_tokens": draw(st.sampled_from([0, 0, 8, 24])),
        "prompt_tokens_min": p_min, "prompt_tokens_max": p_max,
        "prompt_tokens": draw(st.integers(p_min, p_max)), "prompt_tokens_stdev": draw(st.integers(0, 40)),
        "output_tokens_min": o_min, "output_tokens_max": o_max,
        "output_tokens": draw(st.integers(o_min, o_max)), "output_tokens_stdev": draw(st.integers(0, 20)),
    }


@st.composite
def session_specs(draw) -> dict:
    """A workload spec with closed-loop multi-turn sessions (docs/workload-specs.md)."""
    lo = draw(st.integers(4, 24))
    return {
        "version": "1", "seed": draw(st.integers(0, 5)), "category": "reasoning",
        "aggregate_rate": draw(st.sampled_from([20.0, 200.0])), "num_requests": draw(st.integers(1, 24)),
        "clients": [{
            "id": "chat", "slo_class": draw(st.sampled_from(["interactive", "batch"])),
            "arrival": {"process": draw(st.sampled_from(["poisson", "constant"]))},
            "input_distribution": {"type": "gaussian", "params": {"mean": lo + 4, "std_dev": 3, "min": lo,
                                                                   "max": lo + 12}},
            "output_distribution": {"type": "gaussian", "params": {"mean": 6, "std_dev": 2, "min": 1, "max": 12}},
            "prefix_group": "system", "prefix_length": draw(st.sampled_from([0, 16])),
            "reasoning": {"multi_turn": {"max_rounds": draw(st.integers(1, 4)),
                                         "think_time_us": draw(st.sampled_from([0, 3000])),
                                         "context_growth": draw(st.sampled_from(["", "accumulate"]))}},
        }],
    }


class _Recorder(Observer):
    """Hears every formed step (monotone clocks) and completion (causality on the request objects); changes
    nothing."""

    def __init__(self) -> None:
        self.completions: list[tuple[int, int, int, int, int]] = []
        self.steps: dict[int, list[tuple[int, int]]] = {}

    def on_step(self, instance, step, *rest):  # noqa: ANN001 (rest: queue depth, KV blocks used)
        self.steps.setdefault(instance, []).append((step.start, step.end))

    def on_completion(self, instance, req, now):  # noqa: ANN001
        self.completions.append((req.arrival, req.first_scheduled, req.first_token, req.finish_time, now))


def _run(cfg: SimulationConfig, monkeypatch, observer: Observer | None = None):
    """One run with every instance a ``CheckedInstance`` (KV invariants after each formation and applied step)."""
    made: list[CheckedInstance] = []

    class Recording(CheckedInstance):
        __slots__ = ()

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)

    try:
        prepared = api.prepare(cfg)
    except InputError:
        reject()  # refused up front (a shared prefix no request can hold): not a valid configuration
    with monkeypatch.context() as m:
        m.setattr(api, "Instance", Recording)
        results = api.execute(prepared, collect_requests=True, observer=observer)
    return results, made


def _check_tier(instances, drained: bool) -> None:
    """The CPU store at the end: within its capacity, every block written and not evicted is there (none lost or
    duplicated); in vLLM's model, once the run drained, every load admitted and every store readable."""
    for inst in instances:
        tier = inst.kv.tier
        if tier is None:
            continue
        store = tier.state if tier.write_through else tier.store
        assert len(store) <= tier.capacity
        if tier.write_through:
            assert tier.offloads - tier.dropped == len(store)
            if drained:
                assert not tier.loads and not tier.done and not tier.storing
                assert all(v == 0 for v in store.values())
        else:
            assert tier.offloads - tier.dropped >= len(store)


def _check(cfg: SimulationConfig, monkeypatch) -> None:
    results, instances = _run(cfg, monkeypatch)
    TRIED["configurations"] += 1
    tally = os.environ.get("BLIS_FUZZ_TALLY")  # a file that always holds the count (a long run may be cut short)
    if tally:
        Path(tally).write_text(f"{TRIED['configurations']}\n")
    unlimited = cfg.horizon >= 2**62
    # 1. request conservation, per instance and for the cluster
    for block in [results.cluster, *results.instances]:
        assert block["injected_requests"] == (block["completed_requests"] + block["still_queued"]
                                              + block["still_running"] + block["dropped_unservable"]), block
    # records: every routed request but those dropped as unservable (api._summarise)
    assert len(results.requests) == results.cluster["injected_requests"] - results.cluster["dropped_unservable"]
    if unlimited:
        assert results.cluster["still_queued"] == results.cluster["still_running"] == 0
    # 2. KV blocks: checked after every step by CheckedInstance; at the end every block of a drained run is free
    for inst in instances:
        if unlimited:
            assert inst.kv.num_used == 0, inst.name
    _check_tier(instances, drained=unlimited)
    # 3. causality, per request record (times relative to the arrival)
    for rec in results.requests:
        delay, ttft, e2e = rec["scheduling_delay_ms"], rec["ttft_ms"], rec["e2e_ms"]
        assert delay >= 0 and ttft >= 0 and e2e >= 0, rec
        if ttft > 0:
            assert ttft >= delay, rec
        if e2e > 0:
            assert e2e >= ttft, rec
    # 5. byte-identical reruns; single stepping and an observer change nothing
    text = results.stdout_text()
    file = json.dumps(results.to_file_dict(), sort_keys=True)
    again, _ = _run(cfg, monkeypatch)
    assert again.stdout_text() == text
    assert json.dumps(again.to_file_dict(), sort_keys=True) == file
    single, _ = _run(cfg.model_copy(update={"skip_ahead": False}), monkeypatch)
    assert single.stdout_text() == text
    assert json.dumps(single.to_file_dict(), sort_keys=True) == file
    recorder = _Recorder()
    heard, _ = _run(cfg, monkeypatch, recorder)
    assert heard.stdout_text() == text
    assert len(recorder.completions) == results.cluster["completed_requests"]
    for arrival, scheduled, first, finish, now in recorder.completions:
        assert arrival <= scheduled <= first <= finish == now
    # 4. monotone clocks: every formed step of an instance (the observer hears each one; both engine loops), in
    # formation order, starts at or after the end of the one before (a parked instance's STEP ticks are not step
    # ends, so the steps are read here rather than from Instance.step's return values)
    for steps in recorder.steps.values():
        for start, end in steps:
            assert start <= end
        for (_, e0), (s1, _) in zip(steps, steps[1:]):
            assert e0 <= s1, steps


LATENCY = {"model": "fuzz/model", "beta_coeffs": (700.0, 5.0, 3.0), "alpha_coeffs": (11.0, 0.5, 7.0)}


@_fuzz(60)
@given(engine=engines(), cluster=clusters(), workload=distribution_workloads(), seed=st.integers(0, 2**16),
       horizon=st.sampled_from([None, None, 40_000, 400_000]))
def test_random_configurations_keep_the_invariants(engine, cluster, workload, seed, horizon, monkeypatch):
    cfg = {"latency": LATENCY, "engine": engine, "cluster": cluster, "workload": workload, "seed": seed}
    if horizon is not None:
        cfg["horizon"] = horizon
    _check(SimulationConfig(**cfg), monkeypatch)


@_fuzz(20)
@given(engine=engines(), cluster=clusters(), spec=session_specs(), seed=st.integers(0, 2**16))
def test_multi_turn_sessions_keep_the_invariants(engine, cluster, spec, seed, monkeypatch, tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    cfg = SimulationConfig(latency=LATENCY, engine=engine, cluster=cluster, seed=seed,
                           workload={"workload_spec": str(path)})
    _check(cfg, monkeypatch)


def teardown_module(module) -> None:  # noqa: ANN001
    print(f"\nfuzz invariants: {TRIED['configurations']} configurations tried")

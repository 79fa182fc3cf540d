"""Workload specs (ENGINE.md §10.4-§10.6, §10.9): samplers, arrival processes, validation, sessions, export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from blis_sim import SimulationConfig, execute, prepare
from blis_sim.errors import InputError
from blis_sim.workload import load_spec
from blis_sim.workload.rng import stream
from blis_sim.workload.samplers import gaps, lengths, ratios, weibull_shape
from blis_sim.workload.scenarios import SCENARIOS
from blis_sim.workload.spec import ClientSpec, WorkloadSpec, parse_spec
from blis_sim.workload.spec_gen import SessionPlan, spec_requests

MODEL = {"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "tp": 1,
         "vllm_version": "vllm/vllm-openai:v0.8.4"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workloads"
N = 400_000


def _client(**kw):
    base = {"id": "c", "arrival": {"process": "poisson"},
            "input_distribution": {"type": "constant", "params": {"value": 64}},
            "output_distribution": {"type": "constant", "params": {"value": 16}}}
    base.update(kw)
    return base


def _spec(**kw):
    data = {"aggregate_rate": 10.0, "num_requests": 50, "clients": [_client()]}
    data.update(kw)
    return data


def _write(tmp_path, data, name="w.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _run(path: Path, **kw):
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": path, **kw.pop("workload", {})}, **kw)
    return execute(prepare(cfg))


# ------------------------------------------------------------------------------------------------- samplers
@pytest.mark.parametrize(("kind", "params", "mean", "cv"), [
    ("gaussian", {"mean": 500, "std_dev": 100, "min": 1, "max": 10_000}, 500, 0.2),
    ("exponential", {"mean": 300}, 300, 1.0),
    ("constant", {"value": 42.7}, 42, 0.0),
    ("pareto_lognormal", {"alpha": 3.0, "xm": 100, "mu": 5.0, "sigma": 0.5, "mix_weight": 0.0},
     math.exp(5.0 + 0.125), math.sqrt(math.exp(0.25) - 1)),
    ("pareto_lognormal", {"alpha": 5.0, "xm": 100, "mu": 5.0, "sigma": 0.5, "mix_weight": 1.0},
     125, math.sqrt(5 / 3) / 5),  # Pareto: mean a xm / (a - 1), cv 1 / sqrt(a (a - 2))
])
def test_length_samplers_match_their_parameters(kind, params, mean, cv):
    x = lengths(kind, params, stream(1, "t"), N).astype(float)
    assert x.min() >= 1
    assert x.mean() == pytest.approx(mean, rel=0.02, abs=0.5)
    assert x.std() / x.mean() == pytest.approx(cv, rel=0.05, abs=0.01)


def test_empirical_sampler_follows_its_pdf():
    x = lengths("empirical", {10: 1.0, 20: 3.0, 30: 0.0}, stream(2, "t"), N)
    assert set(np.unique(x)) == {10, 20}
    assert (x == 20).mean() == pytest.approx(0.75, abs=0.005)


def test_gaussian_clamps_and_reason_ratios_stay_in_range():
    x = lengths("gaussian", {"mean": 100, "std_dev": 500, "min": 50, "max": 150}, stream(3, "t"), 10_000)
    assert x.min() == 50 and x.max() == 150
    r = ratios("exponential", {"mean": 50}, stream(3, "r"), 10_000)
    assert r.min() >= 0 and r.max() <= 1


@pytest.mark.parametrize(("process", "cv"), [("poisson", 1.0), ("gamma", 3.5), ("gamma", 0.5), ("weibull", 0.5),
                                              ("weibull", 2.0), ("constant", 1.0)])
def test_arrival_processes_have_their_mean_and_cv(process, cv):
    g = gaps(process, cv, 10_000.0, stream(4, "a"), N).astype(float)
    assert g.min() >= 1
    assert g.mean() == pytest.approx(10_000, rel=0.03 if cv > 2 else 0.01, abs=1)
    want = 0.0 if process == "constant" else cv
    assert g.std() / g.mean() == pytest.approx(want, rel=0.05, abs=0.01)


def test_weibull_shape_solves_the_cv():
    for cv in (0.01, 0.3, 1.0, 4.0, 10.4):
        k = weibull_shape(cv)
        got = math.sqrt(math.exp(math.lgamma(1 + 2 / k) - 2 * math.lgamma(1 + 1 / k)) - 1)
        assert got == pytest.approx(cv, rel=1e-6)


# ---------------------------------------------------------------------------------------------- generation
def _gen(spec, seed=0, horizon=2**63 - 1, limit=None):
    plan = SessionPlan()
    reqs = list(spec_requests(spec, seed, horizon, spec.num_requests if limit is None else limit, plan))
    return reqs, plan


def test_rate_fractions_split_the_requests_and_fields_are_carried():
    spec = parse_spec(_spec(num_requests=20_000, clients=[
        _client(id="a", tenant_id="ta", slo_class="batch", rate_fraction=3, priority=4),
        _client(id="b", tenant_id="tb", slo_class="realtime", rate_fraction=1)]), "w")
    reqs, _ = _gen(spec)
    assert len(reqs) == 20_000
    assert [r.id for r in reqs[:3]] == ["request_0", "request_1", "request_2"]
    assert all(a.arrival <= b.arrival for a, b in zip(reqs, reqs[1:]))
    share = sum(r.tenant_id == "ta" for r in reqs) / len(reqs)
    assert share == pytest.approx(0.75, abs=0.01)
    a = next(r for r in reqs if r.tenant_id == "ta")
    assert (a.slo_class, a.priority) == ("batch", 4.0)
    # mean arrival rate is the aggregate rate
    assert reqs[-1].arrival / 1e6 == pytest.approx(20_000 / 10.0, rel=0.03)


def test_generation_is_deterministic_and_prefix_groups_are_shared():
    data = _spec(num_requests=300, clients=[_client(id="a", prefix_group="g", prefix_length=20),
                                            _client(id="b", prefix_group="g", prefix_length=99)])
    one, _ = _gen(parse_spec(data, "w"), seed=5)
    two, _ = _gen(parse_spec(data, "w"), seed=5)
    other, _ = _gen(parse_spec(data, "w"), seed=6)
    key = lambda reqs: [(r.arrival, r.id, r.tokens.tobytes(), r.num_prompt_tokens) for r in reqs]  # noqa: E731
    assert key(one) == key(two) and key(one) != key(other)
    prefix = one[0].tokens[:20]
    assert all(np.array_equal(r.tokens[:20], prefix) for r in one)  # the first client fixed the length
    assert all(r.num_prompt_tokens == 20 + 64 for r in one)


def test_lifecycle_windows_and_horizon_bound_arrivals():
    spec = parse_spec(_spec(num_requests=0, clients=[_client(lifecycle={"windows": [
        {"start_us": 1_000_000, "end_us": 2_000_000}, {"start_us": 5_000_000, "end_us": 6_000_000}]})]), "w")
    reqs, _ = _gen(spec)
    assert 5 < len(reqs) < 40
    assert all(1_000_000 <= r.arrival < 2_000_000 or 5_000_000 <= r.arrival < 6_000_000 for r in reqs)
    reqs, _ = _gen(parse_spec(_spec(num_requests=0), "w"), horizon=3_000_000)
    assert reqs and all(r.arrival <= 3_000_000 for r in reqs)


def test_multimodal_input_is_the_sum_of_its_parts():
    spec = parse_spec(_spec(clients=[{
        "id": "mm", "output_distribution": {"type": "constant", "params": {"value": 8}},
        "multimodal": {"text_distribution": {"type": "constant", "params": {"value": 10}},
                       "image_count_distribution": {"type": "empirical", "params": {1: 1, 2: 1}},
                       "image_distribution": {"type": "constant", "params": {"value": 100}}}}]), "w")
    reqs, _ = _gen(spec)
    assert {r.num_prompt_tokens for r in reqs} == {110, 210}


def test_inference_perf_stages_bound_each_clients_arrivals():  # the client path (explicit clients, multi-turn)
    data = {"inference_perf": {"stages": [{"rate": 10, "duration": 10}, {"rate": 40, "duration": 5}],
                               "shared_prefix": {"num_unique_system_prompts": 2, "num_users_per_system_prompt": 3,
                                                 "system_prompt_len": 30, "question_len": 0, "output_len": 5}}}
    spec = parse_spec(data, "w")
    assert [c.id for c in spec.clients][:4] == ["prompt-0-user-0", "prompt-0-user-1", "prompt-0-user-2",
                                                "prompt-1-user-0"]
    assert spec.clients[3].tenant_id == "prompt-1" and spec.clients[3].slo_class == "batch"
    reqs, _ = _gen(spec)
    first = [r for r in reqs if r.arrival < 10_000_000]
    second = [r for r in reqs if r.arrival >= 10_000_000]
    assert len(first) == pytest.approx(100, rel=0.3) and len(second) == pytest.approx(200, rel=0.3)
    assert max(r.arrival for r in reqs) < 15_000_000
    assert all(r.num_prompt_tokens == 31 and r.num_output_tokens == 5 for r in reqs)
    multi = parse_spec({**data, "inference_perf": {**data["inference_perf"], "shared_prefix": {
        **data["inference_perf"]["shared_prefix"], "enable_multi_turn_chat": True}}}, "w")
    assert multi.clients[0].multi_turn.max_rounds == 5 and multi.clients[0].multi_turn.think_time_us == 500_000


def test_inference_perf_clients_without_a_system_prompt_have_no_prefix_group():
    # the clients name the expansion (validation, records, multi-turn chat); a spec made only of the block is
    # generated by blis evaluate's own code (tests/workload/test_spec_sources.py)
    from blis_sim.workload.expansions import inference_perf_clients
    clients = inference_perf_clients({"num_unique_system_prompts": 1, "num_users_per_system_prompt": 2,
                                      "system_prompt_len": 0, "question_len": 3, "output_len": 4})
    assert len(clients) == 2 and "prefix_group" not in clients[0]


# ------------------------------------------------------------------------------------------------ validation
@pytest.mark.parametrize(("data", "message"), [
    (_spec(clients=[_client(), _client(arrival={"process": "gamma", "cv": -1})]),
     "w.yaml: clients[1].arrival.cv: must be a finite number > 0, got -1"),
    (_spec(clients=[_client(arrival={"process": "weibull", "cv": 20})]),
     "clients[0].arrival.cv: must be a finite number in [0.01, 10.4] for weibull arrivals, got 20"),
    (_spec(clients=[_client(arrival={"process": "zipf"})]),
     "clients[0].arrival.process: must be one of 'poisson', 'gamma', 'weibull', 'constant', got 'zipf'"),
    (_spec(bogus=1), "(top level): unknown key 'bogus' (accepted: version, seed"),
    (_spec(clients=[_client(colour="red")]), "clients[0]: unknown key 'colour' (accepted: id,"),
    (_spec(clients=[_client(input_distribution={"type": "gaussian", "params": {"mean": 5, "std_dev": -1,
                                                                                "min": 1, "max": 9}})]),
     "clients[0].input_distribution.params.std_dev: must be a finite number >= 0, got -1"),
    (_spec(clients=[_client(input_distribution={"type": "gaussian", "params": {"mean": 5}})]),
     "clients[0].input_distribution.params.std_dev: is required"),
    (_spec(clients=[_client(output_distribution={"type": "empirical", "params": {"file": "x.json"}})]),
     "clients[0].output_distribution.params.file: an empirical distribution from a file is not supported"),
    (_spec(clients=[_client(output_distribution={"type": "constant", "params": {"value": 0}})]),
     "clients[0].output_distribution.params.value: must be a finite number >= 1, got 0"),
    (_spec(clients=[_client(output_distribution=None)]), "clients[0].output_distribution: is required"),
    (_spec(clients=[_client(slo_class="gold")]), "clients[0].slo_class: must be one of '', 'realtime'"),
    (_spec(clients=[_client(rate_fraction=0)]), "clients[0].rate_fraction: must be a finite number > 0, got 0"),
    (_spec(clients=[_client(priority=1.5)]), "clients[0].priority: must be an integer, got 1.5"),
    (_spec(clients=[_client(lifecycle={"windows": [{"start_us": 5, "end_us": 5}]})]),
     "clients[0].lifecycle.windows[0].end_us: must be an integer > start_us (5), got 5"),
    (_spec(clients=[_client(reasoning={"multi_turn": {"max_rounds": 0}})]),
     "clients[0].reasoning.multi_turn.max_rounds: must be an integer >= 1, got 0"),
    (_spec(clients=[]), "clients: needs at least one client"),
    (_spec(aggregate_rate="fast"), "aggregate_rate: must be a finite number > 0, got 'fast'"),
    ({"clients": [_client()]}, "aggregate_rate: is required"),
    (_spec(num_requests=-3), "num_requests: must be an integer >= 0, got -3"),
    ([1, 2], "must be a YAML mapping at the top level"),
])
def test_each_validation_error_names_the_file_and_the_path(tmp_path, data, message):
    path = _write(tmp_path, data)
    with pytest.raises(InputError) as info:
        load_spec(path)
    text = str(info.value)
    assert text.startswith(f"--workload-spec {path}: ") and message in text and "\n" not in text


def test_file_problems_and_unbounded_or_empty_specs_are_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("a: [1,\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_spec(tmp_path / "bad.yaml")
    with pytest.raises(InputError, match="the workload would be infinite"):
        _run(_write(tmp_path, _spec(num_requests=0)))
    with pytest.raises(InputError, match="generates no request"):
        _run(_write(tmp_path, _spec(num_requests=0, horizon=0)))


def test_spec_model_builds_in_code_like_the_yaml():
    spec = WorkloadSpec(aggregate_rate=10, num_requests=5, clients=[ClientSpec(**_client())])
    assert spec == parse_spec(_spec(num_requests=5), "w")


# ------------------------------------------------------------------------------------------- through the API
def test_spec_settings_apply_unless_flags_are_explicit(tmp_path):
    path = _write(tmp_path, _spec(seed=9, num_requests=30, horizon=2_000_000))
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": path})
    prepared = prepare(cfg)
    assert prepared.cfg.seed == 9 and prepared.cfg.horizon == 2_000_000
    reqs = list(prepared.requests)
    assert 10 < len(reqs) < 30 and reqs[-1].arrival <= 2_000_000  # 10 req/s for 2 s: the horizon cuts the 30
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": path, "num_requests": 7}, seed=1,
                           horizon=10**9)
    prepared = prepare(cfg)
    assert prepared.cfg.seed == 1 and prepared.cfg.horizon == 10**9 and len(list(prepared.requests)) == 7


def test_records_carry_slo_class_tenant_session_and_round(tmp_path):
    res = _run(EXAMPLES / "multiturn-chat.yaml", workload={"num_requests": 60})
    recs = res.requests
    assert {r["slo_class"] for r in recs} == {"interactive"} and {r["tenant_id"] for r in recs} == {"chat-users"}
    assert all("session_id" in r and "round_index" in r for r in recs)


def test_a_round_arrives_after_the_previous_round_completes_plus_think_time(tmp_path):
    data = _spec(aggregate_rate=40, num_requests=120, clients=[_client(
        prefix_group="sys", prefix_length=32,
        input_distribution={"type": "gaussian", "params": {"mean": 64, "std_dev": 16, "min": 8, "max": 200}},
        output_distribution={"type": "exponential", "params": {"mean": 32}},
        reasoning={"multi_turn": {"max_rounds": 4, "think_time_us": 250_000, "context_growth": "accumulate"}})])
    path = _write(tmp_path, data)
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": path}, cluster={"num_instances": 2})
    prepared = prepare(cfg)
    assert prepared.sessions is not None
    res = execute(prepared)
    by_session: dict[str, list[dict]] = {}
    for r in res.requests:
        by_session.setdefault(r["session_id"], []).append(r)
    assert len(res.requests) == 120
    checked = 0
    for rounds in by_session.values():
        rounds.sort(key=lambda r: r["round_index"])
        assert [r["round_index"] for r in rounds] == list(range(len(rounds)))
        for prev, nxt in zip(rounds, rounds[1:]):
            done = prev["arrived_at"] * 1e6 + prev["e2e_ms"] * 1000
            assert nxt["arrived_at"] * 1e6 == pytest.approx(done + 250_000, abs=1)
            assert nxt["num_prefill_tokens"] > prev["num_prefill_tokens"] + prev["num_decode_tokens"]
            checked += 1
    assert checked > 50


def test_accumulated_prompts_hold_the_previous_prompt_and_output():
    spec = parse_spec(_spec(num_requests=10, clients=[_client(
        prefix_group="g", reasoning={"multi_turn": {"max_rounds": 3, "context_growth": "accumulate"}})]), "w")
    first, plan = _gen(spec)
    r0 = first[0]
    r1, _ = plan.follow[r0.index]
    r2, _ = plan.follow[r1.index]
    assert np.array_equal(r1.tokens[: r0.num_prompt_tokens + r0.num_output_tokens], r0.tokens)
    assert np.array_equal(r2.tokens[: r1.num_prompt_tokens + r1.num_output_tokens], r1.tokens)
    assert (r0.session_id, r1.round_index, r2.round_index) == ("sess_0_0", 1, 2)
    flat = parse_spec(_spec(num_requests=10, clients=[_client(
        prefix_group="g", reasoning={"multi_turn": {"max_rounds": 2}})]), "w")
    first, plan = _gen(flat)
    nxt, _ = plan.follow[first[0].index]
    assert nxt.num_prompt_tokens == 50 + 64 and np.array_equal(nxt.tokens[:50], first[0].tokens[:50])


@pytest.mark.parametrize("example", ["servegen-language.yaml", "mixed-slo-windows.yaml"])
def test_export_then_replay_reproduces_the_cluster_metrics(tmp_path, example):
    out = tmp_path / "export.csv"
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": EXAMPLES / example, "export_trace": out},
                           cluster={"num_instances": 2})
    prepared = prepare(cfg)
    a = execute(prepared)
    # the same engine flags, and the horizon the spec set
    replay = SimulationConfig(latency=MODEL, workload={"workload": "traces", "workload_traces_filepath": out},
                              cluster={"num_instances": 2}, horizon=prepared.cfg.horizon)
    b = execute(prepare(replay))
    assert json.dumps(a.cluster) == json.dumps(b.cluster)
    assert json.dumps(a.instances) == json.dumps(b.instances) and a.kv == b.kv
    text = out.read_text()
    assert text.startswith("arrival_time,request_id,model,prompt_tokens,output_tokens,priority\n")
    if example == "mixed-slo-windows.yaml":
        assert ",5\n" in text  # the batch client's priority


def test_export_is_byte_identical_for_the_same_spec_and_seed(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _run(EXAMPLES / "servegen-language.yaml", workload={"export_trace": a, "num_requests": 100})
    _run(EXAMPLES / "servegen-language.yaml", workload={"export_trace": b, "num_requests": 100})
    assert a.read_bytes() == b.read_bytes()


def test_export_to_a_missing_directory_is_refused_before_the_run(tmp_path):
    with pytest.raises(InputError, match="^--export-trace .*: the directory .* does not exist"):
        _run(EXAMPLES / "servegen-language.yaml", workload={"export_trace": tmp_path / "no" / "x.csv"})


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_every_example_spec_runs(example):
    res = _run(EXAMPLES / example, cluster={"num_instances": 2})
    assert res.cluster["completed_requests"] > 0


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_canned_scenarios_build_valid_specs(name):
    spec = SCENARIOS[name](aggregate_rate=20, num_requests=200)
    reqs, _ = _gen(spec)
    assert len(reqs) == 200


# --------------------------------------------------------------------------------------------------- trace v2
V2_HEADER = ("request_id,client_id,tenant_id,slo_class,session_id,round_index,prefix_group,streaming,input_tokens,"
             "output_tokens,text_tokens,image_tokens,audio_tokens,video_tokens,reason_ratio,arrival_time_us,"
             "send_time_us,first_chunk_time_us,last_chunk_time_us,num_chunks,status,error_message\n")


def _v2_row(rid, at, n_in=10, n_out=5, group="g", session="", rnd=""):
    return f"{rid},c,t,batch,{session},{rnd},{group},false,{n_in},{n_out},0,0,0,0,0,{at},0,0,0,0,ok,\n"


def test_trace_v2_replays_records_with_their_fields(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(V2_HEADER + _v2_row(7, 2000) + _v2_row(3, 1000, session="s1", rnd=0) + _v2_row(9, 3000, group=""))
    (tmp_path / "t.yaml").write_text("trace_version: 2\ntime_unit: us\nmode: generated\n")
    cfg = SimulationConfig(latency=MODEL, workload={"workload": "traces", "workload_traces_filepath": path})
    reqs = list(prepare(cfg).requests)
    assert [r.id for r in reqs] == ["request_3", "request_7", "request_9"]
    assert [r.num_prompt_tokens for r in reqs] == [60, 60, 10]
    assert np.array_equal(reqs[0].tokens[:50], reqs[1].tokens[:50])
    assert (reqs[0].slo_class, reqs[0].tenant_id, reqs[0].session_id, reqs[0].round_index) == ("batch", "t", "s1", 0)


@pytest.mark.parametrize(("rows", "header_yaml", "message"), [
    (_v2_row(1, 0) + _v2_row(1, 5), None, "line 3: request_id 1 appears twice"),
    (_v2_row(1, -4), None, "line 2: arrival_time_us must be an integer from 0 to 1,000,000,000,000,000, got '-4'"),
    (_v2_row(1, 0, n_in=0, group=""), None, "line 2: input_tokens must give a non-empty prompt"),
    (_v2_row(1, 0), "trace_version: 1\n", "trace_version must be 2, got 1"),
    (_v2_row(1, 0), "trace_version: 2\ntime_unit: ms\n", "time_unit must be 'us', got 'ms'"),
])
def test_trace_v2_errors_name_the_file_and_line(tmp_path, rows, header_yaml, message):
    path = tmp_path / "t.csv"
    path.write_text(V2_HEADER + rows)
    if header_yaml:
        (tmp_path / "t.yaml").write_text(header_yaml)
    cfg = SimulationConfig(latency=MODEL, workload={"workload": "traces", "workload_traces_filepath": path})
    with pytest.raises(InputError, match="^--workload-traces-filepath ") as info:
        prepare(cfg)
    assert message in str(info.value)


# ------------------------------------------------------------------------------------------------- per-SLO section
def test_per_slo_section_lists_each_class_in_ms():
    res = _run(EXAMPLES / "mixed-slo-windows.yaml")
    assert sorted(res.slo) == ["batch", "interactive", "realtime"]
    text = res.stdout_text()
    section = text[text.index("=== Per-SLO Metrics ===\n"):]
    assert section.splitlines()[1:4] == ["  batch:", section.splitlines()[2], section.splitlines()[3]]
    assert section.splitlines()[2].startswith("    TTFT: mean=") and section.splitlines()[3].startswith("    E2E:  mean=")
    rt = [r for r in res.requests if r["slo_class"] == "realtime" and r["e2e_ms"] > 0]
    assert res.slo["realtime"]["e2e"]["count"] == len(rt)
    assert res.slo["realtime"]["e2e"]["mean"] == pytest.approx(sum(r["e2e_ms"] for r in rt) / len(rt))


def test_one_slo_class_prints_no_section():
    res = _run(EXAMPLES / "multiturn-chat.yaml", workload={"num_requests": 20})
    assert "Per-SLO" not in res.stdout_text()

"""Workload specs, continued: the servegen_data expansion, inference_perf as evaluate's generator, the §10.5 draw
order, multimodal and reasoning metadata in the records, and trace v2 export."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from blis_sim import SimulationConfig, execute, prepare
from blis_sim.errors import InputError
from blis_sim.evaluate.experiment import POISSON, Load, SharedPrefixPool, to_workload_description
from blis_sim.workload import load_spec
from blis_sim.workload.builder import build
from blis_sim.workload.description import SpecSource, WorkloadDescription
from blis_sim.workload.rng import stream
from blis_sim.workload.spec import parse_spec
from blis_sim.workload.spec_gen import SessionPlan, spec_requests

MODEL = {"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "tp": 1,
         "vllm_version": "vllm/vllm-openai:v0.8.4"}
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "workloads"
SERVEGEN = EXAMPLES / "servegen-data"


def _const(v):
    return {"type": "constant", "params": {"value": v}}


def _gen(spec, seed=0, limit=None):
    return list(spec_requests(spec, seed, 2**63 - 1, spec.num_requests if limit is None else limit, SessionPlan()))


# ------------------------------------------------------------------------------------------------ servegen_data
def test_servegen_expansion_takes_the_busiest_row_and_the_first_full_window():
    spec = load_spec(EXAMPLES / "servegen-data.yaml")
    assert [c.id for c in spec.clients] == ["chunk-0", "chunk-1"]  # chunk-7 is idle in the span
    a, b = spec.clients
    assert (a.rate_fraction, a.arrival.process, a.arrival.cv) == (6.5, "gamma", 2.4)
    assert (b.rate_fraction, b.arrival.process, b.arrival.cv) == (3.5, "weibull", 1.3)
    assert spec.aggregate_rate == 10.0  # the sum of the chunks' rates when the spec gives none
    assert dict(a.input_distribution.params) == {96: 0.15, 200: 0.35, 420: 0.3, 900: 0.15, 1500: 0.05}
    assert dict(b.output_distribution.params) == {16: 0.3, 48: 0.45, 128: 0.25}
    assert a.tenant_id == "chunk-0" and a.input_distribution.type == "empirical"


def test_servegen_span_selects_rows_and_windows(tmp_path):
    data = {"seed": 1, "num_requests": 50, "aggregate_rate": 4.0,
            "servegen_data": {"path": str(SERVEGEN), "span_start": 1200, "span_end": 1800}}
    spec = parse_spec(data, "w.yaml")
    a, b = spec.clients
    assert (a.rate_fraction, a.arrival.cv) == (5.0, 2.0) and (b.rate_fraction, b.arrival.cv) == (3.5, 1.3)
    assert dict(a.input_distribution.params) == {300: 1.0}  # window 1200 is the first one in the span
    assert spec.aggregate_rate == 4.0  # given: kept
    reqs = _gen(spec)
    assert {r.num_prompt_tokens for r in reqs if r.tenant_id == "chunk-0"} == {300}


def _servegen_dir(tmp_path, trace="start_s,rate,cv,pattern\n0,2,1.5,Gamma\n",
                  dataset='{"0": {"input_tokens": "{10: 1}", "output_tokens": "{5: 1}"}}'):
    d = tmp_path / "sg"
    d.mkdir(exist_ok=True)
    (d / "chunk-3-trace.csv").write_text(trace)
    if dataset is not None:
        (d / "chunk-3-dataset.json").write_text(dataset)
    return d


@pytest.mark.parametrize(("kw", "block", "message"), [
    ({}, {"path": "sg", "colour": 1}, "w.yaml: servegen_data: unknown key 'colour' (accepted: path, span_start"),
    ({}, {"span_start": 0}, "w.yaml: servegen_data.path: is required"),
    ({}, {"path": "nowhere"}, "servegen_data.path: {tmp}/nowhere is not a folder"),
    ({}, {"path": "sg", "span_start": 5, "span_end": 5}, "servegen_data.span_end: must be a finite number > "
                                                         "span_start (5 s), got 5"),
    ({"trace": "0,abc,1,Gamma\n"}, {"path": "sg"},
     "servegen_data.path: {tmp}/sg/chunk-3-trace.csv: line 1: rate must be a finite number >= 0, got 'abc'"),
    ({"trace": "start,rate,cv,pattern\n0,2,1\n"}, {"path": "sg"},
     "chunk-3-trace.csv: line 2: expected at least 4 fields (start_s, rate, cv, pattern), got 3"),
    ({"trace": "0,2,40,Weibull\n"}, {"path": "sg"},
     "chunk-3-trace.csv: line 1: cv must be a finite number in [0.01, 10.4] for weibull arrivals, got 40"),
    ({"trace": "0,0,0,\n"}, {"path": "sg"}, "servegen_data: no chunk of {tmp}/sg has a row with rate > 0"),
    ({"dataset": None}, {"path": "sg"}, "chunk-3-dataset.json: is missing"),
    ({"dataset": "[1]"}, {"path": "sg"}, "chunk-3-dataset.json: must be a JSON object"),
    ({"dataset": '{"0": {"input_tokens": "{0: 1}", "output_tokens": "{5: 1}"}}'}, {"path": "sg"},
     "chunk-3-dataset.json: window '0': input_tokens: token count '0' must be an integer >= 1"),
    ({"dataset": '{"0": {"input_tokens": "{10: -1}", "output_tokens": "{5: 1}"}}'}, {"path": "sg"},
     "window '0': input_tokens: probability of '10' must be a finite number >= 0, got '-1'"),
    ({"dataset": '{"0": {"input_tokens": "{}", "output_tokens": "{5: 1}"}}'}, {"path": "sg"},
     "chunk-3-dataset.json: no window in the span [0, inf) s has both input_tokens and output_tokens"),
])
def test_servegen_errors_name_the_file_and_the_yaml_path(tmp_path, kw, block, message):
    _servegen_dir(tmp_path, **kw)
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump({"num_requests": 10, "servegen_data": block}))
    with pytest.raises(InputError) as info:
        load_spec(path)
    assert str(info.value).startswith(f"--workload-spec {path}: ")
    assert message.format(tmp=tmp_path) in str(info.value)


def test_servegen_example_runs_and_is_deterministic():
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": EXAMPLES / "servegen-data.yaml"})
    a, b = execute(prepare(cfg)), execute(prepare(cfg))
    assert a.stdout_text() == b.stdout_text()
    assert a.cluster["injected_requests"] == 300
    tenants = {r["tenant_id"] for r in a.requests}
    assert tenants == {"chunk-0", "chunk-1"}


# ------------------------------------------------------------------- inference_perf: evaluate's own generator
def test_inference_perf_spec_is_generated_by_evaluates_code():
    shared = {"num_unique_system_prompts": 2, "num_users_per_system_prompt": 3, "system_prompt_len": 30,
              "question_len": 7, "output_len": 5}
    spec = parse_spec({"inference_perf": {"stages": [{"rate": 10, "duration": 10}, {"rate": 40, "duration": 5}],
                                          "shared_prefix": shared}}, "w")
    mine, _ = build(WorkloadDescription(SpecSource(spec, 0)), 3, 2**62)
    pool = SharedPrefixPool(2, 3, 30, 7, 5)
    loads = [(Load(POISSON, 10.0, 100, 10.0), 100), (Load(POISSON, 40.0, 200, 5.0), 200)]
    theirs, _ = build(to_workload_description(pool, loads, staged=True), 3, 2**62)
    assert len(mine) == len(theirs) == 300  # int(rate x duration) per stage, as inference-perf sends
    theirs = sorted(theirs, key=lambda r: (r.arrival, r.index))  # the spec hands them over in arrival order
    assert [(r.id, r.arrival, r.tokens.tobytes()) for r in mine] == \
        [(r.id, r.arrival, r.tokens.tobytes()) for r in theirs]
    r = mine[0]
    p, u = int(r.meta["client_id"].split("-")[1]), int(r.meta["client_id"].split("-")[3])
    assert (r.tenant_id, r.slo_class, r.meta["prefix_group"]) == (f"prompt-{p}", "batch", f"prompt-{p}")
    assert r.num_prompt_tokens == 37 and r.num_output_tokens == 5
    # every request of a user shares its group's 30-token system prompt
    same_group = [x for x in mine if x.tenant_id == r.tenant_id]
    assert all(np.array_equal(x.tokens[:30], r.tokens[:30]) for x in same_group) and u in range(3)


def test_inference_perf_stage_without_requests_is_an_error():
    spec = parse_spec({"inference_perf": {"stages": [{"rate": 0.1, "duration": 2}]}}, "w")
    with pytest.raises(InputError, match=r"inference_perf.stages\[0\]: rate x duration must give at least one"):
        build(WorkloadDescription(SpecSource(spec, 0)), 0, 2**62)


# ----------------------------------------------------------------------------------------- §10.5 draw order
def test_lengths_and_tokens_follow_the_spec_order_of_draws():
    from scipy.special import ndtri

    spec = parse_spec({"aggregate_rate": 5.0, "num_requests": 40, "clients": [{
        "id": "c", "input_distribution": {"type": "gaussian", "params": {"mean": 100, "std_dev": 30, "min": 1,
                                                                          "max": 400}},
        "output_distribution": {"type": "exponential", "params": {"mean": 20}}}]}, "w")
    reqs = _gen(spec, seed=9)
    u = stream(9, "spec/client/0/length").random(2 * len(reqs)).reshape(-1, 2)  # per request: input, output
    want_in = np.clip(np.floor(np.clip(100 + 30 * ndtri(u[:, 0]), 1, 400) + 0.5), 1, None)
    want_out = np.clip(np.floor(-20 * np.log1p(-u[:, 1]) + 0.5), 1, None)
    assert [r.num_prompt_tokens for r in reqs] == want_in.astype(int).tolist()
    assert [r.num_output_tokens for r in reqs] == want_out.astype(int).tolist()
    # token ids: per request its input ids then its output ids, one random() each, from spec/client/0/token
    total = sum(r.num_prompt_tokens + r.num_output_tokens for r in reqs)
    ids = (stream(9, "spec/client/0/token").random(total) * 128000).astype(np.int64)
    assert np.array_equal(np.concatenate([r.tokens for r in reqs]), ids)
    # arrivals: t += max(1, floor(gap)) from 0, one exponential per request
    gaps = np.maximum(np.floor(stream(9, "spec/client/0/arrival").exponential(1e6 / 5.0, len(reqs))), 1)
    assert [r.arrival for r in reqs] == np.cumsum(gaps).astype(int).tolist()


def test_multimodal_draws_are_interleaved_per_request():
    mm = {"text_distribution": {"type": "exponential", "params": {"mean": 30}},
          "image_count_distribution": {"type": "empirical", "params": {1: 0.5, 2: 0.5}},
          "image_distribution": {"type": "exponential", "params": {"mean": 100}}}
    spec = parse_spec({"aggregate_rate": 5.0, "num_requests": 30, "clients": [{
        "id": "m", "multimodal": mm, "output_distribution": {"type": "exponential", "params": {"mean": 8}}}]}, "w")
    reqs = _gen(spec, seed=4)
    u = iter(stream(4, "spec/client/0/length").random(10_000).tolist())
    half = lambda x: int(math.floor(x + 0.5))  # noqa: E731
    for r in reqs:  # text, image count, that many image sizes, output
        text = max(1, half(-30 * math.log1p(-next(u))))
        count = 1 if next(u) <= 0.5 else 2
        images = sum(max(1, half(-100 * math.log1p(-next(u)))) for _ in range(count))
        out = max(1, half(-8 * math.log1p(-next(u))))
        assert (r.meta["text_tokens"], r.meta.get("image_tokens", 0)) == (text, images)
        assert (r.num_prompt_tokens, r.num_output_tokens) == (text + images, out)


def test_one_million_requests_of_three_clients_generate_quickly():
    import time

    spec = parse_spec({"aggregate_rate": 100.0, "num_requests": 1_000_000, "clients": [
        {"id": "a", "rate_fraction": 0.5, "arrival": {"process": "gamma", "cv": 3.5}, "prefix_group": "g",
         "input_distribution": {"type": "pareto_lognormal",
                                "params": {"alpha": 1.5, "xm": 50, "mu": 5.5, "sigma": 1.2, "mix_weight": 0.3}},
         "output_distribution": {"type": "exponential", "params": {"mean": 128}}},
        {"id": "b", "rate_fraction": 0.3, "arrival": {"process": "weibull", "cv": 0.7},
         "input_distribution": {"type": "gaussian", "params": {"mean": 128, "std_dev": 50, "min": 10, "max": 1024}},
         "output_distribution": {"type": "empirical", "params": {32: 0.5, 64: 0.3, 128: 0.2}}},
        {"id": "c", "rate_fraction": 0.2, "input_distribution": {"type": "exponential", "params": {"mean": 256}},
         "output_distribution": _const(64)}]}, "bench")
    started = time.perf_counter()
    n = sum(1 for _ in spec_requests(spec, 0, 2**63 - 1, 1_000_000, SessionPlan()))
    assert n == 1_000_000
    assert time.perf_counter() - started < 20  # about 4 s alone on the development machine; the issue asks < 10


# ---------------------------------------------------------------------------- multimodal and reasoning records
def test_records_carry_client_modality_and_reason_ratio():
    spec = {"aggregate_rate": 20.0, "num_requests": 60, "clients": [
        {"id": "vision", "streaming": True, "output_distribution": _const(8), "multimodal": {
            "text_distribution": _const(20), "image_count_distribution": _const(2),
            "image_distribution": _const(64), "audio_count_distribution": _const(1),
            "audio_distribution": _const(10)}},
        {"id": "thinker", "input_distribution": _const(30), "output_distribution": _const(16),
         "reasoning": {"reason_ratio_distribution": {"type": "empirical", "params": {20: 0.5, 60: 0.5}}}}]}
    path_spec = parse_spec(spec, "w")
    from blis_sim.workload import spec_workload

    cfg, desc = spec_workload(SimulationConfig(latency=MODEL), path_spec)
    res = execute(prepare(cfg, desc))
    vision = [r for r in res.requests if r.get("client_id") == "vision"]
    thinker = [r for r in res.requests if r.get("client_id") == "thinker"]
    assert vision and thinker
    assert all((r["text_tokens"], r["image_tokens"], r["audio_tokens"], r["video_tokens"], r["streaming"]) ==
               (20, 128, 10, 0, True) and r["num_prefill_tokens"] == 158 for r in vision)
    assert {r["reason_ratio"] for r in thinker} == {0.2, 0.6}
    assert "reason_ratio" not in vision[0] and "text_tokens" not in thinker[0]


# ------------------------------------------------------------------------------------------- trace v2 export
def _v2_spec(tmp_path):
    spec = {"seed": 3, "aggregate_rate": 30.0, "num_requests": 300, "clients": [
        {"id": "chat", "tenant_id": "t1", "slo_class": "interactive", "priority": 2, "prefix_group": "sys",
         "arrival": {"process": "gamma", "cv": 2.0},
         "input_distribution": {"type": "exponential", "params": {"mean": 200}},
         "output_distribution": {"type": "exponential", "params": {"mean": 60}}},
        {"id": "bulk", "tenant_id": "t2", "slo_class": "batch", "streaming": True,
         "input_distribution": {"type": "gaussian", "params": {"mean": 400, "std_dev": 100, "min": 50, "max": 1500}},
         "output_distribution": _const(100),
         "reasoning": {"reason_ratio_distribution": _const(40)}}]}
    path = tmp_path / "v2.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_trace_v2_export_then_replay_reproduces_the_cluster_metrics(tmp_path):
    out = tmp_path / "export.yaml"
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": _v2_spec(tmp_path), "export_trace": out},
                           cluster={"num_instances": 2})
    prepared = prepare(cfg)
    a = execute(prepared)
    data = tmp_path / "export.csv"
    header = yaml.safe_load(out.read_text())
    assert header["trace_version"] == 2 and header["time_unit"] == "us" and header["data_file"] == "export.csv"
    assert header["server"]["model"] == MODEL["model"] and header["mode"] == "generated"
    replay = SimulationConfig(latency=MODEL, workload={"workload": "traces", "workload_traces_filepath": data},
                              cluster={"num_instances": 2}, horizon=prepared.cfg.horizon)
    b = execute(prepare(replay))
    assert json.dumps(a.cluster) == json.dumps(b.cluster)
    assert json.dumps(a.instances) == json.dumps(b.instances) and a.kv == b.kv
    assert a.kv["cache_hit_rate"] > 0  # the 50-token group prefix is shared in both runs
    # the per-request fields come back
    keys = ("requestID", "arrived_at", "num_prefill_tokens", "num_decode_tokens", "slo_class", "tenant_id",
            "client_id", "prefix_group", "streaming", "reason_ratio")
    assert [[r.get(k) for k in keys] for r in a.requests] == [[r.get(k) for k in keys] for r in b.requests]
    rows = data.read_text().splitlines()
    assert rows[0].endswith(",status,error_message,priority")
    chat = next(line for line in rows[1:] if ",chat," in line)
    assert chat.split(",")[-1] == "2" and chat.split(",")[-3] == "ok"


def test_trace_v2_export_is_byte_identical_and_needs_no_token_ids(tmp_path):
    spec = _v2_spec(tmp_path)
    for name in ("a", "b"):
        cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": spec,
                                                        "export_trace": tmp_path / f"{name}.yml"})
        execute(prepare(cfg))
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert (tmp_path / "a.yml").read_text().replace("a.csv", "b.csv") == (tmp_path / "b.yml").read_text()


def test_example_specs_with_sessions_export_v2(tmp_path):
    src = EXAMPLES / "multiturn-chat.yaml"
    shutil.copy(src, tmp_path / "m.yaml")
    out = tmp_path / "m-trace.yaml"
    cfg = SimulationConfig(latency=MODEL, workload={"workload_spec": tmp_path / "m.yaml", "export_trace": out,
                                                    "num_requests": 50})
    execute(prepare(cfg))
    lines = (tmp_path / "m-trace.csv").read_text().splitlines()
    assert len(lines) > 1 and all(",sess_" in line for line in lines[1:])


def test_an_absurd_rate_runs_every_request_one_tick_apart(tmp_path):
    """Found by the file fuzz: a rate of 1e300 req/s overflowed the arrival block estimate (an internal error)."""
    spec = tmp_path / "w.yaml"
    spec.write_text("version: '1'\nseed: 3\naggregate_rate: 1.0e+300\nnum_requests: 4\nclients:\n"
                    "  - {id: a, rate_fraction: 1, arrival: {process: poisson},\n"
                    "     input_distribution: {type: constant, params: {value: 10}},\n"
                    "     output_distribution: {type: constant, params: {value: 5}}}\n")
    res = execute(prepare(SimulationConfig(latency=MODEL, workload={"workload_spec": spec})))
    assert res.cluster["completed_requests"] == 4
    assert [r["arrived_at"] for r in res.requests] == [1e-6, 2e-6, 3e-6, 4e-6]

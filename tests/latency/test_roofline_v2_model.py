"""Roofline v2 (tables and fitted): physical bounds, monotonicity, exact decode path, fall-backs, MoE, TP."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mfu_fixtures import BENCH_DATA, DATA, REPO, make_step, write_tables

from blis_sim.errors import InputError
from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.mfu.fitted import load_packaged_efficiency, packaged_efficiency_names
from blis_sim.latency.mfu.tables import MFUDatabase
from blis_sim.latency.roofline_v1 import RooflineV1
from blis_sim.latency.roofline_v2 import RooflineV2
from blis_sim.step import StepRecord

HW = load_hardware(DATA / "hardware_config_handset.json", "H100")
EFF = load_packaged_efficiency("H100")


def cfg(name: str):
    return load_model_config(DATA / "model_configs" / name)


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory) -> MFUDatabase:
    return MFUDatabase.load(write_tables(tmp_path_factory.mktemp("bench")), "H100", 989.5, 3.35)


@pytest.fixture(scope="module")
def shipped_db(bench_data) -> MFUDatabase:
    return MFUDatabase.load(bench_data, "H100", 989.5, 3.35)


def llama_models(request, tp: int = 1) -> dict[str, RooflineV2]:
    """llama-3.1-8b on H100 with every kernel source available here."""
    c = cfg("llama-3.1-8b-instruct")
    out = {"fitted": RooflineV2.fitted(c, HW, tp, EFF),
           "tiny tables": RooflineV2.from_tables(c, HW, tp, request.getfixturevalue("tiny_db"))}
    try:
        out["H100 tables"] = RooflineV2.from_tables(c, HW, tp, request.getfixturevalue("shipped_db"))
    except pytest.skip.Exception:
        pass
    return out


def weight_bytes_per_gpu(model: RooflineV2) -> float:
    s = model.shapes
    layer = sum(k * n for _, k, n in s.attn_gemms + s.dense_mlp) * s.layers
    return (layer + s.hidden * s.vocab_per_gpu) * s.gemm_dtype.weight_bytes


# ---------------------------------------------------------------- bounds
def test_decode_not_faster_than_weights_and_kv_over_bandwidth(request):
    kv_per_token = 2 * 32 * 8 * 128 * 2  # llama-3.1-8b, all layers
    peak_bw = HW.bw_peak_tbs * 1e12
    v1 = RooflineV1(cfg("llama-3.1-8b-instruct"), HW, 1)
    for source, model in llama_models(request).items():
        bound_weights = weight_bytes_per_gpu(model) / peak_bw * 1e6
        assert bound_weights > 4400  # 15.0 GB incl. lm_head at 3.35 TB/s
        for b in (1, 8, 32, 128, 256):
            for ctx in (0, 100, 1024, 8000):
                t = model.step_time(make_step([], [ctx] * b))
                assert t >= bound_weights + b * ctx * kv_per_token / peak_bw * 1e6, (source, b, ctx)
        # and v1, with its 72% bandwidth efficiency, is never slower at batch 1 than v2 is at the weights bound
        assert v1.step_time(make_step([], [1024])) >= bound_weights


def test_prefill_step_time_monotone_in_tokens(request):
    tokens = [1, 2, 7, 16, 64, 100, 255, 512, 1000, 2048, 3000, 4096, 8192, 16384]
    for source, model in llama_models(request).items():
        for cached in (0, 1024, 8000):
            times = [model.step_time(make_step([(cached, n)], [])) for n in tokens]
            assert times == sorted(times), (source, cached, times)
        mixed = [model.step_time(make_step([(0, n)], [1024] * 16)) for n in tokens]
        assert mixed == sorted(mixed), source


def test_decode_monotone_in_batch_and_context(request):
    for source, model in llama_models(request).items():
        for ctx in (10, 1024, 5000, 200000):
            times = [model.decode_step_time(b, b * ctx) for b in range(1, 600, 7)]
            assert times == sorted(times), (source, ctx)
        for b in (1, 5, 64, 300):
            times = model.decode_step_times(b, np.arange(0, b * 300000, b * 997, dtype=np.int64)).tolist()
            assert times == sorted(times), (source, b)


def test_v2_prices_prefill_per_token_unlike_the_reference(request):
    """ROOFLINE.md §8.2: the reference's v2 prices a 2048-token prefill at 4.5 ms; one forward pass over 2048
    tokens (about 3e13 FLOPs) cannot take less than 30 ms at the BF16 peak."""
    for source, model in llama_models(request).items():
        t = model.step_time(make_step([(0, 2048)], []))
        flops = 2 * 2048 * weight_bytes_per_gpu(model) / 2
        assert t >= flops / (HW.tflops_peak * 1e12) * 1e6 and 35000 < t < 80000, (source, t)


def test_empty_batch_is_the_step_overhead(request):
    for model in llama_models(request).values():
        assert model.decode_step_time(0, 0) == 50 and model.decode_step_times(0, np.array([0])).tolist() == [50]


# ---------------------------------------------------------------- exact decode
def _models_under_test():
    tiny = MFUDatabase.load(write_tables(Path(__import__("tempfile").mkdtemp()) / "b", tps=(1, 2)), "H100", 989.5,
                            3.35)
    out = []
    for name, tps in (("llama-3.1-8b-instruct", (1, 2, 4, 8)), ("qwen2.5-7b-instruct", (1, 2, 4)),
                      ("mixtral-8x7b-v0.1", (1, 2, 8)), ("llama-2-70b-hf", (8,)), ("qwen3-14b", (1,))):
        for tp in tps:
            out.append(RooflineV2.fitted(cfg(name), HW, tp, EFF))
    for tp in (1, 2, 4):
        out.append(RooflineV2.from_tables(cfg("llama-3.1-8b-instruct"), HW, tp, tiny))
    if (BENCH_DATA / "gemm").is_dir():
        shipped = MFUDatabase.load(BENCH_DATA, "H100", 989.5, 3.35)
        for name, tp in (("llama-3.1-8b-instruct", 1), ("qwen2.5-7b-instruct", 2), ("llama-2-70b-hf", 4),
                         ("mixtral-8x7b-v0.1", 2), ("qwen3-14b", 1)):
            out.append(RooflineV2.from_tables(cfg(name), HW, tp, shipped))
    return out


MODELS_UNDER_TEST = _models_under_test()


@settings(max_examples=300, deadline=None)
@given(idx=st.integers(0, len(MODELS_UNDER_TEST) - 1), b=st.integers(1, 1024),
       ctx=st.lists(st.integers(0, 300_000), min_size=1, max_size=64))
def test_decode_step_time_equals_step_time_of_decode_only_records(idx, b, ctx):
    model = MODELS_UNDER_TEST[idx]
    contexts = [ctx[i % len(ctx)] for i in range(b)]  # uneven contexts: only their sum may matter
    record = StepRecord(0)
    record.num_decodes, record.decode_context_sum = b, sum(contexts)
    expected = model.step_time(record)
    assert model.decode_step_time(b, sum(contexts)) == expected
    assert model.step_time(make_step([], contexts)) == expected
    sums = np.array([b * c for c in ctx] + [sum(contexts)], dtype=np.int64)
    assert model.decode_step_times(b, sums).tolist() == [model.decode_step_time(b, int(s)) for s in sums]


# ---------------------------------------------------------------- fall-backs
def test_shape_without_table_warns_once_and_uses_v1_attention(tiny_db, caplog):
    caplog.set_level(logging.INFO, logger="blis_sim")
    m = RooflineV2.from_tables(cfg("qwen3-14b"), HW, 1, tiny_db)  # 40-8-128: no table
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "attention" in r.getMessage()]
    assert len(warnings) == 1 and "no attention tables for shape 40-8-128" in warnings[0]
    assert "roofline v1 formula" in warnings[0] and "32-8-128, distance 8.0" in warnings[0]
    d = m.describe()
    assert d["attention"] == {"prefill": "roofline-v1 formula (no table)", "decode": "roofline-v1 formula (no table)"}
    caplog.clear()
    assert m.step_time(make_step([(0, 500)], [3000] * 10)) > 0
    assert not caplog.records  # nothing logs in the step loop


def test_missing_tp_decode_table_scales_the_tp1_table(tiny_db, caplog):
    m = RooflineV2.from_tables(cfg("llama-3.1-8b-instruct"), HW, 4, tiny_db)  # tiny tables: tp1 and tp2 only
    assert any("no decode table 32-8-128-tp4" in r.getMessage() and "x0.25" in r.getMessage() for r in caplog.records)
    assert m.describe()["attention"]["decode"].endswith("32-8-128-tp1.csv")


def test_gemm_shapes_outside_the_table_are_reported(shipped_db, caplog):
    RooflineV2.from_tables(cfg("llama-3.1-8b-instruct"), HW, 1, shipped_db)
    (message,) = [r.getMessage() for r in caplog.records if "GEMM shapes outside" in r.getMessage()]
    assert "gate_up 4096x28672 (2.6x)" in message and "lm_head 4096x128256 (11.7x)" in message
    assert "qkv" not in message  # 4096 x 6144 is a measured shape


def test_tp_must_shard_heads_evenly():
    with pytest.raises(InputError, match=r"^--tp 8: vLLM shards the 28 attention heads and 4 KV heads"):
        RooflineV2.fitted(cfg("qwen2.5-7b-instruct"), HW, 8, EFF)


# ---------------------------------------------------------------- MoE
def test_moe_routes_tokens_to_experts():
    m = RooflineV2.fitted(cfg("mixtral-8x7b-v0.1"), HW, 2, EFF)
    s = m.shapes
    assert (s.num_experts, s.top_k, s.expert_ffn_per_gpu) == (8, 2, 7168)
    assert s.routing(1) == pytest.approx((2.0, 1.0))
    touched, per_expert = s.routing(4096)
    assert touched == pytest.approx(8.0) and per_expert == pytest.approx(1024.0)
    # one decode touches 2 of 8 experts: far cheaper than reading all of them, dearer than a 14B dense model
    one, many = m.decode_step_time(1, 1000), m.decode_step_time(64, 64 * 1000)
    all_experts_bytes = 32 * 8 * 3 * 4096 * 7168 * 2 / (HW.bw_peak_tbs * 1e12) * 1e6
    assert one < all_experts_bytes < many
    assert "experts_gate_up" in [label for label, *_ in s.gemm_list()]


# ---------------------------------------------------------------- fitted model
def test_packaged_efficiency_model():
    # H100 fitted on its kernels; the others transferred from it (scripts/transfer_calibration.py)
    assert packaged_efficiency_names() == ["A100-40GB", "A100-80GB", "A100-80GB-PCIE", "B200", "H100", "H100-PCIE",
                                           "H200", "L40S"]
    assert EFF.gemm.mu <= 1 and EFF.decode.eta <= 1 and EFF.prefill.mu <= 1 and EFF.gemm.p >= 1
    raw = json.loads((DATA / "efficiency_h100.json").read_text())
    errors = raw["fit_errors"]
    assert errors["gemm"]["table_dtype"] == "fp8" and errors["gemm"]["rows"] == 112
    assert errors["gemm"]["mean_abs_rel_err"] < 0.05 and errors["prefill_attention"]["mean_abs_rel_err"] < 0.05
    assert errors["decode_attention"]["rows"] + errors["decode_attention"]["excluded_warmup_rows"]["rows"] == 755
    assert raw["vs_tables"]["decode"]["mean_abs_rel_diff"] < 0.1


def test_no_fitted_model_for_unknown_gpus():
    from blis_sim.latency.mfu.fitted import load_packaged_efficiency as load

    with pytest.raises(InputError, match=r"no fitted efficiency model for GPU 'A100-80' \(shipped: A100-40GB, "
                                         r"A100-80GB, A100-80GB-PCIE, B200, H100, H100-PCIE, H200, L40S\)"):
        load("A100-80")  # an alias: its hardware entry names A100-80GB through efficiencyModel


def _fit_check(bench_data, output: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "fit_efficiency.py"), "--check",
                           "--bench-data-path", str(bench_data), "--output", str(output)],
                          capture_output=True, text=True, timeout=300)


def test_fit_script_reproduces_the_packaged_file(bench_data):
    pytest.importorskip("scipy")
    p = _fit_check(bench_data, DATA / "efficiency_h100.json")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "matches a fresh fit" in p.stdout


@pytest.mark.parametrize("key", [("gemm", "mu"), ("prefill_attention", "s_half"), ("decode_attention", "t0_us")])
def test_fit_check_fails_when_a_parameter_moves_by_one_percent(bench_data, tmp_path, key):
    pytest.importorskip("scipy")
    raw = json.loads((DATA / "efficiency_h100.json").read_text())
    section, name = key
    raw[section][name] *= 1.01
    perturbed = tmp_path / "efficiency_h100.json"
    perturbed.write_text(json.dumps(raw, indent=2) + "\n")
    p = _fit_check(bench_data, perturbed)
    assert p.returncode == 1
    assert f"{section}.{name}: shipped" in p.stderr and "beyond the relative tolerance 0.0001" in p.stderr


def _fit_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("fit_efficiency", REPO / "scripts" / "fit_efficiency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fit_check_tolerances_without_the_tables():
    fe = _fit_script()
    shipped = json.loads((DATA / "efficiency_h100.json").read_text())
    assert fe.compare(shipped, shipped) == []

    def moved(edit):
        fresh = json.loads(json.dumps(shipped))
        edit(fresh)
        return fe.compare(shipped, fresh)

    # The last stored digit flipping (what a new scipy/BLAS does) passes; 1% on a parameter fails.
    assert moved(lambda d: d["prefill_attention"].update(s_half=83.013)) == []
    assert moved(lambda d: d["gemm"].update(p=d["gemm"]["p"] * 1.00003)) == []
    assert len(moved(lambda d: d["gemm"].update(p=d["gemm"]["p"] * 1.01))) == 1
    # Error figures are compared absolutely (0.01 percentage point), counts and text exactly.
    assert moved(lambda d: d["fit_errors"]["gemm"].update(mean_abs_rel_err=0.03457)) == []
    assert len(moved(lambda d: d["fit_errors"]["gemm"].update(mean_abs_rel_err=0.0350))) == 1
    assert len(moved(lambda d: d["fit_errors"]["gemm"].update(rows=113))) == 1
    assert len(moved(lambda d: d["gemm"].update(form="t = t0"))) == 1
    assert len(moved(lambda d: d["gemm"].pop("eta"))) == 1
    case = shipped["vs_tables"]["largest"]["case"]
    assert "fitted 4419 us" in case
    assert moved(lambda d: d["vs_tables"]["largest"].update(case=case.replace("4419", "4420"))) == []
    assert len(moved(lambda d: d["vs_tables"]["largest"].update(case=case.replace("4419", "4460")))) == 1
    assert len(moved(lambda d: d["vs_tables"]["largest"].update(case=case.replace("tp4", "tp2")))) == 1

"""The latency terms added after error analysis against real vLLM measurements (README "Calibrating"): each is off
when its hardware-config key is 0 or missing, and does exactly what its documentation says when on."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from mfu_fixtures import DATA, make_step

from blis_sim.errors import InputError
from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.mfu.fitted import load_packaged_efficiency
from blis_sim.latency.roofline_v1 import RooflineV1
from blis_sim.latency.roofline_v2 import RooflineV2

HANDSET = DATA / "hardware_config_handset.json"


@pytest.fixture(scope="module")
def hand_set():
    return load_hardware(HANDSET, "H100")


def _model(name):
    return load_model_config(DATA / "model_configs" / name)


def test_every_term_off_is_the_hand_set_model(hand_set):
    """Keys at 0 leave every step time unchanged (the reference reproduction depends on it)."""
    off = replace(hand_set, request_overhead_micros=0.0, all_reduce_bw_gbs=0.0, decode_kv_bw_eff=0.0, moe_experts=0.0)
    for name in ("llama-2-7b-hf", "mixtral-8x7b-v0.1"):
        a, b = RooflineV1(_model(name), hand_set, 2), RooflineV1(_model(name), off, 2)
        for s in (make_step([(0, 512)], [800] * 7), make_step([], [3000] * 40), make_step([(100, 2048)], [])):
            assert a.step_time(s) == b.step_time(s)
        assert a.queueing_time(1000) == b.queueing_time(1000) == 0


def test_request_overhead_joins_alpha0(hand_set):
    hw = replace(hand_set, request_overhead_micros=8000.0)
    for model in (RooflineV1(_model("llama-2-7b-hf"), hw, 1, (100.0, 2.0, 0.0)),
                  RooflineV2.fitted(_model("llama-2-7b-hf"), hw, 1, load_packaged_efficiency("H100"),
                                    (100.0, 2.0, 0.0))):
        assert model.queueing_time(500) == 8000 + 100 + 2 * 500
        base = RooflineV1(_model("llama-2-7b-hf"), hand_set, 1)
        assert base.queueing_time(500) == 0
    # the GPU time is untouched
    v1, base = RooflineV1(_model("llama-2-7b-hf"), hw, 1), RooflineV1(_model("llama-2-7b-hf"), hand_set, 1)
    assert v1.step_time(make_step([(0, 300)], [50])) == base.step_time(make_step([(0, 300)], [50]))


@pytest.mark.parametrize("tp", [2, 4])
def test_all_reduce_bandwidth_term(hand_set, tp):
    """2 all-reduces per layer of m·D·2 bytes, ring factor 2(t-1)/t, over allReduceBwGBs."""
    m = _model("llama-2-7b-hf")  # L 32, D 4096
    with_bw = RooflineV1(m, replace(hand_set, all_reduce_bw_gbs=100.0), tp)
    base = RooflineV1(m, hand_set, tp)
    for prefill, decodes in (([(0, 2000)], []), ([], [100] * 64), ([(0, 500)], [100] * 10)):
        tokens = sum(n for _, n in prefill) + len(decodes)
        extra_us = 32 * 2 * 2 * (tp - 1) / tp * tokens * 4096 * 2 / 100e9 * 1e6
        diff = with_bw.step_time(make_step(prefill, decodes)) - base.step_time(make_step(prefill, decodes))
        assert abs(diff - extra_us) <= 1.0
    one = RooflineV1(m, replace(hand_set, all_reduce_bw_gbs=100.0), 1)  # no TP: no traffic
    assert one.step_time(make_step([(0, 2000)])) == RooflineV1(m, hand_set, 1).step_time(make_step([(0, 2000)]))


def test_decode_kv_bandwidth_term(hand_set):
    """Memory-bound decode: the KV read moves at BwPeakTBs x decodeKvBwEff instead of x BwEffConstant."""
    m = _model("llama-2-7b-hf")
    eff = 0.25
    on, base = RooflineV1(m, replace(hand_set, decode_kv_bw_eff=eff), 1), RooflineV1(m, hand_set, 1)
    kv_read = 2 * 32 * 4096 * 2 * 0.80  # bytes per context token (KV_READ_DECODE)
    ctx = 8000
    extra = kv_read * ctx * (1 / (3.35e12 * eff) - 1 / (3.35e12 * 0.72))
    assert on.decode_time(1, ctx) - base.decode_time(1, ctx) == pytest.approx(extra, rel=1e-9)
    assert on.decode_time(1, 0) == pytest.approx(base.decode_time(1, 0), rel=1e-12)


def test_moe_experts_weights_and_flops(hand_set):
    """Mixtral-8x7B (E 8, k 2): a prefill reads every expert (46.7 B parameters, 93.4 GB in BF16), one decode the
    attention plus 2 experts; per token it computes 2 experts' MLPs."""
    m = _model("mixtral-8x7b-v0.1")
    on = RooflineV1(m, replace(hand_set, moe_experts=1.0), 1)
    dense = RooflineV1(m, hand_set, 1)
    L, D, F, dkv = 32, 4096, 14336, 8 * 128
    attn = D * (D + 2 * dkv) + D * D
    assert on.weight_bytes == 2 * (L * attn + L * (D * 8 + 8 * 3 * D * F))
    assert on.weight_bytes / 2 == pytest.approx(46.4e9, rel=0.01)  # Mixtral's published 46.7 B less embeddings
    assert dense.weight_bytes == 2 * L * (attn + 3 * D * F)
    assert on.gemm_per_token == L * (2 * (D * D + 2 * D * dkv) + 2 * D * D + 2 * D * 8 + 2 * 3 * D * F * 2)
    one = on._moe_weights(1)
    assert one == pytest.approx(2 * (L * attn + L * D * 8 + 2 * L * 3 * D * F))
    many = on._moe_weights(10_000)
    assert many == pytest.approx(on.weight_bytes)
    # Decode at batch 1 is memory-bound: about 2 experts' weights; at batch 64 nearly all 8.
    bw = 3.35e12 * 0.72
    assert on.decode_time(1, 100) == pytest.approx((one + on._dec_bytes_fixed + on._dec_bytes_per_ctx * 100) / bw)
    assert on.decode_time(64, 6400) > 3 * on.decode_time(1, 100)
    # a dense model is unaffected by the key
    llama = _model("llama-2-7b-hf")
    s = make_step([(0, 512)], [300] * 8)
    assert RooflineV1(llama, replace(hand_set, moe_experts=1.0), 1).step_time(s) == \
        RooflineV1(llama, hand_set, 1).step_time(s)


@pytest.mark.parametrize("key, value, message", [
    ("requestOverheadMicros", -1, "requestOverheadMicros must be a finite number >= 0"),
    ("allReduceBwGBs", -5, "allReduceBwGBs must be a finite number >= 0"),
    ("decodeKvBwEff", 1.5, "decodeKvBwEff must be in (0, 1]"),
    ("moeExperts", 0.5, "moeExperts must be 0 or 1"),
    ("flatStepOverhead", 2, "flatStepOverhead must be 0 or 1"),
])
def test_added_keys_validated(tmp_path, key, value, message):
    entry = json.loads(HANDSET.read_text())["H100"]
    entry[key] = value
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"H100": entry}))
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        load_hardware(path, "H100").check_v1()


def test_flat_step_overhead(hand_set):
    """flatStepOverhead = 1: TOverheadMicros per step whatever the batch; 0 (the reference): §6's growth with log2 of
    the batch (x2.725 at 64 decodes: 1 + 0.15 x log2(32) x (0.3 + 2))."""
    m = _model("llama-2-7b-hf")
    grow, flat = RooflineV1(m, hand_set, 1), RooflineV1(m, replace(hand_set, flat_step_overhead=1.0), 1)
    base = hand_set.t_overhead_micros
    for d in (1, 2, 64, 256):
        extra = grow.decode_step_time(d, d * 1000) - flat.decode_step_time(d, d * 1000)
        growth = 1.0 if d <= 2 else 1 + 0.15 * math.log2(d / 2) * 2.3
        assert extra == pytest.approx(base * (growth - 1), abs=1.0), d
    s = make_step([(0, 512)], [800] * 63)  # mixed: 64 requests, 63 decodes
    assert grow.step_time(s) > flat.step_time(s)
    import numpy as np

    sums = np.array([64 * 500, 64 * 3000], dtype=np.int64)
    assert flat.decode_step_times(64, sums).tolist() == [flat.decode_step_time(64, int(x)) for x in sums]


def test_roofline_v2_overrides(tmp_path):
    entry = json.loads(HANDSET.read_text())["H100"]
    entry["rooflineV2"] = {"toverheadmicros": 900, "requestOverheadMicros": 7000}
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"H100": entry}))
    hw = load_hardware(path, "H100")
    assert hw.t_overhead_micros == 50.0 and hw.request_overhead_micros == 0.0  # v1 reads the entry itself
    v2 = hw.for_v2()
    assert v2.t_overhead_micros == 900.0 and v2.request_overhead_micros == 7000.0 and v2.v2_overrides == ()
    assert v2.mfu_decode == hw.mfu_decode
    for bad, message in (({"mfuDecode": 0.3}, "cannot be set for roofline v2 only"),
                         ({"TOverheadMicros": -1}, "must be a finite number >= 0"), (5, "must be a JSON object")):
        entry["rooflineV2"] = bad
        path.write_text(json.dumps({"H100": entry}))
        with pytest.raises(InputError, match=message):
            load_hardware(path, "H100")


def test_packaged_defaults_use_the_added_terms():
    """The shipped H100 entry is the calibrated one; every other GPU's is transferred from it
    (tests/latency/test_gpu_transfer.py), and the hand-set file keeps the reference's constants for all."""
    packaged = json.loads((DATA / "hardware_config.json").read_text())
    handset = json.loads(HANDSET.read_text())
    assert set(packaged) == set(handset)
    for gpu in handset:
        for key in ("TFlopsPeak", "BwPeakTBs", "memoryGB", "linkBwGBs", "fp8TFlopsPeak", "efficiencyModel"):
            assert packaged[gpu][key] == handset[gpu][key], (gpu, key)  # same datasheet figures in both
    h100 = load_hardware(DATA / "hardware_config.json", "H100")
    h100.check_v1()
    assert h100.moe_experts == 1.0 and h100.request_overhead_micros > 0
    assert 0 < h100.mfu_prefill <= 1 and 0 < h100.mfu_decode <= 1 and 0 < h100.bw_eff_constant <= 1
    assert math.isfinite(h100.t_overhead_micros) and h100.t_overhead_micros >= 0
    v2 = h100.for_v2()  # roofline v2 reads its own calibrated overheads and GEMM bandwidth efficiency
    v2.check_v2()
    assert dict(h100.v2_overrides).keys() == {"TOverheadMicros", "allReduceLatency", "requestOverheadMicros", "gemmEta"}
    assert 0 < v2.gemm_eta <= 1 and v2.request_overhead_micros > 0
    record = json.loads((DATA / "calibration_h100.json").read_text())  # provenance of those values
    assert {k: round(v, 4) for k, v in record["roofline-v2"]["fitted"].items()} == pytest.approx(
        dict(h100.v2_overrides), rel=1e-3)
    fitted_v1 = {**record["roofline-v1"]["fitted"], **record["roofline-v1"]["fixed"]}
    assert {k: h100.value(k) for k in fitted_v1} == pytest.approx(fitted_v1, rel=1e-3)
    for which in ("roofline-v1", "roofline-v2"):  # shipped only because they beat the starting values held out
        mape = record[which]["mape"]["holdout"]
        assert mape["after"]["objective"] < mape["before"]["objective"]


def test_v2_gemm_eta_replaces_the_fitted_bandwidth_efficiency(hand_set):
    """A memory-bound decode step of roofline v2 (fitted kernels) speeds up as gemmEta rises above the fitted 0.669."""
    eff = load_packaged_efficiency("H100")
    m = _model("llama-2-7b-hf")
    base = RooflineV2.fitted(m, hand_set, 1, eff)
    same = RooflineV2.fitted(m, replace(hand_set, gemm_eta=eff.gemm.eta), 1, eff)
    fast = RooflineV2.fitted(m, replace(hand_set, gemm_eta=0.9), 1, eff)
    s = make_step([], [200])
    assert same.step_time(s) == base.step_time(s)
    weights = 6.74e9 * 2  # Llama-2-7B linear layers, BF16
    saved_us = weights / 3.35e12 * (1 / eff.gemm.eta - 1 / 0.9) * 1e6
    assert base.step_time(s) - fast.step_time(s) == pytest.approx(saved_us, rel=0.05)
    with pytest.raises(InputError, match="gemmEta must be"):
        replace(hand_set, gemm_eta=1.5).check_v2()

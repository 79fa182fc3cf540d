"""The transfer of the H100 calibration to the other GPUs (scripts/transfer_calibration.py, docs/gpu-transfer.md) and
``--latency-model best``."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import pytest
from mfu_fixtures import make_step

from blis_sim.config.models import EngineConfig, LatencyConfig
from blis_sim.errors import InputError
from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.mfu.fitted import load_packaged_efficiency
from blis_sim.latency.roofline_v2 import RooflineV2
from blis_sim.latency.select import resolve_latency

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "src" / "blis_sim" / "data"
PACKAGED = DATA / "hardware_config.json"


def _script():
    spec = importlib.util.spec_from_file_location("transfer_calibration", REPO / "scripts" / "transfer_calibration.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_packaged_files_are_the_scripts_derivation(capsys):
    assert _script().main(["--check"]) == 0, capsys.readouterr().err


def test_efficiencies_and_host_overheads_carry_over_peaks_do_not():
    script = _script()
    h100 = load_hardware(PACKAGED, "H100")
    for gpu in ("H100-PCIe", "H200", "A100-80", "A100-80GB", "A100-SXM", "A100-80GB-PCIe", "A100-40GB", "L40S",
                "B200"):
        hw = load_hardware(PACKAGED, gpu)
        canonical = script.ALIASES.get(gpu, gpu)
        mem = script.achievable_ratio(canonical, "memory")
        for key in ("mfuPrefill", "mfuDecode", "TOverheadMicros", "requestOverheadMicros", "prefillOverheadMicros",
                    "moeExperts", "tpScalingExponent"):
            assert hw.value(key) == h100.value(key), (gpu, key)
        for key in ("BwEffConstant", "decodeKvBwEff"):  # streaming efficiencies: x the achievable-memory ratio
            assert hw.value(key) == pytest.approx(h100.value(key) * mem, rel=1e-5), (gpu, key)
        v2, v2h = hw.for_v2(), h100.for_v2()
        assert (v2.t_overhead_micros, v2.request_overhead_micros) == (v2h.t_overhead_micros, v2h.request_overhead_micros)
        assert v2.gemm_eta == pytest.approx(v2h.gemm_eta * mem, rel=1e-5)
        # the all-reduce bus bandwidth keeps its share of the link
        assert hw.all_reduce_bw_gbs / hw.link_bw_gbs == pytest.approx(h100.all_reduce_bw_gbs / h100.link_bw_gbs,
                                                                      rel=1e-5)
    # BabelStream Triad (one harness): A100 SXM4 80GB 1.70 of 2.039 TB/s, H100 2.97 of 3.35
    assert script.achievable_ratio("A100-80GB", "memory") == pytest.approx((1.70 / 2.039) / (2.97 / 3.35))
    assert script.achievable_ratio("L40S", "memory") == 1.0  # no published measurement: unchanged
    assert script.achievable_ratio("A100-80GB", "gemm") == 1.0  # recorded, not applied (module docstring)
    a100, l40s = load_hardware(PACKAGED, "A100-80GB"), load_hardware(PACKAGED, "L40S")
    assert (a100.tflops_peak, a100.bw_peak_tbs, a100.fp8_peak_factor) == (312.0, 2.039, 0.0)
    assert a100.all_reduce_latency == h100.all_reduce_latency  # NVLink on both
    # PCIe: NCCL's ring LL latency model, two steps: (3.6 + 2 x 1.0) / (3.6 + 2 x 0.47)
    assert l40s.all_reduce_latency / h100.all_reduce_latency == pytest.approx(5.6 / 4.54, rel=1e-4)
    assert l40s.for_v2().all_reduce_latency / h100.for_v2().all_reduce_latency == pytest.approx(5.6 / 4.54, rel=1e-4)
    assert l40s.link_bw_gbs == 32 and l40s.fp8_peak_factor == pytest.approx(733 / 362.05)
    pcie = load_hardware(PACKAGED, "A100-80GB-PCIe")
    assert (pcie.bw_peak_tbs, pcie.link_bw_gbs) == (1.935, 32)
    h_pcie = load_hardware(PACKAGED, "H100-PCIe")  # HBM2e and PCIe Gen5, FP8 cores; no price is known for it
    assert (h_pcie.tflops_peak, h_pcie.bw_peak_tbs, h_pcie.link_bw_gbs) == (756.5, 2.0, 64)
    assert h_pcie.fp8_peak_factor == pytest.approx(2.0) and h_pcie.all_reduce_latency == l40s.all_reduce_latency


def test_transferred_efficiency_models_are_the_h100_one_scaled():
    script = _script()
    h100 = load_packaged_efficiency("H100")
    for gpu in ("H100-PCIe", "H200", "A100-80GB", "A100-80GB-PCIe", "A100-40GB", "L40S", "B200"):
        eff = load_packaged_efficiency(gpu)
        mem = script.achievable_ratio(gpu, "memory")
        assert (eff.gemm.t0_us, eff.gemm.mu, eff.gemm.p) == (h100.gemm.t0_us, h100.gemm.mu, h100.gemm.p)
        assert eff.gemm.eta == pytest.approx(h100.gemm.eta * mem, rel=1e-5)
        assert eff.decode.eta == pytest.approx(h100.decode.eta * mem, rel=1e-5)
        assert eff.prefill == h100.prefill and eff.decode.t0_us == h100.decode.t0_us
        assert eff.gpu == gpu
        raw = json.loads((DATA / f"efficiency_{gpu.lower()}.json").read_text())
        assert raw["transferred_from"]["gpu"] == "H100" and eff.transferred_from == "H100"
    assert h100.transferred_from == ""


def test_describe_says_a_transferred_model_was_fitted_on_the_h100():
    """The run's record of the latency model must not claim a fit on a GPU that has no measurements."""
    a100 = _v2("A100-80GB").describe()
    assert (a100["fitted_on"], a100["transferred_to"]) == ("H100", "A100-80GB")
    h100 = _v2("H100").describe()
    assert h100["fitted_on"] == "H100" and "transferred_to" not in h100


def _v2(gpu: str, model: str = "llama-2-7b-hf", tp: int = 1) -> RooflineV2:
    hw = load_hardware(PACKAGED, gpu).for_v2()
    eff = load_packaged_efficiency(hw.efficiency_model or hw.name)
    return RooflineV2.fitted(load_model_config(DATA / "model_configs" / model), hw, tp, eff)


def test_decode_steps_follow_the_bandwidth_ratio():
    """A large memory-bound decode step is slower on A100 than on H100 by about the HBM ratio (3.35 / 2.039 = 1.64),
    less the host overhead both share; a compute-bound prefill by at most the BF16 peak ratio (989.5 / 312 = 3.17)."""
    h100, a100, l40s = _v2("H100"), _v2("A100-80GB"), _v2("L40S")
    host = h100._overhead_s(0, 64) * 1e6
    d_h, d_a = h100.decode_step_time(64, 64 * 2048), a100.decode_step_time(64, 64 * 2048)
    # the HBM ratio, and the A100's lower achievable share of it (BabelStream: x 0.940)
    assert (d_a - host) / (d_h - host) == pytest.approx(3.35 / 2.039 / 0.940, rel=0.15)
    assert l40s.decode_step_time(64, 64 * 2048) > d_a  # 0.864 TB/s of GDDR6
    step = make_step([(0, 4096)], [])
    p_h, p_a = h100.step_time(step), a100.step_time(step)
    assert 2.0 < p_a / p_h <= 989.5 / 312 * 1.01


def test_a100_runs_fp8_checkpoints_weight_only():
    """No FP8 tensor cores on Ampere: an FP8 checkpoint reads 1-byte weights but computes at the BF16 peak."""
    a100 = load_hardware(PACKAGED, "A100-80GB")
    h100 = load_hardware(PACKAGED, "H100")
    assert a100.fp8_peak_factor == 0.0 and h100.fp8_peak_factor == pytest.approx(2.0)


@pytest.mark.parametrize("raw, message", [
    (-1, "fp8TFlopsPeak must be 0"), ("fast", "fp8TFlopsPeak must be 0"), (0.5, "fp8TFlopsPeak must be 0"),
])
def test_fp8_peak_key_is_checked(tmp_path, raw, message):
    entry = json.loads(PACKAGED.read_text())["H100"]
    entry["fp8TFlopsPeak"] = raw
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"H100": entry}))
    with pytest.raises(InputError, match=message):
        load_hardware(path, "H100")


def test_efficiency_model_key_is_checked(tmp_path):
    entry = json.loads(PACKAGED.read_text())["H100"]
    entry["efficiencyModel"] = 5
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"H100": entry}))
    with pytest.raises(InputError, match="efficiencyModel must name a shipped efficiency model"):
        load_hardware(path, "H100")


# ---------------------------------------------------------------------------------------------------- best


def _best(**kw):
    return resolve_latency(LatencyConfig(model=kw.pop("model", "meta-llama/Llama-2-7b-hf"), latency_model="best",
                                         **kw), EngineConfig())


def test_best_is_v2_on_the_packaged_files_for_every_shipped_gpu(caplog):
    caplog.set_level(logging.INFO, logger="blis_sim")
    for gpu in ("H100", "A100-80", "L40S", "B200"):
        r = _best(hardware=gpu, tp=1)
        assert r.kind == "roofline-v2" and r.hardware == gpu
    assert any("latency model best: packaged model config" in rec.getMessage() for rec in caplog.records)


def test_best_falls_back_to_v1_without_an_efficiency_model(tmp_path):
    entry = json.loads(PACKAGED.read_text())["H100"]
    del entry["efficiencyModel"]
    path = tmp_path / "hw.json"
    path.write_text(json.dumps({"MYGPU": entry}))
    r = _best(hardware="MYGPU", tp=1, model_config_folder=DATA / "model_configs" / "llama-2-7b-hf",
              hardware_config=path)
    assert r.kind == "roofline-v1"
    entry["efficiencyModel"] = "H100"  # a user's GPU may borrow a shipped kernel model
    path.write_text(json.dumps({"MYGPU": entry}))
    r = _best(hardware="MYGPU", tp=1, model_config_folder=DATA / "model_configs" / "llama-2-7b-hf",
              hardware_config=path)
    assert r.kind == "roofline-v2"


def test_best_keeps_the_seeds_rule_without_a_packaged_model_config():
    r = _best(model="meta-llama/llama-3.1-8b-instruct", hardware="H100", tp=2, vllm_version="vllm/vllm-openai:v0.8.4")
    # packaged folder llama-3.1-8b-instruct exists: roofline v2
    assert r.kind == "roofline-v2"
    r = _best(model="acme/unknown-model", hardware="H100", tp=1, alpha_coeffs=(1.0, 0.0, 0.0),
              beta_coeffs=(100.0, 1.0, 1.0))
    assert r.kind == "blackbox"

"""Latency-model resolution (ENGINE.md §9.3, ROOFLINE.md §7.2): roofline, explicit blackbox, defaults lookup."""

from __future__ import annotations

import logging
import textwrap
from pathlib import Path

import pytest
from mfu_fixtures import write_tables

from blis_sim.config.models import EngineConfig, LatencyConfig
from blis_sim.errors import InputError
from blis_sim.latency.select import resolve_latency

DATA = Path(__file__).parents[2] / "src" / "blis_sim" / "data"
ROOF = {"model_config_folder": DATA / "model_configs" / "llama-3.1-8b-instruct",
        "hardware_config": DATA / "hardware_config_handset.json"}  # hand-set: the reference numbers
LLAMA = "meta-llama/llama-3.1-8b-instruct"


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "blis_sim" and r.levelno == logging.WARNING]


# ---------------------------------------------------------------- roofline
def test_roofline_when_both_files_given(step, caplog):
    r = resolve_latency(LatencyConfig(model="x", hardware="H100", tp=1, **ROOF), EngineConfig())
    assert r.kind == "roofline-v1" and r.model.name == "roofline-v1"
    # no --total-kv-blocks: the blocks vLLM would allocate (80 GB, weights 14.96 GiB, mbt 2048), not 1,000,000
    assert (r.hardware, r.tp, r.total_kv_blocks) == ("H100", 1, 28587)
    assert r.model.step_time(step([], [1024])) == 5882
    assert r.model.queueing_time(100) == 0 and r.model.output_token_time() == 0
    assert warnings(caplog) == []


def test_roofline_keeps_total_kv_blocks_flag():
    r = resolve_latency(LatencyConfig(model="x", hardware="H100", tp=2, **ROOF), EngineConfig(total_kv_blocks=7438))
    assert r.total_kv_blocks == 7438 and r.tp == 2


def test_roofline_fills_hardware_and_tp_from_defaults(caplog, step):
    r = resolve_latency(LatencyConfig(model="Meta-Llama/Llama-3.1-8B-Instruct", **ROOF), EngineConfig())
    assert (r.kind, r.hardware, r.tp) == ("roofline-v1", "H100", 2)
    assert r.model.step_time(step([], [1024])) == 4246
    w = warnings(caplog)
    assert len(w) == 2 and w[0].startswith("--hardware not given: using H100") and w[1].startswith("--tp not given")


def test_roofline_fills_only_what_is_unset(caplog):
    r = resolve_latency(LatencyConfig(model=LLAMA, hardware="A100-80", **ROOF), EngineConfig())
    assert (r.hardware, r.tp) == ("A100-80", 2)
    assert len(warnings(caplog)) == 1


def test_roofline_unset_without_defaults_entry_is_an_error():
    with pytest.raises(InputError, match="^--hardware is required in roofline mode"):
        resolve_latency(LatencyConfig(model="nobody/knows", tp=1, **ROOF), EngineConfig())
    with pytest.raises(InputError, match="^--tp must be an integer >= 1 in roofline mode"):
        resolve_latency(LatencyConfig(model="nobody/knows", hardware="H100", **ROOF), EngineConfig())


def test_roofline_alpha_applies_beta_ignored_with_warning(caplog):
    cfg = LatencyConfig(model="x", hardware="H100", tp=1, alpha_coeffs=(100, 2, 30), beta_coeffs=(1, 2, 3), **ROOF)
    r = resolve_latency(cfg, EngineConfig())
    assert r.kind == "roofline-v1"
    assert r.model.queueing_time(10) == 120 and r.model.output_token_time() == 30
    assert any("--beta-coeffs" in w and "ignored" in w for w in warnings(caplog))


# ---------------------------------------------------------------- roofline v2 (the seed's auto-selection)
def infos(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "blis_sim" and r.levelno == logging.INFO]


def test_bench_data_selects_v2_with_tables(tmp_path, caplog, step):
    caplog.set_level(logging.INFO, logger="blis_sim")
    root = write_tables(tmp_path / "bench")
    r = resolve_latency(LatencyConfig(model="x", hardware="H100", tp=1, bench_data_path=root, **ROOF), EngineConfig())
    assert r.kind == "roofline-v2" and r.model.name == "roofline-v2"
    d = r.model.describe()
    assert d["kernels"] == "tables" and d["gpu_folder"] == "h100" and d["gemm_dtype"] == "bf16"
    assert r.model.step_time(step([], [1024])) > 0
    assert any(m.startswith("latency model: roofline-v2 with the kernel tables of") for m in infos(caplog))


def test_bench_data_that_cannot_be_loaded_is_an_error_not_v1(tmp_path):
    root = write_tables(tmp_path / "bench", gpu="a100")
    cfg = LatencyConfig(model="x", hardware="H100", tp=1, bench_data_path=root, **ROOF)
    no_tables = r"^--bench-data-path .*: no tables for GPU 'H100' in gemm/ \(GPU folders: a100\)$"
    with pytest.raises(InputError, match=no_tables):
        resolve_latency(cfg, EngineConfig())
    with pytest.raises(InputError, match="no such folder"):
        resolve_latency(cfg.model_copy(update={"bench_data_path": tmp_path / "none"}), EngineConfig())


def test_roofline_v2_without_bench_data_uses_the_fitted_model(caplog, step):
    caplog.set_level(logging.INFO, logger="blis_sim")
    cfg = LatencyConfig(model="x", hardware="H100", tp=1, latency_model="roofline-v2", **ROOF)
    r = resolve_latency(cfg, EngineConfig())
    assert r.kind == "roofline-v2" and r.model.describe()["kernels"] == "fitted"
    assert r.model.describe()["efficiency_model"] == "efficiency_h100.json"
    assert any("shipped fitted efficiency model efficiency_h100.json" in m for m in infos(caplog))
    a100 = resolve_latency(cfg.model_copy(update={"hardware": "A100-80"}), EngineConfig())  # efficiencyModel
    assert a100.model.describe()["efficiency_model"] == "efficiency_a100-80gb.json"


def test_auto_without_bench_data_is_v1_and_logs_it(caplog):
    caplog.set_level(logging.INFO, logger="blis_sim")
    r = resolve_latency(LatencyConfig(model="x", hardware="H100", tp=1, **ROOF), EngineConfig())
    assert r.kind == "roofline-v1"
    assert any(m.startswith("latency model: roofline-v1") for m in infos(caplog))


def test_explicit_latency_model_conflicts(tmp_path):
    bad = {
        "--latency-model blackbox cannot be combined": dict(latency_model="blackbox", **ROOF),
        "--latency-model roofline-v1 needs --model-config-folder and --hardware-config":
            dict(latency_model="roofline-v1"),
        "--latency-model roofline-v2 needs --model-config-folder and --hardware-config":
            dict(latency_model="roofline-v2"),
        "--bench-data-path is read only by roofline v2": dict(latency_model="roofline-v1", bench_data_path=tmp_path,
                                                              **ROOF),
        r"--bench-data-path \(roofline v2\) needs --model-config-folder": dict(bench_data_path=tmp_path),
    }
    for message, fields in bad.items():
        with pytest.raises(InputError, match=f"^{message}"):
            resolve_latency(LatencyConfig(model="x", hardware="H100", tp=1, **fields), EngineConfig())


def test_explicit_blackbox_is_the_auto_blackbox(caplog):
    caplog.set_level(logging.INFO, logger="blis_sim")
    r = resolve_latency(LatencyConfig(model=LLAMA, latency_model="blackbox"), EngineConfig())
    assert r.kind == "blackbox" and r.total_kv_blocks == 132139
    assert any(m.startswith("latency model: blackbox with the defaults-file coefficients") for m in infos(caplog))


def test_roofline_unknown_gpu_and_bad_calibration(tmp_path):
    with pytest.raises(InputError, match=r"^--hardware 'TPU' is not in --hardware-config .* \(available: A100-40GB, "):
        resolve_latency(LatencyConfig(model="x", hardware="TPU", tp=1, **ROOF), EngineConfig())
    bad = tmp_path / "hw.json"
    bad.write_text('{"H100": {"TFlopsPeak": 989.5, "BwPeakTBs": 3.35}}')
    cfg = LatencyConfig(model="x", hardware="H100", tp=1, model_config_folder=ROOF["model_config_folder"],
                        hardware_config=bad)
    with pytest.raises(InputError, match="^hardware config H100: BwEffConstant must be a positive number, got 0$"):
        resolve_latency(cfg, EngineConfig())


def test_roofline_missing_model_config(tmp_path):
    cfg = LatencyConfig(model="x", hardware="H100", tp=1, model_config_folder=tmp_path,
                        hardware_config=ROOF["hardware_config"])
    with pytest.raises(InputError, match="config.json not found"):
        resolve_latency(cfg, EngineConfig())


# ---------------------------------------------------------------- explicit blackbox
def test_explicit_blackbox(step):
    cfg = LatencyConfig(model="anything at all", alpha_coeffs=(1000, 0, 100), beta_coeffs=(5000, 10, 1))
    r = resolve_latency(cfg, EngineConfig(total_kv_blocks=50))
    assert (r.kind, r.total_kv_blocks) == ("blackbox", 50)
    assert r.model.step_time(step([(0, 100)], [])) == 6000
    assert r.model.queueing_time(7) == 1000 and r.model.output_token_time() == 100


def test_explicit_blackbox_beta_only():
    r = resolve_latency(LatencyConfig(model="x", beta_coeffs=(1, 0, 0)), EngineConfig())
    assert r.kind == "blackbox" and r.total_kv_blocks == 1_000_000


def test_alpha_without_beta_is_an_error():
    with pytest.raises(InputError, match="^--beta-coeffs must contain at least one non-zero value"):
        resolve_latency(LatencyConfig(model="x", alpha_coeffs=(1, 0, 0)), EngineConfig())


# ---------------------------------------------------------------- defaults lookup
def test_defaults_lookup_fills_everything(caplog, step):
    r = resolve_latency(LatencyConfig(model="Meta-Llama/Llama-3.1-8B-Instruct"), EngineConfig())
    assert (r.kind, r.hardware, r.tp, r.vllm_version) == ("blackbox", "H100", 2, "vllm/vllm-openai:v0.8.4")
    assert r.total_kv_blocks == 132139
    assert r.model.step_time(step([(0, 512)], [])) == 15957
    assert len(warnings(caplog)) == 3


def test_defaults_lookup_explicit_settings(caplog):
    r = resolve_latency(LatencyConfig(model=LLAMA, hardware="A100-80", tp=4, vllm_version="v0.8.4"), EngineConfig())
    assert (r.hardware, r.tp, r.total_kv_blocks) == ("A100-80", 4, 559190)
    assert warnings(caplog) == []


@pytest.mark.parametrize("version", ["vllm/vllm-openai:v0.8.4", "v0.8.4", "0.8.4", " V0.8.4 "])
def test_vllm_version_spellings(version):
    r = resolve_latency(LatencyConfig(model=LLAMA, hardware="H100", tp=1, vllm_version=version), EngineConfig())
    assert r.total_kv_blocks == 29205


def test_explicit_total_kv_blocks_wins_even_at_default_value():
    eng = EngineConfig(total_kv_blocks=1_000_000)  # given explicitly, same value as the default
    r = resolve_latency(LatencyConfig(model=LLAMA, hardware="H100", tp=1), eng)
    assert r.total_kv_blocks == 1_000_000


def test_first_matching_row_wins_packaged():
    # The reference file has two different rows for this key; the first one (β0 ≈ 4766.02) must win.
    r = resolve_latency(LatencyConfig(model="redhatai/phi-4-fp8-dynamic", hardware="H100", tp=1), EngineConfig())
    assert r.model.beta[0] == pytest.approx(4766.019115846135)


def _defaults(tmp_path: Path) -> Path:
    path = tmp_path / "d.yaml"
    path.write_text(textwrap.dedent("""\
        defaults:
          org/m: {GPU: H100, tensor_parallelism: 1, vllm_version: "vllm/vllm-openai:v0.8.4"}
        models:
          - {id: org/m, GPU: H100, tensor_parallelism: 1, vllm_version: "vllm/vllm-openai:v0.8.4",
             alpha_coeffs: [1, 2, 3], beta_coeffs: [10, 1, 1], total_kv_blocks: 111}
          - {id: org/m, GPU: H100, tensor_parallelism: 1, vllm_version: "vllm/vllm-openai:v0.8.4",
             alpha_coeffs: [9, 9, 9], beta_coeffs: [99, 9, 9], total_kv_blocks: 222}
          - {id: org/m, GPU: A100-80, tensor_parallelism: 2, vllm_version: "vllm/vllm-openai:v0.10.1.1",
             alpha_coeffs: [0, 0, 0], beta_coeffs: [5, 5, 5], total_kv_blocks: 333}
        """))
    return path


def test_first_matching_row_wins_custom_file(tmp_path):
    r = resolve_latency(LatencyConfig(model="ORG/M", defaults_filepath=_defaults(tmp_path)), EngineConfig())
    assert r.total_kv_blocks == 111 and r.model.beta == (10.0, 1.0, 1.0) and r.model.alpha == (1.0, 2.0, 3.0)


def test_no_row_error_lists_combinations(tmp_path):
    cfg = LatencyConfig(model="org/m", tp=4, defaults_filepath=_defaults(tmp_path))
    with pytest.raises(InputError) as e:
        resolve_latency(cfg, EngineConfig())
    msg = str(e.value)
    assert msg.startswith("no coefficients for model org/m on GPU H100, TP 4, vLLM version vllm/vllm-openai:v0.8.4")
    assert "H100 TP1 vllm/vllm-openai:v0.8.4; A100-80 TP2 vllm/vllm-openai:v0.10.1.1" in msg
    assert "--alpha-coeffs/--beta-coeffs" in msg and "--model-config-folder" in msg and "\n" not in msg


def test_no_row_for_unknown_model():
    with pytest.raises(InputError) as e:
        resolve_latency(LatencyConfig(model="nobody/knows"), EngineConfig())
    msg = str(e.value)
    assert "model nobody/knows on GPU (unset), TP (unset), vLLM version (unset)" in msg
    assert "combinations for this model: none" in msg


def test_defaults_file_errors_surface(tmp_path):
    with pytest.raises(InputError, match="--defaults-filepath .*: no such file"):
        resolve_latency(LatencyConfig(model="x", defaults_filepath=tmp_path / "nope.yaml"), EngineConfig())

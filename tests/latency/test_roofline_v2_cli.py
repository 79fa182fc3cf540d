"""The seed quick-start's Step 3 (roofline v2 with bench data) and the shipped fitted model, end to end through the
console script, run from the repository root as the seed does."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from mfu_fixtures import BENCH_DATA, REPO

STEP3 = [
    "run", "--model", "meta-llama/llama-3.1-8b-instruct",
    "--model-config-folder", "model_configs/llama-3.1-8b-instruct",
    "--hardware-config", "hardware_config.json",
]
TAIL = ["--hardware", "H100", "--tp", "1", "--workload", "chatbot", "--rate", "10"]


def _run(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("simulation_worker")
    if exe is None:
        pytest.skip("console script simulation_worker is not installed (pip install -e .)")
    return subprocess.run([exe, *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def _cluster(stdout: str) -> dict:
    i = stdout.rindex("=== Simulation Metrics ===")
    return json.JSONDecoder().raw_decode(stdout[stdout.index("{", i):])[0]


def _check(p: subprocess.CompletedProcess, results) -> dict:
    assert p.returncode == 0, p.stderr
    m = _cluster(p.stdout)
    assert m["completed_requests"] == m["injected_requests"] == 100
    assert "latency_model" not in m  # the stdout block keeps the reference layout
    assert 5 < m["itl_mean_ms"] < 20 and m["ttft_mean_ms"] > 5
    written = json.loads(results.read_text())
    assert list(written)[-2:] == ["latency_model", "requests"]
    return written["latency_model"]


def test_step3_with_the_measured_tables(bench_data, tmp_path):
    results = tmp_path / "r.json"
    p = _run(*STEP3, "--bench-data-path", str(BENCH_DATA), *TAIL, "--log", "info", "--results-path", str(results))
    model = _check(p, results)
    assert model["kind"] == "roofline-v2" and model["kernels"] == "tables" and model["gpu_folder"] == "h100"
    assert "blis: info: latency model: roofline-v2 with the kernel tables of" in p.stderr
    assert "Decode MFU" not in p.stderr and "MFU=0" not in p.stderr


def test_step3_command_with_the_fitted_model(tmp_path):
    results = tmp_path / "r.json"
    p = _run(*STEP3, "--latency-model", "roofline-v2", *TAIL, "--log", "info", "--results-path", str(results))
    model = _check(p, results)
    assert model["kind"] == "roofline-v2" and model["kernels"] == "fitted"
    assert model["efficiency_model"] == "efficiency_h100.json"
    assert "blis: info: latency model: roofline-v2 with the shipped fitted efficiency model" in p.stderr
    assert "warning" not in p.stderr


def test_seed_step2_still_selects_v1(tmp_path):
    results = tmp_path / "r.json"
    p = _run(*STEP3, *TAIL, "--results-path", str(results))
    assert _check(p, results)["kind"] == "roofline-v1"
    assert p.stderr == ""

"""``blis calibrate``: the split, recovering known constants from data the simulator generated, and the output file
as a hardware config for ``blis run``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_sim import cli, logging_setup
from blis_sim.errors import InputError
from blis_sim.evaluate.calibrate import CalibrateOptions, _Scorer, calibrate, split_experiments
from blis_sim.evaluate.discover import load_ground_truth
from blis_sim.evaluate.resolve import packaged_model_configs
from blis_sim.evaluate.runner import Options

MODEL = "meta-llama/Llama-2-7b-hf"
TRUTH = {"mfuPrefill": 0.45, "BwEffConstant": 0.5}  # shipped H100: 0.65 and 0.72
RPP = 30  # requests per point, generation and fit alike (same seed, so the truth scores 0)


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logging_setup.reset()


def _experiment(name: str, prompt: int, output: int, rates: list[float]) -> dict:
    return {
        "experiment_name": name, "model": MODEL,
        "vllm_config": {"tensor_parallelism": 1, "max_model_len": 4096, "max_num_batched_tokens": 2048,
                        "max_num_seqs": 64, "app": "synthetic"},
        "workload_config": {"max_requests": RPP, "data": {"prompt_tokens": prompt, "output_tokens": output}},
        "total_kv_blocks": 5000,
        "qps_sweeps": [{"qps": r, "ttft_mean_ms": 1.0, "itl_mean_ms": 1.0, "e2e_mean_ms": 1.0} for r in rates],
    }


@pytest.fixture(scope="module")
def synthetic_gt(tmp_path_factory) -> Path:
    """Three experiments whose 'measurements' are the simulator's own predictions under ``TRUTH``."""
    path = tmp_path_factory.mktemp("gt") / "combined.json"
    raw = {"experiments": [_experiment("chat", 512, 64, [2.0, 8.0]), _experiment("code", 2048, 64, [1.0, 4.0]),
                           _experiment("short", 1024, 32, [4.0, 16.0])]}
    path.write_text(json.dumps(raw))
    gt = load_ground_truth(path)
    scorer = _Scorer(gt, [e.name for e in gt.experiments],
                     Options(latency_model="roofline-v1", jobs=1, requests_per_point=RPP))
    points, failed = scorer.points(TRUTH, None)
    assert not failed and len(points) == 6
    by_exp = {e["experiment_name"]: e for e in raw["experiments"]}
    counters: dict[str, int] = {}
    for p in points:
        i = counters.setdefault(p.experiment, 0)
        counters[p.experiment] += 1
        by_exp[p.experiment]["qps_sweeps"][i].update({m: p.predicted[m] for m in
                                                       ("ttft_mean_ms", "itl_mean_ms", "e2e_mean_ms")})
    path.write_text(json.dumps(raw))
    return path


def test_split_is_deterministic_and_sorted():
    names = [f"exp{i:02d}" for i in range(10)]
    train, test = split_experiments(list(reversed(names)), 0.3, seed=7)
    assert (train, test) == split_experiments(names, 0.3, seed=7)
    assert len(test) == 3 and train == sorted(train) and test == sorted(test)
    assert sorted(train + test) == names
    assert split_experiments(names, 0.3, seed=8) != (train, test)
    assert split_experiments(names, None)[1].__len__() == 3  # default 0.3
    assert split_experiments(["a", "b"], 0.1)[1] == ["a"] or split_experiments(["a", "b"], 0.1)[1] == ["b"]
    assert split_experiments(names, 0.0) == (names, [])
    assert split_experiments(names, holdout=("exp03", "exp01")) == ([n for n in names if n not in ("exp01", "exp03")],
                                                                    ["exp01", "exp03"])


@pytest.mark.parametrize("kwargs, message", [
    ({"fraction": 1.0}, "--holdout must be a fraction in [0, 1)"),
    ({"fraction": -0.1}, "--holdout must be a fraction in [0, 1)"),
    ({"holdout": ("nope",)}, "--holdout-experiments: no experiment named nope"),
    ({"holdout": ("a", "b")}, "empty training set"),
    ({"holdout": ("a",), "fraction": 0.5}, "exclusive"),
])
def test_split_errors(kwargs, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace(")", r"\)")):
        split_experiments(["a", "b"], **kwargs)


def test_calibration_recovers_known_constants(synthetic_gt):
    options = CalibrateOptions(fit=("mfuPrefill", "BwEffConstant"), holdout_experiments=("short",), jobs=1,
                               requests_per_point=RPP, max_evals=60)
    result = calibrate(synthetic_gt, options)
    cal = result.result["calibration"]
    fitted = cal["fitted"]
    assert fitted["mfuPrefill"] == pytest.approx(TRUTH["mfuPrefill"], rel=0.05)
    assert fitted["BwEffConstant"] == pytest.approx(TRUTH["BwEffConstant"], rel=0.05)
    assert cal["split"] == {"train": ["chat", "code"], "holdout": ["short"], "holdout_fraction": None,
                            "holdout_experiments": ["short"], "seed": 42}
    for label in ("train", "holdout"):
        assert result.table[label]["before"]["objective"] > 10.0
        assert result.table[label]["after"]["objective"] < 2.0
    entry = result.result["H100"]
    assert entry["BwEffConstant"] == fitted["BwEffConstant"] and entry["memoryGB"] == 80  # a full entry
    assert 0 < cal["optimizer"]["evaluations"] <= 60


def test_cli_writes_a_hardware_config_blis_run_reads(synthetic_gt, tmp_path, capsys):
    out = tmp_path / "h100-fitted.json"
    rc = cli.run_cli(["calibrate", "--ground-truth", str(synthetic_gt), "--hardware", "H100", "--latency-model",
                      "roofline-v1", "--holdout", "0.34", "--fit", "TOverheadMicros", "--jobs", "1",
                      "--requests-per-point", str(RPP), "--max-evals", "8", "--out", str(out), "--quiet"],
                     prog_name="blis")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "train before" in captured.out and "holdout after" in captured.out and "cost:" in captured.out
    data = json.loads(out.read_text())
    assert data["calibration"]["split"]["holdout_fraction"] == 0.34 and len(data["calibration"]["split"]["holdout"]) == 1
    rc = cli.run_cli(["run", "--model", MODEL, "--model-config-folder", str(packaged_model_configs() / "llama-2-7b-hf"),
                      "--hardware-config", str(out), "--hardware", "H100", "--tp", "1", "--workload", "chatbot",
                      "--rate", "5", "--num-requests", "5"], prog_name="blis")
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "Simulation Metrics" in captured.out


@pytest.mark.parametrize("args, message", [
    (["--latency-model", "blackbox"], "calibration supports roofline-v1 only"),
    (["--holdout", "1.5"], "--holdout must be a fraction in [0, 1)"),
    (["--holdout-experiments", "chat,code,short"], "empty training set"),
    (["--fit", "memoryGB"], "--fit: memoryGB cannot be fitted"),
])
def test_cli_errors_are_one_line(synthetic_gt, tmp_path, capsys, args, message):
    rc = cli.run_cli(["calibrate", "--ground-truth", str(synthetic_gt), *args, "--out", str(tmp_path / "o.json"),
                      "--quiet", "--jobs", "1"], prog_name="blis")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("blis: error: ") and message in err and err.count("\n") == 1

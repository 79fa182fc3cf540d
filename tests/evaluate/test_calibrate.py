"""``blis calibrate``: the split, recovering known constants from data the simulator generated, and the output file
as a hardware config for ``blis run``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from blis_sim import cli, logging_setup
from blis_sim.errors import InputError
from blis_sim.evaluate.calibrate import CalibrateOptions, _Scorer, calibrate, split_experiments
from blis_sim.evaluate.discover import load_ground_truth
from blis_sim.evaluate.resolve import packaged_model_configs
from blis_sim.evaluate.runner import Options, hardware_config_path

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


def _synthetic_ground_truth(path: Path, options: Options, truth: dict) -> Path:
    """Three experiments whose 'measurements' are the simulator's own predictions under ``truth``."""
    raw = {"experiments": [_experiment("chat", 512, 64, [2.0, 8.0]), _experiment("code", 2048, 64, [1.0, 4.0]),
                           _experiment("short", 1024, 32, [4.0, 16.0])]}
    path.write_text(json.dumps(raw))
    gt = load_ground_truth(path)
    points, failed = _Scorer(gt, [e.name for e in gt.experiments], options).points(truth, None)
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


@pytest.fixture(scope="module")
def synthetic_gt(tmp_path_factory) -> Path:
    """Roofline v1 'measurements' under ``TRUTH``."""
    return _synthetic_ground_truth(tmp_path_factory.mktemp("gt") / "combined.json",
                                   Options(latency_model="roofline-v1", jobs=1, requests_per_point=RPP), TRUTH)


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
    options = CalibrateOptions(latency_model="roofline-v1", fit=("mfuPrefill", "BwEffConstant"),
                               holdout_experiments=("short",), jobs=1,
                               requests_per_point=RPP, max_evals=60)
    result = calibrate(synthetic_gt, options)
    cal = result.result["calibration"]
    fitted = cal["fitted"]
    assert fitted["mfuPrefill"] == pytest.approx(TRUTH["mfuPrefill"], rel=0.05)
    assert fitted["BwEffConstant"] == pytest.approx(TRUTH["BwEffConstant"], rel=0.05)
    assert cal["split"] == {"train": ["chat", "code"], "holdout": ["short"], "holdout_fraction": None,
                            "holdout_experiments": ["short"], "seed": 42,
                            "strata": {n: "llama-2-7b-hf/loaded" for n in ("chat", "code", "short")}}
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
    (["--latency-model", "blackbox"], "calibration supports roofline-v1, roofline-v2 only"),
    (["--latency-model", "roofline-v2", "--fit", "mfuDecode"], "--fit: mfuDecode cannot be fitted for roofline-v2"),
    (["--set", "moeExperts=2"], "--set moeExperts=2: not a settable key or out of its range"),
    (["--set", "moeExperts"], "--set moeExperts: expected KEY=NUMBER"),
    (["--hardware-config", "/nonexistent/hw.json"], "--hardware-config /nonexistent/hw.json: no such file"),
    (["--holdout", "1.5"], "--holdout must be a fraction in [0, 1)"),
    (["--holdout-experiments", "chat,code,short"], "empty training set"),
    (["--fit", "memoryGB"], "--fit: memoryGB cannot be fitted"),
    (["--fit", "mfuPrefill"], "--fit: mfuPrefill cannot be fitted for roofline-v2"),  # v2 is the default
])
def test_cli_errors_are_one_line(synthetic_gt, tmp_path, capsys, args, message):
    rc = cli.run_cli(["calibrate", "--ground-truth", str(synthetic_gt), *args, "--out", str(tmp_path / "o.json"),
                      "--quiet", "--jobs", "1"], prog_name="blis")
    err = capsys.readouterr().err
    assert rc == 2
    assert err.startswith("blis: error: ") and message in err and err.count("\n") == 1


def test_stratified_split_puts_each_group_on_both_sides():
    strata = {**{f"a-light-{i}": "a/light" for i in range(4)}, **{f"a-loaded-{i}": "a/loaded" for i in range(3)},
              **{f"b-loaded-{i}": "b/loaded" for i in range(2)}, "c-light-0": "c/light", "overloaded": ""}
    names = sorted(strata)
    train, test = split_experiments(names, 0.3, seed=42, strata=strata)
    assert (train, test) == split_experiments(list(reversed(names)), 0.3, seed=42, strata=strata)
    assert sorted(train + test) == names
    for group in ("a/light", "a/loaded", "b/loaded"):
        members = {n for n, g in strata.items() if g == group}
        assert members & set(test) and members & set(train), group
    assert len([n for n in test if strata[n] == "a/light"]) == 1  # round(0.3 x 4)
    assert "c-light-0" in train and "overloaded" in train  # a singleton group and an all-excluded experiment


def test_stratum_of_real_experiment_kinds(synthetic_gt):
    from blis_sim.evaluate.calibrate import stratum

    gt = load_ground_truth(synthetic_gt)
    assert {stratum(e) for e in gt.experiments} == {"llama-2-7b-hf/loaded"}


def test_objective_is_a_capped_log_ratio():
    from blis_sim.evaluate.calibrate import objective, point_error
    from blis_sim.evaluate.scoring import ScoredPoint

    def pt(meas, pred, excluded=""):
        return ScoredPoint("e", "p", "m", "H100", "w", measured=meas, predicted=pred, excluded=excluded)

    exact = pt({"ttft_mean_ms": 10.0, "itl_mean_ms": 5.0}, {"ttft_mean_ms": 10.0, "itl_mean_ms": 5.0})
    assert point_error(exact) == 0.0
    half = pt({"ttft_mean_ms": 10.0}, {"ttft_mean_ms": 5.0})
    double = pt({"ttft_mean_ms": 10.0}, {"ttft_mean_ms": 20.0})
    assert point_error(half) == pytest.approx(math.log(2)) == point_error(double)  # symmetric
    saturated = pt({"ttft_mean_ms": 10.0, "e2e_p90_ms": 100.0}, {"ttft_mean_ms": 10_000.0, "e2e_p90_ms": 100.0})
    assert point_error(saturated) == pytest.approx(math.log(3) / 2)  # capped at a factor of 3, p90 counted
    assert point_error(pt({"throughput_tokens_per_s": 5.0}, {"throughput_tokens_per_s": 1.0})) is None
    ignored = pt({"ttft_mean_ms": 10.0}, {"ttft_mean_ms": 1e6}, excluded="overloaded")
    assert objective([exact, half, ignored]) == pytest.approx(100 * math.log(2) / 2)
    assert objective([ignored]) == math.inf


TRUTH_V2 = {"TOverheadMicros": 400.0, "requestOverheadMicros": 3000.0}


@pytest.fixture(scope="module")
def synthetic_gt_v2(tmp_path_factory) -> Path:
    """Experiments measured by roofline v2 itself with known overheads (the hand-set entry has 50 and 0)."""
    options = Options(latency_model="roofline-v2", jobs=1, requests_per_point=RPP,
                      hardware_config=hardware_config_path("handset"))
    return _synthetic_ground_truth(tmp_path_factory.mktemp("gt2") / "combined.json", options, TRUTH_V2)


def test_v2_calibration_recovers_known_overheads_and_writes_them_for_v2_only(synthetic_gt_v2, tmp_path):
    options = CalibrateOptions(latency_model="roofline-v2", fit=("TOverheadMicros", "requestOverheadMicros"),
                               holdout_experiments=("short",), jobs=1, requests_per_point=RPP, max_evals=40,
                               hardware_config=hardware_config_path("handset"))
    result = calibrate(synthetic_gt_v2, options)
    cal = result.result["calibration"]
    assert cal["initial"] == {"TOverheadMicros": 50.0, "requestOverheadMicros": 0.0}
    assert cal["start"]["requestOverheadMicros"] == 5000.0  # an off key starts from its physical first guess
    for key, value in TRUTH_V2.items():
        assert cal["fitted"][key] == pytest.approx(value, rel=0.05)
    assert result.table["holdout"]["after"]["objective"] < 1.0 < result.table["holdout"]["before"]["objective"]
    entry = result.result["H100"]
    assert entry["TOverheadMicros"] == 50.0  # v1's value is untouched ...
    assert entry["rooflineV2"] == cal["fitted"]  # ... v2 reads its own
    out = tmp_path / "fitted.json"
    out.write_text(json.dumps(result.result))
    from blis_sim.latency.hardware import load_hardware

    hw = load_hardware(out, "H100")
    assert hw.for_v2().t_overhead_micros == cal["fitted"]["TOverheadMicros"] and hw.t_overhead_micros == 50.0


SHARED_GT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ground_truth"


def test_default_split_of_the_shared_experiments():
    """The default split (0.3, seed 42) of the shared measurements: every model with two or more experiments of a
    load kind has that kind on both sides; this is the split of the shipped H100 calibration (README)."""
    if not SHARED_GT.is_dir():
        pytest.skip(f"shared ground truth not available at {SHARED_GT}")
    from blis_sim.evaluate.calibrate import stratum

    gt = load_ground_truth(SHARED_GT)
    strata = {e.name: stratum(e) for e in gt.experiments}
    train, test = split_experiments(list(strata), 0.3, seed=42, strata=strata)
    groups: dict[str, list[str]] = {}
    for name, group in strata.items():
        if group:
            groups.setdefault(group, []).append(name)
    for group, members in groups.items():
        if len(members) >= 2:
            assert set(members) & set(test) and set(members) & set(train), group
    assert {strata[n].split("/")[1] for n in test} == {"light", "loaded"}
    shipped = json.loads((Path(__file__).resolve().parents[2] / "src" / "blis_sim" / "data"
                          / "calibration_h100.json").read_text())
    assert shipped["roofline-v1"]["split"]["holdout"] == test

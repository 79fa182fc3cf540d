"""``blis evaluate`` end to end on the fixtures: tables, JSON report, plots, parallel runs, and bad ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_sim import cli, logging_setup
from blis_sim.evaluate.experiment import METRICS
from blis_sim.evaluate.runner import Options, evaluate

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logging_setup.reset()


def blis(capsys, *args: str) -> tuple[int, str, str]:
    rc = cli.run_cli(["evaluate", *args], prog_name="blis")
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_evaluate_tree_end_to_end(capsys, tmp_path):
    report_path, plots = tmp_path / "report.json", tmp_path / "plots"
    rc, out, err = blis(capsys, "--ground-truth", str(FIXTURES / "tree"), "--jobs", "2", "--requests-per-point", "6",
                        "--output", str(report_path), "--plots", str(plots), "--quiet")
    assert rc == 0, err
    assert "MAPE per experiment" in out and "overall" in out and "ip-poisson-chat" in out
    assert "failed: sync-zero-ttft" in out and "failed: guidellm-report-run [2 concurrent]" in out
    report = json.loads(report_path.read_text())
    for key in ("overall", "by_model", "by_hardware", "by_workload", "experiments", "failed"):
        assert key in report
    for agg in [report["overall"], *report["by_model"].values(), *report["by_hardware"].values(),
                *report["by_workload"].values()]:
        assert set(agg["mape"]) == set(METRICS) and agg["points"] >= 1
    assert report["overall"]["points"] == 8  # 10 points read, 2 excluded (throughput benchmark, overloaded stage)
    assert len(report["excluded"]) == 2 and len(report["failed"]) == 2
    assert set(report["by_model"]) == {"llama-2-7b-hf", "qwen2.5-7b-instruct"}
    exps = {e["name"]: e for e in report["experiments"]}
    assert exps["guidellm-sweep"]["engine_loop_wanted"] == "sync"  # vLLM 0.11.0
    assert exps["ip-poisson-chat"]["engine_loop_wanted"] == "async"  # vLLM 0.15.1
    assert exps["guidellm-sweep"]["kv_blocks"] == 1000  # logged 1001, less the null block
    assert exps["guidellm-report-run"]["kv_blocks_source"].startswith("derived from H100 memory")
    ip = exps["ip-poisson-chat"]
    assert ip["tp"] == 2 and [p["simulated_requests"] for p in ip["point_results"]] == [6, 6]
    point = ip["point_results"][0]
    for m in ("ttft_mean_ms", "e2e_p90_ms", "itl_mean_ms", "throughput_tokens_per_s"):
        assert point["predicted"][m] > 0
        assert point["error_pct"][m] == pytest.approx(
            100 * (point["predicted"][m] - point["measured"][m]) / point["measured"][m])
    assert ip["point_results"][1]["excluded"].startswith("overloaded")
    assert sorted(p.name for p in plots.iterdir()) == sorted(
        [f"{n}.png" for n in exps] + ["parity.png"])


def test_parallel_and_serial_runs_agree():
    a = evaluate(FIXTURES / "tree" / "combined.json", Options(jobs=1, requests_per_point=8))
    b = evaluate(FIXTURES / "tree" / "combined.json", Options(jobs=2, requests_per_point=8))
    assert [p.predicted for p in a.points] == [p.predicted for p in b.points]
    assert a.report["overall"] == b.report["overall"]


def test_loop_override_and_blackbox_failures():
    ev = evaluate(FIXTURES / "tree" / "guidellm-sweep", Options(jobs=1, requests_per_point=4, async_scheduling=True))
    assert ev.experiments[0]["engine_loop"] == "async"
    with pytest.raises(ValueError, match="nothing could be evaluated: no blackbox coefficients for "
                                         "meta-llama/Llama-2-7b-hf on H100 TP 1"):
        evaluate(FIXTURES / "tree" / "guidellm-sweep", Options(jobs=1, latency_model="blackbox"))


@pytest.mark.parametrize("name, message", [
    ("missing-model.json", "missing-model.json: experiments[0].model: missing"),
    ("truncated.json", "truncated.json: not valid JSON (line 1 column 29"),
    ("unknown-model.json", "no model config for acme/Mystery-13B: no mystery-13b/config.json"),
])
def test_bad_ground_truth_is_one_error_line(capsys, name, message):
    rc, out, err = blis(capsys, "--ground-truth", str(FIXTURES / "bad" / name), "--jobs", "1")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("blis: error: ") and message in err


def test_bad_options(capsys, tmp_path):
    rc, _, err = blis(capsys, "--ground-truth", str(FIXTURES / "tree"), "--model-configs", str(tmp_path / "none"))
    assert rc == 2 and "--model-configs" in err and "no such folder" in err
    rc, _, err = blis(capsys, "--ground-truth", str(FIXTURES / "tree"), "--jobs", "0")
    assert rc == 2 and "--jobs" in err
    rc, _, err = blis(capsys, "--ground-truth", str(FIXTURES / "tree"), "--output", str(tmp_path / "no" / "r.json"))
    assert rc == 2 and "--output" in err and "does not exist" in err


def test_hardware_config_option(capsys, tmp_path):
    """--hardware-config FILE prices with that file; `handset` is the packaged hand-set reference constants; the
    report names it; a missing or broken file is one error line."""
    from blis_sim.evaluate.runner import hardware_config_path

    handset = hardware_config_path("handset")
    assert handset.name == "hardware_config_handset.json" and handset.is_file()
    base = evaluate(FIXTURES / "tree" / "combined.json", Options(jobs=1, requests_per_point=8,
                                                                  hardware_config=handset))
    assert base.report["settings"]["hardware_config"] == str(handset)
    slow = json.loads(handset.read_text())
    slow["H100"]["requestOverheadMicros"] = 50_000.0  # every request 50 ms later: TTFT and E2E up, ITL unchanged
    path = tmp_path / "hw.json"
    path.write_text(json.dumps(slow))
    ev = evaluate(FIXTURES / "tree" / "combined.json", Options(jobs=1, requests_per_point=8, hardware_config=path))
    for a, b in zip(base.points, ev.points):
        assert b.predicted["ttft_mean_ms"] == pytest.approx(a.predicted["ttft_mean_ms"] + 50.0, abs=0.01)
        assert b.predicted["itl_mean_ms"] == pytest.approx(a.predicted["itl_mean_ms"])
    rc, out, err = blis(capsys, "--ground-truth", str(FIXTURES / "tree" / "combined.json"), "--hardware-config",
                        str(tmp_path / "nope.json"), "--jobs", "1")
    assert rc == 2 and out == "" and err.count("\n") == 1
    assert err.startswith("blis: error: --hardware-config") and "no such file" in err
    path.write_text("{not json")
    rc, _, err = blis(capsys, "--ground-truth", str(FIXTURES / "tree" / "combined.json"), "--hardware-config",
                      str(path), "--jobs", "1")
    assert rc == 2 and err.count("\n") == 1 and "not valid JSON" in err


def test_sequential_points_can_simulate_fewer_requests():
    from blis_sim.evaluate.discover import load_ground_truth
    from blis_sim.evaluate.experiment import SEQUENTIAL
    from blis_sim.evaluate.runner import plan_experiment

    gt = load_ground_truth(FIXTURES / "tree" / "sync-means.csv")
    exp = gt.experiments[0]
    assert all(p.load.pattern == SEQUENTIAL for p in exp.points)
    _, plans = plan_experiment(exp, Options(requests_per_point=100, sequential_requests_per_point=3))
    assert [n for plan in plans for _, n in plan.loads] == [min(3, p.load.num_requests) for p in exp.points]
    _, plans = plan_experiment(exp, Options(requests_per_point=100))
    assert [n for plan in plans for _, n in plan.loads] == [min(100, p.load.num_requests) for p in exp.points]


def test_error_analysis_script_prints_signed_errors(tmp_path, capsys):
    import importlib.util

    report = tmp_path / "r.json"
    rc, _, err = blis(capsys, "--ground-truth", str(FIXTURES / "tree" / "combined.json"), "--jobs", "1",
                      "--requests-per-point", "6", "--output", str(report), "--quiet")
    assert rc == 0, err
    script = Path(__file__).resolve().parents[2] / "scripts" / "error_analysis.py"
    spec = importlib.util.spec_from_file_location("error_analysis", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main([str(report)]) == 0
    out = capsys.readouterr().out
    data = json.loads(report.read_text())
    first = data["experiments"][0]
    assert f"== {first['name']}" in out
    signed = first["point_results"][0]["error_pct"]["ttft_mean_ms"]
    assert f"{signed:+8.1f}" in out


@pytest.mark.parametrize("command", ["evaluate", "calibrate"])
@pytest.mark.parametrize("value", ["", "  "])
def test_an_empty_ground_truth_path_is_refused(capsys, command, value):
    """An empty --ground-truth would read the current folder."""
    rc = cli.run_cli([command, "--ground-truth", value], prog_name="blis")
    out = capsys.readouterr()
    assert rc == 2 and out.out == ""
    assert out.err == "blis: error: --ground-truth: an empty path (give a ground-truth file or a folder of them)\n"


def test_intervals_only_with_the_packaged_constants():
    """Points get the packaged 80% intervals of their latency model (v2 by default) around each prediction; with
    other constants (their errors are not the calibrated ones) they get none."""
    from blis_sim.report.intervals import packaged_intervals

    ev = evaluate(FIXTURES / "tree" / "combined.json", Options(jobs=1, requests_per_point=8))
    ivs = packaged_intervals()["roofline-v2"]
    assert {e["latency_model"] for e in ev.experiments} == {"roofline-v2"}
    for p in ev.points:
        for m, (lo, hi) in p.intervals.items():
            expected = ivs.metrics[m].around(p.predicted[m])
            assert (lo, hi) == pytest.approx(expected)
    assert "interval_coverage" in ev.report["overall"] and "holdout" in ev.report
    from blis_sim.evaluate.runner import hardware_config_path

    handset = evaluate(FIXTURES / "tree" / "combined.json", Options(jobs=1, requests_per_point=8,
                                                                     hardware_config=hardware_config_path("handset")))
    assert all(p.intervals is None for p in handset.points)

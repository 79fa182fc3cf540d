"""Sweeps on real (small) runs: rows, outputs, the three backends giving identical rows, a failing point, Ctrl-C."""

from __future__ import annotations

import csv
import json

import pytest
from capacity_helpers import BASE

from blis_sim import cli
from blis_sim.capacity import backends, runner
from blis_sim.capacity.sweep import make_sweep, parquet_available, run_sweep, write_outputs

SMALL = {**BASE, "num_requests": 60}


def small_sweep(**axes):
    return make_sweep({"base": SMALL, "axes": axes or {"tp": [1, 2], "rate": [5, 40]}, "slo": "ttft_p90_ms<=200"})


def test_rows_hold_axis_values_and_every_summary_metric():
    result = run_sweep(small_sweep(), backend="serial")
    assert [r["point"] for r in result.rows] == [0, 1, 2, 3]
    row = result.rows[3]
    assert (row["tp"], row["rate"], row["configuration"], row["status"]) == (2, 40, "tp=2", "ok")
    for name in ("completed_requests", "ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_p99_ms", "tokens_per_sec",
                 "scheduling_delay_p99_ms", "preemption_count", "gpus", "steady_output_tokens_per_sec",
                 "output_tokens_per_sec_per_gpu", "price_usd_per_gpu_hour", "cost_usd_per_million_output_tokens",
                 "served_ratio", "saturated", "meets_slo"):
        assert name in row, name
    assert row["completed_requests"] == 60 and row["gpus"] == 2 and row["resolved_tp"] == 2
    assert row["price_usd_per_gpu_hour"] == pytest.approx(3.9492)
    expected = 3.9492 / (row["output_tokens_per_sec_per_gpu"] * 3600) * 1e6
    assert row["cost_usd_per_million_output_tokens"] == pytest.approx(expected)
    assert not result.failed and not result.interrupted


def test_the_same_as_blis_run():
    from blis_sim import run

    result = run_sweep(make_sweep({"base": SMALL, "axes": {"rate": [7]}}), backend="serial")
    direct = run(result.spec.points[0]).cluster
    assert {k: result.rows[0][k] for k in direct if k != "instance_id"} == {k: v for k, v in direct.items()
                                                                            if k != "instance_id"}


def test_local_backend_gives_identical_rows():
    spec = small_sweep()
    assert run_sweep(spec, backend="local", jobs=2).rows == run_sweep(spec, backend="serial").rows


def test_ray_backend_gives_identical_rows():
    pytest.importorskip("ray", reason="ray is not installed (pip install 'blis-sim[ray]')")
    spec = small_sweep()
    result = run_sweep(spec, backend="ray", jobs=2)
    assert result.backend == "ray" and result.rows == run_sweep(spec, backend="serial").rows


def test_a_failing_point_is_recorded_and_the_sweep_goes_on():
    # TP 3 does not divide llama-3.1-8b's 32 attention heads: that point fails, the others run
    result = run_sweep(small_sweep(tp=[1, 3, 2], rate=[5]), backend="local", jobs=2)
    assert [r["status"] for r in result.rows] == ["ok", "failed", "ok"]
    bad = result.rows[1]
    assert "--tp 3" in bad["error"] and bad["ttft_mean_ms"] is None and bad["meets_slo"] is None


def test_latency_models_are_resolved_once_per_configuration():
    before = {"resolved": runner.LATENCY_CACHE.resolved, "reused": runner.LATENCY_CACHE.reused}
    run_sweep(small_sweep(tp=[1], rate=[5, 10, 20]), backend="serial")
    assert runner.LATENCY_CACHE.resolved - before["resolved"] <= 1
    assert runner.LATENCY_CACHE.reused - before["reused"] >= 2


def test_outputs(tmp_path):
    result = run_sweep(small_sweep(), backend="serial")
    written = write_outputs(result, tmp_path)
    names = {p.name for p in written}
    assert {"results.json", "results.csv", "report.html"} <= names
    rows = json.loads((tmp_path / "results.json").read_text())
    assert isinstance(rows, list) and rows == json.loads(json.dumps(result.rows))
    with open(tmp_path / "results.csv") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 and table[1]["rate"] == "40" and float(table[1]["ttft_p90_ms"]) == rows[1]["ttft_p90_ms"]
    if parquet_available():
        import pyarrow.parquet as pq

        back = pq.read_table(tmp_path / "results.parquet").to_pylist()
        assert [r["ttft_p90_ms"] for r in back] == [r["ttft_p90_ms"] for r in rows]
        assert "results.parquet" in names
    else:
        assert "results.parquet" not in names


@pytest.mark.parametrize("backend", ["serial", "local"])
def test_ctrl_c_keeps_the_finished_rows(backend):
    def progress(done, total, failed):
        if done == 2:
            raise KeyboardInterrupt

    result = run_sweep(small_sweep(rate=[5, 10, 20, 40, 60, 80]), backend=backend, jobs=2, progress=progress)
    assert result.interrupted
    assert 2 <= len(result.rows) < 12
    assert all(r["status"] == "ok" for r in result.rows)


def test_cli_sweep(tmp_path, write_sweep, capsys):
    path = write_sweep(SMALL, {"tp": [1, 2], "rate": [5, 40]}, slo="ttft_p90_ms<=200")
    out = tmp_path / "out"
    rc = cli.run_cli(["sweep", "--config", str(path), "--output", str(out), "--backend", "serial"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.startswith("sweep: 4 points (0 failed) in ")
    assert "wrote " in captured.out and captured.err == ""
    assert len(json.loads((out / "results.json").read_text())) == 4
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")


def test_cli_sweep_interrupted(tmp_path, write_sweep, capsys, monkeypatch):
    path = write_sweep(SMALL, {"rate": [5, 10, 20, 40]})
    calls = {"n": 0}
    real = backends.SerialBackend.next_done

    def next_done(self):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(backends.SerialBackend, "next_done", next_done)
    out = tmp_path / "out"
    rc = cli.run_cli(["sweep", "--config", str(path), "--output", str(out), "--backend", "serial"])
    captured = capsys.readouterr()
    assert rc == 130 and captured.out == ""
    assert captured.err == "blis: interrupted: 2 of 4 points finished; nothing written (--keep-partial keeps them)\n"
    assert not out.exists()  # the folder it created is removed again: no partial output
    calls["n"] = 0
    rc = cli.run_cli(["sweep", "--config", str(path), "--output", str(out), "--backend", "serial", "--keep-partial"])
    captured = capsys.readouterr()
    assert rc == 130 and captured.out == ""
    results = out / "results.json"
    assert captured.err == f'blis: interrupted: 2 of 4 points finished; their rows are in {results} ("complete": false)\n'
    doc = json.loads(results.read_text())
    assert doc["complete"] is False and doc["interrupted_by"] == "SIGINT"
    assert [r["rate"] for r in doc["rows"]] == [5, 10]
    assert [(m["point"], m["rate"]) for m in doc["missing_points"]] == [(2, 20), (3, 40)]
    assert sorted(p.name for p in out.iterdir()) == ["results.json"]  # nothing that could pass for a whole sweep
    from blis_sim.capacity.plot import figures_for

    assert [r["rate"] for r in figures_for(doc)[0]] == [5, 10]  # blis plot reads a partial file


def test_cli_every_point_failing_is_an_error(tmp_path, write_sweep, capsys):
    path = write_sweep({**SMALL, "hardware": "H999"}, {"rate": [5, 10]})
    out = tmp_path / "out"
    rc = cli.run_cli(["sweep", "--config", str(path), "--output", str(out), "--backend", "serial"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith("blis: error: every point failed; the first, all rate 5: --hardware 'H999'")
    assert not (out / "results.json").exists()


def test_ray_address_needs_the_ray_backend(tmp_path, write_sweep, capsys):
    path = write_sweep(SMALL, {"rate": [5]})
    rc = cli.run_cli(["sweep", "--config", str(path), "--output", str(tmp_path / "o"), "--ray-address", "auto"])
    assert rc == 2 and capsys.readouterr().err == "blis: error: --ray-address needs --backend ray\n"

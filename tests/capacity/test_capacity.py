"""Capacity search on real (small) runs: the threshold a sweep brackets is found, saturation is named, backends agree,
and the command prints the ranked table and writes the answer and the report."""

from __future__ import annotations

import json

import pytest
from capacity_helpers import BASE, FOLDER, HW, MODEL

from blis_sim import cli
from blis_sim.capacity import fields as F
from blis_sim.capacity.capacity import CapacityQuestion, parse_vary, run_capacity
from blis_sim.capacity.slo import parse_slos, violations
from blis_sim.capacity.sweep import make_sweep, run_sweep

N = 200  # requests per probe: small, and the same at every rate (probe_seconds tiny)


def question(slo="ttft_p90_ms<=60", vary=(("tp", (1, 2)),), **kw):
    base = F.build({**BASE, "tp": 1})
    return CapacityQuestion(base, parse_slos(slo), vary, tolerance=kw.pop("tolerance", 0.03), start_rate=10,
                            probe_requests=N, probe_seconds=1e-6, **kw)


def test_the_search_lands_where_a_sweep_brackets_the_threshold():
    slos = parse_slos("ttft_p90_ms<=60")
    rates = [20, 40, 60, 80, 100, 120, 140, 160]
    sweep = run_sweep(make_sweep({"base": {**BASE, "tp": 1, "num_requests": N}, "axes": {"rate": rates}}),
                      backend="serial")
    ok = [r["rate"] for r in sweep.rows if not violations(slos, r) and not r["saturated"]]
    bad = [r["rate"] for r in sweep.rows if violations(slos, r) or r["saturated"]]
    assert ok and bad and max(ok) < min(bad), "the sweep itself must show one threshold"
    res = run_capacity(question(vary=()), backend="serial")
    row = res.rows[0]
    assert row["status"] == "ok"
    assert max(ok) <= row["max_rate"] < min(bad)
    lo, hi = row["bracket"]
    assert hi - lo <= 0.03 * hi and lo == row["max_rate"]
    # the probe at the answer met the SLO, the one at hi did not
    probes = {p["rate"]: p for p in res.probes}
    assert probes[lo]["feasible"] and probes[hi]["feasible"] is False
    assert row["at_max_rate"]["ttft_p90_ms"] <= 60


def test_saturation_is_named_when_no_slo_binds():
    res = run_capacity(question(slo="itl_mean_ms<=1000", vary=()), backend="serial")
    row = res.rows[0]
    assert row["limited_by"] == "saturation" and row["reason"].startswith("served ")
    assert row["max_rate"] > 10


def test_rows_cost_and_ranking():
    res = run_capacity(question(), backend="serial")
    by = {r["configuration"]: r for r in res.rows}
    assert set(by) == {"tp=1", "tp=2"}
    for name, gpus in (("tp=1", 1), ("tp=2", 2)):
        r = by[name]
        assert r["gpus"] == gpus and r["status"] == "ok" and r["price_usd_per_gpu_hour"] == pytest.approx(3.9492)
        assert r["requests_per_sec_per_gpu"] == pytest.approx(r["max_rate"] / gpus)
        assert r["cost_usd_per_million_output_tokens"] == pytest.approx(
            3.9492 / (r["output_tokens_per_sec_per_gpu"] * 3600) * 1e6)
    ranks = [r["rank"] for r in res.rows]
    assert ranks == [1, 2]
    assert res.rows[0]["output_tokens_per_sec_per_gpu"] >= res.rows[1]["output_tokens_per_sec_per_gpu"]
    assert res.pareto and all(r["pareto"] == (r["configuration"] in res.pareto) for r in res.rows)


def test_backends_give_identical_answers():
    q = question()
    serial, local = run_capacity(q, backend="serial"), run_capacity(q, backend="local", jobs=2)
    assert serial.rows == local.rows and serial.probes == local.probes


def test_a_failing_configuration_is_recorded():
    res = run_capacity(question(vary=(("tp", (1, 3)),)), backend="serial")
    by = {r["configuration"]: r for r in res.rows}
    assert by["tp=1"]["status"] == "ok" and by["tp=3"]["status"] == "failed"
    assert "--tp 3" in by["tp=3"]["error"] and by["tp=3"]["rank"] is None


@pytest.mark.parametrize(("text", "message"), [
    ("tp=1,2;hardware=H100,A100-80GB", None),
    ("tp", "--vary: 'tp' is not field=value,value"),
    ("tp=", "--vary tp: no values"),
    ("tp=1,1", "--vary tp: a value is given twice"),
    ("tp=1;tp=2", "--vary tp: given twice"),
])
def test_parse_vary(text, message):
    if message is None:
        assert parse_vary(text) == (("tp", ("1", "2")), ("hardware", ("H100", "A100-80GB")))
        assert parse_vary("max-num-running-reqs=64") == (("max_num_running_reqs", ("64",)),)
    else:
        with pytest.raises(ValueError, match=message):
            parse_vary(text)


RUN = ["capacity", "--model", MODEL, "--model-config-folder", str(FOLDER), "--hardware-config", str(HW),
       "--hardware", "H100", "--tp", "1", "--workload", "chatbot", "--num-requests", str(N), "--probe-seconds",
       "0.000001", "--rate", "10", "--tolerance", "0.05", "--backend", "serial"]


def test_cli_capacity(tmp_path, capsys):
    out, report = tmp_path / "answer.json", tmp_path / "report.html"
    rc = cli.run_cli([*RUN, "--slo", "ttft_p90_ms<=60", "--vary", "tp=1,2", "--output", str(out),
                      "--report", str(report)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0] == "=== Capacity: ttft_p90_ms<=60 (tolerance 5%) ==="
    assert lines[1].split()[:4] == ["rank", "configuration", "max", "req/s"]
    assert any(line.startswith("Pareto front (output tokens/s per GPU vs ttft_p90_ms): ") for line in lines)
    assert "serves the most per GPU" in captured.out and captured.out.endswith(f"wrote the report to {report}\n")
    doc = json.loads(out.read_text())
    assert {r["configuration"] for r in doc["configurations"]} == {"tp=1", "tp=2"}
    assert doc["question"]["slo"] == ["ttft_p90_ms<=60"] and doc["question"]["vary"] == {"tp": ["1", "2"]}
    assert doc["probes"] and doc["pareto"]
    assert report.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.parametrize(("extra", "message"), [
    (["--slo", "ttft_p90<=200"], "--slo: unknown metric 'ttft_p90'; did you mean ttft_p90_ms?"),
    (["--slo", "ttft_p90_ms=200"], "--slo: 'ttft_p90_ms=200' is not metric<=bound"),
    (["--slo", "ttft_p90_ms<=abc"], "--slo: the bound of ttft_p90_ms must be a number, got 'abc'"),
    (["--slo", "ttft_p90_ms<=200", "--vary", "tp=1,0"], "--vary tp=0: must be an integer >= 1, got 0"),
    (["--slo", "ttft_p90_ms<=200", "--vary", "rate=1,2"], "--vary rate: the rate is what capacity searches"),
    (["--slo", "ttft_p90_ms<=200", "--vary", "foo=1"], "--vary foo: unknown run field 'foo'"),
    (["--slo", "ttft_p90_ms<=200", "--vary", "routing_policy=fast"], "--vary routing_policy=fast: must be one of"),
    (["--slo", "ttft_p90_ms<=200", "--workload", "traces", "--workload-traces-filepath", "t.csv"],
     "--workload traces: a trace fixes its own arrival times"),
    (["--slo", "ttft_p90_ms<=200", "--rate", "0.001"], "--rate must lie between --min-rate 0.01"),
    (["--slo", "ttft_p90_ms<=200", "--max-num-running-reqs", "0"], "--max-num-running-reqs must be an integer >= 1"),
    (["--slo", "ttft_p90_ms<=200", "--ray-address", "auto"], "--ray-address needs --backend ray"),
])
def test_cli_capacity_errors(tmp_path, capsys, extra, message):
    out = tmp_path / "a.json"
    rc = cli.run_cli([*RUN, *extra, "--output", str(out)])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith(f"blis: error: {message}"), captured.err
    assert len(captured.err.splitlines()) == 1 and not out.exists()


def test_cli_capacity_every_configuration_failing(tmp_path, capsys):
    rc = cli.run_cli([*RUN, "--slo", "ttft_p90_ms<=200", "--vary", "hardware=H998,H999"])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith("blis: error: every configuration failed; the first, hardware=H998: --hardware")

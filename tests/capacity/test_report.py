"""report.html renders: self-contained (no network request possible), its plots decoded by a real browser (headless
Chromium, skipped with the reason when it is not installed); ``blis plot`` writes PNG and SVG."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from browser import chromium
from capacity_helpers import BASE

from blis_sim import cli
from blis_sim.capacity import fields as F
from blis_sim.capacity.capacity import CapacityQuestion, run_capacity
from blis_sim.capacity.report import capacity_report, sweep_report
from blis_sim.capacity.slo import parse_slos
from blis_sim.capacity.sweep import make_sweep, run_sweep, write_outputs


@pytest.fixture(scope="module")
def sweep_result():
    spec = make_sweep({"base": {**BASE, "num_requests": 80}, "axes": {"tp": [1, 2], "rate": [10, 60, 120]},
                       "slo": "ttft_p90_ms<=200", "title": "report test"})
    return run_sweep(spec, backend="serial")


@pytest.fixture(scope="module")
def capacity_doc():
    q = CapacityQuestion(F.build({**BASE, "tp": 1}), parse_slos("ttft_p90_ms<=60"), (("tp", (1, 2)),),
                         tolerance=0.1, start_rate=10, probe_requests=100, probe_seconds=1e-6)
    return run_capacity(q, backend="serial").to_dict()


def _self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    # nothing is fetched: every src is a data: URI, no link/script/iframe points anywhere
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', page))
    assert not re.search(r"<(link|iframe|object|embed)\b", page)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


def test_sweep_report(sweep_result):
    page = sweep_report(sweep_result)
    _self_contained(page)
    assert page.count('<figure class="plot"') == 3
    assert page.count("data:image/svg+xml;base64,") == 3
    for heading in ("Capacity table", "Latency against rate", "Throughput against rate", "Pareto front"):
        assert f"<h2>{heading}" in page
    assert "<title>report test</title>" in page and "tp=2" in page


def test_capacity_report(capacity_doc):
    page = capacity_report(capacity_doc)
    _self_contained(page)
    assert page.count('<figure class="plot"') == 3 and "serves the most per GPU" in page
    assert "ttft_p90_ms at max" in page


@pytest.mark.skipif(chromium() is None, reason="no headless browser: apt-get install chromium to run this check")
def test_a_real_browser_renders_the_plots(tmp_path, sweep_result, capacity_doc):
    write_outputs(sweep_result, tmp_path)
    (tmp_path / "capacity.html").write_text(capacity_report(capacity_doc))
    for page in ("report.html", "capacity.html"):
        proc = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
             f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (tmp_path / page).as_uri()],
            capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        dom = proc.stdout
        assert 'data-plots-expected="3"' in dom, dom[:500]
        assert 'data-plots-rendered="3"' in dom  # every plot decoded by the browser


def test_cli_plot(tmp_path, sweep_result, capacity_doc, capsys):
    (tmp_path / "sweep").mkdir()
    write_outputs(sweep_result, tmp_path / "sweep", report=False)
    rc = cli.run_cli(["plot", str(tmp_path / "sweep"), "--output", str(tmp_path / "png"), "--format", "png"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["latency.png", "pareto.png", "throughput.png"]
    assert (tmp_path / "png" / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "cap.json").write_text(json.dumps(capacity_doc))
    rc = cli.run_cli(["plot", str(tmp_path / "cap.json"), "--output", str(tmp_path / "both")])
    assert rc == 0
    assert len(list((tmp_path / "both").iterdir())) == 6
    assert (tmp_path / "both" / "pareto.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(("content", "message"), [
    (None, "RESULTS {p}: no such file"),
    ("{", "RESULTS {p}: not valid JSON"),
    ('{"a": 1}', "RESULTS {p}: not a results file of blis sweep"),
    ("[]", "RESULTS {p}: nothing to plot"),
])
def test_cli_plot_errors(tmp_path, capsys, content, message):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    rc = cli.run_cli(["plot", str(path), "--output", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert rc == 2 and captured.out == ""
    assert captured.err.startswith("blis: error: " + message.format(p=path))
    assert not (tmp_path / "out").exists()

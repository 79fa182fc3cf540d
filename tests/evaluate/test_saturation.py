"""Kept up with the offered load? The measured and simulated verdicts per evaluated point (evaluate/saturation.py),
their counts in the report, the evidence the loaders read, and the shared measurements."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blis_sim import cli, logging_setup
from blis_sim.evaluate.discover import load_ground_truth
from blis_sim.evaluate.experiment import BURST, CONSTANT, ITL_POOLED, SEQUENTIAL, Load, Point, Served
from blis_sim.evaluate.runner import Options, evaluate
from blis_sim.evaluate.saturation import judge_measured, judge_simulated, summary
from blis_sim.evaluate.scoring import ScoredPoint
from blis_sim.metrics.saturation import queue_growth

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_GT = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "ground_truth"
LIGHT = {"ttft_ms": 30.0, "e2e_ms": 5000.0, "requests": 5}


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logging_setup.reset()


def _stage_point(served: Served | None, rate: float = 4.0, duration: float = 1200.0) -> Point:
    return Point("stage 0", Load(CONSTANT, rate, int(rate * duration), duration), {"ttft_mean_ms": 50.0},
                 ITL_POOLED, stage=0, served=served)


# ----- measured verdicts ------------------------------------------------------------------------------------------

def test_timeouts_shortfall_and_ttft_say_the_measured_server_did_not_keep_up():
    # the shape of the shared Llama-2-7B reasoning stage: most requests time out after 300 s
    served = Served("stage_0.json", sent=4800, failed=4068, failed_latency_s=300.5, served_latency_s=156.0,
                    completed_rps=0.488)
    kept, why = judge_measured(_stage_point(served), 106_645.0, LIGHT)
    assert kept is False
    assert "4068 of 4800 requests failed after 300 s (median)" in why
    assert "completed 0.488 req/s of the 4 req/s sent" in why
    assert "TTFT mean 107 s = 3,555x the light-load TTFT 30 ms" in why


def test_a_stage_served_in_full_kept_up():
    served = Served("stage_1.json", sent=12000, failed=0, completed_rps=19.84, served_latency_s=5.5)
    kept, why = judge_measured(_stage_point(served, rate=20.0, duration=600.0), 121.0, LIGHT)
    assert kept is True
    assert why == ("0 of 12000 requests failed; completed 19.8 req/s of the 20 req/s sent; TTFT mean 121 ms = 4.03x "
                   "the light-load TTFT 30 ms")


def test_fast_failures_are_rejections_and_unknown_ones_are_not_counted():
    rejected = Served("s.json", sent=40, failed=2, failed_latency_s=0.013, served_latency_s=2.0)
    kept, why = judge_measured(_stage_point(rejected), 60.0, LIGHT)
    assert kept is True and "sooner than the served ones: rejections, not counted" in why
    unknown = Served("s.json", sent=80, failed=24)
    kept, why = judge_measured(_stage_point(unknown), 60.0, LIGHT)
    assert kept is True and "not recorded: not counted" in why


def test_the_shortfall_needs_a_stage_long_against_a_request():
    # a 30 s stage whose requests take 5 s at light load: completions trail sends by a sixth even when kept up
    served = Served("s.json", sent=30, failed=0, completed_rps=0.8)
    kept, why = judge_measured(_stage_point(served, rate=1.0, duration=30.0), 40.0, LIGHT)
    assert kept is True and "completed" not in why


def test_per_request_queue_growth_of_the_measurement():
    n = 40
    arrival = tuple(i * 0.5 for i in range(n))
    flat = Served("per_request.csv", arrival_s=arrival, queue_s=(0.0,) * n, ttft_s=(0.9,) * n)
    kept, why = judge_measured(_stage_point(flat, rate=2.0, duration=20.0), 900.0, None)
    assert kept is True and why.startswith("no queue growth: median queueing delay 0 ms (first third of arrivals)")
    growing = Served("per_request.csv", arrival_s=arrival, queue_s=tuple(0.4 * a for a in arrival),
                     ttft_s=tuple(0.4 * a + 0.9 for a in arrival))
    kept, why = judge_measured(_stage_point(growing, rate=2.0, duration=20.0), 5000.0, None)
    assert kept is False and why.startswith("queue grew: queueing delay grew from 1.2 s (first third of arrivals)")


def test_no_evidence_and_closed_loads_are_unknown():
    assert judge_measured(_stage_point(None), 50.0, None) == (None, "no evidence")
    seq = Point("synchronous", Load(SEQUENTIAL, None, 10), {"ttft_mean_ms": 50.0}, ITL_POOLED)
    burst = Point("throughput", Load(BURST, None, 10), {"ttft_mean_ms": 5000.0}, ITL_POOLED)
    assert judge_measured(seq, 50.0, LIGHT)[0] is None and judge_measured(burst, 5000.0, LIGHT)[0] is None
    assert "one request at a time" in judge_measured(seq, 50.0, LIGHT)[1]


# ----- simulated verdicts and the counts ---------------------------------------------------------------------------

def _scored(sim_kept: bool | None, measured_kept: bool | None, label: str = "p") -> ScoredPoint:
    p = ScoredPoint("e", label, "m", "H100", "w", {"ttft_mean_ms": 50.0}, {"ttft_mean_ms": 50.0},
                    pattern=CONSTANT)
    p.kept_up_sim, p.kept_up_measured = sim_kept, measured_kept
    return p


def test_simulated_verdict_from_the_queue_and_the_ttft_level():
    n = 60
    arrival = [i * 0.1 for i in range(n)]
    growing = queue_growth(arrival, [0.5 * a for a in arrival], [0.5 * a + 0.02 for a in arrival], [float("nan")] * n)
    p = _scored(None, None)
    p.sim_queue, p.light_load = growing.to_dict(), LIGHT
    kept, why = judge_simulated(p)
    assert kept is False and why.startswith("queue grew: ") and "light-load" not in why  # the failed checks only
    flat = queue_growth(arrival, [0.01] * n, [0.03] * n, [float("nan")] * n)
    p.sim_queue = flat.to_dict()
    p.predicted = {"ttft_mean_ms": 400.0}  # no queue growth, but ten times the light-load TTFT or more
    kept, why = judge_simulated(p)
    assert kept is False and why.startswith("TTFT mean 400 ms = 13.3x the light-load TTFT 30 ms")
    p.pattern = BURST
    assert judge_simulated(p)[0] is None


def test_summary_counts_false_and_missed_saturations_apart():
    pts = [_scored(True, True), _scored(False, False), _scored(False, True, "fs"), _scored(True, False, "ms"),
           _scored(None, True), _scored(None, None)]
    s = summary(pts)
    assert (s["points"], s["judged_both"], s["agree"], s["agree_kept_up"], s["agree_saturated"]) == (6, 4, 2, 1, 1)
    assert (s["disagree"], s["false_saturations"], s["missed_saturations"]) == (2, 1, 1)
    assert (s["saturated_simulated"], s["saturated_measured"], s["unknown_simulated"], s["unknown_measured"]) == (
        2, 2, 2, 1)
    assert s["false_saturation_points"] == [{"experiment": "e", "point": "fs"}]
    assert s["missed_saturation_points"] == [{"experiment": "e", "point": "ms"}]


# ----- what the loaders read ---------------------------------------------------------------------------------------

PER_REQUEST_HEADER = "request_id,benchmark_index,strategy,rate,arrival_s,ttft_s,e2e_s,queue_s\n"


def test_per_request_file_feeds_the_measured_queue(tmp_path):
    folder = tmp_path / "sweep"
    shutil.copytree(FIXTURES / "tree" / "guidellm-sweep", folder)
    rows = [f"r{i},2,constant,5.0,{i * 0.2:.3f},{0.03 + 0.3 * i:.3f},1.0,{0.3 * i:.3f}\n" for i in range(15)]
    rows += [f"s{i},0,synchronous,,{i:.1f},0.03,0.2,0.0\n" for i in range(3)]
    (folder / "per_request.csv").write_text(PER_REQUEST_HEADER + "".join(rows))
    gt = load_ground_truth(folder)
    exp = gt.experiments[0]
    by_label = {p.label: p for p in exp.points}
    constant = by_label["2 constant 5 rps"]
    assert constant.served.source == "per_request.csv" and len(constant.served.arrival_s) == 15
    assert constant.served.queue_s[3] == pytest.approx(0.9)
    kept, why = judge_measured(constant, 33.0, None)
    assert kept is False and "queue grew" in why
    assert by_label["1 throughput"].served is None  # no rows of that benchmark
    (folder / "per_request.csv").write_text(PER_REQUEST_HEADER + "x,2,constant,5,abc,0.1,1,0\n")
    exp = load_ground_truth(folder).experiments[0]
    assert all(p.served is None for p in exp.points)
    assert any("per_request.csv: line 2" in note for note in exp.notes)


def test_inference_perf_stages_carry_counts_and_latencies():
    exp = load_ground_truth(FIXTURES / "tree" / "ip-poisson-chat").experiments[0]
    first, second = exp.points
    assert (first.served.sent, first.served.failed, first.served.completed_rps) == (20, 0, 4.0)
    assert (second.served.sent, second.served.failed, second.served.failed_latency_s) == (80, 24, None)
    assert second.served.served_latency_s == pytest.approx(1.2)


# ----- the report ---------------------------------------------------------------------------------------------------

def test_every_point_row_and_the_summary(capsys, tmp_path):
    out_path = tmp_path / "report.json"
    rc = cli.run_cli(["evaluate", "--ground-truth", str(FIXTURES / "tree"), "--jobs", "1", "--requests-per-point", "30",
                      "--output", str(out_path), "--quiet"], prog_name="blis")
    out = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out_path.read_text())
    rows = [p for e in report["experiments"] for p in e["point_results"]]
    for p in rows:
        for key in ("kept_up_sim", "kept_up_sim_reason", "kept_up_measured", "kept_up_measured_reason"):
            assert key in p
        if p["pattern"] in (SEQUENTIAL, BURST):
            assert p["kept_up_sim"] is None and p["kept_up_measured"] is None
        else:
            assert p["kept_up_sim"] is not None and p["kept_up_sim_reason"]
            assert p["saturation_evidence"]["light_load"]["ttft_ms"] > 0
    ip = {e["name"]: e for e in report["experiments"]}["ip-poisson-chat"]["point_results"]
    assert ip[0]["kept_up_measured"] is True  # 20 of 20 served at 4 rps
    assert ip[1]["kept_up_measured"] is False and "x the light-load TTFT" in ip[1]["kept_up_measured_reason"]
    s = report["saturation"]
    assert s["points"] == len(rows) and s["agree"] + s["disagree"] == s["judged_both"]
    assert "kept up with the offered load:" in out and f"{s['judged_both']} of {s['points']} points judged" in out
    assert "Kept up with the offered load?" in out  # the table of the points either side judged saturated


def test_the_scoring_rule_is_unchanged_by_the_verdicts():
    ev = evaluate(FIXTURES / "tree", Options(jobs=1, requests_per_point=30))
    excluded = {(p.experiment, p.label) for p in ev.points if p.excluded}
    assert ev.report["overall"]["points"] == len(ev.points) - len(excluded)
    assert any(p.kept_up_measured is False for p in ev.points)


@pytest.mark.skipif(not SHARED_GT.is_dir(), reason="../shared/data/ground_truth is not present")
def test_shared_measurements_saturate_where_real_vllm_did():
    """The overloaded reasoning stage (Llama-2-7B: 4,068 of 4,800 requests timed out) is saturated on both sides;
    the general run, whose 20 rps stage real vLLM served with its TTFT doubled, is kept up on both: no false
    saturation."""
    for name, expected in (("20260217-170634-llama-2-7b-tp1-reasoning", [False]),
                           ("20260217-202857-llama-2-70b-tp4-general", [True, True])):
        ev = evaluate(SHARED_GT / name, Options(jobs=1, requests_per_point=600, latency_model="roofline-v2"))
        assert [p.kept_up_measured for p in ev.points] == expected, [p.kept_up_measured_reason for p in ev.points]
        assert [p.kept_up_sim for p in ev.points] == expected, [p.kept_up_sim_reason for p in ev.points]
        assert ev.report["saturation"]["false_saturations"] == 0

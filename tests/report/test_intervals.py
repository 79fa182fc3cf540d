"""Prediction intervals (report/intervals.py, docs/intervals.md): the conformal bounds, coverage, the shipped file,
and ``blis run --intervals``."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from blis_sim.report.intervals import (
    MetricInterval,
    conformal_bounds,
    coverage,
    packaged_intervals,
    residual,
)

DATA = Path(__file__).resolve().parents[2] / "src" / "blis_sim" / "data"
RUN = ("run", "--model", "meta-llama/llama-3.1-8b-instruct", "--hardware", "H100", "--tp", "1", "--latency-model",
       "best", "--num-requests", "40", "--rate", "4")


def test_conformal_ranks_of_independent_residuals():
    r = [0.1 * i for i in range(9)]  # n = 9, 80%: the 1st and the 9th smallest
    assert conformal_bounds(r, 0.8) == (0.0, pytest.approx(0.8))
    r = [0.01 * i for i in range(99)]  # n = 99: the 10th and the 90th smallest
    assert conformal_bounds(r, 0.8) == (pytest.approx(0.09), pytest.approx(0.89))
    assert conformal_bounds(list(reversed(r)), 0.8) == conformal_bounds(r, 0.8)  # order does not matter
    # 8 units: rank floor(9 x 0.1) = 0, an unbounded interval; the sample's extremes would promise 80% but
    # guarantee only 7/9, so it is refused
    with pytest.raises(ValueError, match="8 unit.s. are too few for a 80% interval: at least 9"):
        conformal_bounds([0.1 * i for i in range(8)], 0.8)
    with pytest.raises(ValueError, match="too few"):  # ten points, but of 8 experiments
        conformal_bounds([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0], 0.8, groups=["a"] * 3 + list("bcdefgh"))


def test_experiments_weigh_alike_not_their_points():
    """Ten points of one experiment all at +0.5 and nine one-point experiments spread around 0: the nine decide the
    interval of a new experiment; counted as points, the crowd at +0.5 would pull the upper bound to it."""
    res = [0.5] * 10 + [-0.04, -0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03, 0.04]
    groups = ["big"] * 10 + [f"e{i}" for i in range(9)]
    lo, hi = conformal_bounds(res, 0.8, groups=groups)
    assert lo == pytest.approx(-0.04) and hi == 0.5  # 10 experiments: ranks 1 and 9 of 10 units
    assert conformal_bounds(res, 0.8) == (pytest.approx(-0.03), 0.5)
    res2 = [0.5] * 10 + [0.01 * i for i in range(-14, 15)]  # 30 experiments: the big one is only 1 of 30 units
    groups2 = ["big"] * 10 + [f"e{i}" for i in range(29)]
    lo2, hi2 = conformal_bounds(res2, 0.8, groups=groups2)
    assert hi2 < 0.5 and lo2 < 0


def test_coverage_of_a_known_distribution():
    """Residuals drawn from one distribution: the interval from 400 of them covers about 80% of 4,000 new ones."""
    rng = random.Random(7)
    train = [rng.gauss(0.05, 0.1) for _ in range(400)]
    lo, hi = conformal_bounds(train, 0.8)
    iv = MetricInterval(lo, hi, len(train))
    new = [(math.exp(rng.gauss(0.05, 0.1)) * 100.0, 100.0) for _ in range(4000)]  # (measured, predicted)
    share, n = coverage(new, iv)
    assert n == 4000 and 0.76 < share < 0.85
    assert residual(0.0, 1.0) is None and residual(2.0, 1.0) == pytest.approx(math.log(2))


def test_shipped_intervals_file():
    ivs = packaged_intervals()
    assert set(ivs) == {"roofline-v1", "roofline-v2"}
    raw = json.loads((DATA / "intervals.json").read_text())
    for kind, iv in ivs.items():
        assert iv.level == 0.8 and iv.gpu == "H100"
        assert set(iv.metrics) >= {"ttft_mean_ms", "itl_mean_ms", "e2e_mean_ms"}
        for m, mi in iv.metrics.items():
            assert mi.log_low <= mi.log_high and mi.points >= 5
            assert raw["models"][kind]["metrics"][m]["experiments"] >= 5
        for m, c in iv.holdout_coverage.items():
            assert 0.0 <= c <= 1.0 and iv.holdout_points[m] > 0


def test_run_prints_intervals_and_is_deterministic(invoke):
    a = invoke(*RUN, "--intervals")
    assert a.rc == 0, a.err
    head, section = a.out.split("=== Prediction Intervals (80%) ===\n")
    block = json.loads(section)
    cluster = json.loads(head.split("=== Simulation Metrics ===\n")[1])
    assert block["latency_model"] == "roofline-v2" and "(H100)" in block["basis"]
    for key in ("ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms"):
        iv = block[key]
        assert iv["predicted"] == cluster[key]
        assert 0 < iv["low"] <= iv["high"]
    assert "tokens_per_sec" not in block  # throughput residuals measure the arrivals, not the latency model
    assert invoke(*RUN, "--intervals").out == a.out
    plain = invoke(*RUN)
    assert plain.out == head  # without the flag, stdout is unchanged


def test_run_intervals_on_a_transferred_gpu_says_so(invoke):
    run = list(RUN)
    run[run.index("H100")] = "L40S"
    out = invoke(*run, "--intervals").out
    block = json.loads(out.split("=== Prediction Intervals (80%) ===\n")[1])
    assert "L40S is priced by the transferred calibration" in block["basis"]


def test_run_intervals_without_a_roofline_model_warns(invoke):
    r = invoke("run", "--model", "m", "--alpha-coeffs", "100,1,1", "--beta-coeffs", "1000,10,1", "--num-requests", "5",
               "--rate", "1", "--intervals")
    assert r.rc == 0 and "Prediction Intervals" not in r.out
    assert "--intervals: no prediction intervals for the blackbox latency model" in r.err


def test_run_intervals_only_with_the_packaged_constants(invoke, tmp_path):
    """The intervals come from the residuals of the packaged constants: a copy of the packaged file gets them, the
    hand-set file or an edited entry does not (a warning says why, nothing is printed)."""
    folder = str(DATA / "model_configs" / "llama-3.1-8b-instruct")
    base = ("run", "--model", "meta-llama/llama-3.1-8b-instruct", "--model-config-folder", folder, "--hardware",
            "H100", "--tp", "1", "--num-requests", "40", "--rate", "4", "--intervals")
    copy = tmp_path / "copy.json"
    copy.write_text((DATA / "hardware_config.json").read_text())
    ok = invoke(*base, "--hardware-config", str(copy))
    assert ok.rc == 0 and '"latency_model": "roofline-v1"' in ok.out.split("=== Prediction Intervals (80%) ===")[1]
    raw = json.loads(copy.read_text())
    raw["H100"]["TOverheadMicros"] = 1000.0
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(raw))
    for path in (str(edited), str(DATA / "hardware_config_handset.json")):
        r = invoke(*base, "--hardware-config", path)
        assert r.rc == 0 and "Prediction Intervals" not in r.out
        assert "--intervals: the intervals were drawn from the residuals of the packaged calibrated constants" in r.err

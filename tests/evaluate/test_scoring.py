"""Percentage errors, MAPE and the per-point metrics computed from simulated request records."""

from __future__ import annotations

import pytest

from blis_sim.evaluate.experiment import ITL_BLIS, ITL_DECODE, ITL_POOLED
from blis_sim.evaluate.scoring import ScoredPoint, aggregate, group, mape
from blis_sim.evaluate.simulate import point_metrics


def _pt(exp, measured, predicted, model="m", excluded=""):
    return ScoredPoint(exp, "p", model, "H100", "w", measured, predicted, excluded=excluded)


def test_signed_and_absolute_errors():
    p = _pt("e", {"ttft_mean_ms": 100.0, "e2e_mean_ms": 200.0, "itl_mean_ms": 10.0},
            {"ttft_mean_ms": 80.0, "e2e_mean_ms": 250.0})
    assert p.signed_pct() == {"ttft_mean_ms": pytest.approx(-20.0), "e2e_mean_ms": pytest.approx(25.0)}
    assert p.abs_pct() == {"ttft_mean_ms": pytest.approx(20.0), "e2e_mean_ms": pytest.approx(25.0)}
    d = p.to_dict()
    assert d["error_pct"]["ttft_mean_ms"] == pytest.approx(-20.0) and "itl_mean_ms" not in d["error_pct"]


def test_mape_aggregate_median_bias_and_exclusions():
    pts = [
        _pt("a", {"ttft_mean_ms": 100.0}, {"ttft_mean_ms": 110.0}),  # +10
        _pt("a", {"ttft_mean_ms": 100.0}, {"ttft_mean_ms": 70.0}),  # -30
        _pt("b", {"ttft_mean_ms": 50.0, "e2e_mean_ms": 100.0}, {"ttft_mean_ms": 55.0, "e2e_mean_ms": 90.0}),  # +10, -10
        _pt("b", {"ttft_mean_ms": 10.0}, {"ttft_mean_ms": 1000.0}, excluded="saturation"),  # never averaged
    ]
    agg = aggregate(pts)
    assert agg["points"] == 3
    assert agg["mape"]["ttft_mean_ms"] == pytest.approx((10 + 30 + 10) / 3)
    assert agg["median_ape"]["ttft_mean_ms"] == pytest.approx(10.0)
    assert agg["bias_pct"]["ttft_mean_ms"] == pytest.approx((10 - 30 + 10) / 3)
    assert agg["mape"]["e2e_mean_ms"] == pytest.approx(10.0) and agg["metric_points"]["e2e_mean_ms"] == 1
    assert agg["mape"]["throughput_tokens_per_s"] is None and agg["metric_points"]["throughput_tokens_per_s"] == 0
    by = group(pts, "experiment")
    assert by["a"]["mape"]["ttft_mean_ms"] == pytest.approx(20.0) and by["b"]["points"] == 1
    assert mape([]) is None and mape([-5, 5]) == 5


def _rec(arrived_s, ttft, e2e, n, queued=0.0):
    return {"arrived_at": arrived_s, "ttft_ms": ttft, "e2e_ms": e2e, "num_decode_tokens": n,
            "scheduling_delay_ms": queued, "itl_ms": 0.0, "requestID": "r"}


def test_point_metrics_per_itl_definition():
    recs = [_rec(0.0, 10.0, 110.0, 11, queued=2.0), _rec(1.0, 20.0, 60.0, 5), _rec(2.0, 30.0, 30.0, 1)]
    decode = point_metrics(recs, ITL_DECODE, sequential=False)
    assert decode["ttft_mean_ms"] == pytest.approx(20.0)
    assert decode["ttft_p90_ms"] == pytest.approx(28.0)  # linear interpolation, numpy's default
    assert decode["e2e_mean_ms"] == pytest.approx(200.0 / 3)
    assert decode["itl_mean_ms"] == pytest.approx((100 / 10 + 40 / 4) / 2)  # single-token requests have no gap
    pooled = point_metrics(recs, ITL_POOLED, sequential=False)
    assert pooled["itl_mean_ms"] == pytest.approx(140.0 / 14)
    blis = point_metrics(recs, ITL_BLIS, sequential=False)
    assert blis["itl_mean_ms"] == pytest.approx((108.0 + 60.0 + 30.0) / 17)
    # throughput: output tokens over first arrival .. last completion (2.03 s)
    assert decode["throughput_tokens_per_s"] == pytest.approx(17 / 2.03)
    # sequential requests: over the time they were actually being served
    assert point_metrics(recs, ITL_DECODE, sequential=True)["throughput_tokens_per_s"] == pytest.approx(17 / 0.2)


def test_point_metrics_without_completions():
    assert point_metrics([_rec(0.0, 0.0, 0.0, 5)], ITL_DECODE, sequential=False) == {}


def test_interval_coverage_counts_measured_values_inside():
    inside = _pt("a", {"ttft_mean_ms": 100.0, "itl_mean_ms": 10.0}, {"ttft_mean_ms": 90.0, "itl_mean_ms": 12.0})
    inside.intervals = {"ttft_mean_ms": (85.0, 130.0), "itl_mean_ms": (11.0, 14.0)}  # ttft in, itl out (10 < 11)
    outside = _pt("b", {"ttft_mean_ms": 100.0}, {"ttft_mean_ms": 50.0})
    outside.intervals = {"ttft_mean_ms": (45.0, 70.0)}
    none = _pt("c", {"ttft_mean_ms": 100.0}, {"ttft_mean_ms": 100.0})  # no interval: not counted
    assert inside.inside() == {"ttft_mean_ms": True, "itl_mean_ms": False}
    agg = aggregate([inside, outside, none])
    assert agg["interval_coverage"]["ttft_mean_ms"] == pytest.approx(0.5)
    assert agg["interval_coverage"]["itl_mean_ms"] == 0.0 and agg["interval_coverage"]["e2e_mean_ms"] is None
    d = inside.to_dict()["interval"]
    assert d["ttft_mean_ms"] == {"low": 85.0, "high": 130.0, "inside": True}

"""Errors of predictions against measurements, and their averages.

Per point and metric: the signed percentage error ``100 (predicted - measured) / measured`` (positive: the simulator
predicts more than was measured) and its absolute value. An aggregate over a set of points holds, per metric, the MAPE
(mean absolute percentage error over the points that measured that metric), the median absolute error (errors are
skewed), the mean signed error (the bias), how many points each metric averages, and ``points`` (how many points the
aggregate covers). Points are weighted equally: an experiment with ten rate points counts ten times. Excluded points
(saturation tests, overloaded stages) and failed points are never in an aggregate; they are listed separately.

Each point also carries whether the simulated and the measured server kept up with its load (``kept_up_sim``,
``kept_up_measured``: True, False, or None when unknown, each with its reason; ``evaluate/saturation.py``). They are
reported for every point, excluded ones included, and change no aggregate.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from .experiment import METRICS


@dataclass
class ScoredPoint:
    """One point's measured and predicted metrics and their errors, plus what it is grouped by."""

    experiment: str
    label: str
    model: str
    hardware: str
    workload: str
    measured: dict[str, float]
    predicted: dict[str, float]
    rate: float | None = None
    pattern: str = ""
    simulated_requests: int = 0
    measured_requests: int = 0
    excluded: str = ""
    notes: list[str] = field(default_factory=list)
    index: int = -1  # the point's position in its experiment (-1: unknown)
    sim_queue: dict | None = None  # the simulated requests' queue growth (metrics.saturation.QueueGrowth.to_dict)
    light_load: dict | None = None  # simulated light-load TTFT and E2E (ms) of the experiment's workload
    kept_up_sim: bool | None = None
    kept_up_sim_reason: str = ""
    kept_up_measured: bool | None = None
    kept_up_measured_reason: str = ""
    # 80% prediction interval per metric (low, high), from the packaged intervals of the point's latency model
    # (report/intervals.py); None when the model has none or the constants are not the packaged ones
    intervals: dict[str, tuple[float, float]] | None = None

    def inside(self) -> dict[str, bool]:
        """Per metric with an interval and a measurement: whether the measured value lies inside it."""
        if not self.intervals:
            return {}
        return {m: lo <= self.measured[m] <= hi for m, (lo, hi) in self.intervals.items() if m in self.measured}

    def signed_pct(self) -> dict[str, float]:
        return {m: 100.0 * (self.predicted[m] - v) / v for m, v in self.measured.items() if m in self.predicted}

    def abs_pct(self) -> dict[str, float]:
        return {m: abs(e) for m, e in self.signed_pct().items()}

    def to_dict(self) -> dict:
        signed = self.signed_pct()
        return {
            "label": self.label,
            "pattern": self.pattern,
            "rate_rps": self.rate,
            "measured_requests": self.measured_requests,
            "simulated_requests": self.simulated_requests,
            "measured": {m: self.measured[m] for m in METRICS if m in self.measured},
            "predicted": {m: self.predicted[m] for m in METRICS if m in self.predicted},
            "error_pct": {m: signed[m] for m in METRICS if m in signed},
            "abs_error_pct": {m: abs(signed[m]) for m in METRICS if m in signed},
            "excluded": self.excluded or None,
            "kept_up_sim": self.kept_up_sim,
            "kept_up_sim_reason": self.kept_up_sim_reason or None,
            "kept_up_measured": self.kept_up_measured,
            "kept_up_measured_reason": self.kept_up_measured_reason or None,
            "saturation_evidence": {"simulated_queue": self.sim_queue, "light_load": self.light_load},
            "interval": ({m: {"low": lo, "high": hi, "inside": self.inside().get(m)}
                          for m, (lo, hi) in self.intervals.items()} if self.intervals else None),
            "notes": self.notes,
        }


def mape(values: Iterable[float]) -> float | None:
    """Mean of absolute percentage errors; None for no values."""
    vals = [abs(v) for v in values]
    return sum(vals) / len(vals) if vals else None


def aggregate(points: list[ScoredPoint]) -> dict:
    """MAPE, median absolute error and bias per metric over ``points`` (excluded ones skipped)."""
    used = [p for p in points if not p.excluded]
    signed = [p.signed_pct() for p in used]
    inside = [p.inside() for p in used]
    out: dict = {"mape": {}, "median_ape": {}, "bias_pct": {}, "metric_points": {}, "points": len(used),
                 "interval_coverage": {}}
    for m in METRICS:
        errs = [s[m] for s in signed if m in s]
        out["mape"][m] = mape(errs)
        out["median_ape"][m] = statistics.median(abs(e) for e in errs) if errs else None
        out["bias_pct"][m] = sum(errs) / len(errs) if errs else None
        out["metric_points"][m] = len(errs)
        flags = [i[m] for i in inside if m in i]
        out["interval_coverage"][m] = sum(flags) / len(flags) if flags else None  # share inside the 80% interval
    return out


def group(points: list[ScoredPoint], key: str) -> dict[str, dict]:
    """``aggregate`` per distinct value of the point attribute ``key``, sorted by that value."""
    names = sorted({getattr(p, key) for p in points if not p.excluded})
    return {name: aggregate([p for p in points if getattr(p, key) == name]) for name in names}

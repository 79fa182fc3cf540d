"""Prediction intervals from the calibration's residuals (docs/intervals.md).

A roofline model's error on a metric is, across the shared vLLM measurements, close to multiplicative: a run that is
predicted 10% fast on TTFT at one load is about 10% fast at the next. The interval of a prediction p is therefore
[p·exp(lo), p·exp(hi)], where lo and hi are quantiles of the residuals r = ln(measured / predicted) of the calibration's
*training* points (src/blis_sim/data/intervals.json, written by scripts/fit_intervals.py); the held-out points,
never used to fit the constants nor the quantiles, measure how often the interval holds the measured value (its
coverage, reported next to the MAPE).

The quantiles are the split-conformal order statistics of n residuals: the ⌊(n+1)·α/2⌋-th smallest and the
⌈(n+1)·(1−α/2)⌉-th smallest (clamped to the sample), which cover a new exchangeable point with probability at least
1−α. Points of other GPUs, models or workloads than the training ones are not exchangeable with them, so the nominal
level is a claim about the calibration GPU only; ``describe_basis`` says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ..errors import InputError

SCHEMA_VERSION = 1
LEVEL = 0.8  # the shipped intervals' nominal coverage
# evaluate's metric names -> the keys of blis run's "Simulation Metrics" block. Throughput is not among them: when
# the server keeps up it is the offered load, so its residuals in evaluate measure how the benchmark's arrivals were
# reproduced, not the latency model, and evaluate's busy-time definition is not blis run's tokens_per_sec.
RUN_KEYS = {
    "ttft_mean_ms": "ttft_mean_ms",
    "ttft_p90_ms": "ttft_p90_ms",
    "itl_mean_ms": "itl_mean_ms",
    "e2e_mean_ms": "e2e_mean_ms",
    "e2e_p90_ms": "e2e_p90_ms",
}


@dataclass(frozen=True)
class MetricInterval:
    log_low: float  # quantile of ln(measured / predicted)
    log_high: float
    points: int  # training residuals it was computed from

    def around(self, predicted: float) -> tuple[float, float]:
        return predicted * math.exp(self.log_low), predicted * math.exp(self.log_high)


@dataclass(frozen=True)
class ModelIntervals:
    latency_model: str
    level: float
    gpu: str  # the GPU whose measurements the residuals come from
    metrics: dict[str, MetricInterval]
    holdout_coverage: dict[str, float]  # share of held-out measured values inside their interval
    holdout_points: dict[str, int]

    def apply(self, predicted: Mapping[str, float]) -> dict[str, dict[str, float]]:
        """{metric: {predicted, low, high}} for the metrics with an interval and a finite prediction."""
        out = {}
        for metric, iv in self.metrics.items():
            value = predicted.get(metric)
            if value is None or not math.isfinite(value):
                continue
            low, high = iv.around(value)
            out[metric] = {"predicted": value, "low": low, "high": high}
        return out


def conformal_bounds(residuals: Sequence[float], level: float = LEVEL,
                     groups: Sequence[str] | None = None) -> tuple[float, float]:
    """(low, high) conformal quantiles of ``residuals`` for a central interval of ``level``.

    Residuals of one experiment are not independent (one model, server and workload; its error is largely shared by
    its points), so with ``groups`` (each residual's experiment) every experiment weighs the same, split over its
    points, and the sample size of the finite-sample correction is the number of experiments: the interval then
    covers a new *experiment*'s points, not only a new point of a known one."""
    if not residuals:
        raise ValueError("no residuals")
    if groups is None:
        groups = [str(i) for i in range(len(residuals))]
    sizes: dict[str, int] = {}
    for g in groups:
        sizes[g] = sizes.get(g, 0) + 1
    n = len(sizes)
    pairs = sorted((r, 1.0 / sizes[g]) for r, g in zip(residuals, groups))
    alpha = 1.0 - level
    # split-conformal ranks among n exchangeable units (1e-9: 1 - 0.8 is 0.19999999999999996 in binary)
    k_lo = math.floor((n + 1) * alpha / 2 + 1e-9)
    if k_lo < 1:  # the bound would be unbounded: n units cannot give a finite interval of this level
        raise ValueError(f"{n} unit(s) are too few for a {level:.0%} interval: at least "
                         f"{math.ceil(2 / alpha - 1 - 1e-9)} are needed")
    k_hi = math.ceil((n + 1) * (1 - alpha / 2) - 1e-9)
    return _kth(pairs, k_lo), _kth(pairs[::-1], n - k_hi + 1)


def _kth(pairs: Sequence[tuple[float, float]], k: float) -> float:
    """The first residual of ``pairs`` (residual, weight) at which the cumulative weight reaches ``k``; with unit
    weights, the k-th."""
    acc = 0.0
    for r, w in pairs:
        acc += w
        if acc >= k - 1e-9:
            return r
    return pairs[-1][0]


def residual(measured: float, predicted: float) -> float | None:
    if measured > 0 and predicted > 0 and math.isfinite(measured) and math.isfinite(predicted):
        return math.log(measured / predicted)
    return None


def coverage(pairs: Iterable[tuple[float, float]], interval: MetricInterval) -> tuple[float, int]:
    """(share of measured values inside the interval of their prediction, points) over (measured, predicted)."""
    inside = total = 0
    for measured, predicted in pairs:
        if residual(measured, predicted) is None:
            continue
        low, high = interval.around(predicted)
        total += 1
        inside += low <= measured <= high
    return (inside / total if total else float("nan")), total


def _parse(raw: Any, where: str) -> dict[str, ModelIntervals]:
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION or not isinstance(
            raw.get("models"), dict):
        raise InputError(f"{where}: not a prediction-interval file of schema_version {SCHEMA_VERSION}")
    out = {}
    for kind, block in raw["models"].items():
        metrics = {m: MetricInterval(float(v["log_low"]), float(v["log_high"]), int(v["points"]))
                   for m, v in block["metrics"].items()}
        hold = block.get("holdout", {})
        out[kind] = ModelIntervals(kind, float(raw["level"]), str(block.get("gpu", "")), metrics,
                                   {m: float(c) for m, c in hold.get("coverage", {}).items()},
                                   {m: int(c) for m, c in hold.get("points", {}).items()})
    return out


def packaged_intervals() -> dict[str, ModelIntervals]:
    """The shipped intervals per latency model kind ({} when the file is missing)."""
    path = resources.files("blis_sim") / "data" / "intervals.json"
    if not path.is_file():
        return {}
    return _parse(json.loads(path.read_text(encoding="utf-8")), "packaged intervals.json")


def describe_basis(iv: ModelIntervals, hardware: str) -> str:
    text = (f"{iv.level:.0%} intervals from the residuals of {iv.latency_model} on the calibration's training "
            f"points ({iv.gpu})")
    if hardware and iv.gpu and hardware.upper() != iv.gpu.upper():
        text += (f"; {hardware} is priced by the transferred calibration, whose own error is not in them "
                 "(docs/gpu-transfer.md)")
    return text


def run_section(kind: str, hardware: str, cluster: Mapping[str, Any]) -> dict | None:
    """The ``=== Prediction Intervals ===`` block of ``blis run --intervals``, or None without intervals for
    ``kind``."""
    ivs = packaged_intervals().get(kind)
    if ivs is None:
        return None
    predicted = {m: cluster.get(key) for m, key in RUN_KEYS.items()}
    applied = ivs.apply({m: float(v) for m, v in predicted.items() if isinstance(v, (int, float))})
    applied = {m: v for m, v in applied.items() if m in RUN_KEYS}
    out: dict[str, Any] = {"latency_model": kind, "level": ivs.level, "basis": describe_basis(ivs, hardware)}
    for metric, values in applied.items():
        out[RUN_KEYS[metric]] = values
    out["holdout_coverage"] = {m: c for m, c in ivs.holdout_coverage.items() if m in RUN_KEYS}
    return out

"""Fitness score (ENGINE.md §12.2, ``--fitness-weights "key:w,..."``): one number to rank configurations by.

Each key maps a run statistic to a component in (0, 1], higher is better: ``throughput`` = rps / (rps + 100),
``tokens_per_sec`` = tps / (tps + 10000), and for the latency keys 1 / (1 + v / 1000) with v the statistic in ticks
(microseconds). The score is the sum of component x weight over the keys in sorted order. Statistics use the metrics
blocks' formulas (§13.2) in ticks: TTFT over every request with a first token, E2E over completed requests.
"""

from __future__ import annotations

import math

from ..errors import InputError
from .histogram import IntHistogram

LATENCY_KEYS = {
    "p99_ttft": ("ttft", 99), "p50_ttft": ("ttft", 50), "mean_ttft": ("ttft", None),
    "p99_e2e": ("e2e", 99), "p50_e2e": ("e2e", 50), "mean_e2e": ("e2e", None),
}
FITNESS_KEYS = ("throughput", "tokens_per_sec", *LATENCY_KEYS)


def parse_weights(text: str, flag: str = "--fitness-weights") -> dict[str, float]:
    """``"key:w,key:w"`` -> {key: w}; unknown keys, repeated keys and weights that are not finite numbers >= 0 are
    input errors. An empty string means no fitness evaluation."""
    out: dict[str, float] = {}
    if not text.strip():
        return out
    accepted = ", ".join(sorted(FITNESS_KEYS))
    for entry in text.split(","):
        key, sep, weight = entry.strip().partition(":")
        key = key.strip()
        if not sep or not key:
            raise InputError(f"{flag}: entry {entry.strip()!r} must be key:weight (keys: {accepted})")
        if key not in FITNESS_KEYS:
            raise InputError(f"{flag}: unknown key {key!r} (accepted: {accepted})")
        if key in out:
            raise InputError(f"{flag}: key {key!r} given twice")
        try:
            w = float(weight)
        except ValueError:
            w = math.nan
        if not math.isfinite(w) or w < 0:
            raise InputError(f"{flag}: weight of {key} must be a finite number >= 0, got {weight.strip()!r}")
        out[key] = w
    return out


def _mean(h: IntHistogram) -> float:
    n = h.n
    return h.total / n if n else 0.0


def components(ttft: IntHistogram, e2e: IntHistogram, rps: float, tps: float) -> dict[str, float]:
    """Every fitness component, by key (module docstring)."""
    hist = {"ttft": ttft, "e2e": e2e}
    out = {"throughput": rps / (rps + 100), "tokens_per_sec": tps / (tps + 10000)}
    for key, (series, p) in LATENCY_KEYS.items():
        h = hist[series]
        v = _mean(h) if p is None else h.percentiles((p,))[0]
        out[key] = 1 / (1 + v / 1000)
    return out


def evaluate(weights: dict[str, float], comps: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(score, the unweighted components of the weighted keys in sorted order)."""
    keys = sorted(weights)
    return sum(comps[k] * weights[k] for k in keys), {k: comps[k] for k in keys}


def fitness_text(score: float, comps: dict[str, float]) -> str:
    """The ``=== Fitness Evaluation ===`` section (§14.1 item 3)."""
    lines = ["=== Fitness Evaluation ===", "Score: %.6f" % score]
    lines += ["  %s: %.6f" % (k, v) for k, v in comps.items()]
    return "\n".join(lines) + "\n"

"""Length samplers and arrival processes of workload specs (ENGINE.md §10.4, §10.5), vectorised with numpy.

``lengths(dist, rng, n)`` draws ``n`` token lengths (integers >= 1, clamped to 1,048,576); ``ratios`` draws reason
ratios (the same samplers without the >= 1 floor, divided by 100, clamped to [0, 1]); ``gaps(process, cv, mean_us,
rng, n)`` draws ``n`` inter-arrival gaps in whole ticks (``max(1, floor(gap))``). Every draw of one call comes from
``rng`` in one vectorised call per kind, so a client's sample is a pure function of its stream.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .distribution import MAX_TOKEN_LENGTH

SAMPLERS = ("gaussian", "exponential", "pareto_lognormal", "constant", "empirical")
PROCESSES = ("poisson", "gamma", "weibull", "constant")
WEIBULL_CV_RANGE = (0.01, 10.4)
GAMMA_MAX_CV = 10.0  # beyond it (shape < 0.01) gamma falls back to poisson


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def raw_values(kind: str, params: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` float draws of sampler ``kind`` before rounding and the >= 1 floor (NaN/inf mapped to 1)."""
    if kind == "gaussian":
        lo, hi = float(params["min"]), float(params["max"])
        if lo == hi:
            return np.full(n, lo)
        x = float(params["mean"]) + float(params["std_dev"]) * rng.standard_normal(n)
        return np.clip(x, lo, hi)
    if kind == "exponential":
        return rng.exponential(float(params["mean"]), n)
    if kind == "pareto_lognormal":
        u = rng.random(n)
        pareto = u < float(params["mix_weight"])
        out = np.empty(n)
        k = int(pareto.sum())
        v = rng.random(k)
        v[v == 0.0] = np.finfo(float).tiny
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            out[pareto] = float(params["xm"]) / v ** (1.0 / float(params["alpha"]))
            out[~pareto] = np.exp(float(params["mu"]) + float(params["sigma"]) * rng.standard_normal(n - k))
        out[~np.isfinite(out)] = 1.0
        return out
    if kind == "constant":
        return np.full(n, math.floor(float(params["value"])), dtype=float)
    if kind == "empirical":
        bins = sorted((int(c), float(p)) for c, p in params.items() if float(p) > 0)
        counts = np.array([c for c, _ in bins], dtype=float)
        if len(bins) == 1:
            return np.full(n, counts[0])
        cdf = np.cumsum([p for _, p in bins]) / sum(p for _, p in bins)
        cdf[-1] = 1.0
        return counts[np.searchsorted(cdf, rng.random(n), side="left")]
    raise ValueError(f"unknown sampler {kind!r}")


def lengths(kind: str, params: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` token lengths: integers in [1, 1,048,576]."""
    x = raw_values(kind, params, rng, n)
    if kind not in ("constant", "empirical"):
        x = _round_half_up(x)
    np.clip(x, 1, MAX_TOKEN_LENGTH, out=x)
    return x.astype(np.int64)


def ratios(kind: str, params: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` reason ratios in [0, 1] (the sampler's value / 100)."""
    x = raw_values(kind, params, rng, n)
    if kind not in ("constant", "empirical"):
        x = _round_half_up(x)
    return np.clip(x / 100.0, 0.0, 1.0)


def weibull_shape(cv: float) -> float:
    """The Weibull shape k whose coefficient of variation is ``cv`` (bisection on log k over [0.05, 500])."""

    def cv_of(k: float) -> float:
        return math.sqrt(max(0.0, math.exp(math.lgamma(1 + 2 / k) - 2 * math.lgamma(1 + 1 / k)) - 1))

    lo, hi = math.log(0.05), math.log(500.0)  # cv falls as k grows
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if cv_of(math.exp(mid)) > cv:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return math.exp(0.5 * (lo + hi))


def gaps(process: str, cv: float, mean_us: float, rng: np.random.Generator, n: int,
         weibull_k: float | None = None) -> np.ndarray:
    """``n`` inter-arrival gaps in ticks, ``max(1, floor(gap))``, of mean ``mean_us`` before flooring."""
    if process == "poisson" or (process == "gamma" and cv > GAMMA_MAX_CV):
        x = rng.exponential(mean_us, n)
    elif process == "gamma":
        x = rng.gamma(1.0 / (cv * cv), cv * cv * mean_us, n)
    elif process == "weibull":
        k = weibull_k if weibull_k is not None else weibull_shape(cv)
        x = mean_us / math.gamma(1 + 1 / k) * rng.weibull(k, n)
    elif process == "constant":
        x = np.full(n, mean_us)
    else:
        raise ValueError(f"unknown arrival process {process!r}")
    out = np.floor(x)
    np.maximum(out, 1, out=out)
    return out.astype(np.int64)

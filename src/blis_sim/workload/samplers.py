"""Length samplers and arrival processes of workload specs (ENGINE.md §10.4, §10.5), vectorised with numpy.

Length samplers are built on uniforms: every value of a sampler uses a fixed number of ``random()`` draws (one 64-bit
output each) from the client's length stream, so a request's draws, in §10.5's order, are a fixed run of uniforms
and ``n`` requests are one vectorised call (``draw_layout``). Call shapes (§3.2), per value:

* ``gaussian``: one uniform u, ``z = Φ⁻¹(u)`` (``scipy.special.ndtri``), none when min == max;
* ``exponential``: one uniform u, ``x = −mean · ln(1 − u)``;
* ``empirical``: one uniform (none for a single bin); ``constant``: none;
* ``pareto_lognormal``: two uniforms u, w: u < mix_weight gives the Pareto ``xm / v^(1/alpha)`` with v = w (0 replaced
  by the smallest positive float), otherwise the lognormal ``exp(mu + sigma · Φ⁻¹(w))``.

``lengths(kind, params, rng, n)`` draws ``n`` token lengths (integers >= 1, clamped to 1,048,576); ``ratios`` draws
reason ratios (the same samplers without the >= 1 floor, divided by 100, clamped to [0, 1]); ``gaps(process, cv,
mean_us, rng, n)`` draws ``n`` inter-arrival gaps in whole ticks (``max(1, floor(gap))``) with numpy's own
exponential, gamma and Weibull draws (one vectorised call: the same values as one scalar call per gap).
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
LENGTH, RATIO, COUNT = "length", "ratio", "count"
_TINY = np.finfo(float).tiny


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5)


def _ndtri(u: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri  # imported on first use: only workload specs draw normals this way

    return ndtri(u)


class Part:
    """One sampled value of a request: a sampler (``width`` uniforms per value) and what its value becomes (a
    length, a reason ratio or a count)."""

    __slots__ = ("kind", "params", "role", "width", "_const", "_counts", "_cdf")

    def __init__(self, kind: str, params: Mapping[str, Any], role: str = LENGTH) -> None:
        self.kind, self.params, self.role = kind, params, role
        self.width = 1
        self._const = 0.0
        if kind == "gaussian":
            if float(params["min"]) == float(params["max"]):
                self.width, self._const = 0, float(params["min"])
        elif kind == "empirical":
            bins = sorted((int(c), float(p)) for c, p in params.items() if float(p) > 0)
            self._counts = np.array([c for c, _ in bins], dtype=float)
            if len(bins) == 1:
                self.width, self._const = 0, float(bins[0][0])
            else:
                cdf = np.cumsum([p for _, p in bins]) / sum(p for _, p in bins)
                cdf[-1] = 1.0
                self._cdf = cdf
        elif kind == "pareto_lognormal":
            self.width = 2
        elif kind == "constant":
            self.width, self._const = 0, float(math.floor(float(params["value"])))
        elif kind != "exponential":
            raise ValueError(f"unknown sampler {kind!r}")

    def raw(self, u: np.ndarray) -> np.ndarray:
        """Values before rounding from ``u``, shape (n, width)."""
        n, p = u.shape[0], self.params
        if self.width == 0:
            return np.full(n, self._const)
        if self.kind == "gaussian":
            x = float(p["mean"]) + float(p["std_dev"]) * _ndtri(u[:, 0])
            return np.clip(x, float(p["min"]), float(p["max"]))
        if self.kind == "exponential":
            return -float(p["mean"]) * np.log1p(-u[:, 0])
        if self.kind == "empirical":
            return self._counts[np.searchsorted(self._cdf, u[:, 0], side="left")]
        pareto = u[:, 0] < float(p["mix_weight"])
        w = u[:, 1]
        out = np.empty(n)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            v = np.where(w[pareto] == 0.0, _TINY, w[pareto])
            out[pareto] = float(p["xm"]) / v ** (1.0 / float(p["alpha"]))
            out[~pareto] = np.exp(float(p["mu"]) + float(p["sigma"]) * _ndtri(w[~pareto]))
        out[~np.isfinite(out)] = 1.0
        return out

    def finish(self, x: np.ndarray) -> np.ndarray:
        """Raw values -> lengths (int64 in [1, 1,048,576]), reason ratios (float in [0, 1]) or counts (int64 >= 0)."""
        if self.kind not in ("constant", "empirical"):
            x = _round_half_up(x)
        if self.role == RATIO:
            return np.clip(x / 100.0, 0.0, 1.0)
        if self.role == COUNT:
            return np.maximum(np.floor(x), 0).astype(np.int64)
        return np.clip(x, 1, MAX_TOKEN_LENGTH).astype(np.int64)

    def values(self, u: np.ndarray) -> np.ndarray:
        return self.finish(self.raw(u))


def lengths(kind: str, params: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` token lengths: integers in [1, 1,048,576]."""
    part = Part(kind, params)
    return part.values(rng.random(n * part.width).reshape(n, part.width))


def ratios(kind: str, params: Mapping[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` reason ratios in [0, 1] (the sampler's value / 100)."""
    part = Part(kind, params, RATIO)
    return part.values(rng.random(n * part.width).reshape(n, part.width))


def draw_layout(items: list[Part | tuple[Part, Part]], rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """``n`` requests, each drawing ``items`` in order from ``rng``: a ``Part`` one value, a (count, size) pair the
    count c then c sizes. Returns per item the requests' values (a pair: each request's summed sizes, int64). Without
    pairs every request uses the same number of uniforms: one ``random`` call for all of them."""
    if all(isinstance(p, Part) for p in items):
        widths = [p.width for p in items]  # type: ignore[union-attr]
        k = sum(widths)
        block = rng.random(n * k).reshape(n, k)
        out, j = [], 0
        for p, w in zip(items, widths):
            out.append(p.values(block[:, j:j + w]))  # type: ignore[union-attr]
            j += w
        return out
    # a multimodal layout: the number of uniforms depends on the counts drawn, request by request
    tape = _Tape(rng)
    cols: list[list[float]] = [[] for _ in items]
    for _ in range(n):
        for j, p in enumerate(items):
            if isinstance(p, Part):
                cols[j].append(float(p.raw(tape.take(1, p.width))[0]))
                continue
            count_part, size_part = p
            c = int(count_part.values(tape.take(1, count_part.width))[0])
            cols[j].append(float(size_part.values(tape.take(c, size_part.width)).sum()) if c else 0.0)
    return [p.finish(np.array(col)) if isinstance(p, Part) else np.array(col, dtype=np.int64)
            for p, col in zip(items, cols)]


class _Tape:
    """Uniforms of a stream read in order, drawn in blocks (the same values as one ``random()`` call each)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng, self.buf, self.pos = rng, np.empty(0), 0

    def take(self, rows: int, width: int) -> np.ndarray:
        k = rows * width
        if self.pos + k > len(self.buf):
            self.buf = np.concatenate((self.buf[self.pos:], self.rng.random(max(k, 1 << 14))))
            self.pos = 0
        out = self.buf[self.pos:self.pos + k].reshape(rows, width)
        self.pos += k
        return out


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

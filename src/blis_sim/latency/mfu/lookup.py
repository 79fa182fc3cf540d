"""Interpolating the measured tables (ROOFLINE.md §9 D4, D5), and the piecewise-linear form the model evaluates.

Every lookup returns a ``Lookup``: the value, its distance from the nearest measured point (in factors of two: the
Euclidean norm of the log2 differences over the table's coordinates, 0 for an exact hit) and whether the query lies
inside the measured grid (False means the value is an extrapolation by the rule of that table). Exact hits return
the measured latency itself.

Coordinates, chosen by leave-one-out tests on the H100 tables (each interior point predicted from its neighbours
two grid steps apart; see scripts/fit_efficiency.py):

* GEMM: log latency, multilinear in (log m, log k, log n) (D4; mean error 4% along m, 2% along k). Outside the grid
  the latency at the nearest grid point is scaled by the ratio of plain roofline times (max of FLOPs / peak and
  bytes / bandwidth) of the query and that point: proportional to k·n for a wider or narrower GEMM, flat below the
  smallest m (the memory-bound floor of D4), proportional to m above the largest. The same ratio moves a table
  measured in one dtype to the model's dtype.
* Decode attention: latency, bilinear in (batch_size, kv_len) themselves (mean error 2-3%; in log2 coordinates it is
  22-23%, because the kernel time is close to a + c·batch·kv_len, which bilinear interpolation reproduces exactly and
  log-space interpolation bends). Missing grid corners are filled along the batch axis by the same linear rule and
  reported as not measured. Below the smallest kv_len the row runs linearly to the table's fastest cell at kv_len 0
  (a launch cost plus work proportional to kv_len); beyond the largest batch or kv_len the edge segment is extended.
* Prefill attention: MFU recomputed from latency (never the rounded column), linear in log2 seq_len (mean 7% vs 12%
  for log-log latency), clamped at the ends.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .tables import DecodeTable, GemmDtype, GemmTable, PrefillTable


class Lookup(NamedTuple):
    value: float  # microseconds (latency lookups) or a fraction (MFU lookups)
    distance: float  # log2 distance to the nearest measured point; 0.0 for an exact hit
    in_range: bool  # inside the measured grid (an interpolation), else an extrapolation


def _bracket(grid: np.ndarray, x: float, log: bool) -> tuple[int, int, float]:
    """(i0, i1, w) with x ≈ (1-w)·grid[i0] + w·grid[i1] (in log space when ``log``), x already clamped to the grid."""
    i = int(np.searchsorted(grid, x, side="right")) - 1
    if i >= len(grid) - 1:
        return len(grid) - 1, len(grid) - 1, 0.0
    i = max(i, 0)
    lo, hi = float(grid[i]), float(grid[i + 1])
    if x == lo:
        return i, i, 0.0
    w = (math.log(x / lo) / math.log(hi / lo)) if log else (x - lo) / (hi - lo)
    return i, i + 1, w


# log2 of grid values is taken with math.log2, the function the queries use: numpy's vectorised log2 may differ from
# it in the last bit, and by CPU (its SIMD kernels), which would make a query on a grid value miss the exact hit.
def _log2s(values) -> list[float]:
    return [math.log2(float(v)) for v in values]


def _log2_gap(grid: np.ndarray, x: float) -> float:
    lx = math.log2(x)
    return min(abs(g - lx) for g in _log2s(grid))


def suffix_min(values: np.ndarray, axis: int) -> np.ndarray:
    """Each cell replaced by the smallest value at or after it along ``axis`` (a non-decreasing envelope).

    Used by the model, never by the raw lookups: a kernel with more work is never priced faster than one with less
    (the published decode tables' first row, batch 1 at the smallest kv_len, is a warm-up artefact about 1.7x the
    cell after it; the GEMM table's small-m rows wobble by 2-3%).
    """
    flipped = np.flip(values, axis=axis)
    return np.flip(np.minimum.accumulate(flipped, axis=axis), axis=axis)


# ---------------------------------------------------------------------------------------------------------------------
# GEMM
# ---------------------------------------------------------------------------------------------------------------------


class GemmLookup:
    """Latency of an m x k x n GEMM from a ``GemmTable``, and its transfer to another dtype."""

    def __init__(self, table: GemmTable, peak_flops: float, peak_bw: float, monotone: bool = False) -> None:
        self.table = table
        self.peak_flops = peak_flops  # dense BF16 FLOP/s of the GPU
        self.peak_bw = peak_bw  # B/s
        self._lat = suffix_min(table.latency_us, axis=2) if monotone else table.latency_us
        self._ms, self._ks, self._ns = table.ms, table.ks, table.ns
        self._own = table.gemm_dtype

    def roofline_s(self, m: float, k: float, n: float, dtype: GemmDtype) -> float:
        """Plain roofline time (no efficiency) of the GEMM in ``dtype`` at the GPU's peaks."""
        compute = 2.0 * m * k * n / (self.peak_flops * dtype.peak_factor)
        memory = dtype.memory_bytes(m, k, n) / self.peak_bw
        return compute if compute > memory else memory

    def _clamp(self, m: float, k: float, n: float) -> tuple[float, float, float]:
        ms, ks, ns = self._ms, self._ks, self._ns
        return (min(max(m, ms[0]), ms[-1]), min(max(k, ks[0]), ks[-1]), min(max(n, ns[0]), ns[-1]))

    def _grid_latency_us(self, m: float, k: float, n: float) -> float:
        """Multilinear interpolation of log latency at a point inside the grid (geometric weights, exact on hits)."""
        im0, im1, wm = _bracket(self._ms, m, log=True)
        ik0, ik1, wk = _bracket(self._ks, k, log=True)
        in0, in1, wn = _bracket(self._ns, n, log=True)
        lat = self._lat
        out = 1.0
        for ik, fk in ((ik0, 1.0 - wk), (ik1, wk)):
            if fk == 0.0:
                continue
            for jn, fn in ((in0, 1.0 - wn), (in1, wn)):
                if fn == 0.0:
                    continue
                for lm, fm in ((im0, 1.0 - wm), (im1, wm)):
                    if fm == 0.0:
                        continue
                    f = fk * fn * fm
                    out *= float(lat[ik, jn, lm]) if f == 1.0 else float(lat[ik, jn, lm]) ** f
        return out

    def latency_us(self, m: float, k: float, n: float) -> Lookup:
        """The table's own dtype: measured latency, interpolated, or extrapolated by the roofline ratio (flagged)."""
        own = self._own
        mc, kc, nc = self._clamp(m, k, n)
        value = self._grid_latency_us(mc, kc, nc)
        inside = (mc, kc, nc) == (m, k, n)
        if not inside:
            value *= self.roofline_s(m, k, n, own) / self.roofline_s(mc, kc, nc, own)
        return Lookup(value, self.distance(m, k, n), inside)

    def seconds(self, m: float, k: float, n: float, dtype: GemmDtype) -> float:
        """Time of the GEMM in the model's ``dtype``: the table latency at the nearest grid point times the ratio of
        the model's roofline time at the query to the table dtype's roofline time at that point."""
        mc, kc, nc = self._clamp(m, k, n)
        ratio = self.roofline_s(m, k, n, dtype) / self.roofline_s(mc, kc, nc, self._own)
        return self._grid_latency_us(mc, kc, nc) * 1e-6 * ratio

    def distance(self, m: float, k: float, n: float) -> float:
        return math.hypot(_log2_gap(self._ms, m), _log2_gap(self._ks, k), _log2_gap(self._ns, n))

    def shape_outside(self, k: float, n: float) -> float:
        """How far (k, n) lies outside the table's (k, n) box, as the largest factor (1.0 = inside)."""
        ks, ns = self._ks, self._ns
        return max(ks[0] / k, k / ks[-1], ns[0] / n, n / ns[-1], 1.0)


# ---------------------------------------------------------------------------------------------------------------------
# Piecewise-linear functions of the mean decode context
# ---------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PiecewiseLinear:
    """f(x) = max(floor, values[j] + slopes[j]·(x − knots[j])) with j the segment of x; the first and last segments
    extend beyond the knots. Evaluated identically by ``__call__`` (floats) and ``many`` (numpy arrays)."""

    knots: tuple[float, ...]
    values: tuple[float, ...]
    slopes: tuple[float, ...]
    floor: float

    @classmethod
    def through(cls, knots, values, floor: float) -> "PiecewiseLinear":
        knots = tuple(float(x) for x in knots)
        values = tuple(float(v) for v in values)
        slopes = [(values[j + 1] - values[j]) / (knots[j + 1] - knots[j]) for j in range(len(knots) - 1)]
        slopes.append(slopes[-1] if slopes else 0.0)
        return cls(knots, values, tuple(slopes), float(floor))

    def scaled(self, factor: float) -> "PiecewiseLinear":
        return PiecewiseLinear(self.knots, tuple(v * factor for v in self.values),
                               tuple(s * factor for s in self.slopes), self.floor * factor)

    def __call__(self, x: float) -> float:
        j = bisect.bisect_right(self.knots, x) - 1
        if j < 0:
            j = 0
        v = self.values[j] + self.slopes[j] * (x - self.knots[j])
        return v if v > self.floor else self.floor

    def many(self, x: np.ndarray) -> np.ndarray:
        knots = np.asarray(self.knots)
        j = np.searchsorted(knots, x, side="right") - 1
        j[j < 0] = 0
        v = np.asarray(self.values)[j] + np.asarray(self.slopes)[j] * (x - knots[j])
        return np.where(v > self.floor, v, self.floor)


# ---------------------------------------------------------------------------------------------------------------------
# Decode attention
# ---------------------------------------------------------------------------------------------------------------------


def _fill_column(batch: np.ndarray, col: np.ndarray) -> np.ndarray:
    """Missing cells of one kv_len column, linear in batch_size through the measured ones (edges extended)."""
    have = ~np.isnan(col)
    if have.all():
        return col
    xb, yb = batch[have], col[have]
    out = col.copy()
    for i in np.nonzero(~have)[0]:
        x = batch[i]
        if len(xb) == 1:
            out[i] = yb[0] * x / xb[0]
            continue
        j = int(np.clip(np.searchsorted(xb, x) - 1, 0, len(xb) - 2))
        out[i] = yb[j] + (yb[j + 1] - yb[j]) * (x - xb[j]) / (xb[j + 1] - xb[j])
    return out


class DecodeLookup:
    """Latency of one layer of decode attention at (batch_size, kv_len) from a ``DecodeTable``."""

    def __init__(self, table: DecodeTable, monotone: bool = False) -> None:
        self.table = table
        b, kv, lat = table.batch, table.kv_len, table.latency_us
        self.measured = ~np.isnan(lat)
        filled = lat.copy()
        for j in range(lat.shape[1]):
            if self.measured[:, j].any():
                filled[:, j] = _fill_column(b, lat[:, j])
        for i in range(lat.shape[0]):  # columns with no measurement at all: along kv_len
            if np.isnan(filled[i]).any():
                filled[i] = _fill_column(kv, filled[i])
        if monotone:
            filled = suffix_min(suffix_min(filled, axis=0), axis=1)
        self.grid = filled
        self.floor = float(np.nanmin(lat))

    def row(self, batch: float) -> PiecewiseLinear:
        """Latency in microseconds as a function of kv_len at this batch size (linear in batch between rows)."""
        b = self.table.batch
        i = int(np.clip(np.searchsorted(b, batch, side="right") - 1, 0, len(b) - 2)) if len(b) > 1 else 0
        if len(b) == 1:
            values = self.grid[0] * (batch / b[0])
        else:
            w = (batch - b[i]) / (b[i + 1] - b[i])
            if w == 0.0 or w == 1.0:  # a measured row: its own values, bit for bit
                values = self.grid[i] if w == 0.0 else self.grid[i + 1]
            else:
                values = self.grid[i] + (self.grid[i + 1] - self.grid[i]) * w
        # Below the smallest kv_len: the line from (0, the table's fastest cell) to the first knot, i.e. a launch
        # cost plus work proportional to kv_len (extending the first measured segment amplifies its noise).
        first = min(self.floor, float(values[0]))
        return PiecewiseLinear.through((0.0, *self.table.kv_len), (first, *values), self.floor)

    def latency_us(self, batch: float, kv_len: float) -> Lookup:
        value = self.row(batch)(kv_len)
        t = self.table
        inside = t.batch[0] <= batch <= t.batch[-1] and t.kv_len[0] <= kv_len <= t.kv_len[-1]
        if inside:  # every cell the bilinear interpolation used must have been measured
            ib0, ib1, _ = _bracket(t.batch, batch, log=False)
            ik0, ik1, _ = _bracket(t.kv_len, kv_len, log=False)
            inside = bool(self.measured[np.ix_([ib0, ib1], [ik0, ik1])].all())
        return Lookup(value, self.distance(batch, kv_len), inside)

    def distance(self, batch: float, kv_len: float) -> float:
        ii, jj = np.nonzero(self.measured)
        lb, lk = math.log2(batch), math.log2(kv_len)
        return math.sqrt(min((b - lb) ** 2 + (k - lk) ** 2
                             for b, k in zip(_log2s(self.table.batch[ii]), _log2s(self.table.kv_len[jj]))))


# ---------------------------------------------------------------------------------------------------------------------
# Prefill attention
# ---------------------------------------------------------------------------------------------------------------------


class PrefillLookup:
    """MFU and latency of one layer of causal prefill attention of ``seq_len`` tokens from a ``PrefillTable``."""

    def __init__(self, table: PrefillTable, peak_flops: float) -> None:
        self.table = table
        self.peak_flops = peak_flops
        self.flops_per_s2 = 2.0 * table.heads * table.head_dim  # causal FLOPs = 2·H·dh·S² (the tables' convention)
        s = table.seq_len
        self._log2s = tuple(_log2s(s))
        self._mfu = tuple(float(x) for x in self.flops_per_s2 * s * s / (table.latency_us * 1e-6 * peak_flops))

    def mfu_value(self, seq_len: float) -> float:
        """``mfu(seq_len).value`` without the diagnostics (the model's per-step path)."""
        x = math.log2(seq_len)
        xs, ys = self._log2s, self._mfu
        if x <= xs[0]:
            return ys[0]
        if x >= xs[-1]:
            return ys[-1]
        j = bisect.bisect_right(xs, x) - 1
        return ys[j] + (ys[j + 1] - ys[j]) * (x - xs[j]) / (xs[j + 1] - xs[j])

    def mfu(self, seq_len: float) -> Lookup:
        s = self.table.seq_len
        return Lookup(self.mfu_value(seq_len), _log2_gap(s, seq_len), bool(s[0] <= seq_len <= s[-1]))

    def latency_us(self, seq_len: float) -> Lookup:
        hit = np.nonzero(self.table.seq_len == seq_len)[0]
        mfu = self.mfu(seq_len)
        if len(hit):
            return Lookup(float(self.table.latency_us[hit[0]]), 0.0, True)
        value = self.flops_per_s2 * seq_len * seq_len / (self.peak_flops * mfu.value) * 1e6
        return Lookup(value, mfu.distance, mfu.in_range)

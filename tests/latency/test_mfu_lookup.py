"""Table lookups (ROOFLINE.md §9 D4, D5): exact hits, interpolation between neighbours, out-of-range flagged."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mfu_fixtures import write_tables

from blis_sim.latency.mfu.lookup import DecodeLookup, GemmLookup, PiecewiseLinear, PrefillLookup
from blis_sim.latency.mfu.tables import MFUDatabase

PEAK, BW = 989.5e12, 3.35e12


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> MFUDatabase:
    return MFUDatabase.load(write_tables(tmp_path_factory.mktemp("bench")), "h100", 989.5, 3.35)


@pytest.fixture(scope="module")
def shipped(bench_data) -> MFUDatabase:
    return MFUDatabase.load(bench_data, "H100", 989.5, 3.35)


def databases(request) -> list[MFUDatabase]:
    out = [request.getfixturevalue("db")]
    try:
        out.append(request.getfixturevalue("shipped"))
    except pytest.skip.Exception:
        pass
    return out


# ---------------------------------------------------------------- exact
def test_exact_hits_return_the_measured_latency(request):
    for db in databases(request):
        g, lookup = db.gemm, GemmLookup(db.gemm, PEAK, BW)
        for i, k in enumerate(g.ks):
            for j, n in enumerate(g.ns):
                for l, m in enumerate(g.ms):
                    hit = lookup.latency_us(m, k, n)
                    assert hit == (g.latency_us[i, j, l], 0.0, True)
        for tables in db.decode.values():
            for t in tables:
                lookup = DecodeLookup(t)
                for i, b in enumerate(t.batch):
                    for j, kv in enumerate(t.kv_len):
                        if not np.isnan(t.latency_us[i, j]):
                            assert lookup.latency_us(b, kv) == (t.latency_us[i, j], 0.0, True)
        for t in db.prefill.values():
            lookup = PrefillLookup(t, PEAK)
            for s, lat in zip(t.seq_len, t.latency_us):
                assert lookup.latency_us(s) == (lat, 0.0, True)
                assert lookup.mfu(s).value == pytest.approx(2 * t.heads * t.head_dim * s * s / (lat * 1e-6 * PEAK))


# ---------------------------------------------------------------- between
def test_gemm_interpolation_stays_between_neighbours(request):
    for db in databases(request):
        g, lookup = db.gemm, GemmLookup(db.gemm, PEAK, BW)
        for i, k in enumerate(g.ks):
            for j, n in enumerate(g.ns):
                for l in range(len(g.ms) - 1):
                    lo, hi = sorted((g.latency_us[i, j, l], g.latency_us[i, j, l + 1]))
                    m = math.sqrt(g.ms[l] * g.ms[l + 1])
                    hit = lookup.latency_us(m, k, n)
                    assert lo <= hit.value <= hi and hit.in_range and hit.distance > 0
        # between two (k, n) pairs at a grid m
        for l, m in enumerate(g.ms):
            k = math.sqrt(g.ks[0] * g.ks[1])
            lo, hi = sorted((g.latency_us[0, 0, l], g.latency_us[1, 0, l]))
            assert lo <= lookup.latency_us(m, k, g.ns[0]).value <= hi


def test_decode_interpolation_stays_between_neighbours(request):
    for db in databases(request):
        for tables in db.decode.values():
            for t in tables:
                lookup, lat = DecodeLookup(t), t.latency_us
                for i in range(len(t.batch) - 1):
                    for j in range(len(t.kv_len) - 1):
                        corners = lat[i:i + 2, j:j + 2]
                        if np.isnan(corners).any():
                            continue
                        b, kv = (t.batch[i] + t.batch[i + 1]) / 2, (t.kv_len[j] + t.kv_len[j + 1]) / 2
                        hit = lookup.latency_us(b, kv)
                        assert corners.min() <= hit.value <= corners.max() and hit.in_range
                        assert hit.value == pytest.approx(corners.mean())  # bilinear at the centre


def test_prefill_interpolation_stays_between_neighbours(request):
    for db in databases(request):
        for t in db.prefill.values():
            lookup = PrefillLookup(t, PEAK)
            for a, b in zip(t.seq_len, t.seq_len[1:]):
                m = math.sqrt(a * b)
                lo, hi = sorted((lookup.mfu(a).value, lookup.mfu(b).value))
                hit = lookup.mfu(m)
                assert lo <= hit.value <= hi and hit.in_range and hit.value > 0


# ---------------------------------------------------------------- outside
def test_out_of_range_is_flagged(db):
    g = GemmLookup(db.gemm, PEAK, BW)
    below_m = g.latency_us(1, 2048, 4096)
    assert not below_m.in_range and below_m.distance == pytest.approx(3.0)  # 8 -> 1: three factors of two
    assert below_m.value == pytest.approx(db.gemm.latency_us[0, 0, 0], rel=0.01)  # the memory-bound floor (D4)
    wide = g.latency_us(8, 2048, 4 * 16384)
    assert not wide.in_range and wide.distance == pytest.approx(2.0)
    assert wide.value == pytest.approx(4 * db.gemm.latency_us[0, 1, 0], rel=0.01)  # ~ scales with k·n
    assert g.shape_outside(2048, 65536) == pytest.approx(4.0) and g.shape_outside(4096, 8192) == 1.0

    d = DecodeLookup(db.decode_table("32-8-128", 1, 2.0))
    beyond = d.latency_us(16, 65536)
    assert not beyond.in_range and beyond.distance == pytest.approx(2.0)
    missing_corner = d.latency_us(100, 10000)  # brackets the unmeasured (128, 16384) cell
    assert not missing_corner.in_range and missing_corner.value > 0

    p = PrefillLookup(db.prefill["32-8-128"], PEAK)
    short, long = p.mfu(256), p.mfu(65536)
    assert not short.in_range and not long.in_range and short.distance == pytest.approx(2.0)
    assert short.value == p.mfu(1024).value and long.value == p.mfu(16384).value  # clamped (D5)


def test_decode_rows_never_below_the_fastest_cell_and_monotone_envelope(request):
    for db in databases(request):
        for tables in db.decode.values():
            for t in tables:
                raw, env = DecodeLookup(t), DecodeLookup(t, monotone=True)
                floor = np.nanmin(t.latency_us)
                for b in (1, 3, 16, 100, 512, 900):
                    row = env.row(b)
                    xs = np.linspace(0, 2 * t.kv_len[-1], 97)
                    ys = row.many(xs)
                    assert (ys >= floor).all() and (np.diff(ys) >= 0).all()
                    assert (raw.row(b).many(xs) >= floor).all()


@settings(max_examples=200, deadline=None)
@given(knots=st.lists(st.floats(0, 1e6), min_size=1, max_size=8, unique=True),
       values=st.lists(st.floats(0, 1e4), min_size=8, max_size=8),
       xs=st.lists(st.floats(0, 2e6), min_size=1, max_size=30))
def test_piecewise_linear_scalar_and_vector_agree_bit_for_bit(knots, values, xs):
    knots = sorted(knots)
    if len(knots) > 1 and min(np.diff(knots)) < 1e-3:
        return
    f = PiecewiseLinear.through(knots, values[: len(knots)], floor=1.0)
    assert f.many(np.array(xs)).tolist() == [f(x) for x in xs]

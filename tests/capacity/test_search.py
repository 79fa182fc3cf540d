"""Bracketing and bisection on synthetic monotone predicates: the known threshold is found to the tolerance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sim.capacity.search import RateSearch, find_max_rate


@pytest.mark.parametrize("threshold", [0.37, 1.0, 12.5, 37.3, 999.0])
@pytest.mark.parametrize("start", [0.5, 1.0, 50.0])
def test_finds_a_known_threshold(threshold, start):
    res = find_max_rate(lambda r: r <= threshold, start=start, tolerance=0.02)
    assert res.limited_by == "slo"
    assert res.lo is not None and res.hi is not None
    assert res.lo <= threshold < res.hi
    assert res.hi - res.lo <= 0.02 * res.hi
    assert res.max_rate == res.lo
    # every probe's verdict is the predicate's
    assert all(ok == (rate <= threshold) for rate, ok, _ in res.history)


@settings(max_examples=60, deadline=None)
@given(threshold=st.floats(0.02, 5000), start=st.floats(0.05, 2000), tol=st.sampled_from([0.005, 0.02, 0.1]))
def test_any_threshold_within_tolerance(threshold, start, tol):
    res = find_max_rate(lambda r: r <= threshold, start=start, tolerance=tol, min_rate=0.01, max_rate=1e4)
    assert res.lo <= threshold < res.hi
    assert res.hi - res.lo <= tol * res.hi
    assert res.probes <= 40


def test_reasons_and_kinds_come_from_the_failing_probe():
    def verdict(rate):
        if rate > 40:
            return False, "saturated", "saturation"
        if rate > 30:
            return False, "ttft_p90_ms 250 > 200", "slo"
        return True, ""

    res = find_max_rate(verdict, start=8)
    assert 29.4 <= res.max_rate <= 30 and res.limited_by == "slo" and "ttft_p90_ms" in res.reason

    res = find_max_rate(lambda r: (r <= 55, "" if r <= 55 else "saturated", "saturation"), start=8)
    assert res.limited_by == "saturation" and 53.9 <= res.max_rate <= 55


def test_bounds():
    res = find_max_rate(lambda r: True, start=3, max_rate=100)
    assert res.max_rate == 100 and res.hi is None and res.limited_by == "max-rate"
    res = find_max_rate(lambda r: False, start=3, min_rate=0.5)
    assert res.max_rate == 0 and res.lo is None and res.limited_by == "min-rate"
    assert res.history[-1][0] == 0.5


def test_a_failed_probe_ends_the_search():
    s = RateSearch(start=4)
    s.record(4, True)
    s.fail("internal error: boom")
    assert s.done and s.next_rate() is None
    assert s.result().limited_by == "error" and s.result().reason == "internal error: boom"


@pytest.mark.parametrize("kwargs", [{"tolerance": 0}, {"tolerance": 1.5}, {"min_rate": 0}, {"min_rate": 5,
                                                                                               "max_rate": 1}])
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        RateSearch(**kwargs)

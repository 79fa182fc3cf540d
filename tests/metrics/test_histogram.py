"""§13.2 statistics: the histogram gives exactly what sorting the full series gives."""

import math

from hypothesis import given
from hypothesis import strategies as st

from blis_sim.metrics.histogram import IntHistogram


def _hist(values):
    h = IntHistogram()
    for v in values:
        h.add(v)
    return h


def _reference_percentile_ms(xs, p):
    xs = sorted(xs)
    if not xs:
        return 0.0
    rank = (p * (len(xs) - 1)) / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    v = xs[lo] if lo == hi else xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)
    return v / 1000


def test_worked_example_18_3_itl():
    h = _hist([1001] + [1002] * 8 + [2051])
    assert h.mean_ms() == 1.1068
    assert h.percentiles_ms((90, 95, 99)) == [1.1068999999999996, 1.5789500000000007, 1.95659]


def test_empty_is_zero():
    h = IntHistogram()
    assert h.mean_ms() == 0.0 and h.percentiles_ms((50, 99)) == [0.0, 0.0]


@given(st.lists(st.integers(0, 10**7), max_size=300), st.sampled_from([50, 90, 95, 99]))
def test_matches_sorted_list(values, p):
    h = _hist(values)
    assert h.percentile_ms(p) == _reference_percentile_ms(values, p)
    if values:
        assert h.mean_ms() == (sum(values) / len(values)) / 1000


@given(st.lists(st.integers(0, 1000)), st.lists(st.integers(0, 1000)))
def test_merge_equals_concatenation(a, b):
    ha, hb = _hist(a), _hist(b)
    ha.merge(hb)
    assert ha.counts == _hist(a + b).counts

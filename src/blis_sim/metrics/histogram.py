"""Exact statistics of integer-tick series kept as value -> count histograms (ENGINE.md §13.2).

A histogram gives the same mean and percentiles as sorting the full list, in memory bounded by the number of
distinct values. The hot loop updates ``counts`` directly, through ``add_count``; everything else is here.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Any


def add_count(counts: dict[Any, int], value: Any, n: int) -> None:
    """``counts[value] += n``. The value is boxed once, on the call (the compiled engine would box an ``int`` key
    for the lookup and again for the store)."""
    counts[value] = counts.get(value, 0) + n


class IntHistogram:
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[int, int] = {}

    def add(self, value: int, count: int = 1) -> None:
        add_count(self.counts, value, count)

    def merge(self, other: "IntHistogram") -> None:
        counts = self.counts
        for value, n in other.counts.items():
            counts[value] = counts.get(value, 0) + n

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    @property
    def total(self) -> int:
        return sum(v * c for v, c in self.counts.items())

    def mean_ms(self) -> float:
        n = self.n
        return (self.total / n) / 1000 if n else 0.0

    def percentiles_ms(self, ps: tuple[int, ...]) -> list[float]:
        """Linear-interpolated percentiles on the sorted series (rank = p*(n-1)/100), in milliseconds."""
        return [v / 1000 for v in self.percentiles(ps)]

    def percentiles(self, ps: tuple[int, ...]) -> list[float]:
        """Linear-interpolated percentiles on the sorted series: rank = p*(n-1)/100, in ticks."""
        if not self.counts:
            return [0.0 for _ in ps]
        values = sorted(self.counts)
        cum = list(accumulate(self.counts[v] for v in values))  # cum[i] = items with value <= values[i]
        n = cum[-1]

        def at(pos: int) -> int:  # value at 0-based position pos of the sorted series
            return values[bisect_right(cum, pos)]

        out = []
        for p in ps:
            rank = (p * (n - 1)) / 100
            lo = int(rank)  # floor: rank >= 0
            hi = lo if rank == lo else lo + 1
            x_lo = at(lo)
            v = x_lo if lo == hi else x_lo + (at(hi) - x_lo) * (rank - lo)
            out.append(v)
        return out

    def percentile_ms(self, p: int) -> float:
        return self.percentiles_ms((p,))[0]

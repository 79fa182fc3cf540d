"""The largest request rate that meets every SLO: bracketing, then bisection to a stated tolerance.

``RateSearch`` is the search of one configuration as a state machine (``next_rate`` / ``record``), so that a driver
can interleave the probes of many configurations on one backend; ``find_max_rate`` runs it against any monotone
predicate (the tests use synthetic ones).

Bracketing starts at ``start``: while the probe is feasible the rate doubles (up to ``max_rate``), while it is not it
halves (down to ``min_rate``). Bisection then halves [lo, hi] (lo feasible, hi not) until ``hi - lo <= tolerance *
hi``. The answer is lo, with the reason hi failed: an SLO missed, or saturation (the server no longer keeps up with
the arrivals; then every latency SLO would fail at any higher rate too, and the answer is limited by capacity, not by
the SLO). Feasibility is assumed monotone in the rate (latency grows with load); the probes are kept, so a
non-monotone curve shows in the report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

DEFAULT_TOLERANCE = 0.02
DEFAULT_MIN_RATE = 0.01
DEFAULT_MAX_RATE = 10_000.0


@dataclass
class SearchResult:
    max_rate: float  # 0.0 when even min_rate fails
    lo: float | None  # largest feasible rate probed
    hi: float | None  # smallest infeasible rate probed (None: max_rate itself was feasible)
    limited_by: str  # "slo" | "saturation" | "max-rate" | "min-rate" | "error"
    reason: str  # why hi failed (or why no rate passed), worded
    probes: int
    history: list[tuple[float, bool, str]] = field(default_factory=list)


def _round(rate: float) -> float:
    """Rates with 6 significant digits: probes read well and repeat exactly."""
    return float(f"{rate:.6g}")


class RateSearch:
    def __init__(self, start: float = 1.0, tolerance: float = DEFAULT_TOLERANCE, min_rate: float = DEFAULT_MIN_RATE,
                 max_rate: float = DEFAULT_MAX_RATE) -> None:
        if not (0 < tolerance < 1):
            raise ValueError(f"--tolerance must be a number in (0, 1), got {tolerance}")
        if not (0 < min_rate <= max_rate) or not math.isfinite(max_rate):
            raise ValueError(f"--min-rate and --max-rate must satisfy 0 < min-rate <= max-rate, got {min_rate} and "
                             f"{max_rate}")
        self.tolerance = tolerance
        self.min_rate = min_rate
        self.max_rate = max_rate
        self.start = _round(min(max(start, min_rate), max_rate))
        self.lo: float | None = None
        self.hi: float | None = None
        self.hi_reason = ""
        self.hi_kind = ""
        self.history: list[tuple[float, bool, str]] = []
        self.error = ""
        self._next: float | None = self.start
        self._done = False

    # -------------------------------------------------------------------------------------------- driving
    def next_rate(self) -> float | None:
        """The rate to probe next, or None when the search is over."""
        return None if self._done else self._next

    def record(self, rate: float, feasible: bool, reason: str = "", kind: str = "slo") -> None:
        """The verdict of the probe at ``rate``; ``kind`` says what failed ("slo" or "saturation")."""
        self.history.append((rate, feasible, reason))
        if feasible:
            self.lo = rate if self.lo is None else max(self.lo, rate)
        elif self.hi is None or rate <= self.hi:
            self.hi, self.hi_reason, self.hi_kind = rate, reason, kind
        self._next = self._plan()
        if self._next is None:
            self._done = True

    def fail(self, error: str) -> None:
        self.error = error
        self._done = True

    @property
    def done(self) -> bool:
        return self._done

    def _plan(self) -> float | None:
        lo, hi = self.lo, self.hi
        if hi is None:  # everything feasible so far: go up
            assert lo is not None
            if lo >= self.max_rate:
                return None
            return _round(min(lo * 2, self.max_rate))
        if lo is None:  # nothing feasible yet: go down
            if hi <= self.min_rate:
                return None
            return _round(max(hi / 2, self.min_rate))
        if hi - lo <= self.tolerance * hi:
            return None
        mid = _round((lo + hi) / 2)
        return None if mid in (lo, hi) else mid

    def remaining(self) -> int:
        """A guess of the probes still to come (for an ETA)."""
        if self._done:
            return 0
        lo, hi = self.lo, self.hi
        bisect = math.ceil(math.log2(1 / self.tolerance))
        if lo is not None and hi is not None:
            return max(1, math.ceil(math.log2(max((hi - lo) / (self.tolerance * hi), 1.0))))
        return 2 + bisect

    # -------------------------------------------------------------------------------------------- outcome
    def result(self) -> SearchResult:
        n = len(self.history)
        if self.error:
            return SearchResult(0.0, self.lo, self.hi, "error", self.error, n, list(self.history))
        if self.hi is None:
            return SearchResult(self.lo or 0.0, self.lo, None, "max-rate",
                                f"feasible at --max-rate {self.max_rate:g} req/s (raise it to search further)", n,
                                list(self.history))
        if self.lo is None:
            return SearchResult(0.0, None, self.hi, "min-rate",
                                f"not met even at {self.hi:g} req/s: {self.hi_reason}", n, list(self.history))
        return SearchResult(self.lo, self.lo, self.hi, self.hi_kind, self.hi_reason, n, list(self.history))


Verdict = bool | tuple[bool, str] | tuple[bool, str, str]


def find_max_rate(feasible: Callable[[float], Verdict], start: float = 1.0, tolerance: float = DEFAULT_TOLERANCE,
                  min_rate: float = DEFAULT_MIN_RATE, max_rate: float = DEFAULT_MAX_RATE) -> SearchResult:
    """The largest rate at which ``feasible(rate)`` holds (assumed monotone: true up to a threshold, false after),
    to within ``tolerance`` (relative to the bracket's upper end). ``feasible`` returns a bool, or (bool, reason)
    or (bool, reason, kind)."""
    search = RateSearch(start, tolerance, min_rate, max_rate)
    while (rate := search.next_rate()) is not None:
        verdict = feasible(rate)
        if isinstance(verdict, tuple):
            ok, reason, *rest = verdict
            search.record(rate, bool(ok), str(reason), rest[0] if rest else "slo")
        else:
            search.record(rate, bool(verdict))
    return search.result()

"""Service-level objectives: ``ttft_p90_ms<=200,itl_mean_ms<=30`` parsed, checked and worded.

An SLO bounds one metric of a run's row (``metrics.METRICS``): a latency from above, a throughput from below. A
configuration meets its SLOs at a rate when every bound holds there.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from dataclasses import dataclass

from .metrics import METRICS

_OPS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_ITEM = re.compile(r"\s*([A-Za-z0-9_]+)\s*(<=|>=|<|>)\s*([^\s,]+)\s*")


@dataclass(frozen=True)
class SLO:
    metric: str
    op: str
    bound: float

    def holds(self, value: float | None) -> bool:
        return value is not None and math.isfinite(value) and _OPS[self.op](value, self.bound)

    @property
    def upper(self) -> bool:
        """A bound from above (a latency)."""
        return self.op in ("<", "<=")

    def violation(self, value: float | None) -> str:
        """Why ``value`` misses this SLO, e.g. ``ttft_p90_ms 251.3 > 200``."""
        if value is None or not math.isfinite(value):
            return f"{self.metric} not measured"
        negated = {"<=": ">", "<": ">=", ">=": "<", ">": "<="}[self.op]
        return f"{self.metric} {_num(value)} {negated} {_num(self.bound)}"

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{_num(self.bound)}"


def _num(x: float) -> str:
    return f"{x:.4g}" if abs(x) < 1e4 else f"{x:.0f}"


def parse_slos(text: str, where: str = "--slo") -> tuple[SLO, ...]:
    """``metric<=bound,...`` -> SLOs; a ``ValueError`` names the bad item and what is accepted."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: must be metric<=bound,... (e.g. ttft_p90_ms<=200,itl_mean_ms<=30), got "
                         f"{text!r}")
    out: list[SLO] = []
    for item in text.split(","):
        m = _ITEM.fullmatch(item)
        if m is None:
            raise ValueError(f"{where}: {item.strip()!r} is not metric<=bound (operators <=, <, >=, >; e.g. "
                             "ttft_p90_ms<=200)")
        metric, op, raw = m.groups()
        if metric not in METRICS:
            near = difflib.get_close_matches(metric, list(METRICS), n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]}?" if near else ""
            raise ValueError(f"{where}: unknown metric {metric!r}{hint} (metrics: {', '.join(METRICS)})")
        try:
            bound = float(raw)
        except ValueError:
            raise ValueError(f"{where}: the bound of {metric} must be a number, got {raw!r}") from None
        if not math.isfinite(bound):
            raise ValueError(f"{where}: the bound of {metric} must be a finite number, got {raw!r}")
        if any(s.metric == metric and s.op == op for s in out):
            raise ValueError(f"{where}: {metric}{op} is given twice")
        out.append(SLO(metric, op, bound))
    return tuple(out)


def violations(slos: tuple[SLO, ...], row: dict) -> list[str]:
    """The SLOs ``row`` misses, worded (empty when all hold)."""
    return [s.violation(row.get(s.metric)) for s in slos if not s.holds(row.get(s.metric))]

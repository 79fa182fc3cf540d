"""Per-SLO metrics (ENGINE.md §12.4, §14.1 item 6): TTFT and E2E statistics per SLO class of the routed requests.

``per_slo(rows)`` takes ``(slo_class, ttft_ticks or None, e2e_ticks or None)`` per routed request (None: no first
token / not completed) and returns, per class in sorted order (an empty class is ``default``), ``{"ttft": stats,
"e2e": stats}`` with mean, p50, p95, p99, min, max in milliseconds and the count. Percentiles interpolate linearly at
rank p·(n−1)/100, like the metrics blocks.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

PERCENTILES = (50, 95, 99)


def _stats(ticks: list[int]) -> dict[str, float | int]:
    if not ticks:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "p99": 0.0, "min": 0.0, "max": 0.0, "count": 0}
    ms = np.asarray(ticks, dtype=np.float64) / 1000.0
    out: dict[str, float | int] = {"mean": float(ms.mean())}
    for p, v in zip(PERCENTILES, np.percentile(ms, PERCENTILES)):
        out[f"p{p}"] = float(v)
    out.update(min=float(ms.min()), max=float(ms.max()), count=len(ticks))
    return out


def per_slo(rows: Iterable[tuple[str, int | None, int | None]]) -> dict[str, dict[str, dict[str, float | int]]]:
    ttft: dict[str, list[int]] = {}
    e2e: dict[str, list[int]] = {}
    for slo, t, e in rows:
        name = slo or "default"
        ttft.setdefault(name, [])
        e2e.setdefault(name, [])
        if t is not None:
            ttft[name].append(t)
        if e is not None:
            e2e[name].append(e)
    return {name: {"ttft": _stats(ttft[name]), "e2e": _stats(e2e[name])} for name in sorted(ttft)}


def slo_text(slo: dict[str, dict[str, dict[str, float | int]]]) -> str:
    """The ``=== Per-SLO Metrics ===`` section (empty unless at least 2 classes)."""
    if len(slo) < 2:
        return ""
    lines = ["=== Per-SLO Metrics ==="]
    for name, s in slo.items():
        t, e = s["ttft"], s["e2e"]
        lines.append(f"  {name}:")
        lines.append("    TTFT: mean=%.2f p99=%.2f (n=%d)" % (t["mean"], t["p99"], t["count"]))
        lines.append("    E2E:  mean=%.2f p99=%.2f (n=%d)" % (e["mean"], e["p99"], e["count"]))
    return "\n".join(lines) + "\n"

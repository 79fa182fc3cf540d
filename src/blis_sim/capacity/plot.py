"""The figures of a sweep or capacity report (matplotlib, Agg backend): latency against rate, throughput against
rate with the saturation knee, the Pareto front of throughput per GPU against a latency metric.

Every figure reads plain rows with ``configuration``, ``rate`` and the metric names of ``metrics`` (sweep rows, or
capacity probes), so ``blis plot`` draws the same figures from a results file as the report does.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError

LATENCIES = (("ttft", "TTFT"), ("itl", "ITL"), ("e2e", "E2E"))
FIGURES = ("latency", "throughput", "pareto")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "blis-sim", "font.size": 9})
    return plt


def series(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """Usable rows grouped by configuration (in first-seen order), each sorted by rate; one row per rate (the
    last one given wins)."""
    out: dict[str, dict[float, dict]] = {}
    for r in rows:
        if r.get("status", "ok") != "ok" or r.get("ttft_mean_ms") is None or r.get("rate") is None:
            continue
        out.setdefault(str(r.get("configuration", "all")), {})[float(r["rate"])] = r
    return {name: [by_rate[k] for k in sorted(by_rate)] for name, by_rate in out.items()}


def knee(points: list[dict]) -> dict | None:
    """The saturation knee of one configuration's curve: its highest-rate point below the first saturated one."""
    best = None
    for p in points:
        if p.get("saturated"):
            return best
        best = p
    return None


def _colors(n: int) -> list:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def latency_figure(rows: Iterable[dict], slos: Iterable[Any] = ()):
    plt = _plt()
    data = series(rows)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8), squeeze=False)
    colors = _colors(len(data))
    for ax, (key, title) in zip(axes[0], LATENCIES):
        for color, (name, pts) in zip(colors, data.items()):
            xs = [p["rate"] for p in pts]
            mean = [p.get(f"{key}_mean_ms") for p in pts]
            p90 = [p.get(f"{key}_p90_ms") for p in pts]
            ax.plot(xs, mean, "o-", color=color, ms=3, lw=1.3, label=f"{name} mean")
            ax.plot(xs, p90, "s--", color=color, ms=3, lw=1.0, label=f"{name} p90")
        for slo in slos:
            if slo.metric.startswith(f"{key}_") and slo.metric.endswith("_ms"):
                ax.axhline(slo.bound, color="crimson", lw=0.9, ls=":")
                ax.annotate(f"SLO {slo}", (0.01, slo.bound), xycoords=("axes fraction", "data"),
                            color="crimson", fontsize=7, va="bottom")
        ax.set_yscale("log")
        ax.set_title(f"{title} (ms): mean solid, p90 dashed")
        ax.set_xlabel("request rate (req/s)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("latency (ms, log scale)")
    handles = [plt.Line2D([], [], color=c, marker="o", lw=1.3) for c in colors]
    if handles:
        fig.legend(handles, list(data), loc="lower center", ncol=min(len(handles), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.04 * ((len(handles) - 1) // 4), 1, 1))
    return fig


def throughput_figure(rows: Iterable[dict]):
    plt = _plt()
    data = series(rows)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for color, (name, pts) in zip(_colors(len(data)), data.items()):
        xs = [p["rate"] for p in pts]
        ys = [p.get("steady_output_tokens_per_sec") or 0.0 for p in pts]
        ax.plot(xs, ys, "-", color=color, lw=1.3, label=name)
        ok = [(x, y) for x, y, p in zip(xs, ys, pts) if not p.get("saturated")]
        sat = [(x, y) for x, y, p in zip(xs, ys, pts) if p.get("saturated")]
        if ok:
            ax.plot(*zip(*ok), "o", color=color, ms=3)
        if sat:
            ax.plot(*zip(*sat), "x", color=color, ms=5)
        k = knee(pts)
        if k is not None and sat:
            y = k.get("steady_output_tokens_per_sec") or 0.0
            ax.plot([k["rate"]], [y], "*", color=color, ms=13, mec="black", mew=0.6, zorder=5)
            ax.annotate(f"knee {k['rate']:g} req/s", (k["rate"], y), textcoords="offset points", xytext=(-8, 6),
                        ha="right", fontsize=7, color=color)
    ax.set_xlabel("offered request rate (req/s)")
    ax.set_ylabel("steady output throughput (tokens/s)")
    ax.set_title("Throughput against rate (x: saturated, star: knee)")
    ax.grid(True, alpha=0.3)
    if data:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def pareto_points(rows: Iterable[dict], metric: str) -> list[dict]:
    """Rows on the front of (``metric`` lower, output tokens/s per GPU higher), by increasing ``metric``; saturated
    runs are no operating point (their latency grows with the run's length) and stay off it."""
    pts = [r for rows_ in series(rows).values() for r in rows_
           if r.get(metric) is not None and r.get("output_tokens_per_sec_per_gpu") is not None
           and not r.get("saturated")]
    pts.sort(key=lambda r: (r[metric], -r["output_tokens_per_sec_per_gpu"]))
    front, best = [], -1.0
    for r in pts:
        if r["output_tokens_per_sec_per_gpu"] > best:
            front.append(r)
            best = r["output_tokens_per_sec_per_gpu"]
    return front


def pareto_figure(rows: Iterable[dict], metric: str, highlight: Iterable[dict] = ()):
    """Every point (colour: configuration), the front over them, and ``highlight`` (capacity answers) as stars."""
    plt = _plt()
    rows = list(rows)
    data = series(rows)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colors = dict(zip(data, _colors(len(data))))
    for name, pts in data.items():
        xs = [p.get(metric) for p in pts]
        ys = [p.get("output_tokens_per_sec_per_gpu") for p in pts]
        keep = [(x, y, p.get("saturated")) for x, y, p in zip(xs, ys, pts) if x is not None and y is not None
                and x > 0]
        ok = [(x, y) for x, y, sat in keep if not sat]
        sat = [(x, y) for x, y, sat in keep if sat]
        if ok:
            ax.plot(*zip(*ok), "o", color=colors[name], ms=4, alpha=0.75, label=name)
        if sat:
            ax.plot(*zip(*sat), "x", color=colors[name], ms=5, alpha=0.6)
    front = pareto_points(rows, metric)
    if front:
        ax.step([r[metric] for r in front], [r["output_tokens_per_sec_per_gpu"] for r in front], where="post",
                color="black", lw=1.0, label="Pareto front")
    for h in highlight:
        x, y = (h.get("at_max_rate") or {}).get(metric), h.get("output_tokens_per_sec_per_gpu")
        if x is None or not y:
            continue
        ax.plot([x], [y], "*", color=colors.get(h["configuration"], "black"), ms=14, mec="black", mew=0.6, zorder=5)
        ax.annotate(f"{h['configuration']}: max {h['max_rate']:g} req/s", (x, y), textcoords="offset points",
                    xytext=(6, 4), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"{metric} (log scale; lower is better)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(f"Pareto front: throughput per GPU against {metric} (x: saturated)")
    ax.grid(True, which="major", alpha=0.3)
    if data:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def figure_bytes(fig, fmt: str) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=110, metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)
    return buf.getvalue()


def data_uri(fig) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(figure_bytes(fig, "svg")).decode("ascii")


def figures_for(doc: Any) -> tuple[list[dict], str, tuple, list[dict]]:
    """(curve rows, Pareto metric, SLOs, capacity answers) of a results document: a sweep's list of rows or a
    capacity answer's dict."""
    from .slo import parse_slos

    if isinstance(doc, list):
        return doc, "ttft_p90_ms", (), []
    if isinstance(doc, dict) and doc.get("complete") is False and isinstance(doc.get("rows"), list):
        return doc["rows"], "ttft_p90_ms", (), []  # an interrupted sweep kept with --keep-partial
    if isinstance(doc, dict) and "configurations" in doc and "probes" in doc:
        slos = tuple(parse_slos(",".join(doc.get("question", {}).get("slo", []))) if doc.get("question", {})
                     .get("slo") else ())
        curve = [p for p in doc["probes"] if p.get("feasible") is not None]
        return curve, doc.get("pareto_metric") or "ttft_p90_ms", slos, doc["configurations"]
    raise InputError("not a results file of blis sweep (a list of rows) or blis capacity (an object with "
                     "configurations and probes)")


def write_figures(doc: Any, folder: Path, formats: tuple[str, ...] = ("png", "svg")) -> list[Path]:
    """latency, throughput and pareto figures of ``doc`` into ``folder`` in each format."""
    rows, metric, slos, answers = figures_for(doc)
    if not series(rows):
        raise InputError("nothing to plot: no finished point in the results")
    written = []
    makers = {"latency": lambda: latency_figure(rows, slos), "throughput": lambda: throughput_figure(rows),
              "pareto": lambda: pareto_figure(rows, metric, answers)}
    for name in FIGURES:
        for fmt in formats:
            path = folder / f"{name}.{fmt}"
            path.write_bytes(figure_bytes(makers[name](), fmt))
            written.append(path)
    return written

"""The terminal view of an evaluation: rich tables of MAPE per experiment and per group, the points where the
simulated or the measured server did not keep up, then what failed."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from .experiment import METRICS

_HEADERS = {"ttft_mean_ms": "TTFT", "ttft_p90_ms": "TTFT p90", "itl_mean_ms": "ITL", "e2e_mean_ms": "E2E",
            "e2e_p90_ms": "E2E p90", "throughput_tokens_per_s": "Tput"}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _metric_columns(table: Table) -> None:
    for m in METRICS:
        table.add_column(_HEADERS[m], justify="right")


def experiments_table(report: dict) -> Table:
    t = Table(title="MAPE per experiment (predicted vs measured)", title_justify="left")
    t.add_column("experiment", overflow="fold")
    t.add_column("model")
    t.add_column("GPU/TP")
    t.add_column("loop")
    t.add_column("pts", justify="right")
    _metric_columns(t)
    for e in report["experiments"]:
        loop = e["engine_loop"] or "-"
        if e["engine_loop_wanted"] and e["engine_loop_wanted"] != e["engine_loop"]:
            loop += f" ({e['engine_loop_wanted']} wanted)"
        t.add_row(e["name"], e["model"].rsplit("/", 1)[-1], f"{e['hardware']}/{e['tp']}", loop, str(e["points"]),
                  *(_pct(e["mape"][m]) for m in METRICS))
    return t


def summary_table(report: dict) -> Table:
    t = Table(title="MAPE by group (points weighted equally; excluded and failed points not included)",
              title_justify="left")
    t.add_column("group")
    t.add_column("pts", justify="right")
    _metric_columns(t)
    rows = [("overall", report["overall"])]
    for key, title in (("by_model", "model"), ("by_hardware", "GPU"), ("by_workload", "workload")):
        rows += [(f"{title}: {name}", agg) for name, agg in report[key].items()]
    for i, (name, agg) in enumerate(rows):
        t.add_row(name, str(agg["points"]), *(_pct(agg["mape"][m]) for m in METRICS),
                  end_section=(i == 0))
    o = report["overall"]
    t.add_row("overall median APE", str(o["points"]), *(_pct(o["median_ape"][m]) for m in METRICS))
    t.add_row("overall bias (signed)", str(o["points"]), *(_signed(o["bias_pct"][m]) for m in METRICS))
    cov = o.get("interval_coverage", {})
    if any(v is not None for v in cov.values()):
        t.add_row("overall 80% interval coverage", str(o["points"]), *(_share(cov.get(m)) for m in METRICS))
    h = report.get("holdout")
    if h and h["points"]:
        t.add_row("held-out experiments: MAPE", str(h["points"]), *(_pct(h["mape"][m]) for m in METRICS),
                  end_section=False)
        hc = h.get("interval_coverage", {})
        if any(v is not None for v in hc.values()):
            t.add_row("held-out: 80% interval coverage", str(h["points"]), *(_share(hc.get(m)) for m in METRICS))
    return t


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _kept_up(value: bool | None) -> str:
    return {True: "yes", False: "NO", None: "?"}[value]


def saturation_table(report: dict) -> Table | None:
    """Every point where either side did not keep up, with both verdicts and their reasons (None: no such point)."""
    t = Table(title="Kept up with the offered load? (points where either side did not; every point in the JSON "
                    "report)", title_justify="left")
    t.add_column("experiment", overflow="fold")
    t.add_column("point", overflow="fold")
    t.add_column("sim", justify="center")
    t.add_column("measured", justify="center")
    t.add_column("simulated: why", overflow="fold", ratio=1)
    t.add_column("measured: why", overflow="fold", ratio=1)
    for e in report["experiments"]:
        for p in e.get("point_results", []):
            if p.get("kept_up_sim") is False or p.get("kept_up_measured") is False:
                t.add_row(e["name"], p["label"], _kept_up(p["kept_up_sim"]), _kept_up(p["kept_up_measured"]),
                          p["kept_up_sim_reason"] or "-", p["kept_up_measured_reason"] or "-")
    return t if t.row_count else None


def saturation_line(summary: dict) -> str:
    """The verdict counts in one sentence."""
    s = summary
    text = (f"kept up with the offered load: {s['judged_both']} of {s['points']} points judged on both sides, "
            f"{s['agree']} agree ({s['agree_kept_up']} kept up, {s['agree_saturated']} saturated), "
            f"{s['disagree']} disagree: {s['false_saturations']} false saturation(s) (simulated saturated, measured "
            f"kept up), {s['missed_saturations']} missed saturation(s); saturated: {s['saturated_simulated']} "
            f"simulated, {s['saturated_measured']} measured; unknown: {s['unknown_simulated']} simulated, "
            f"{s['unknown_measured']} measured")
    pts = [f"{p['experiment']} [{p['point']}]" for p in s["false_saturation_points"]]
    if pts:
        text += f"\nfalse saturations: {', '.join(pts)}"
    pts = [f"{p['experiment']} [{p['point']}]" for p in s["missed_saturation_points"]]
    if pts:
        text += f"\nmissed saturations: {', '.join(pts)}"
    return text


def print_report(report: dict, console: Console | None = None) -> None:
    console = console or Console(width=200, soft_wrap=False)
    console.print(experiments_table(report))
    console.print(summary_table(report))
    saturation = saturation_table(report)
    if saturation is not None:
        console.print(saturation)
    s = report["settings"]
    console.print(f"latency model {s['latency_model']}; engine loop {s['engine_loop']}"
                  + ("" if s["async_available"] else " (asynchronous loop not available yet: synchronous used)")
                  + f"; at most {s['requests_per_point']} requests simulated per point; "
                  f"{report['wall_time_s']:.1f} s")
    if "saturation" in report:
        console.print(saturation_line(report["saturation"]), markup=False, highlight=False, soft_wrap=True)
    if report["excluded"]:
        console.print(f"excluded from the averages: {len(report['excluded'])} point(s) "
                      f"(saturation tests and overloaded stages; predictions in the JSON report)")
    for f in report["failed"]:
        where = f"{f['experiment']}" + (f" [{f['point']}]" if f["point"] else "")
        console.print(f"failed: {where}: {f['reason']}", markup=False, highlight=False, soft_wrap=True)

"""``report.html``: one self-contained page (plots embedded as data: URIs, styles inline, no request to the
network: its Content-Security-Policy forbids any) that can be mailed or attached to a ticket.

Sections: the capacity table, latency against rate (TTFT, ITL, E2E; mean and p90) per configuration, throughput
against rate with the saturation knee, the Pareto front, failed points, and the settings. A small inline script
marks ``<body data-plots-rendered=N>`` once the browser has decoded the N plots (what the browser test checks).
"""

from __future__ import annotations

import html
import json
import math
from typing import Any

from .. import __version__
from . import plot
from .slo import SLO, violations

_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
        "form-action 'none'; base-uri 'none'")
_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 1.5em auto; max-width: 1250px;
       color: #1b1b1b; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
tr.front td { background: #eef7ee; } tr.failed td { background: #fbeaea; }
figure.plot { margin: 0.8em 0; } figure.plot img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #444; }
pre { background: #f7f7f7; padding: 0.6em; font-size: 0.8em; overflow-x: auto; }
.answer { background: #f0f5fb; border-left: 4px solid #3b73b9; padding: 0.5em 0.9em; }
"""
_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = document.querySelectorAll("figure.plot img"), n = 0;
  for (var i = 0; i < imgs.length; i++) { if (imgs[i].complete && imgs[i].naturalWidth > 0) { n++; } }
  document.body.setAttribute("data-plots-rendered", String(n));
  document.body.setAttribute("data-plots-expected", String(imgs.length));
});
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "–"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}g}"
    return _e(x)


def _money(x: Any) -> str:
    if x is None:
        return "–"
    return f"${x:,.2f}" if x >= 10 else f"${x:.3g}"


def _figure(fig: Any, caption: str, name: str) -> str:
    return (f'<figure class="plot" id="plot-{name}"><img alt="{_e(caption)}" src="{plot.data_uri(fig)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _page(title: str, meta: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_STYLE}</style><script>{_SCRIPT}</script></head>",
        f"<body><h1>{_e(title)}</h1><p class=\"meta\">{meta}</p>", *body,
        f'<p class="meta">Drawn by blis-sim {_e(__version__)}.</p></body></html>', "",
    ])


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None, left: int = 1) -> str:
    out = ["<table><thead><tr>"]
    out += [f'<th class="{"l" if i < left else ""}">{h}</th>' for i, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for i, cells in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="{"l" if j < left else ""}">{c}</td>'
                                          for j, c in enumerate(cells)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figures(rows: list[dict], slos: tuple[SLO, ...], metric: str, answers: list[dict]) -> list[str]:
    if not plot.series(rows):
        return ["<p>No finished point to plot.</p>"]
    return [
        "<h2>Latency against rate</h2>",
        _figure(plot.latency_figure(rows, slos), "TTFT, ITL and E2E latency against the request rate, per "
                "configuration: mean (solid) and p90 (dashed); dotted red: SLO bounds.", "latency"),
        "<h2>Throughput against rate</h2>",
        _figure(plot.throughput_figure(rows), "Steady output throughput against the offered rate; x marks a "
                "saturated run (the server served under 95% of the arrivals), the star the knee: the last rate "
                "before saturation.", "throughput"),
        "<h2>Pareto front</h2>",
        _figure(plot.pareto_figure(rows, metric, answers), f"Output tokens/s per GPU against {metric}: a point on "
                "the front is beaten by no other on both.", "pareto"),
    ]


# ------------------------------------------------------------------------------------------------------ sweeps
def sweep_capacity(result: Any) -> list[dict]:
    """Per configuration: the highest swept rate that meets the SLOs (the sweep's ``slo``) and does not saturate,
    or, without SLOs, the knee."""
    spec = result.spec
    out = []
    for name, pts in plot.series(result.rows).items():
        best, nxt = None, None
        for p in pts:
            bad = p.get("saturated") or (spec.slos and violations(spec.slos, p))
            if bad:
                nxt = p
                break
            best = p
        reason = ""
        if nxt is not None:
            reason = "saturation" if nxt.get("saturated") else "; ".join(violations(spec.slos, nxt))
            reason = f"{reason} at {nxt['rate']:g} req/s"
        else:
            reason = "met at every swept rate"
        out.append({"configuration": name, "best": best, "limit": reason})
    out.sort(key=lambda r: -((r["best"] or {}).get("output_tokens_per_sec_per_gpu") or 0.0))
    return out


def sweep_report(result: Any) -> str:
    spec = result.spec
    rows = result.rows
    title = spec.title or f"blis sweep: {len(spec.points)} points"
    failed = result.failed
    meta = (f"{len(rows)} of {len(spec.points)} points finished ({len(failed)} failed)"
            f"{' — interrupted' if result.interrupted else ''}; backend {_e(result.backend)} with "
            f"{result.workers} worker(s), {result.wall_s:.1f} s wall-clock"
            f"{'; source ' + _e(spec.source) if spec.source else ''}.")
    body = []
    what = ("the highest swept rate meeting " + ", ".join(_e(s) for s in spec.slos) if spec.slos
            else "the knee (highest swept rate before saturation)")
    cap_rows, classes = [], []
    for c in sweep_capacity(result):
        b = c["best"] or {}
        cap_rows.append([_e(c["configuration"]), _num(b.get("rate")), _e(c["limit"]), _num(b.get("gpus")),
                         _num(b.get("steady_output_tokens_per_sec")), _num(b.get("output_tokens_per_sec_per_gpu")),
                         _money(b.get("price_usd_per_gpu_hour")),
                         _money(b.get("cost_usd_per_million_output_tokens")),
                         _num(b.get("ttft_p90_ms")), _num(b.get("itl_mean_ms"))])
        classes.append("")
    body += [f"<h2>Capacity table</h2><p>Per configuration, {what}.</p>",
             _table(["configuration", "rate (req/s)", "limited by", "GPUs", "output tok/s", "output tok/s/GPU",
                     "$/GPU-hour", "$ per M output tokens", "TTFT p90 (ms)", "ITL mean (ms)"], cap_rows, classes)]
    metric = spec.slos[0].metric if spec.slos and spec.slos[0].upper else "ttft_p90_ms"
    body += _figures(rows, spec.slos, metric, [])
    if failed:
        body += ["<h2>Failed points</h2>",
                 _table(["point", "configuration", "rate", "error"],
                        [[_num(r["point"]), _e(r["configuration"]), _num(r["rate"]), _e(r["error"])] for r in failed],
                        ["failed"] * len(failed), left=4)]
    settings = {"base": {k: str(v) if not isinstance(v, (int, float, str, bool)) else v for k, v in spec.base.items()},
                "axes": {k: [str(x) if not isinstance(x, (int, float, str, bool)) else x for x in v]
                         for k, v in spec.axes.items()},
                "slo": [str(s) for s in spec.slos]}
    body += ["<h2>Settings</h2>", f"<pre>{_e(json.dumps(settings, indent=2))}</pre>"]
    return _page(title, meta, body)


# ------------------------------------------------------------------------------------------------------ capacity
def answer_text(doc: dict) -> str:
    """One sentence: the best configuration per GPU and its cost."""
    ranked = [r for r in doc["configurations"] if r.get("rank")]
    if not ranked:
        return "No configuration meets the SLOs at any probed rate."
    best = ranked[0]
    cost = best.get("cost_usd_per_million_output_tokens")
    text = (f"{best['configuration']} serves the most per GPU: {best['max_rate']:g} req/s on {best['gpus']} GPU(s), "
            f"{best['output_tokens_per_sec_per_gpu']:,.0f} output tokens/s per GPU"
            + (f", {_money(cost)} per million output tokens" if cost is not None else "") + ".")
    return text


def capacity_report(doc: dict) -> str:
    q = doc["question"]
    slos = ", ".join(q["slo"])
    title = f"blis capacity: {slos}"
    meta = (f"{len(doc['configurations'])} configuration(s), {len(doc['probes'])} probes; tolerance "
            f"{q['tolerance']:.0%}; backend {_e(doc['backend'])} with {doc['workers']} worker(s), "
            f"{doc['wall_time_s']:.1f} s wall-clock{' — interrupted' if doc.get('interrupted') else ''}.")
    metrics = [s.split("<")[0].split(">")[0] for s in q["slo"]]
    head = ["rank", "configuration", "max rate (req/s)", "limited by", "GPUs", "req/s per GPU", "output tok/s/GPU",
            "$/GPU-hour", "$ per M output tokens", *[f"{m} at max" for m in metrics], "Pareto"]
    rows, classes = [], []
    for r in doc["configurations"]:
        at = r.get("at_max_rate") or {}
        limited = r["error"] if r["status"] == "failed" else (
            f"{r['limited_by']}: {r['reason']}" if r.get("limited_by") else r["status"])
        rows.append([_num(r.get("rank")), _e(r["configuration"]), _num(r.get("max_rate")), _e(limited),
                     _num(r.get("gpus")), _num(r.get("requests_per_sec_per_gpu")),
                     _num(r.get("output_tokens_per_sec_per_gpu")), _money(r.get("price_usd_per_gpu_hour")),
                     _money(r.get("cost_usd_per_million_output_tokens")), *[_num(at.get(m)) for m in metrics],
                     "yes" if r.get("pareto") else ""])
        classes.append("failed" if r["status"] != "ok" else ("front" if r.get("pareto") else ""))
    curve, metric, slo_objs, answers = plot.figures_for(doc)
    body = [f'<p class="answer">{_e(answer_text(doc))}</p>',
            "<h2>Capacity table</h2><p>Ranked by output tokens per second per GPU at the largest rate that meets "
            f"{_e(slos)}; green rows are on the Pareto front (throughput per GPU against {_e(metric)}).</p>",
            _table(head, rows, classes, left=2)]
    body += _figures(curve, slo_objs, metric, answers)
    body += ["<h2>Question</h2>", f"<pre>{_e(json.dumps(q, indent=2))}</pre>"]
    return _page(title, meta, body)

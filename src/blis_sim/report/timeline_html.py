"""``blis timeline FILE.json --html OUT.html``: a timeline file (report/timeline.py) as one self-contained HTML page.

The page needs no network (Perfetto's UI is not reachable offline): the data is embedded as JSON, drawn by an inline
script on a canvas, and a Content-Security-Policy of ``default-src 'none'`` forbids any request. Per instance it
shows the step slices (coloured prefill / decode / mixed) and the queue-depth and KV-utilisation counters over a
common time axis; the wheel zooms around the pointer, dragging pans, a double click resets, hovering shows a step's
args or a counter's value. A table above summarises each instance.

``load_timeline`` reads and checks the file: anything a timeline written by ``--timeline-out`` would not contain is
an ``InputError`` naming the file and the event.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError

_KINDS = ("prefill", "decode", "mixed")
_STEP_ARGS = ("prefill_tokens", "decode_requests", "scheduled_requests", "admitted", "preempted", "kv_blocks_used",
              "queue_depth")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def load_timeline(path: Path, name: str | None = None) -> dict[str, Any]:
    """The drawable content of the timeline file at ``path``: instances (with their steps and counters), the time
    span and the file's metadata. ``name`` is how errors name the file (default: the path)."""
    label = name if name is not None else str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{label}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{label}: is a directory, expected a timeline file (.json)") from None
    except UnicodeDecodeError:
        raise InputError(f"{label}: not a text file (not UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{label}: cannot be read ({exc.strerror or exc})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{label}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except ValueError as exc:
        raise InputError(f"{label}: not valid JSON ({exc})") from None
    try:
        return _extract(doc)
    except InputError as exc:
        raise InputError(f"{label}: {exc}") from None


def _extract(doc: Any) -> dict[str, Any]:
    if isinstance(doc, list):  # the format's bare-array form
        events, meta = doc, {}
    elif isinstance(doc, dict):
        events = doc.get("traceEvents")
        if not isinstance(events, list):
            raise InputError("not a trace-event file: no \"traceEvents\" list")
        meta = doc.get("otherData") if isinstance(doc.get("otherData"), dict) else {}
    else:
        raise InputError("not a trace-event file: expected a JSON object with \"traceEvents\"")
    names: dict[int, str] = {}
    steps: dict[int, list[tuple]] = {}
    counters: dict[tuple[int, str], list[tuple[float, float]]] = {}
    requests: set[tuple[int, Any]] = set()
    preemptions: dict[int, list[float]] = {}
    for n, ev in enumerate(events):
        where = f"event {n}"
        if not isinstance(ev, dict) or not isinstance(ev.get("ph"), str):
            raise InputError(f"{where}: not an object with a \"ph\" string")
        ph = ev["ph"]
        if ph in ("M", "X", "C", "b", "e", "n", "i", "I") and "pid" in ev and not _count(ev["pid"]):
            raise InputError(f"{where}: \"pid\" must be an integer >= 0, got {json.dumps(ev['pid'])}")
        if ph != "M" and "ts" in ev and not _number(ev["ts"]):
            raise InputError(f"{where}: \"ts\" must be a finite number (microseconds), got {json.dumps(ev['ts'])}")
        if ph == "M" and ev.get("name") == "process_name":
            args = ev.get("args")
            if not isinstance(args, dict) or not isinstance(args.get("name"), str) or "pid" not in ev:
                raise InputError(f"{where}: a process_name needs a \"pid\" and args.name (a string)")
            names[ev["pid"]] = args["name"]
        elif ph == "X" and ev.get("cat") == "step":
            for key in ("pid", "ts", "dur"):
                if key not in ev:
                    raise InputError(f"{where}: a step slice needs \"{key}\"")
            if not _number(ev["dur"]) or ev["dur"] < 0:
                raise InputError(f"{where}: \"dur\" must be a finite number >= 0, got {json.dumps(ev['dur'])}")
            args = ev.get("args", {})
            if not isinstance(args, dict):
                raise InputError(f"{where}: \"args\" must be an object")
            values = []
            for key in _STEP_ARGS:
                v = args.get(key, 0)
                if not _count(v):
                    raise InputError(f"{where}: args.{key} must be an integer >= 0, got {json.dumps(v)}")
                values.append(v)
            kind = ev.get("name")
            duration = args.get("duration", "")
            steps.setdefault(ev["pid"], []).append(
                (ev["ts"], ev["dur"], _KINDS.index(kind) if kind in _KINDS else 2, *values,
                 duration if isinstance(duration, str) else "")
            )
        elif ph == "C" and ev.get("name") in ("queue_depth", "kv_utilization"):
            key = "waiting" if ev["name"] == "queue_depth" else "used"
            args = ev.get("args")
            if "pid" not in ev or "ts" not in ev:
                raise InputError(f"{where}: a counter needs \"pid\" and \"ts\"")
            if not isinstance(args, dict) or not _number(args.get(key)):
                raise InputError(f"{where}: a {ev['name']} counter needs args.{key} (a finite number)")
            counters.setdefault((ev["pid"], ev["name"]), []).append((ev["ts"], args[key]))
        elif ph == "b" and ev.get("cat") == "request" and ev.get("name") not in ("queued", "prefill", "decode"):
            requests.add((ev.get("pid"), json.dumps(ev.get("id"))))
        elif ph == "i" and ev.get("cat") == "preemption" and "pid" in ev and "ts" in ev:
            preemptions.setdefault(ev["pid"], []).append(ev["ts"])
    if not steps:
        raise InputError("no step slices (\"ph\": \"X\", \"cat\": \"step\"): not a timeline written by "
                         "blis run --timeline-out")
    pids = sorted(set(names) | set(steps))
    t0 = min(min(s[0] for s in v) for v in steps.values())
    t1 = max(max(s[0] + s[1] for s in v) for v in steps.values())
    instances = []
    for pid in pids:
        mine = sorted(steps.get(pid, []))
        queue = sorted(counters.get((pid, "queue_depth"), []))
        kv = sorted(counters.get((pid, "kv_utilization"), []))
        for series in (queue, kv):
            if series:
                t0, t1 = min(t0, series[0][0]), max(t1, series[-1][0])
        instances.append({"pid": pid, "name": names.get(pid, f"pid {pid}"), "steps": mine, "queue": queue,
                          "kv": kv, "preemptions": sorted(preemptions.get(pid, []))})
    return {"instances": instances, "t0": t0, "t1": t1, "meta": meta, "requests": len(requests),
            "preemptions": sum(len(v) for v in preemptions.values())}


# ---------------------------------------------------------------------------------------------------------------------
# The page
# ---------------------------------------------------------------------------------------------------------------------


def _fmt_us(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:,.3f} s"
    return f"{us / 1e3:,.3f} ms"


def _summary_rows(data: dict[str, Any]) -> list[list[str]]:
    span = max(data["t1"] - data["t0"], 1)
    rows = []
    for inst in data["instances"]:
        steps = inst["steps"]
        busy = sum(s[1] for s in steps)
        queue = [v for _, v in inst["queue"]]
        kv = [v for _, v in inst["kv"]]
        rows.append([
            inst["name"], f"{len(steps):,}", f"{100 * busy / span:.1f}%",
            f"{sum(s[3] for s in steps):,}", f"{max(queue):,.0f}" if queue else "-",
            f"{100 * max(kv):.1f}%" if kv else "-",
        ])
    return rows


def _json_for_script(obj: Any) -> str:
    """JSON that cannot end its <script> element early."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict[str, Any], title: str) -> str:
    """The page for ``load_timeline``'s data; the same data gives the same bytes."""
    meta = data["meta"]
    instances = []
    for inst in data["instances"]:
        cols = list(zip(*inst["steps"])) if inst["steps"] else [[] for _ in range(4 + len(_STEP_ARGS))]
        instances.append({
            "name": inst["name"],
            "ts": list(cols[0]), "dur": list(cols[1]), "kind": list(cols[2]),
            "args": [list(c) for c in cols[3:3 + len(_STEP_ARGS)]],
            "source": sorted({s for s in cols[3 + len(_STEP_ARGS)] if s}) if inst["steps"] else [],
            "queue": [[t for t, _ in inst["queue"]], [v for _, v in inst["queue"]]],
            "kv": [[t for t, _ in inst["kv"]], [v for _, v in inst["kv"]]],
            "preemptions": inst["preemptions"],
        })
    payload = {"t0": data["t0"], "t1": data["t1"], "instances": instances, "argNames": list(_STEP_ARGS),
               "kinds": list(_KINDS)}
    facts = [f"{len(data['instances'])} instance(s)", f"{sum(len(i['steps']) for i in data['instances']):,} steps",
             f"{data['requests']:,} request lifecycles", f"{data['preemptions']:,} preemptions",
             f"span {_fmt_us(data['t1'] - data['t0'])}"]
    if isinstance(meta.get("latency_model"), str) and meta["latency_model"]:
        facts.append(f"latency model {meta['latency_model']}")
    sampling = meta.get("sampling") if isinstance(meta.get("sampling"), dict) else {}
    note = ""
    if meta.get("sampled") is True:
        desc = sampling.get("description") if isinstance(sampling.get("description"), str) else "see the file"
        note = f'<p class="warn">Sampled: this timeline keeps {html.escape(desc)}.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("instance", "steps", "busy", "prefill tokens", "max queue",
                                             "peak KV"))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in _summary_rows(data))
    return _PAGE.format(
        title=html.escape(title),
        facts=html.escape(" · ".join(facts)),
        note=note,
        table=f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>",
        data=_json_for_script(payload),
        script=_SCRIPT,
    )


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; \
style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - blis-sim timeline</title>
<style>
body{{font:13px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:16px 20px;color:#1d2330;background:#fff}}
h1{{font-size:18px;margin:0 0 4px}}
.facts{{color:#4a5263;margin:0 0 8px}}
.warn{{background:#fff4d6;border:1px solid #e8c46a;padding:4px 8px;border-radius:4px;display:inline-block}}
table{{border-collapse:collapse;margin:6px 0 10px}}
th,td{{padding:2px 10px;border-bottom:1px solid #e3e6ec;text-align:right}}
th:first-child,td:first-child{{text-align:left}}
th{{font-weight:600;color:#4a5263}}
.bar{{display:flex;gap:14px;align-items:center;margin:4px 0 6px;flex-wrap:wrap}}
.bar button{{font:inherit;padding:2px 10px}}
.key{{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:4px}}
#view{{color:#4a5263}}
#wrap{{position:relative}}
canvas{{display:block;border:1px solid #d5d9e2;cursor:crosshair}}
#tip{{position:absolute;pointer-events:none;background:rgba(29,35,48,.94);color:#fff;padding:6px 8px;
border-radius:4px;font:12px/1.35 ui-monospace,Menlo,Consolas,monospace;white-space:pre;display:none;z-index:2}}
</style></head>
<body data-rendered="0">
<h1>{title}</h1>
<p class="facts">{facts}</p>
{note}
{table}
<div class="bar"><span><span class="key" style="background:#e8853a"></span>prefill</span>
<span><span class="key" style="background:#3b7dd8"></span>decode</span>
<span><span class="key" style="background:#8a55c9"></span>mixed (prefill + decode)</span>
<span><span class="key" style="background:#b3122e;width:3px"></span>preemption</span>
<button id="reset" type="button">Reset zoom</button><button id="zin" type="button">Zoom in</button>
<button id="zout" type="button">Zoom out</button>
<span id="view"></span></div>
<p class="facts">Wheel: zoom around the pointer · drag: pan · double click: reset · hover: step args and counter values.</p>
<div id="wrap"><canvas id="chart"></canvas><div id="tip"></div></div>
<script id="timeline-data" type="application/json">{data}</script>
<script>{script}</script>
</body></html>
"""

_SCRIPT = r"""
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("timeline-data").textContent);
  const COLORS = ["#e8853a", "#3b7dd8", "#8a55c9"];
  const LABEL = 150, AXIS = 26, STEP_H = 22, CTR_H = 44, GAP = 14, RIGHT = 12;
  const canvas = document.getElementById("chart"), tip = document.getElementById("tip");
  const ctx = canvas.getContext("2d");
  const lanes = [];
  let y = AXIS + 6;
  D.instances.forEach(function (inst, i) {
    lanes.push({inst: i, type: "steps", y: y, h: STEP_H, title: inst.name + " steps"}); y += STEP_H + 4;
    const qmax = inst.queue[1].reduce(function (m, v) { return v > m ? v : m; }, 1);
    lanes.push({inst: i, type: "queue", y: y, h: CTR_H, title: "queue depth", max: qmax}); y += CTR_H + 4;
    lanes.push({inst: i, type: "kv", y: y, h: CTR_H, title: "KV utilisation", max: 1}); y += CTR_H + GAP;
  });
  const HEIGHT = y;
  const full = [D.t0, D.t1 > D.t0 ? D.t1 : D.t0 + 1];
  let view = full.slice(), width = 800, drawn = 0;

  function plotW() { return width - LABEL - RIGHT; }
  function X(t) { return LABEL + (t - view[0]) / (view[1] - view[0]) * plotW(); }
  function T(x) { return view[0] + (x - LABEL) / plotW() * (view[1] - view[0]); }
  function fmt(us) {
    const a = Math.abs(us);
    if (a >= 1e6) return (us / 1e6).toFixed(a >= 1e8 ? 1 : 3) + " s";
    if (a >= 1e3) return (us / 1e3).toFixed(a >= 1e5 ? 1 : 3) + " ms";
    return us.toFixed(0) + " us";
  }
  function lowerBound(arr, t) { let lo = 0, hi = arr.length; while (lo < hi) { const m = (lo + hi) >> 1; if (arr[m] < t) lo = m + 1; else hi = m; } return lo; }

  function resize() {
    width = Math.max(480, document.getElementById("wrap").clientWidth || 800);
    const r = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * r); canvas.height = Math.round(HEIGHT * r);
    canvas.style.width = width + "px"; canvas.style.height = HEIGHT + "px";
    ctx.setTransform(r, 0, 0, r, 0, 0);
    draw();
  }

  function axis() {
    const span = view[1] - view[0], target = span / Math.max(2, plotW() / 110);
    const p = Math.pow(10, Math.floor(Math.log10(target)));
    const step = [1, 2, 5, 10].map(function (m) { return m * p; }).find(function (s) { return s >= target; });
    ctx.fillStyle = "#4a5263"; ctx.font = "11px system-ui,sans-serif"; ctx.textAlign = "center";
    ctx.strokeStyle = "#eceef3"; ctx.lineWidth = 1;
    for (let t = Math.ceil(view[0] / step) * step; t <= view[1]; t += step) {
      const x = Math.round(X(t)) + 0.5;
      ctx.beginPath(); ctx.moveTo(x, AXIS - 4); ctx.lineTo(x, HEIGHT); ctx.stroke();
      ctx.fillText(fmt(t), x, AXIS - 8);
    }
  }

  function drawSteps(lane, inst) {
    const ts = inst.ts, dur = inst.dur, kind = inst.kind;
    let i = Math.max(0, lowerBound(ts, view[0]) - 1), lastPx = -1, lastKind = -1;
    for (; i < ts.length && ts[i] <= view[1]; i++) {
      if (ts[i] + dur[i] < view[0]) continue;
      const x0 = X(ts[i]), x1 = X(ts[i] + dur[i]);
      const px = Math.floor(x0);
      if (px === lastPx && Math.floor(x1) === px && kind[i] === lastKind) continue;  // that pixel is drawn
      ctx.fillStyle = COLORS[kind[i]] || COLORS[2];
      const l = Math.floor(Math.max(x0, LABEL)), r = Math.ceil(Math.min(x1, width - RIGHT));
      ctx.fillRect(l, lane.y, Math.max(r - l, 1), lane.h);  // whole pixels: back-to-back steps leave no seams
      lastPx = Math.floor(x1); lastKind = kind[i]; drawn++;
    }
    ctx.fillStyle = "#b3122e";  // preemptions: a tick below the lane
    const pre = inst.preemptions;
    for (let j = lowerBound(pre, view[0]); j < pre.length && pre[j] <= view[1]; j++) {
      ctx.fillRect(Math.floor(X(pre[j])), lane.y + lane.h, 2, 4); drawn++;
    }
  }

  function drawCounter(lane, series, color) {
    const ts = series[0], vs = series[1];
    ctx.strokeStyle = "#d5d9e2"; ctx.strokeRect(LABEL + 0.5, lane.y + 0.5, plotW(), lane.h);
    if (!ts.length) return;
    const Y = function (v) { return lane.y + lane.h - (v / lane.max) * (lane.h - 3); };
    let i = Math.max(0, lowerBound(ts, view[0]) - 1);
    ctx.save(); ctx.beginPath(); ctx.rect(LABEL, lane.y, plotW(), lane.h + 1); ctx.clip();
    ctx.beginPath(); ctx.strokeStyle = color; ctx.lineWidth = 1.2;
    let prev = null, col = null, lo = 0, hi = 0;
    for (; i < ts.length; i++) {
      const x = X(ts[i]), v = vs[i];
      const c = Math.floor(x);
      if (prev === null) { ctx.moveTo(Math.max(x, LABEL), Y(v)); }
      else if (c === col) { lo = Math.min(lo, v); hi = Math.max(hi, v); ctx.lineTo(x, Y(lo)); ctx.lineTo(x, Y(hi)); ctx.lineTo(x, Y(v)); prev = v; continue; }
      else { ctx.lineTo(x, Y(prev)); ctx.lineTo(x, Y(v)); }
      col = c; lo = hi = v; prev = v; drawn++;
      if (ts[i] > view[1]) break;
    }
    if (prev !== null && X(ts[ts.length - 1]) < width) ctx.lineTo(X(Math.min(D.t1, view[1])), Y(prev));
    ctx.stroke(); ctx.restore();
    ctx.fillStyle = "#8a90a0"; ctx.font = "10px system-ui,sans-serif"; ctx.textAlign = "right";
    ctx.fillText(lane.type === "kv" ? "100%" : String(lane.max), LABEL - 6, lane.y + 10);
  }

  function draw() {
    drawn = 0;
    ctx.clearRect(0, 0, width, HEIGHT);
    axis();
    lanes.forEach(function (lane) {
      const inst = D.instances[lane.inst];
      ctx.fillStyle = "#1d2330"; ctx.font = (lane.type === "steps" ? "600 " : "") + "12px system-ui,sans-serif";
      ctx.textAlign = "left";
      ctx.fillText(lane.title, 6, lane.y + Math.min(lane.h, 22) / 2 + 4);
      if (lane.type === "steps") drawSteps(lane, inst);
      else if (lane.type === "queue") drawCounter(lane, inst.queue, "#c0392b");
      else drawCounter(lane, inst.kv, "#16876b");
    });
    document.getElementById("view").textContent = "showing " + fmt(view[0]) + " to " + fmt(view[1]);
    document.body.setAttribute("data-rendered", String(lanes.length));
    document.body.setAttribute("data-marks-drawn", String(drawn));
  }

  function valueAt(series, t) {
    const i = lowerBound(series[0], t + 1e-9) - 1;
    return i >= 0 ? series[1][i] : null;
  }

  function stepAt(inst, t, slack) {
    const ts = inst.ts, dur = inst.dur;
    let i = lowerBound(ts, t + 1e-9) - 1, best = -1, dist = Infinity;
    for (let j = Math.max(0, i - 1); j <= Math.min(ts.length - 1, i + 1); j++) {
      const d = t < ts[j] ? ts[j] - t : (t > ts[j] + dur[j] ? t - ts[j] - dur[j] : 0);
      if (d < dist) { dist = d; best = j; }
    }
    return dist <= slack ? best : -1;
  }

  function hover(ev) {
    const r = canvas.getBoundingClientRect(), x = ev.clientX - r.left, yy = ev.clientY - r.top;
    const lane = lanes.find(function (l) { return yy >= l.y && yy <= l.y + l.h; });
    if (!lane || x < LABEL || x > width - RIGHT) { tip.style.display = "none"; return; }
    const inst = D.instances[lane.inst], t = T(x);
    let text = null;
    if (lane.type === "steps") {
      const j = stepAt(inst, t, 3 * (view[1] - view[0]) / plotW());
      if (j >= 0) {
        const lines = [inst.name + ": " + D.kinds[inst.kind[j]] + " step",
          "start " + fmt(inst.ts[j]) + "  end " + fmt(inst.ts[j] + inst.dur[j]), "duration " + fmt(inst.dur[j])];
        D.argNames.forEach(function (n, k) { lines.push(n + ": " + inst.args[k][j]); });
        if (inst.source.length) lines.push("duration from: " + inst.source.join(", "));
        text = lines.join("\n");
      }
    } else {
      const v = valueAt(lane.type === "queue" ? inst.queue : inst.kv, t);
      if (v !== null) text = inst.name + " " + lane.title + " at " + fmt(t) + "\n" +
        (lane.type === "kv" ? (100 * v).toFixed(2) + "%" : v + " waiting");
    }
    if (text === null) { tip.style.display = "none"; return; }
    tip.textContent = text; tip.style.display = "block";
    tip.style.left = Math.min(x + 14, width - tip.offsetWidth - 4) + "px"; tip.style.top = (yy + 14) + "px";
  }

  function zoom(factor, at) {
    const span = (view[1] - view[0]) * factor, fullSpan = full[1] - full[0];
    const s = Math.min(Math.max(span, 1), fullSpan), f = (at - view[0]) / (view[1] - view[0]);
    let a = at - f * s;
    a = Math.min(Math.max(a, full[0]), full[1] - s);
    view = [a, a + s]; draw();
  }

  let dragX = null, dragView = null;
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoom(ev.deltaY < 0 ? 1 / 1.25 : 1.25, T(Math.max(ev.clientX - r.left, LABEL)));
  }, {passive: false});
  canvas.addEventListener("mousedown", function (ev) { dragX = ev.clientX; dragView = view.slice(); });
  window.addEventListener("mouseup", function () { dragX = null; });
  canvas.addEventListener("mousemove", function (ev) {
    if (dragX !== null) {
      const dt = (ev.clientX - dragX) / plotW() * (dragView[1] - dragView[0]), s = dragView[1] - dragView[0];
      let a = Math.min(Math.max(dragView[0] - dt, full[0]), full[1] - s);
      view = [a, a + s]; draw();
    }
    hover(ev);
  });
  canvas.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  canvas.addEventListener("dblclick", function () { view = full.slice(); draw(); });
  document.getElementById("reset").addEventListener("click", function () { view = full.slice(); draw(); });
  document.getElementById("zin").addEventListener("click", function () { zoom(1 / 2, (view[0] + view[1]) / 2); });
  document.getElementById("zout").addEventListener("click", function () { zoom(2, (view[0] + view[1]) / 2); });
  window.addEventListener("resize", resize);
  resize();
})();
"""

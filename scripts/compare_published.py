#!/usr/bin/env python3
"""Simulate the published vLLM measurements of docs/data/published_vllm.yaml and compare.

    python scripts/compare_published.py                                   # roofline-v1 and roofline-v2
    python scripts/compare_published.py --latency-model roofline-v1 --markdown report.md --json report.json
    python scripts/compare_published.py --hardware-config handset --only pace-llama31-8b-l40s-rate1

Each point of the data file is one blis-sim run through the Python API (``prepare`` / ``execute``), with:

* the model's packaged HuggingFace config (``model_configs/<lower-cased repo name>``), the point's GPU entry of the
  hardware config (default: the packaged ``hardware_config.json``; ``handset`` names the hand-set file) and TP;
* KV capacity: the point's ``server.total_kv_blocks`` when its source logged vLLM's KV cache size, else derived
  from GPU memory as ``blis run`` does;
* vLLM's scheduler limits: the point's ``server`` settings, else vLLM's documented defaults for the GPU
  (``EngineArgs``: ``vllm serve`` 2048 batched tokens / 256 sequences, offline ``LLM`` 8192 / 256; on GPUs of 70 GB or
  more other than A100, 8192 / 1024 and 16384 / 1024); ``max_model_len`` the point's, else the model's maximum;
  the asynchronous engine loop from vLLM 0.12 on or when the version is unknown (the rule of ``blis evaluate``);
* the workload: constant prompt and output lengths at the point's means, and
  - ``rate``: Poisson arrivals at the rate (``vllm bench serve --request-rate``);
  - ``offline``: every request at t=0 (``--request-rate inf``, or a ``benchmark_latency`` batch); with
    ``repeated: true`` (``benchmark_latency``, which sends the same dummy prompts in every warm-up and measured
    iteration) the batch runs twice, a warm-up at t=0 and the measured copy at t=3600 s, so the measured iteration
    finds all but the last block of every prompt in the prefix cache, as vLLM's does;
  - ``concurrency``: a closed loop of ``value`` requests in flight, the next request sent the moment one completes
    (``--max-concurrency``), built on blis-sim's closed-loop session driver;
  ``--max-requests`` (default 1000) caps the requests simulated per point; the seed is fixed (``--seed``).

Metrics follow vLLM's benchmark definitions, computed from the simulated per-request records: TTFT and E2E per
request; TPOT per request = (E2E - TTFT) / (output - 1); mean ITL = all decode time over all decode gaps; median ITL
is the median of the per-token gaps (every decoding request of a step sees the time since the previous step ended;
recorded by an observer of the run's steps); throughput over the time from
the first arrival to the last completion. Each rate point also gets the queue-growth verdict of ``blis evaluate``
(``kept_up``: did the simulated server keep up with the offered rate). Points whose model or GPU cannot be
simulated, and runs that fail, are
listed as skipped with the reason. The comparison uses only the ``measured`` metrics (``excluded`` ones are shown
in the JSON output, not scored).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import statistics
import sys
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

import yaml  # noqa: E402

import blis_sim  # noqa: E402
from blis_sim import SimulationConfig, execute, prepare  # noqa: E402
from blis_sim.engine.observer import Observer  # noqa: E402
from blis_sim.metrics.saturation import growth_from_records  # noqa: E402
from blis_sim.request import Request, RequestStatus  # noqa: E402
from blis_sim.workload.description import (  # noqa: E402
    ClampedNormal,
    GaussianLengths,
    Stage,
    WorkloadDescription,
)
from blis_sim.workload.spec_gen import SessionPlan  # noqa: E402

DATA_FILE = ROOT / "docs" / "data" / "published_vllm.yaml"
PACKAGE_DATA = Path(blis_sim.__file__).resolve().parent / "data"
HARDWARE_FILES = {"default": PACKAGE_DATA / "hardware_config.json",
                  "handset": PACKAGE_DATA / "hardware_config_handset.json"}
LATENCY_MODELS = ("roofline-v1", "roofline-v2")
DEFAULT_LATENCY_MODELS = ("roofline-v1", "roofline-v2")
DEFAULT_MAX_REQUESTS = 1000
DEFAULT_SEED = 42

KNOWN_GPUS = ("H100", "A100-80GB", "A100-80GB-PCIe", "A100-40GB", "L40S")
LOAD_KINDS = ("rate", "concurrency", "offline")
TICKS_PER_S = 1_000_000  # blis-sim ticks are microseconds
REPEAT_AT_S = 3600  # a repeated batch's measured copy arrives then: long after any warm-up iteration has finished
METRICS = ("ttft_mean_ms", "ttft_median_ms", "tpot_mean_ms", "tpot_median_ms", "itl_mean_ms", "itl_median_ms",
           "e2e_mean_ms", "e2e_median_ms", "output_tokens_per_s", "requests_per_s")
SERVER_KEYS = ("usage", "max_model_len", "max_num_batched_tokens", "max_num_seqs", "async_scheduling",
               "total_kv_blocks")
USAGES = ("serve", "llm")
ASYNC_SINCE = (0, 12)
# GPUs vLLM gives its large-accelerator scheduler defaults (>= 70 GB and not an A100: EngineArgs defaults)
LARGE_GPUS = ("H100", "H200", "B200")

log = logging.getLogger("compare_published")


# ------------------------------------------------------------------------------------------------------ the data
def load_points(path: Path = DATA_FILE) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of points")
    return data


def _positive(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def check_point(p: Any) -> list[str]:
    """Schema problems of one point (empty when it is well formed)."""
    if not isinstance(p, dict):
        return ["not a mapping"]
    errs = []
    for key in ("id", "source", "model", "gpu", "tp", "workload", "load", "measured"):
        if key not in p:
            errs.append(f"missing {key}")
    if errs:
        return errs
    if not isinstance(p["id"], str) or not p["id"]:
        errs.append("id must be a non-empty string")
    src = p["source"]
    if not isinstance(src, dict) or not all(isinstance(src.get(k), str) and src.get(k) for k in
                                            ("url", "title", "where")):
        errs.append("source needs url, title and where")
    elif not src["url"].startswith("https://"):
        errs.append("source.url must be an https URL")
    if not isinstance(src, dict) or src.get("accessed") is None:
        errs.append("source.accessed missing")
    if "vllm_version" not in p:
        errs.append("missing vllm_version (null when not stated)")
    elif p["vllm_version"] is not None and not isinstance(p["vllm_version"], str):
        errs.append("vllm_version must be a string or null")
    if not isinstance(p["model"], str) or "/" not in p["model"]:
        errs.append("model must be a HuggingFace id (owner/name)")
    if p["gpu"] not in KNOWN_GPUS:
        errs.append(f"gpu {p['gpu']!r} not one of {', '.join(KNOWN_GPUS)}")
    if not (isinstance(p["tp"], int) and not isinstance(p["tp"], bool) and p["tp"] >= 1):
        errs.append("tp must be an integer >= 1")
    w = p["workload"]
    if not isinstance(w, dict) or not _positive(w.get("input_tokens")) or not _positive(w.get("output_tokens")):
        errs.append("workload needs positive input_tokens and output_tokens")
    ld = p["load"]
    if not isinstance(ld, dict) or ld.get("kind") not in LOAD_KINDS or not _positive(ld.get("value")):
        errs.append(f"load needs kind in {LOAD_KINDS} and a positive value")
    elif ld.get("num_prompts") is not None and not (isinstance(ld["num_prompts"], int) and ld["num_prompts"] >= 1):
        errs.append("load.num_prompts must be a positive integer")
    elif ld["kind"] == "concurrency" and not float(ld["value"]).is_integer():
        errs.append("a concurrency load needs an integer value")
    elif "repeated" in ld and (not isinstance(ld["repeated"], bool) or ld["kind"] != "offline"):
        errs.append("load.repeated must be true or false, on an offline load")
    m = p["measured"]
    if not isinstance(m, dict) or not m:
        errs.append("measured must hold at least one metric")
    else:
        for k, v in m.items():
            if k not in METRICS:
                errs.append(f"measured.{k} is not a known metric")
            elif not _positive(v):
                errs.append(f"measured.{k} must be a positive number")
    for k, v in (p.get("excluded") or {}).items():
        if k not in METRICS or not isinstance(v, dict) or not _positive(v.get("value")) or not v.get("reason"):
            errs.append(f"excluded.{k} needs a known metric, a positive value and a reason")
    server = p.get("server") or {}
    if not isinstance(server, dict):
        errs.append("server must be a mapping")
    else:
        for k, v in server.items():
            if k not in SERVER_KEYS:
                errs.append(f"server.{k} unknown")
            elif k == "usage" and v not in USAGES:
                errs.append(f"server.usage must be one of {USAGES}")
            elif k == "async_scheduling" and not isinstance(v, bool):
                errs.append("server.async_scheduling must be true or false")
            elif k not in ("usage", "async_scheduling") and not (isinstance(v, int) and v >= 1):
                errs.append(f"server.{k} must be a positive integer")
    return errs


# ------------------------------------------------------------------------------------------------ simulation set-up
class Skip(Exception):
    """A point (or one latency model's run of it) that cannot be simulated; the message says why."""


def model_folder(model: str, extra: list[Path]) -> Path:
    name = model.rsplit("/", 1)[-1].lower()
    for base in [*extra, PACKAGE_DATA / "model_configs"]:
        folder = base / name
        if (folder / "config.json").is_file():
            return folder
    raise Skip(f"no model config for {model} (looked for model_configs/{name}/config.json)")


def hardware_file(arg: str | None) -> Path:
    if arg is None:
        return HARDWARE_FILES["default"]
    if arg in HARDWARE_FILES:
        return HARDWARE_FILES[arg]
    return Path(arg)


def version_tuple(v: str | None) -> tuple[int, ...] | None:
    if not v:
        return None
    parts = []
    for piece in v.lstrip("v").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or None


def engine_settings(p: dict, model_max_len: int | None) -> tuple[dict, list[str]]:
    """The scheduler settings of the point's vLLM server, and which of them are vLLM defaults."""
    server = p.get("server") or {}
    usage = server.get("usage", "serve")
    large = p["gpu"] in LARGE_GPUS
    defaults = {("serve", False): (2048, 256), ("serve", True): (8192, 1024),
                ("llm", False): (8192, 256), ("llm", True): (16384, 1024)}[(usage, large)]
    notes = []
    tokens = server.get("max_num_batched_tokens")
    seqs = server.get("max_num_seqs")
    if tokens is None or seqs is None:
        notes.append(f"vLLM {usage} defaults for {p['gpu']}: {defaults[0]} batched tokens / {defaults[1]} seqs")
    max_len = server.get("max_model_len") or model_max_len
    if max_len is None:
        raise Skip("no max_model_len in the point and no max_position_embeddings in the model config")
    if "async_scheduling" in server:
        use_async = server["async_scheduling"]
    else:
        v = version_tuple(p.get("vllm_version"))
        use_async = v is None or v >= ASYNC_SINCE
    engine = {"max_num_scheduled_tokens": tokens or defaults[0], "max_num_running_reqs": seqs or defaults[1],
              "max_model_len": int(max_len), "async_scheduling": bool(use_async)}
    if server.get("total_kv_blocks"):  # the count the server logged; otherwise derived from GPU memory
        engine["total_kv_blocks"] = server["total_kv_blocks"]
    return engine, notes


def workload(p: dict, n: int) -> WorkloadDescription:
    w = p["workload"]
    prompt = max(1, round(w["input_tokens"]))
    output = max(1, round(w["output_tokens"]))
    lengths = GaussianLengths(0, ClampedNormal(prompt, 0, prompt, prompt), ClampedNormal(output, 0, output, output))
    kind = p["load"]["kind"]
    stage = Stage("poisson", n, float(p["load"]["value"])) if kind == "rate" else Stage("burst", n)
    return WorkloadDescription(lengths, (stage,))


class _Recorder(Observer):
    """Records the inter-token gaps of every step and, for a concurrency load, keeps ``concurrency`` requests in
    flight.

    Gaps: in a continuous batch every running request decodes one token per step, so the gap each decoding request
    sees is the time since the instance's previous step ended; a step therefore contributes that gap once per decode
    it runs (``num_decodes``, which counts the decode cohort's members too). Closed loop: when a request finishes,
    the next queued request is handed to blis-sim's session driver (it arrives at the finished request's client-side
    completion, arrival + E2E, with no think time); the driver reads ``plan.follow`` right after this observer has
    heard of the completion."""

    def __init__(self, plan: SessionPlan | None = None, queued: deque | None = None, since: int = 0) -> None:
        self.plan = plan
        self.since = since  # gaps count only between steps that both end at or after this tick (a repeated batch)
        self.queued = queued if queued is not None else deque()
        self.lost = 0  # requests that ended without finishing (their slot is not refilled)
        self.gaps: list[tuple[int, int]] = []  # (gap in ticks, decode tokens emitted with that gap)
        self._last_end: dict[int, int] = {}

    def on_step(self, instance, step, queue_depth, kv_used):  # type: ignore[no-untyped-def]
        prev = self._last_end.get(instance)
        decodes = step.num_decodes  # the decode cohort's members are counted in it (step.py)
        if prev is not None and decodes > 0 and prev >= self.since:
            self.gaps.append((step.end - prev, decodes))
        self._last_end[instance] = step.end

    def on_completion(self, instance, req, now):  # type: ignore[no-untyped-def]
        if self.plan is None:
            return
        if req.status != RequestStatus.FINISHED:
            self.lost += 1
            return
        if self.queued:
            self.plan.follow[req.index] = (self.queued.popleft(), 0)

    def itl_mean_ms(self) -> float | None:
        total = sum(w for _, w in self.gaps)
        return sum(g * w for g, w in self.gaps) / total / 1000 if total else None

    def itl_median_ms(self) -> float | None:
        """The weighted median of the per-token gaps (ms)."""
        total = sum(w for _, w in self.gaps)
        if not total:
            return None
        seen = 0
        for gap, w in sorted(self.gaps):
            seen += w
            if 2 * seen >= total:
                return gap / 1000
        return None


def simulate(p: dict, latency_model: str, hw_path: Path, *, max_requests: int, seed: int,
             extra_configs: list[Path]) -> dict:
    """Predicted metrics of one point under one latency model (raises Skip when it cannot be simulated)."""
    folder = model_folder(p["model"], extra_configs)
    hw = json.loads(hw_path.read_text(encoding="utf-8"))
    if p["gpu"] not in hw:
        raise Skip(f"GPU {p['gpu']} is not an entry of {hw_path.name}")
    model_cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    engine, notes = engine_settings(p, model_cfg.get("max_position_embeddings"))
    load = p["load"]
    n = int(min(load.get("num_prompts") or load["value"], max_requests))
    if n < (load.get("num_prompts") or n):
        notes.append(f"{n} of the source's {load['num_prompts']} requests simulated")
    cfg = SimulationConfig(
        latency={"model": p["model"], "model_config_folder": folder, "hardware_config": hw_path,
                 "hardware": p["gpu"], "tp": p["tp"], "latency_model": latency_model},
        engine=engine, seed=seed)
    try:
        prepared = prepare(cfg, workload(p, n))
        if load["kind"] == "concurrency":
            c = int(load["value"])
            requests = list(prepared.requests)
            plan = SessionPlan()
            observer = _Recorder(plan, deque(requests[c:]))
            prepared = replace(prepared, requests=requests[:c], sessions=plan)
        elif load.get("repeated"):
            at = REPEAT_AT_S * TICKS_PER_S
            prepared = replace(prepared, requests=repeated_batch(list(prepared.requests), at))
            observer = _Recorder(since=at)
        else:
            observer = _Recorder()
        results = execute(prepared, collect_requests=True, observer=observer)
    except Skip:
        raise
    except Exception as exc:  # noqa: BLE001 - a run that fails is reported, never fatal
        raise Skip(f"{type(exc).__name__}: {exc}") from None
    records = [r for r in (results.requests or []) if r["e2e_ms"] > 0]
    if load.get("repeated"):
        warm = [r for r in records if r["arrived_at"] < REPEAT_AT_S]
        if len(warm) < n or max(r["arrived_at"] + r["e2e_ms"] / 1000 for r in warm) >= REPEAT_AT_S:
            raise Skip(f"the warm-up batch did not finish within {REPEAT_AT_S} s")
        records = [r for r in records if r["arrived_at"] >= REPEAT_AT_S]
        notes.append("the batch ran twice (warm-up, then the measured copy with the same prompts): the measured "
                     "iteration hits the prefix cache, as in benchmark_latency")
    if not records:
        raise Skip("no request completed")
    if load["kind"] == "concurrency":
        if observer.queued or len(records) < n:
            notes.append(f"closed loop sent {len(records)} of {n} requests ({observer.lost} ended unfinished)")
    elif len(records) < n:
        notes.append(f"{n - len(records)} of {n} requests did not complete")
    pred = metrics(records)
    if load["kind"] == "rate":  # the queue-growth test of blis run / blis evaluate, over every simulated request
        growth = growth_from_records(results.requests or [])
        kept_up, why = growth.kept_up, growth.evidence()
    else:
        kept_up, why = None, "no offered rate: every request at t=0, or a closed loop"
    itl_median = observer.itl_median_ms()
    if itl_median is not None:
        pred["itl_median_ms"] = itl_median
    return {"predicted": pred, "notes": notes, "step_gap_itl_mean_ms": observer.itl_mean_ms(),
            "total_kv_blocks": results.config.get("total_kv_blocks"),
            "latency_model": results.config.get("latency_model"), "engine": engine, "requests": n,
            "kept_up": kept_up, "kept_up_reason": why}


def repeated_batch(requests: list[Request], at: int) -> list[Request]:
    """The batch twice: the requests as a warm-up at their own arrival, then a copy of each with the same token
    ids arriving at tick ``at``. Both carry their ids explicitly and share them by construction, so their prefix
    keys are registered (not deferred, as for independent draws) and the copy's lookup finds the warm-up's blocks."""
    out = [Request(i, r.arrival, r.tokens.copy(), r.num_prompt_tokens) for i, r in enumerate(requests)]
    n = len(out)
    out += [Request(n + i, at, r.tokens.copy(), r.num_prompt_tokens) for i, r in enumerate(out)]
    return out


def metrics(records: list[dict]) -> dict:
    """vLLM benchmark metrics of the completed requests' records (times in ms)."""
    ttft = [r["ttft_ms"] for r in records]
    e2e = [r["e2e_ms"] for r in records]
    decoding = [r for r in records if r["num_decode_tokens"] >= 2]
    tpot = [(r["e2e_ms"] - r["ttft_ms"]) / (r["num_decode_tokens"] - 1) for r in decoding]
    gaps = sum(r["num_decode_tokens"] - 1 for r in decoding)
    start = min(r["arrived_at"] for r in records)
    end = max(r["arrived_at"] + r["e2e_ms"] / 1000 for r in records)
    duration = max(end - start, 1e-9)
    out = {
        "ttft_mean_ms": statistics.fmean(ttft), "ttft_median_ms": statistics.median(ttft),
        "e2e_mean_ms": statistics.fmean(e2e), "e2e_median_ms": statistics.median(e2e),
        "output_tokens_per_s": sum(r["num_decode_tokens"] for r in records) / duration,
        "requests_per_s": len(records) / duration,
    }
    if tpot:
        out.update(tpot_mean_ms=statistics.fmean(tpot), tpot_median_ms=statistics.median(tpot),
                   itl_mean_ms=sum(r["e2e_ms"] - r["ttft_ms"] for r in decoding) / gaps,
                   itl_median_ms=statistics.median(tpot))  # replaced by the step gaps when recorded
    return out


# ---------------------------------------------------------------------------------------------------- comparison
def compare(points: list[dict], latency_models: list[str], hw_path: Path, *, max_requests: int, seed: int,
            extra_configs: list[Path], progress: bool = False) -> dict:
    rows = []
    for i, p in enumerate(points):
        problems = check_point(p)
        entry: dict[str, Any] = {"id": p.get("id") if isinstance(p, dict) else None, "runs": {}}
        if problems:
            entry.update(status="skipped", reason="; ".join(problems))
            rows.append(entry)
            continue
        entry.update(gpu=p["gpu"], model=p["model"], tp=p["tp"], load=dict(p["load"]),
                     workload=dict(p["workload"]), vllm_version=p.get("vllm_version"),
                     measured=dict(p["measured"]), excluded=p.get("excluded") or {}, status="ok")
        for lm in latency_models:
            if progress:
                print(f"[{i + 1}/{len(points)}] {p['id']} {lm}", file=sys.stderr)
            try:
                run = simulate(p, lm, hw_path, max_requests=max_requests, seed=seed, extra_configs=extra_configs)
            except Skip as exc:
                entry["runs"][lm] = {"status": "failed", "reason": str(exc)}
                continue
            run["status"] = "ok"
            run["error_pct"] = {k: 100.0 * (run["predicted"][k] - v) / v
                                for k, v in p["measured"].items() if k in run["predicted"]}
            entry["runs"][lm] = run
        if entry["runs"] and all(r["status"] != "ok" for r in entry["runs"].values()):
            reasons = {r["reason"] for r in entry["runs"].values()}
            entry.update(status="skipped", reason="; ".join(sorted(reasons)))
        rows.append(entry)
    return {
        "data_file": None, "hardware_config": str(hw_path), "latency_models": list(latency_models),
        "max_requests": max_requests, "seed": seed, "points": rows,
        "mape": mape_table(rows, latency_models),
    }


def mape_table(rows: list[dict], latency_models: list[str]) -> dict:
    """{latency model: {gpu: {metric: {"mape": %, "n": points}}}} over the points each model simulated."""
    out: dict = {}
    for lm in latency_models:
        acc: dict = {}
        for row in rows:
            run = row.get("runs", {}).get(lm)
            if not run or run.get("status") != "ok":
                continue
            for metric, err in run["error_pct"].items():
                acc.setdefault(row["gpu"], {}).setdefault(metric, []).append(abs(err))
        out[lm] = {gpu: {m: {"mape": statistics.fmean(v), "n": len(v)} for m, v in sorted(ms.items())}
                   for gpu, ms in sorted(acc.items())}
    return out


# ------------------------------------------------------------------------------------------------------- output
def _fmt(x: float) -> str:
    if x >= 1000:
        return f"{x:,.0f}"
    if x >= 100:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _load_text(load: dict) -> str:
    v = load["value"]
    v = int(v) if float(v).is_integer() else v
    return {"rate": f"rate {v}/s", "concurrency": f"conc {v}", "offline": f"offline {v}"}[load["kind"]]


def markdown(report: dict) -> str:
    lms = report["latency_models"]
    lines = [(f"Hardware config: `{Path(report['hardware_config']).name}`; at most {report['max_requests']} "
              f"requests per point; seed {report['seed']}."), ""]
    head = "| point | GPU | model | TP | load | metric | measured |" + "".join(f" {lm} | err % |" for lm in lms)
    lines += [head, "|" + "---|" * (7 + 2 * len(lms))]
    for row in report["points"]:
        if row["status"] != "ok":
            continue
        for metric, meas in row["measured"].items():
            cells = [row["id"], row["gpu"], row["model"].rsplit("/", 1)[-1], str(row["tp"]), _load_text(row["load"]),
                     metric, _fmt(meas)]
            for lm in lms:
                run = row["runs"].get(lm, {})
                if run.get("status") == "ok" and metric in run["predicted"]:
                    cells += [_fmt(run["predicted"][metric]), f"{run['error_pct'][metric]:+.1f}"]
                else:
                    cells += ["failed" if run.get("status") == "failed" else "-", "-"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "MAPE by GPU and metric (points simulated by that latency model):", ""]
    lines += ["| GPU | metric |" + "".join(f" {lm} MAPE % (n) |" for lm in lms), "|" + "---|" * (2 + len(lms))]
    keys = sorted({(g, m) for lm in lms for g, ms in report["mape"][lm].items() for m in ms})
    for gpu, metric in keys:
        cells = [gpu, metric]
        for lm in lms:
            v = report["mape"][lm].get(gpu, {}).get(metric)
            cells.append(f"{v['mape']:.1f} ({v['n']})" if v else "-")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Did the simulated server keep up with the offered load? (rate points; the queue-growth test of "
                  "`blis evaluate`, docs/evaluate.md#saturation)", ""]
    for lm in lms:
        runs = [(row["id"], row["runs"][lm]) for row in report["points"] if row["status"] == "ok"
                and row["load"]["kind"] == "rate" and row["runs"].get(lm, {}).get("status") == "ok"]
        behind = [(pid, run["kept_up_reason"]) for pid, run in runs if run["kept_up"] is False]
        unknown = sum(run["kept_up"] is None for _, run in runs)
        lines.append(f"- {lm}: {len(runs)} rate point(s), {len(runs) - len(behind) - unknown} kept up, "
                     f"{len(behind)} did not, {unknown} too short to judge")
        lines += [f"  - {pid}: {why}" for pid, why in behind]
    failed = [(row["id"], lm, run["reason"]) for row in report["points"] if row["status"] == "ok"
              for lm, run in row["runs"].items() if run.get("status") == "failed"]
    skipped = [row for row in report["points"] if row["status"] != "ok"]
    if skipped or failed:
        lines += ["", "Skipped:", ""]
        lines += [f"- {row['id']}: {row['reason']}" for row in skipped]
        lines += [f"- {pid} ({lm}): {reason}" for pid, lm, reason in failed]
    lines += ["", ("Concurrency points run as a closed loop (the next request is sent when one completes); median "
                   "ITL is the median of the simulated per-token gaps."), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA_FILE, help="points file (default: %(default)s)")
    ap.add_argument("--latency-model", nargs="+", choices=LATENCY_MODELS, default=list(DEFAULT_LATENCY_MODELS),
                    help="latency model(s) to compare (default: both)")
    ap.add_argument("--hardware-config", default=None,
                    help="hardware config file, or 'handset' for the hand-set constants (default: the packaged one)")
    ap.add_argument("--model-configs", type=Path, action="append", default=[],
                    help="extra folder of <name>/config.json model configs (searched first)")
    ap.add_argument("--max-requests", type=int, default=DEFAULT_MAX_REQUESTS,
                    help="cap on requests simulated per point (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--only", nargs="+", metavar="ID", help="simulate only these point ids")
    ap.add_argument("--markdown", type=Path, metavar="OUT", help="write the Markdown report here")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write the JSON report here")
    ap.add_argument("--progress", action="store_true", help="print each run as it starts (stderr)")
    args = ap.parse_args(argv)
    if args.max_requests < 1:
        ap.error("--max-requests must be >= 1")
    hw_path = hardware_file(args.hardware_config)
    if not hw_path.is_file():
        ap.error(f"--hardware-config {args.hardware_config}: no such file")
    logging.getLogger("blis_sim").setLevel(logging.ERROR)
    points = load_points(args.data)
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {p.get("id") for p in points if isinstance(p, dict)}
        if unknown:
            ap.error(f"--only: no point {', '.join(sorted(unknown))}")
        points = [p for p in points if isinstance(p, dict) and p.get("id") in wanted]
    report = compare(points, args.latency_model, hw_path, max_requests=args.max_requests, seed=args.seed,
                     extra_configs=args.model_configs, progress=args.progress)
    report["data_file"] = str(args.data)
    text = markdown(report)
    print(text)
    if args.markdown:
        args.markdown.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""guidellm sweeps: an experiment folder (``exp-config.yaml``, ``profile.yaml``, metrics files, optional
``vllm.log``) or a guidellm report JSON on its own (``{args, benchmarks}``, guidellm's ``benchmarks.json``).

Metrics come from, in this order: ``per_benchmark_server_metrics.json`` (server side, from vLLM's request traces;
ITL decode-only when recorded), the guidellm report (``guidellm-results.json`` / ``benchmarks.json``, client side)
or ``guidellm-summary.json`` (client side). Throughput comes from the guidellm files when they exist. A sweep's
benchmarks become points: ``synchronous`` (one request at a time), ``throughput`` (all at once: a saturation test,
reported but kept out of the averages), ``constant`` (evenly spaced) and ``poisson``. A ``per_request.csv`` beside
them (derived from vLLM's request traces) gives each point its requests' arrivals, times in queue and TTFTs, the
evidence of whether the server kept up (``Point.served``, judged in ``saturation``).
"""

from __future__ import annotations

import ast
import csv
import io
import json
from pathlib import Path
from typing import Any

from .experiment import (
    BURST,
    CONSTANT,
    ITL_BLIS,
    ITL_DECODE,
    POISSON,
    SEQUENTIAL,
    Experiment,
    Failure,
    Load,
    Point,
    Served,
)
from .fields import (
    Fields,
    GroundTruthError,
    as_float,
    as_int,
    measured_metrics,
    read_json,
    read_profile,
    read_text,
    read_yaml,
)
from .load_combined import synthetic_lengths
from .vllm_log import ServerLog, read_server_files, server_settings

FORMAT = "guidellm"
SERVER_METRICS = "per_benchmark_server_metrics.json"
REPORT_FILES = ("guidellm-results.json", "benchmarks.json")
SUMMARY = "guidellm-summary.json"
PER_REQUEST = "per_request.csv"
_SATURATION = "throughput benchmark: a saturation test (every request sent at once)"


def is_guidellm_folder(folder: Path) -> bool:
    if any((folder / n).is_file() for n in (SERVER_METRICS, SUMMARY, *REPORT_FILES)):
        return True
    raw = read_profile(folder)
    return raw is not None and any(k in raw for k in ("rate-type", "rate_type", "max-requests"))


def is_guidellm_report(raw: Any) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("benchmarks"), list) and isinstance(raw.get("args"), dict)


# --------------------------------------------------------------------------------------------------- benchmarks
class _Bench:
    """One benchmark of a sweep as read from any of the metric files."""

    def __init__(self, index: int, strategy: str, rate: float | None, count: int | None, measured: dict,
                 names: dict, itl: str, source: Path, notes: tuple[str, ...] = ()) -> None:
        self.index, self.strategy, self.rate, self.count = index, strategy, rate, count
        self.measured, self.names, self.itl, self.source, self.notes = measured, names, itl, source, notes
        self.throughput: tuple[float, str] | None = None  # (value, field) from a guidellm file
        self.strategy_field, self.rate_field = "strategy", "rate"


def _server_benchmarks(path: Path) -> list[_Bench]:
    top = Fields(read_json(path), path)
    out = []
    for i, item in enumerate(top.list("benchmarks")):
        b = Fields(item, path, f"benchmarks[{i}]")
        decode = b.has("itl_decode_only_mean_ms")
        itl_key = "itl_decode_only_mean_ms" if decode else "itl_mean_ms"
        keys = {"ttft_mean_ms": "ttft_mean_ms", "ttft_p90_ms": "ttft_p90_ms", "itl_mean_ms": itl_key,
                "e2e_mean_ms": "e2e_mean_ms", "e2e_p90_ms": "e2e_p90_ms"}
        seg = b.raw("segmentation", "")
        notes = ("rates assigned to requests heuristically",) if "heuristic" in str(seg).lower() else ()
        out.append(_Bench(
            index=b.int("benchmark_index", i), strategy=b.str("strategy"),
            rate=as_float(b.raw("qps", None)), count=as_int(b.raw("num_requests", None)),
            measured={m: b.raw(k, None) for m, k in keys.items()}, names={m: b.name(k) for m, k in keys.items()},
            itl=ITL_DECODE if decode else ITL_BLIS, source=path, notes=notes,
        ))
        out[-1].strategy_field, out[-1].rate_field = b.name("strategy"), b.name("qps")
    return out


def _stat(f: Fields | None, key: str, pct: str | None = None) -> tuple[Any, str]:
    """(value, field name) of ``key.successful.mean`` or its percentile ``pct`` in a guidellm report."""
    if f is None:
        return None, key
    m = f.sub(key, optional=True)
    s = m.sub("successful", optional=True) if m is not None else None
    if s is None:
        return None, f.name(key)
    if pct is None:
        return s.raw("mean", None), s.name("mean")
    p = s.sub("percentiles", optional=True)
    return (p.raw(pct, None), p.name(pct)) if p is not None else (None, s.name("percentiles"))


def _report_benchmarks(raw: Any, path: Path) -> list[_Bench]:
    top = Fields(raw, path)
    out = []
    for i, item in enumerate(top.list("benchmarks")):
        b = Fields(item, path, f"benchmarks[{i}]")
        strat = b.sub("config").sub("strategy")
        metrics = b.sub("metrics")
        values, names = {}, {}
        for metric, key, pct, scale in (
            ("ttft_mean_ms", "time_to_first_token_ms", None, 1.0),
            ("ttft_p90_ms", "time_to_first_token_ms", "p90", 1.0),
            ("itl_mean_ms", "inter_token_latency_ms", None, 1.0), ("e2e_mean_ms", "request_latency", None, 1000.0),
            ("e2e_p90_ms", "request_latency", "p90", 1000.0),
        ):
            value, name = _stat(metrics, key, pct)
            number = as_float(value)
            values[metric] = number * scale if number is not None else value
            names[metric] = name
        state = b.sub("scheduler_state", optional=True)
        count = as_int(state.raw("successful_requests", None)) if state is not None else None
        bench = _Bench(i, strat.str("type_"), as_float(strat.raw("rate", None)), count, values, names, ITL_DECODE, path)
        bench.strategy_field, bench.rate_field = strat.name("type_"), strat.name("rate")
        tput, tname = _stat(metrics, "output_tokens_per_second")
        if as_float(tput) is not None:
            bench.throughput = (float(tput), tname)
        out.append(bench)
    return out


def _summary_benchmarks(path: Path) -> list[_Bench]:
    top = Fields(read_json(path), path)
    out = []
    for i, item in enumerate(top.list("benchmarks")):
        b = Fields(item, path, f"benchmarks[{i}]")
        c = b.sub("client_side")
        values, names = {}, {}
        for metric, key, stat, scale in (
            ("ttft_mean_ms", "time_to_first_token_ms", "mean", 1.0),
            ("ttft_p90_ms", "time_to_first_token_ms", "p90", 1.0),
            ("itl_mean_ms", "inter_token_latency_ms", "mean", 1.0), ("e2e_mean_ms", "request_latency", "mean", 1000.0),
            ("e2e_p90_ms", "request_latency", "p90", 1000.0),
        ):
            s = c.sub(key, optional=True)
            value = s.raw(stat, None) if s is not None else None
            number = as_float(value)
            values[metric] = number * scale if number is not None else value
            names[metric] = f"{c.name(key)}.{stat}"
        ok = as_int(b.raw("successful", None))
        bench = _Bench(b.int("benchmark_index", i), b.str("strategy"), as_float(b.raw("rate", None)), ok, values,
                       names, ITL_DECODE, path)
        bench.strategy_field, bench.rate_field = b.name("strategy"), b.name("rate")
        out_tokens = c.sub("output_token_count", optional=True)
        mean_out = as_float(out_tokens.raw("mean", None)) if out_tokens is not None else None
        duration = as_float(b.raw("duration", None))
        if ok and mean_out and duration:
            bench.throughput = (ok * mean_out / duration, f"{b.name('successful')} x {c.name('output_token_count')}"
                                                          f".mean / {b.name('duration')}")
        out.append(bench)
    return out


# --------------------------------------------------------------------------------------------------- workload data
def parse_data_arg(value: Any) -> dict | None:
    """guidellm's ``--data`` value as a dict: a mapping, JSON, a Python literal, or ``key=value,key=value``."""
    if isinstance(value, list) and value:
        value = value[0]
    if isinstance(value, dict):
        return value
    if not isinstance(value, str):
        return None
    for parse in (json.loads, ast.literal_eval):
        try:
            parsed = parse(value)
        except (ValueError, SyntaxError):
            continue
        if isinstance(parsed, dict):
            return parsed
    pairs = [p.split("=", 1) for p in value.split(",") if "=" in p]
    return {k.strip(): v.strip() for k, v in pairs} or None


# --------------------------------------------------------------------------------------------------- experiment
def load_guidellm_folder(folder: Path, name: str | None = None) -> tuple[Experiment, list[Failure]]:
    exp_cfg = _optional_yaml(folder / "exp-config.yaml")
    profile = _optional_yaml(folder / "profile.yaml")
    report_path = next((folder / n for n in REPORT_FILES if (folder / n).is_file()), None)
    report = read_json(report_path) if report_path is not None else None
    if report is not None and not is_guidellm_report(report):
        raise GroundTruthError(report_path, "benchmarks", "missing (a guidellm report holds args and benchmarks)")
    if (folder / SERVER_METRICS).is_file():
        benches = _server_benchmarks(folder / SERVER_METRICS)
        side = "server"
        extra = _report_benchmarks(report, report_path) if report is not None else (
            _summary_benchmarks(folder / SUMMARY) if (folder / SUMMARY).is_file() else [])
        by_index = {b.index: b for b in extra}
        for b in benches:
            if b.index in by_index:
                b.throughput = by_index[b.index].throughput
    elif report is not None:
        benches, side = _report_benchmarks(report, report_path), "client"
    elif (folder / SUMMARY).is_file():
        benches, side = _summary_benchmarks(folder / SUMMARY), "client"
    else:
        raise GroundTruthError(folder, "", f"no metrics file ({SERVER_METRICS}, {', '.join(REPORT_FILES)} or "
                                           f"{SUMMARY})")
    log = read_server_files(folder)
    per_request, note = read_per_request(folder / PER_REQUEST)
    return _build(folder, name or folder.name, exp_cfg, profile, report, report_path, benches, side, log, per_request,
                  (note,) if note else ())


PerRequest = tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]  # arrival, queue, TTFT (s) per request


def read_per_request(path: Path) -> tuple[dict[int, PerRequest], str]:
    """``per_request.csv`` (derived from vLLM's request traces) per ``benchmark_index``: each request's
    ``arrival_s``, ``queue_s`` (time in vLLM's waiting queue) and ``ttft_s``. The file is evidence of queueing only:
    when absent or unreadable the experiment is evaluated without it ({} and a note saying why)."""
    if not path.is_file():
        return {}, ""
    out: dict[int, tuple[list[float], list[float], list[float]]] = {}
    try:
        rows = csv.DictReader(io.StringIO(read_text(path), newline=""))
        for line, row in enumerate(rows, start=2):
            values = [as_float(row.get(k)) for k in ("arrival_s", "queue_s", "ttft_s")]
            index = as_int(row.get("benchmark_index"))
            if index is None or any(v is None or v < 0 for v in values):
                return {}, (f"{path}: line {line}: benchmark_index, arrival_s, queue_s and ttft_s must be numbers "
                            ">= 0: the file is not used")
            lists = out.setdefault(index, ([], [], []))
            for column, value in zip(lists, values):
                column.append(value)  # type: ignore[arg-type]
    except (GroundTruthError, csv.Error) as exc:
        return {}, f"{path}: not used ({exc})"
    return {i: (tuple(a), tuple(q), tuple(t)) for i, (a, q, t) in out.items()}, ""


def load_guidellm_report(raw: Any, path: Path) -> tuple[Experiment, list[Failure]]:
    return _build(path, path.stem, None, None, raw, path, _report_benchmarks(raw, path), "client",
                  read_server_files(path.parent), {}, ())


def _optional_yaml(path: Path) -> Fields | None:
    if not path.is_file():
        return None
    raw = read_yaml(path)
    return Fields(raw, path)


def _build(where: Path, name: str, exp_cfg: Fields | None, profile: Fields | None, report: Any,
           report_path: Path | None, benches: list[_Bench], side: str, log: ServerLog,
           per_request: dict[int, PerRequest], notes: tuple[str, ...]) -> tuple[Experiment, list[Failure]]:
    args = Fields(report["args"], report_path, "args") if report is not None else None
    model = _first_str(exp_cfg, "model") or log.served_model() or (
        args.raw("model", None) if args is not None else None)
    if not model:
        raise GroundTruthError(where / "exp-config.yaml", "model", "missing (and no vllm.log or report names it)")
    data = _data_block(where, profile, args)
    max_requests = None
    if profile is not None:
        max_requests = as_int(profile.raw("max-requests", None)) or as_int(profile.raw("max_requests", None))
    if max_requests is None and args is not None:
        max_requests = as_int(args.raw("max_requests", None))
    points: list[Point] = []
    failed: list[Failure] = []
    for b in benches:
        label = f"{b.index} {b.strategy}" + (f" {b.rate:.4g} rps" if b.rate and b.strategy in ("constant", "poisson")
                                             else "")
        try:
            points.append(_point(b, label, max_requests, per_request.get(b.index)))
        except GroundTruthError as exc:
            failed.append(Failure(name, label, str(b.source), str(exc)))
    server, tp = server_settings(where, exp_cfg, log)
    workload = (_first_str(exp_cfg, "workload") or _first_str(exp_cfg, "app") or "guidellm")
    exp = Experiment(
        name=name, format=FORMAT, source=str(where), model=model, gpu=None, tp=tp,
        vllm_version=log.version, version_source=log.source if log.version else "",
        server=server, workload=workload, lengths=synthetic_lengths(data), points=tuple(points), metric_side=side,
        notes=notes,
    )
    return exp, failed


def _first_str(f: Fields | None, key: str) -> str | None:
    if f is None:
        return None
    value = f.raw(key, None)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _data_block(where: Path, profile: Fields | None, args: Fields | None) -> Fields:
    if profile is not None and profile.has("data"):
        raw = profile.raw("data")
        parsed = parse_data_arg(raw)
        if parsed is None:
            raise profile.error("data", "must be guidellm's emulated data (prompt_tokens, output_tokens, ...)")
        return Fields(parsed, profile.path, profile.name("data"))
    if args is not None and args.has("data"):
        parsed = parse_data_arg(args.raw("data"))
        if parsed is None or "prompt_tokens" not in parsed:
            raise args.error("data", "must be guidellm's emulated data (prompt_tokens, output_tokens, ...); a "
                                     "dataset file cannot be simulated")
        return Fields(parsed, args.path, args.name("data"))
    raise GroundTruthError(where / "profile.yaml", "data", "missing (the request lengths are needed)")


def _point(b: _Bench, label: str, max_requests: int | None, requests: PerRequest | None = None) -> Point:
    count = max_requests or b.count
    if not count:
        raise GroundTruthError(b.source, "num_requests", "missing (how many requests the benchmark sent)")
    measured = measured_metrics(b.measured, b.names, b.source)
    if b.throughput is not None:
        measured.update(measured_metrics({"throughput_tokens_per_s": b.throughput[0]},
                                         {"throughput_tokens_per_s": b.throughput[1]}, b.source))
    strategy = b.strategy.lower()
    excluded = ""
    if strategy == "synchronous":
        load = Load(SEQUENTIAL, None, count)
    elif strategy == "throughput":
        load, excluded = Load(BURST, None, count), _SATURATION
    elif strategy in ("constant", "poisson"):
        if not b.rate or b.rate <= 0:
            raise GroundTruthError(b.source, b.rate_field,
                                   f"a {strategy} benchmark needs its rate (requests per second)")
        load = Load(CONSTANT if strategy == "constant" else POISSON, b.rate, count)
    else:
        raise GroundTruthError(b.source, b.strategy_field, f"{b.strategy!r} benchmarks cannot be simulated yet "
                                                           "(synchronous, throughput, constant and poisson can)")
    served = None
    if requests is not None:  # guidellm's errored requests are left out: they include requests vLLM rejected (400)
        served = Served(PER_REQUEST, arrival_s=requests[0], queue_s=requests[1], ttft_s=requests[2])
    return Point(label, load, measured, b.itl, excluded=excluded, notes=b.notes, served=served)

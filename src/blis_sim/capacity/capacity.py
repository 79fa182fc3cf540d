"""Capacity questions: for each configuration, the largest request rate that meets every SLO, its GPUs, throughput
per GPU and cost per million output tokens; a ranked table and the Pareto front.

Each configuration is the base run configuration with one combination of the ``vary`` values. Its search
(``search.RateSearch``) probes one rate at a time; the probes of all configurations share one backend, so on N
workers N configurations are searched at once. A probe is a run of ``max(probe_requests, rate x probe_seconds)``
requests at that rate (``metrics`` explains the steady-state window and the saturation test); a probe that was not
in steady state (a request outlasted the warm-up) and did not saturate is run again four times longer, once.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SimulationConfig
from ..errors import InputError
from . import fields as F
from .backends import make_backend
from .runner import Task
from .search import DEFAULT_MAX_RATE, DEFAULT_MIN_RATE, DEFAULT_TOLERANCE, RateSearch
from .slo import SLO, violations
from .sweep import close_quietly, label

DEFAULT_PROBE_REQUESTS = 1000
DEFAULT_PROBE_SECONDS = 120.0
MAX_PROBE_REQUESTS = 40_000
EXTEND_FACTOR = 4
UNSUPPORTED_WORKLOADS = ("traces",)  # their arrival times come from the trace, not from a rate
CAPACITY_SCHEMA_VERSION = 1

Progress = Callable[[int, int, int, int], None]  # (probes done, probes expected, configurations done, in all)


@dataclass(frozen=True)
class CapacityQuestion:
    base: SimulationConfig
    slos: tuple[SLO, ...]
    vary: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    tolerance: float = DEFAULT_TOLERANCE
    min_rate: float = DEFAULT_MIN_RATE
    max_rate: float = DEFAULT_MAX_RATE
    start_rate: float | None = None  # None: the base's --rate when given, else 1 req/s
    probe_requests: int = DEFAULT_PROBE_REQUESTS
    probe_seconds: float = DEFAULT_PROBE_SECONDS
    max_probe_requests: int = MAX_PROBE_REQUESTS

    def configurations(self) -> list[tuple[dict[str, Any], SimulationConfig]]:
        """(vary values, configuration) of every combination, validated; a ``ValueError`` names the value."""
        if not self.slos:
            raise ValueError("--slo: at least one SLO is required (e.g. ttft_p90_ms<=200)")
        names = [n for n, _ in self.vary]
        for name, values in self.vary:
            F.check_field(name, f"--vary {name}")
            if name == "rate":
                raise ValueError("--vary rate: the rate is what capacity searches (give --rate for the first probe)")
            if name == "num_requests":
                raise ValueError("--vary num_requests: the probe length is --num-requests / --probe-seconds")
            if not values:
                raise ValueError(f"--vary {name}: no values")
        base = F.flat(self.base)
        if self.base.workload.workload in UNSUPPORTED_WORKLOADS:
            raise ValueError("--workload traces: a trace fixes its own arrival times, so there is no request rate to "
                             "search (use distribution or a preset)")
        out = []
        for combo in itertools.product(*(values for _, values in self.vary)):
            vals = dict(zip(names, combo))
            try:
                cfg = F.build({**base, **vals})
            except F.BuildError as exc:
                if exc.field in vals:
                    raise ValueError(f"--vary {exc.field}={vals[exc.field]}: {exc.text}") from None
                if exc.field is not None:
                    raise ValueError(f"--{exc.field.replace('_', '-')}: {exc.text}") from None
                raise ValueError(f"--vary: the configuration {label(vals, names)}: {exc.text}") from None
            if cfg.workload.workload in UNSUPPORTED_WORKLOADS:
                raise ValueError(f"--vary: the configuration {label(vals, names)}: --workload traces has no rate to "
                                 "search")
            out.append((vals, cfg))
        return out

    def first_rate(self) -> float:
        if self.start_rate is not None:
            return self.start_rate
        return self.base.workload.rate if self.base.workload.is_set("rate") else 1.0

    def requests_at(self, rate: float) -> int:
        return min(self.max_probe_requests, max(self.probe_requests, math.ceil(rate * self.probe_seconds)))

    def describe(self) -> dict[str, Any]:
        return {
            "slo": [str(s) for s in self.slos],
            "vary": {n: [_plain(v) for v in vals] for n, vals in self.vary},
            "base": {k: _plain(v) for k, v in F.flat(self.base).items()},
            "tolerance": self.tolerance, "min_rate": self.min_rate, "max_rate": self.max_rate,
            "start_rate": self.first_rate(), "probe_requests": self.probe_requests,
            "probe_seconds": self.probe_seconds, "max_probe_requests": self.max_probe_requests,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def parse_vary(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """``tp=1,2;hardware=H100,A100-80GB`` -> (("tp", ("1", "2")), ("hardware", ("H100", "A100-80GB"))). Field names
    may be spelled with dashes; values are validated by the configuration model."""
    out: list[tuple[str, tuple[str, ...]]] = []
    for part in text.split(";"):
        if not part.strip():
            continue
        name, sep, values = part.partition("=")
        name = name.strip().removeprefix("--").replace("-", "_")
        if not sep or not name:
            raise ValueError(f"--vary: {part.strip()!r} is not field=value,value (e.g. tp=1,2;hardware=H100,H200)")
        items = tuple(v.strip() for v in values.split(",") if v.strip())
        if not items:
            raise ValueError(f"--vary {name}: no values")
        if len(set(items)) != len(items):
            raise ValueError(f"--vary {name}: a value is given twice")
        if any(n == name for n, _ in out):
            raise ValueError(f"--vary {name}: given twice")
        out.append((name, items))
    if not out:
        raise ValueError("--vary: must be field=value,value;... (e.g. tp=1,2;hardware=H100,H200)")
    return tuple(out)


# ------------------------------------------------------------------------------------------------------ running
@dataclass
class CapacityResult:
    question: CapacityQuestion
    rows: list[dict]  # one per configuration, ranked
    probes: list[dict]
    pareto: list[str]  # configurations on the Pareto front
    backend: str
    workers: int
    wall_s: float
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    busy_s: float = 0.0  # the probes' own wall time, summed over the workers
    prepare_s: float = 0.0
    probe_requests: int = 0  # requests simulated, over all probes

    @property
    def pareto_metric(self) -> str:
        return self.question.slos[0].metric

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": CAPACITY_SCHEMA_VERSION,
            "question": self.question.describe(),
            "configurations": self.rows,
            "pareto_metric": self.pareto_metric,
            "pareto": self.pareto,
            "probes": self.probes,
            "backend": self.backend,
            "workers": self.workers,
            "wall_time_s": round(self.wall_s, 3),
            "interrupted": self.interrupted,
        }


def run_capacity(question: CapacityQuestion, backend: str = "local", jobs: int | None = None,
                 ray_address: str | None = None, progress: Progress | None = None) -> CapacityResult:
    """Answer ``question``. A configuration whose probe fails is recorded with the error and the others go on;
    Ctrl-C returns what was found so far with ``interrupted`` set (configurations not finished say so)."""
    try:
        configs = question.configurations()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    started = time.perf_counter()
    names = [n for n, _ in question.vary]
    labels = [label(vals, names) for vals, _ in configs]
    base_fields = [F.flat(cfg) for _, cfg in configs]
    searches = [RateSearch(question.first_rate(), question.tolerance, question.min_rate, question.max_rate)
                for _ in configs]
    probes: list[list[dict]] = [[] for _ in configs]
    last_row: list[dict[float, dict]] = [{} for _ in configs]
    extended: list[set[float]] = [set() for _ in configs]
    warnings: list[str] = []
    interrupted = False
    busy = [0.0, 0.0, 0]  # probe wall time, of which prepare, requests simulated
    runner = make_backend(backend, jobs, ray_address)

    def submit(i: int, rate: float, n: int) -> None:
        cfg = F.build({**base_fields[i], "rate": rate, "num_requests": n})
        runner.submit(Task(("probe", i, rate, n), cfg))

    def report() -> None:
        if progress is not None:
            done = sum(len(p) for p in probes)
            expected = done + sum(s.remaining() for s in searches)
            progress(done, expected, sum(s.done for s in searches), len(searches))

    try:
        for i, s in enumerate(searches):
            rate = s.next_rate()
            assert rate is not None
            submit(i, rate, question.requests_at(rate))
        report()
        while runner.pending:
            outcome = runner.next_done()
            _, i, rate, n = outcome.key
            busy[0] += outcome.wall_s
            busy[1] += outcome.prepare_s
            busy[2] += n
            warnings.extend(w for w in outcome.warnings if w not in warnings)
            search = searches[i]
            record: dict[str, Any] = {"configuration": labels[i], "sequence": len(probes[i]), "rate": rate,
                                      "num_requests": n}
            if outcome.row is None:
                record.update(feasible=None, reason=outcome.error)
                probes[i].append(record)
                search.fail(outcome.error)
                report()
                continue
            row = outcome.row
            if (not row["saturated"] and not row["steady_state"] and rate not in extended[i]
                    and n < question.max_probe_requests):
                extended[i].add(rate)
                record.update(feasible=None, reason="not in steady state (a request outlasted the warm-up): run "
                                                    f"again with {min(n * EXTEND_FACTOR, question.max_probe_requests)}"
                                                    " requests", **row)
                probes[i].append(record)
                submit(i, rate, min(n * EXTEND_FACTOR, question.max_probe_requests))
                report()
                continue
            missed = violations(question.slos, row)
            if row["saturated"]:
                kind, reason = "saturation", (f"served {row['served_ratio']:.0%} of the requests that arrived "
                                              "after the warm-up")
            elif missed:
                kind, reason = "slo", "; ".join(missed)
            else:
                kind, reason = "", ""
            feasible = not kind
            record.update(feasible=feasible, reason=reason, **row)
            probes[i].append(record)
            last_row[i][rate] = row
            search.record(rate, feasible, reason, kind or "slo")
            nxt = search.next_rate()
            if nxt is not None:
                submit(i, nxt, question.requests_at(nxt))
            report()
    except KeyboardInterrupt:
        interrupted = True
        close_quietly(runner, cancel=True)
    else:
        interrupted = not close_quietly(runner, cancel=False)
    rows = [_config_row(question, vals, labels[i], searches[i], last_row[i])
            for i, (vals, _) in enumerate(configs)]
    rows = rank(rows)
    front = pareto_front(rows, question.slos[0])
    for r in rows:
        r["pareto"] = r["configuration"] in front
    flat_probes = [p for ps in probes for p in ps]
    return CapacityResult(question, rows, flat_probes, front, runner.name, runner.workers,
                          time.perf_counter() - started, interrupted, warnings, busy[0], busy[1], int(busy[2]))


def _config_row(question: CapacityQuestion, vals: Mapping[str, Any], name: str, search: RateSearch,
                rows_by_rate: dict[float, dict]) -> dict[str, Any]:
    res = search.result()
    row: dict[str, Any] = {"rank": None, "configuration": name}
    row.update({k: _plain(v) for k, v in vals.items()})
    finished = search.done
    status = "failed" if res.limited_by == "error" else ("ok" if finished else "interrupted")
    row.update(status=status, error=res.reason if status == "failed" else "")
    at = rows_by_rate.get(res.lo) if res.lo is not None else None
    row.update(
        max_rate=res.max_rate if status == "ok" else None,
        limited_by=res.limited_by if status == "ok" else None,
        reason=res.reason if status == "ok" else "",
        bracket=[res.lo, res.hi], tolerance=question.tolerance, probes=res.probes,
    )
    any_row = at or next(iter(rows_by_rate.values()), None)
    gpus = any_row["gpus"] if any_row else None
    row["gpus"] = gpus
    row["resolved_hardware"] = any_row["resolved_hardware"] if any_row else None
    row["resolved_tp"] = any_row["resolved_tp"] if any_row else None
    row["resolved_latency_model"] = any_row["resolved_latency_model"] if any_row else None
    row["requests_per_sec_per_gpu"] = res.max_rate / gpus if gpus and status == "ok" else None
    if at is not None and status == "ok":
        row["steady_output_tokens_per_sec"] = at["steady_output_tokens_per_sec"]
        row["output_tokens_per_sec_per_gpu"] = at["output_tokens_per_sec_per_gpu"]
        row["price_usd_per_gpu_hour"] = at["price_usd_per_gpu_hour"]
        row["cost_usd_per_million_output_tokens"] = at["cost_usd_per_million_output_tokens"]
        row["served_ratio"] = at["served_ratio"]
        row["at_max_rate"] = {s.metric: at.get(s.metric) for s in question.slos}
    else:
        row.update(steady_output_tokens_per_sec=0.0 if status == "ok" else None,
                   output_tokens_per_sec_per_gpu=0.0 if status == "ok" else None,
                   price_usd_per_gpu_hour=any_row["price_usd_per_gpu_hour"] if any_row else None,
                   cost_usd_per_million_output_tokens=None, served_ratio=None,
                   at_max_rate={s.metric: None for s in question.slos})
    return row


def rank(rows: list[dict]) -> list[dict]:
    """Most output tokens per GPU first, cheaper first among equals; failed and unfinished configurations last."""
    def key(r: dict) -> tuple:
        ok = r["status"] == "ok" and (r["max_rate"] or 0) > 0
        cost = r["cost_usd_per_million_output_tokens"]
        return (not ok, -(r["output_tokens_per_sec_per_gpu"] or 0.0), cost if cost is not None else math.inf,
                r["configuration"])

    out = sorted(rows, key=key)
    for i, r in enumerate(out, 1):
        r["rank"] = i if r["status"] == "ok" and (r["max_rate"] or 0) > 0 else None
    return out


def pareto_front(rows: list[dict], slo: SLO) -> list[str]:
    """Configurations no other one beats on both throughput per GPU (higher) and the SLO metric at its max rate
    (lower for an upper bound such as a latency, higher for a lower bound)."""
    pts = []
    for r in rows:
        value = (r.get("at_max_rate") or {}).get(slo.metric)
        if r["status"] == "ok" and (r["max_rate"] or 0) > 0 and value is not None:
            pts.append((r["configuration"], r["output_tokens_per_sec_per_gpu"], value if slo.upper else -value))
    front = []
    for name, y, x in pts:
        dominated = any((y2 >= y and x2 <= x) and (y2 > y or x2 < x) for n2, y2, x2 in pts if n2 != name)
        if not dominated:
            front.append(name)
    return front

"""The result of one run as plain data, and its stdout rendering (ENGINE.md §14.1, §14.2).

``Results`` is what the Python API returns; the CLI prints ``stdout_text()`` and writes ``to_file_dict()``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..metrics.fitness import fitness_text
from ..trace.decisions import DecisionTrace, summary_text
from .slo import slo_text

RESULTS_SCHEMA_VERSION = 1


@dataclass
class Results:
    cluster: dict  # the cluster metrics block, reference field names in reference order
    instances: list[dict]  # one block per instance (printed only when there are several)
    kv: dict[str, float]  # preemption_rate, cache_hit_rate, kv_thrashing_rate
    anomalies: dict[str, int]  # priority_inversions, hol_blocking_events, rejected_requests, dropped_unservable
    latency_model: dict  # which model ran, with its coefficients
    requests: list[dict] | None = None  # per-request records (results file); None when not collected
    config: dict = field(default_factory=dict)  # resolved run settings (KV blocks, hardware, tp, ...)
    slo: dict = field(default_factory=dict)  # per-SLO TTFT/E2E statistics (report/slo.py); empty when not computed
    fitness: tuple[float, dict[str, float]] | None = None  # (score, components) with --fitness-weights
    trace: DecisionTrace | None = None  # the decision trace (--trace-level decisions): records and summary()
    show_trace_summary: bool = False  # --summarize-trace: print the trace summary section
    intervals: dict | None = None  # --intervals: prediction intervals of the headline metrics (report/intervals.py)

    def stdout_text(self) -> str:
        parts: list[str] = []
        blocks = self.instances if len(self.instances) > 1 else []
        for block in [*blocks, self.cluster]:
            parts.append("=== Simulation Metrics ===\n")
            parts.append(_json(block))
        if self.fitness is not None:
            parts.append(fitness_text(*self.fitness))
        if any(self.anomalies.values()):
            a = self.anomalies
            parts.append(
                "=== Anomaly Counters ===\n"
                f"Priority Inversions: {a['priority_inversions']}\n"
                f"HOL Blocking Events: {a['hol_blocking_events']}\n"
                f"Rejected Requests: {a['rejected_requests']}\n"
                f"Dropped Unservable: {a['dropped_unservable']}\n"
            )
        if any(self.kv.values()):
            parts.append(
                "=== KV Cache Metrics ===\n"
                "Preemption Rate: %.4f\n" % self.kv["preemption_rate"]
                + "Cache Hit Rate: %.4f\n" % self.kv["cache_hit_rate"]
                + "KV Thrashing Rate: %.4f\n" % self.kv["kv_thrashing_rate"]
            )
        parts.append(slo_text(self.slo))
        if self.trace is not None and self.show_trace_summary:
            parts.append(summary_text(self.trace.summary()))
        if self.intervals is not None:
            parts.append(f"=== Prediction Intervals ({self.intervals['level']:.0%}) ===\n")
            parts.append(_json(self.intervals))
        return "".join(parts)

    def to_file_dict(self) -> dict:
        """The results file: the cluster block, the latency model that priced the steps, per-request records (§14.3).

        ``latency_model`` (its ``describe()``, with ``kind``) is a blis-sim addition to the file only; the stdout
        block keeps the reference layout."""
        out = dict(self.cluster)
        out["latency_model"] = self.latency_model
        if self.intervals is not None:
            out["prediction_intervals"] = self.intervals
        out["requests"] = self.requests if self.requests is not None else []
        return out


def _json(obj: dict) -> str:
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"

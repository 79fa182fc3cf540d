"""Did the server keep up with the offered load? Judged per evaluated point for the simulation and for the
measurement, and the two verdicts compared (docs/evaluate.md, "Saturation").

Each side is judged from the evidence it has; a verdict is False (did not keep up) when any check that could be
made fails, True when at least one could be made and none failed, None (unknown) when none could:

* **queue growth** (``metrics.saturation``): the median queueing delay of the last third of arrivals exceeds that
  of the first third by at least 0.05 s per s between them and by at least the first third's median prefill time
  (TTFT less queueing delay). The simulation always has it (its per-request records); the measurement only where
  per-request files hold vLLM's time in queue (``per_request.csv`` of the guidellm folders);
* **TTFT level**: the TTFT mean is at least ``LEVEL_FACTOR`` (10) times the light-load TTFT, the median TTFT of
  ``LIGHT_LOAD_REQUESTS`` (5) requests of the experiment's workload sent one at a time to the simulated server. Both
  sides use that one reference: the measurement has no light-load point in every experiment, and a simulator
  error of the reference tens of percent cannot move a factor of ten. In a single queue with random arrivals the
  mean wait reaches nine service times only above about 95 % load; a batching server's TTFT stays within a few times
  its light-load value until it runs out of capacity, then climbs without bound;
* **failures** (measurement, inference-perf stages): more than 1 % of the sent requests failed after waiting at least
  as long as the served ones (the median failure latency at least the median success latency: client timeouts). A
  server that keeps up serves them all; failures that come back at once are rejections (a prompt longer than the
  context), not waits, and are not counted. guidellm's errored requests are not used for that reason (the shared
  runs' are 400 responses to prompts over ``max_model_len``);
* **completion shortfall** (measurement, inference-perf stages): the completion rate the benchmark reports is more
  than 10 % below the rate sent. Completions trail sends by about one request latency even when the server keeps
  up, so the check is made only where the light-load E2E is under 2 % of the stage's duration.

The shared runs also show what the measured server's files cannot say: nothing about a combined-file point but its
latencies (TTFT level only), and a concurrency-1 (sequential) or all-at-once (burst) point offers no rate to keep up
with, so both of its verdicts are None. A false saturation (simulation saturated, measurement kept up) is the
costliest error for capacity planning: ``summary`` counts it apart from the missed saturations.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import replace

from .. import api
from ..config import SimulationConfig
from ..metrics.saturation import duration, queue_growth, rate
from ..workload.description import Stage, WorkloadDescription
from .experiment import BURST, SEQUENTIAL, Experiment, Point
from .scoring import ScoredPoint

log = logging.getLogger("blis_sim")

LIGHT_LOAD_REQUESTS = 5
LEVEL_FACTOR = 10.0  # TTFT mean / light-load TTFT at which a server is judged saturated
FAILED_SHARE = 0.01  # failed / sent above which the measured server did not keep up
SHORTFALL = 0.9  # completions / sent rate below which an inference-perf stage did not keep up
TAIL_SHARE = 0.02  # the shortfall check needs light-load E2E <= this share of the stage's duration

_NOT_OPEN = {SEQUENTIAL: "one request at a time: nothing can queue, there is no offered rate to keep up with",
             BURST: "every request sent at once (a saturation test): there is no offered rate to keep up with"}


def light_load(cfg: SimulationConfig, workload: WorkloadDescription) -> dict | None:
    """The simulated light-load TTFT and E2E (ms): medians over ``LIGHT_LOAD_REQUESTS`` requests of ``workload``'s
    source sent one at a time on ``cfg``; None when none completed."""
    light = WorkloadDescription(workload.source, (Stage(SEQUENTIAL, LIGHT_LOAD_REQUESTS),))
    prepared = api.prepare(cfg, light)
    results = api.execute(replace(prepared, requests=list(prepared.requests)), collect_requests=True)
    done = [r for r in results.requests or [] if r["e2e_ms"] > 0]
    if not done:
        return None
    return {"ttft_ms": statistics.median(r["ttft_ms"] for r in done),
            "e2e_ms": statistics.median(r["e2e_ms"] for r in done), "requests": len(done)}


def _verdict(failed: list[str], passed: list[str]) -> tuple[bool | None, str]:
    if failed:
        return False, "; ".join(failed)
    if passed:
        return True, "; ".join(passed)
    return None, "no evidence"


def _level(ttft_ms: float | None, light: dict | None, failed: list[str], passed: list[str]) -> None:
    if ttft_ms is None or not light or light.get("ttft_ms", 0) <= 0:
        return
    ratio = ttft_ms / light["ttft_ms"]
    times = f"{ratio:,.0f}" if ratio >= 1000 else f"{ratio:.3g}"
    text = (f"TTFT mean {duration(ttft_ms / 1000)} = {times}x the light-load TTFT "
            f"{duration(light['ttft_ms'] / 1000)}")
    (failed if ratio >= LEVEL_FACTOR else passed).append(text)


def judge_simulated(point: ScoredPoint) -> tuple[bool | None, str]:
    """The simulation's verdict at ``point``: its queue growth (``point.sim_queue``) and TTFT level."""
    if point.pattern in _NOT_OPEN:
        return None, _NOT_OPEN[point.pattern]
    failed: list[str] = []
    passed: list[str] = []
    queue = point.sim_queue
    if queue is not None and queue.get("kept_up") is not None:
        (passed if queue["kept_up"] else failed).append(queue["reason"])
    _level(point.predicted.get("ttft_mean_ms"), point.light_load, failed, passed)
    return _verdict(failed, passed)


def judge_measured(point: Point, ttft_mean_ms: float | None, light: dict | None) -> tuple[bool | None, str]:
    """The measurement's verdict at ``point`` from what its files hold (``point.served``) and its TTFT level."""
    if point.load.pattern in _NOT_OPEN:
        return None, _NOT_OPEN[point.load.pattern]
    failed: list[str] = []
    passed: list[str] = []
    served = point.served
    if served is not None and served.arrival_s:
        nan = [math.nan] * len(served.arrival_s)
        queue = queue_growth(served.arrival_s, served.queue_s, served.ttft_s, nan)
        if queue.kept_up is not None:
            (passed if queue.kept_up else failed).append(queue.reason)
    if served is not None and served.sent and served.failed is not None:
        text = f"{served.failed} of {served.sent} requests failed"
        if served.failed and served.failed_latency_s is None:
            passed.append(text + " (how long they waited is not recorded: not counted)")
        elif served.failed and (served.served_latency_s is not None
                                and served.failed_latency_s < served.served_latency_s):
            passed.append(text + f" after {duration(served.failed_latency_s)} (median), sooner than the served ones: "
                                 "rejections, not counted")
        else:
            (failed if served.failed > FAILED_SHARE * served.sent else passed).append(
                text + (f" after {duration(served.failed_latency_s)} (median)" if served.failed else ""))
    load = point.load
    if (served is not None and served.completed_rps is not None and load.rate and load.duration_s and light
            and light.get("e2e_ms", math.inf) <= TAIL_SHARE * load.duration_s * 1000):
        text = f"completed {rate(served.completed_rps)} req/s of the {rate(load.rate)} req/s sent"
        (failed if served.completed_rps < SHORTFALL * load.rate else passed).append(text)
    _level(ttft_mean_ms, light, failed, passed)
    return _verdict(failed, passed)


def judge(experiments: list[Experiment], points: list[ScoredPoint]) -> None:
    """Set both verdicts on every scored point (in place)."""
    by_exp = {e.name: e for e in experiments}
    for p in points:
        exp = by_exp.get(p.experiment)
        if exp is None or p.index < 0:
            continue
        p.kept_up_sim, p.kept_up_sim_reason = judge_simulated(p)
        p.kept_up_measured, p.kept_up_measured_reason = judge_measured(
            exp.points[p.index], p.measured.get("ttft_mean_ms"), p.light_load)


def summary(points: list[ScoredPoint]) -> dict:
    """Counts of the verdicts over ``points`` (excluded ones included) and the disagreeing points by name."""
    both = [p for p in points if p.kept_up_sim is not None and p.kept_up_measured is not None]

    def names(pts: list[ScoredPoint]) -> list[dict]:
        return [{"experiment": p.experiment, "point": p.label} for p in pts]

    false_sat = [p for p in both if p.kept_up_sim is False and p.kept_up_measured is True]
    missed = [p for p in both if p.kept_up_sim is True and p.kept_up_measured is False]
    return {
        "points": len(points),
        "judged_both": len(both),
        "saturated_simulated": sum(p.kept_up_sim is False for p in points),
        "saturated_measured": sum(p.kept_up_measured is False for p in points),
        "unknown_simulated": sum(p.kept_up_sim is None for p in points),
        "unknown_measured": sum(p.kept_up_measured is None for p in points),
        "agree": sum(p.kept_up_sim == p.kept_up_measured for p in both),
        "agree_kept_up": sum(p.kept_up_sim is True and p.kept_up_measured is True for p in both),
        "agree_saturated": sum(p.kept_up_sim is False and p.kept_up_measured is False for p in both),
        "disagree": len(false_sat) + len(missed),
        "false_saturations": len(false_sat),
        "missed_saturations": len(missed),
        "false_saturation_points": names(false_sat),
        "missed_saturation_points": names(missed),
    }

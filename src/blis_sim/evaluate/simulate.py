"""One simulated run of an evaluation and the predicted metrics of the points it covers.

A ``RunPlan`` is plain, picklable data (the run's ``SimulationConfig`` and the ``WorkloadDescription`` of its points,
one stage per point), so plans travel to worker processes. ``run_plan`` assembles the run there the way every run is
assembled (``api.prepare`` then ``api.execute``) and reduces the per-request records of each point's segment to the
compared metrics, computed the way the measurement defines them (percentiles linear-interpolated, ITL per
``ITL_DEFINITIONS``). Warnings the run logs are returned as notes rather than printed, so parallel runs print nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from .. import api
from ..config import SimulationConfig
from ..errors import InputError
from ..logging_setup import captured_warnings
from ..metrics.saturation import growth_from_records
from ..workload.description import PromptPool, WorkloadDescription
from .experiment import ITL_BLIS, ITL_DECODE, ITL_POOLED, SEQUENTIAL, Load
from .saturation import light_load


@dataclass(frozen=True)
class RunPlan:
    """What to simulate for one or more points of one experiment."""

    experiment: str
    points: tuple[int, ...]  # indices into the experiment's points, in stage order
    cfg: SimulationConfig  # calibration candidates are its latency.hardware_overrides
    workload: WorkloadDescription  # one stage per point, in the order of ``points``
    loads: tuple[tuple[Load, int], ...]  # per point: its load and how many requests to simulate
    itl_definitions: tuple[str, ...]
    # also judge whether the simulated server kept up (queue growth per point, a light-load run): blis evaluate
    saturation: bool = False

    @property
    def cost(self) -> int | float:
        """A rough work estimate (tokens sent) for scheduling the longest runs first."""
        src = self.workload.source
        if isinstance(src, PromptPool):
            per_request = src.system_prompt_len + src.question_len + src.output_len
        else:
            per_request = src.prefix_tokens + src.prompt.mean + src.output.mean  # type: ignore[union-attr]
        return per_request * sum(n for _, n in self.loads)


def with_hardware_overrides(cfg: SimulationConfig, overrides: dict[str, float]) -> SimulationConfig:
    """``cfg`` with ``overrides`` (calibration keys, hardware_config.json spelling) as its latency model's
    ``hardware_overrides``, in sorted key order; every field keeps whether it was given explicitly."""
    latency = cfg.latency.model_dump(exclude_unset=True)
    latency["hardware_overrides"] = tuple(sorted(overrides.items()))
    return cfg.model_copy(update={"latency": type(cfg.latency).model_validate(latency)})


@dataclass
class PointPrediction:
    point: int
    predicted: dict[str, float]
    simulated_requests: int
    notes: list[str] = field(default_factory=list)
    queue: dict | None = None  # with RunPlan.saturation: metrics.saturation.QueueGrowth.to_dict of its requests


@dataclass
class RunOutcome:
    experiment: str
    predictions: list[PointPrediction]
    error: str = ""  # the run failed: every point of the plan failed with this reason
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    light_load: dict | None = None  # with RunPlan.saturation: evaluate.saturation.light_load of the plan


def run_plan(plan: RunPlan) -> RunOutcome:
    """Simulate ``plan`` (in whichever process calls it) and predict its points' metrics."""
    started = time.perf_counter()
    with captured_warnings() as warnings:
        try:
            prepared = api.prepare(plan.cfg, plan.workload)
            requests = list(prepared.requests)  # kept: each point's records are found through its requests
            results = api.execute(replace(prepared, requests=requests), collect_requests=True)
            light = _light_load(plan) if plan.saturation else None
        except InputError as exc:
            return RunOutcome(plan.experiment, [], error=str(exc), wall_s=time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - one broken run must not stop an evaluation; report it instead
            return RunOutcome(plan.experiment, [], error=f"internal error: {type(exc).__name__}: {exc}",
                              wall_s=time.perf_counter() - started)
    records = {rec["requestID"]: rec for rec in results.requests or []}
    predictions = []
    for point, (load, _), itl, seg in zip(plan.points, plan.loads, plan.itl_definitions, prepared.segments):
        sent = [r for r in requests if seg.start <= r.index < seg.stop]
        recs = [records[r.id] for r in sent if r.id in records]
        notes = []
        dropped = len(sent) - len(recs)
        if dropped:
            notes.append(f"{dropped} simulated request(s) dropped as unservable")
        if load.pattern == SEQUENTIAL and _overlapping(recs):
            notes.append("sequential requests overlapped in the simulation")
        predicted = point_metrics(recs, itl, load.pattern == SEQUENTIAL) if recs else {}
        queue = growth_from_records(recs).to_dict() if plan.saturation else None
        predictions.append(PointPrediction(point, predicted, seg.stop - seg.start, notes, queue))
    return RunOutcome(plan.experiment, predictions, wall_s=time.perf_counter() - started, warnings=warnings,
                      light_load=light)


def _light_load(plan: RunPlan) -> dict | None:
    """The plan's light-load run; a failure leaves the points without it (their TTFT level is not judged)."""
    try:
        return light_load(plan.cfg, plan.workload)
    except Exception:  # noqa: BLE001 - evidence only: the points are scored whatever happens here
        return None


def point_metrics(records: list[dict], itl_definition: str, sequential: bool) -> dict[str, float]:
    """The compared metrics over one point's per-request records (results-file records, ENGINE.md §14.3)."""
    done = [r for r in records if r["e2e_ms"] > 0]
    if not done:
        return {}
    ttft = np.array([r["ttft_ms"] for r in done])
    e2e = np.array([r["e2e_ms"] for r in done])
    outputs = np.array([r["num_decode_tokens"] for r in done], dtype=float)
    out = {
        "ttft_mean_ms": float(ttft.mean()),
        "ttft_p90_ms": float(np.percentile(ttft, 90)),
        "e2e_mean_ms": float(e2e.mean()),
        "e2e_p90_ms": float(np.percentile(e2e, 90)),
    }
    multi = outputs >= 2
    if itl_definition == ITL_DECODE and multi.any():
        out["itl_mean_ms"] = float(((e2e - ttft)[multi] / (outputs[multi] - 1)).mean())
    elif itl_definition == ITL_POOLED and multi.any():
        out["itl_mean_ms"] = float((e2e - ttft)[multi].sum() / (outputs[multi] - 1).sum())
    elif itl_definition == ITL_BLIS and outputs.sum() > 0:
        queued = np.array([r["scheduling_delay_ms"] for r in done])
        out["itl_mean_ms"] = float((e2e - queued).sum() / outputs.sum())
    if sequential:
        busy_s = e2e.sum() / 1000.0
    else:
        arrivals = np.array([r["arrived_at"] for r in done])
        busy_s = float((arrivals + e2e / 1000.0).max() - arrivals.min())
    if busy_s > 0:
        out["throughput_tokens_per_s"] = float(outputs.sum() / busy_s)
    return out


def _overlapping(records: list[dict]) -> bool:
    spans = sorted((r["arrived_at"], r["arrived_at"] + r["e2e_ms"] / 1000.0) for r in records)
    return any(end > nxt for (_, end), (nxt, _) in zip(spans, spans[1:]))



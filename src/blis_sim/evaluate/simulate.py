"""One simulated run of an evaluation and the predicted metrics of the points it covers.

A ``RunPlan`` is plain, picklable data (the run's ``SimulationConfig``, the length model and the loads of its points),
so plans travel to worker processes; ``run_plan`` builds the requests there, simulates through the public API
(``api.execute`` on a ``PreparedRun``) and reduces the per-request records of each point to the compared metrics,
computed the way the measurement defines them (percentiles linear-interpolated, ITL per ``ITL_DEFINITIONS``).
Warnings the run logs are returned as notes rather than printed, so parallel runs print nothing.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Iterator

import numpy as np

from .. import api
from ..config import SimulationConfig
from ..errors import InputError
from ..latency.hardware import KEYS
from ..latency.mfu.fitted import load_packaged_efficiency
from ..latency.roofline_v1 import RooflineV1
from ..latency.roofline_v2 import RooflineV2
from ..latency.select import ResolvedLatency, resolve_latency
from .experiment import ITL_BLIS, ITL_DECODE, ITL_POOLED, SEQUENTIAL, Lengths, Load, SharedPrefixPool
from .workloads import Segment, shared_prefix_requests, staged_synthetic_requests, synthetic_requests


@dataclass(frozen=True)
class RunPlan:
    """What to simulate for one or more points of one experiment."""

    experiment: str
    points: tuple[int, ...]  # indices into the experiment's points
    cfg: SimulationConfig
    lengths: Lengths
    loads: tuple[tuple[Load, int], ...]  # per point: its load and how many requests to simulate
    itl_definitions: tuple[str, ...]
    staged: bool  # the points are consecutive stages of this one run
    # Roofline-v1 calibration keys (hardware_config.json spelling) replacing the GPU entry's values for this run;
    # ``blis calibrate`` prices its candidates with it, without writing a hardware config per candidate.
    hardware_override: tuple[tuple[str, float], ...] = ()

    @property
    def cost(self) -> int:
        """A rough work estimate (tokens sent) for scheduling the longest runs first."""
        per_request = (self.lengths.max_total_tokens if isinstance(self.lengths, SharedPrefixPool)
                       else self.lengths.prefix_tokens + self.lengths.prompt.mean + self.lengths.output.mean)
        return per_request * sum(n for _, n in self.loads)


@dataclass
class PointPrediction:
    point: int
    predicted: dict[str, float]
    simulated_requests: int
    notes: list[str] = field(default_factory=list)


@dataclass
class RunOutcome:
    experiment: str
    predictions: list[PointPrediction]
    error: str = ""  # the run failed: every point of the plan failed with this reason
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)


def run_plan(plan: RunPlan) -> RunOutcome:
    """Simulate ``plan`` (in whichever process calls it) and predict its points' metrics."""
    started = time.perf_counter()
    with _captured_warnings() as warnings:
        try:
            requests, segments = _requests(plan)
            cfg = plan.cfg
            api.check_available(cfg)
            resolved = resolve_latency(cfg.latency, cfg.engine)
            if plan.hardware_override:
                resolved = _with_hardware(resolved, dict(plan.hardware_override), cfg.latency.alpha_coeffs)
            results = api.execute(api.PreparedRun(cfg, resolved, requests, len(requests)), collect_requests=True)
        except InputError as exc:
            return RunOutcome(plan.experiment, [], error=str(exc), wall_s=time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - one broken run must not stop an evaluation; report it instead
            return RunOutcome(plan.experiment, [], error=f"internal error: {type(exc).__name__}: {exc}",
                              wall_s=time.perf_counter() - started)
    records = {rec["requestID"]: rec for rec in results.requests or []}
    predictions = []
    for point, (load, _), itl, seg in zip(plan.points, plan.loads, plan.itl_definitions, segments):
        recs = [records[r.id] for r in requests[seg.start:seg.stop] if r.id in records]
        notes = []
        dropped = (seg.stop - seg.start) - len(recs)
        if dropped:
            notes.append(f"{dropped} simulated request(s) dropped as unservable")
        if load.pattern == SEQUENTIAL and _overlapping(recs):
            notes.append("sequential requests overlapped in the simulation")
        predicted = point_metrics(recs, itl, load.pattern == SEQUENTIAL) if recs else {}
        predictions.append(PointPrediction(point, predicted, seg.stop - seg.start, notes))
    return RunOutcome(plan.experiment, predictions, wall_s=time.perf_counter() - started, warnings=warnings)


def _with_hardware(resolved: ResolvedLatency, override: dict[str, float], alpha) -> ResolvedLatency:
    """``resolved`` with its roofline model rebuilt on the GPU entry with ``override``'s keys replaced (the KV
    capacity is kept: evaluation plans always state it). For roofline v2 the entry is the one v2 reads (its
    ``rooflineV2`` keys applied), and only the shipped fitted kernel model can be rebuilt."""
    model = resolved.model
    hw = replace(model.hw, **{KEYS[key]: float(value) for key, value in override.items()}) \
        if isinstance(model, (RooflineV1, RooflineV2)) else None
    if isinstance(model, RooflineV1):
        hw.check_v1()
        return replace(resolved, model=RooflineV1(model.model_cfg, hw, model.tp, alpha))
    if isinstance(model, RooflineV2) and model.kernels.get("kernels") == "fitted":
        hw.check_v2()
        eff = load_packaged_efficiency(model.hw.name)
        return replace(resolved, model=RooflineV2.fitted(model.model_cfg, hw, model.tp, eff, alpha))
    raise InputError(f"a hardware-calibration override needs roofline v1 or v2 (fitted kernels), not {resolved.kind}")


def _requests(plan: RunPlan) -> tuple[list, list[Segment]]:
    if isinstance(plan.lengths, SharedPrefixPool):
        return shared_prefix_requests(plan.lengths, list(plan.loads), plan.cfg.seed)
    if plan.staged:
        return staged_synthetic_requests(plan.lengths, list(plan.loads), plan.cfg.seed)
    load, count = plan.loads[0]
    requests = synthetic_requests(plan.lengths, load, count, plan.cfg.seed)
    return requests, [Segment(0, len(requests))]


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


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _captured_warnings() -> Iterator[list[str]]:
    """Route the ``blis_sim`` logger's warnings of one run into a list (and nothing to stderr) for its duration."""
    logger = logging.getLogger("blis_sim")
    handler = _ListHandler()
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.WARNING)
    try:
        yield handler.messages
    finally:
        logger.handlers, logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])

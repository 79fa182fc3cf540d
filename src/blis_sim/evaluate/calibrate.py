"""``calibrate``: fit a GPU entry's roofline-v1 calibration keys to measured experiments (the library entry point
behind ``blis calibrate``).

The experiments are split by name into a training and a held-out set (``split_experiments``). Each experiment is
planned once, exactly as ``evaluate`` plans it (model, GPU, KV blocks, engine loop, workload), with fewer requests per
point; a candidate calibration travels to the worker processes as the plans' ``hardware_override``, so no file is
written per candidate and one process pool serves the whole fit. ``scipy.optimize.minimize`` (bounded Nelder-Mead,
in units of the starting values, with a fixed evaluation budget) minimises the mean over training points of each
point's mean absolute percentage error of TTFT mean, ITL mean and E2E mean. Fitted values stay physical: MFUs and
efficiencies in (0, 1], overheads >= 0. The shipped and the fitted entry are then scored on both sets.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from .discover import GroundTruth, load_ground_truth
from .experiment import Failure
from .resolve import Unsimulatable, packaged_hardware_config
from .runner import Options, plan_experiment, score_outcomes
from .scoring import ScoredPoint, aggregate
from .simulate import RunPlan, run_plan

CALIBRATION_SCHEMA_VERSION = 1
LATENCY_MODELS = ("roofline-v1",)
OBJECTIVE_METRICS = ("ttft_mean_ms", "itl_mean_ms", "e2e_mean_ms")
DEFAULT_FIT = ("mfuPrefill", "mfuDecode", "BwEffConstant", "TOverheadMicros")
DEFAULT_HOLDOUT = 0.3
DEFAULT_REQUESTS_PER_POINT = 200
DEFAULT_MAX_EVALS = 80
_INITIAL_STEP = 0.3  # the initial simplex moves each parameter by 30% of its starting value

# Physical bounds of each fittable key (hardware_config.json spelling). Fractions stay in (0, 1]; overheads >= 0.
BOUNDS: dict[str, tuple[float, float]] = {
    "mfuPrefill": (1e-3, 1.0),
    "mfuDecode": (1e-3, 1.0),
    "BwEffConstant": (1e-3, 1.0),
    "vectorPeakFraction": (1e-3, 1.0),
    "TOverheadMicros": (0.0, 20_000.0),
    "prefillOverheadMicros": (0.0, 20_000.0),
    "mixedPrefillOverheadMicros": (0.0, 20_000.0),
    "allReduceLatency": (0.0, 1_000.0),
    "tpScalingExponent": (0.1, 1.5),
    "decodeTpScalingExponent": (0.1, 1.5),
}

Progress = Callable[[int, int, float], None]  # (evaluations done, budget, best objective so far)


@dataclass(frozen=True)
class CalibrateOptions:
    hardware: str = "H100"
    latency_model: str = "roofline-v1"
    holdout_fraction: float | None = None  # None with no holdout_experiments: DEFAULT_HOLDOUT
    holdout_experiments: tuple[str, ...] = ()
    fit: tuple[str, ...] = DEFAULT_FIT
    jobs: int | None = None
    requests_per_point: int = DEFAULT_REQUESTS_PER_POINT  # while fitting
    report_requests_per_point: int | None = None  # the before/after table; None: requests_per_point
    max_evals: int = DEFAULT_MAX_EVALS
    model_configs: Path | None = None
    async_scheduling: bool | None = None
    seed: int = 42  # workloads and the held-out draw


@dataclass
class Calibration:
    result: dict  # the --out file's content
    table: dict[str, dict[str, dict]]  # set ("train" | "holdout") -> "before" | "after" -> aggregate
    wall_s: float = 0.0
    failed: list[Failure] = field(default_factory=list)


def split_experiments(names: list[str], fraction: float | None = None, holdout: tuple[str, ...] = (),
                      seed: int = 42) -> tuple[list[str], list[str]]:
    """(training, held-out) experiment names, each sorted. ``holdout`` names them; else ``fraction`` of them
    (rounded, at least one when the fraction is > 0 and two or more experiments exist) are drawn with ``seed`` from
    the sorted names, so the split depends only on the names, the fraction and the seed."""
    names = sorted(set(names))
    if holdout:
        if fraction is not None:
            raise InputError("--holdout and --holdout-experiments are exclusive: give one")
        unknown = sorted(set(holdout) - set(names))
        if unknown:
            raise InputError(f"--holdout-experiments: no experiment named {', '.join(unknown)} "
                             f"(experiments: {', '.join(names) or 'none'})")
        test = sorted(set(holdout))
    else:
        fraction = DEFAULT_HOLDOUT if fraction is None else fraction
        if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
            raise InputError(f"--holdout must be a fraction in [0, 1), got {fraction:g}")
        k = round(fraction * len(names))
        if fraction > 0 and len(names) >= 2:
            k = min(max(k, 1), len(names) - 1)
        test = sorted(random.Random(seed).sample(names, k))
    train = [n for n in names if n not in test]
    if not train:
        raise InputError("empty training set: every experiment is held out (hold out fewer)")
    return train, test


def objective(points: list[ScoredPoint]) -> float:
    """Mean over the non-excluded points of each point's mean absolute % error of TTFT, ITL and E2E means."""
    per_point = []
    for p in points:
        if p.excluded:
            continue
        errs = p.abs_pct()
        vals = [errs[m] for m in OBJECTIVE_METRICS if m in errs]
        if vals:
            per_point.append(sum(vals) / len(vals))
    return sum(per_point) / len(per_point) if per_point else math.inf


class _Scorer:
    """The plans of one set of experiments, scored under any calibration override."""

    def __init__(self, gt: GroundTruth, names: list[str], options: Options):
        self.gt = replace(gt, experiments=[e for e in gt.experiments if e.name in set(names)])
        self.options = options
        self.plans: list[RunPlan] = []
        self.contexts: dict[str, dict] = {}
        self.failed: list[Failure] = []
        for exp in self.gt.experiments:
            try:
                ctx, plans = plan_experiment(exp, options)
            except Unsimulatable as exc:
                self.failed.extend(Failure(exp.name, p.label, exp.source, str(exc)) for p in exp.points)
                self.contexts[exp.name] = {}
                continue
            self.contexts[exp.name] = ctx
            self.plans.extend(plans)

    def points(self, override: dict[str, float], pool: Executor | None) -> tuple[list[ScoredPoint], list[Failure]]:
        items = tuple(sorted(override.items()))
        plans = [replace(p, hardware_override=items) for p in self.plans]
        outcomes = list(pool.map(run_plan, plans)) if pool is not None else [run_plan(p) for p in plans]
        return score_outcomes(self.gt, outcomes, plans, self.contexts, self.options)


def calibrate(ground_truth: Path | str, options: CalibrateOptions = CalibrateOptions(),
              progress: Progress | None = None) -> Calibration:
    """Fit ``options.fit`` of the ``options.hardware`` entry on the training experiments under ``ground_truth``."""
    started = time.perf_counter()
    if options.latency_model not in LATENCY_MODELS:
        raise InputError(f"--latency-model {options.latency_model}: calibration supports "
                         f"{', '.join(LATENCY_MODELS)} only")
    unknown = [k for k in options.fit if k not in BOUNDS]
    if unknown or not options.fit:
        raise InputError(f"--fit: {', '.join(unknown) or 'nothing'} cannot be fitted (fittable: {', '.join(BOUNDS)})")
    if options.max_evals < 1 or options.requests_per_point < 1:
        raise InputError("--max-evals and --requests-per-point must be integers >= 1")
    if options.model_configs is not None and not Path(options.model_configs).is_dir():
        raise InputError(f"--model-configs {options.model_configs}: no such folder (a folder of <name>/config.json)")
    entry_name, entry = _shipped_entry(options.hardware)
    start = {k: float(_value(entry, k)) for k in options.fit}

    gt = load_ground_truth(ground_truth)
    # Only experiments run on this GPU (files that name another GPU are left out of the split).
    eval_options = Options(latency_model=options.latency_model, hardware=entry_name,
                           model_configs=options.model_configs, jobs=1,
                           requests_per_point=options.requests_per_point,
                           async_scheduling=options.async_scheduling, seed=options.seed)
    names = [e.name for e in gt.experiments if _gpu_of(e, entry_name) == entry_name]
    if not names:
        raise InputError(f"empty training set: no experiment under {ground_truth} ran on {entry_name}")
    train, test = split_experiments(names, options.holdout_fraction, options.holdout_experiments, options.seed)

    workers = max(1, options.jobs or os.cpu_count() or 1)
    pool = ProcessPoolExecutor(max_workers=workers) if workers > 1 else None
    try:
        fit_scorer = _Scorer(gt, train, eval_options)
        if not fit_scorer.plans:
            reason = fit_scorer.failed[0].reason if fit_scorer.failed else "no point"
            raise InputError(f"empty training set: no training experiment can be simulated ({reason})")
        fitted, evals, history = _fit(fit_scorer, start, options, pool, progress)
        fit_s = time.perf_counter() - started
        report_opts = replace(eval_options, requests_per_point=options.report_requests_per_point
                              or options.requests_per_point)
        table: dict[str, dict[str, dict]] = {}
        failed: list[Failure] = list(fit_scorer.failed)
        for label, members in (("train", train), ("holdout", test)):
            table[label] = {}
            if not members:
                continue
            scorer = _Scorer(gt, members, report_opts)
            for when, values in (("before", start), ("after", fitted)):
                pts, bad = scorer.points(values, pool)
                agg = aggregate(pts)
                agg["objective"] = objective(pts)
                table[label][when] = agg
                if when == "after":
                    failed.extend(scorer.failed + bad)
    finally:
        if pool is not None:
            pool.shutdown()
    wall = time.perf_counter() - started
    full_entry = dict(entry)
    for key, value in fitted.items():
        _set(full_entry, key, value)
    result = {
        entry_name: full_entry,  # the file is itself a hardware config: blis run --hardware-config FILE
        "calibration": {
            "schema_version": CALIBRATION_SCHEMA_VERSION,
            "hardware": entry_name,
            "latency_model": options.latency_model,
            "fitted": fitted,
            "initial": start,
            "bounds": {k: list(BOUNDS[k]) for k in options.fit},
            "split": {"train": train, "holdout": test, "holdout_fraction": None if options.holdout_experiments
                      else (DEFAULT_HOLDOUT if options.holdout_fraction is None else options.holdout_fraction),
                      "holdout_experiments": list(options.holdout_experiments), "seed": options.seed},
            "objective": "mean over points of the mean absolute % error of " + ", ".join(OBJECTIVE_METRICS),
            "mape": table,
            "optimizer": {"method": "Nelder-Mead (bounded, scaled to the starting values)", "evaluations": evals,
                          "max_evals": options.max_evals, "requests_per_point": options.requests_per_point,
                          "report_requests_per_point": report_opts.requests_per_point, "jobs": workers,
                          "history": history},
            "failed": [f.to_dict() for f in failed],
            "fit_wall_time_s": round(fit_s, 3),
            "wall_time_s": round(wall, 3),
        },
    }
    return Calibration(result, table, wall, failed)


def _fit(scorer: _Scorer, start: dict[str, float], options: CalibrateOptions, pool: Executor | None,
         progress: Progress | None) -> tuple[dict[str, float], int, list[dict]]:
    """Bounded Nelder-Mead over the keys of ``start``, each in units of its starting value (1 when it is 0)."""
    from scipy.optimize import minimize

    keys = list(start)
    scale = np.array([start[k] if start[k] > 0 else 1.0 for k in keys])
    lo = np.array([BOUNDS[k][0] for k in keys]) / scale
    hi = np.array([BOUNDS[k][1] for k in keys]) / scale
    x0 = np.clip(np.array([start[k] for k in keys]) / scale, lo, hi)
    cache: dict[tuple, float] = {}
    history: list[dict] = []
    best = [math.inf]

    def values(x: np.ndarray) -> dict[str, float]:
        return {k: float(v) for k, v in zip(keys, np.clip(x, lo, hi) * scale)}

    def f(x: np.ndarray) -> float:
        vals = values(x)
        key = tuple(round(v, 12) for v in vals.values())
        if key not in cache:
            pts, _ = scorer.points(vals, pool)
            cache[key] = objective(pts)
            best[0] = min(best[0], cache[key])
            history.append({"values": vals, "objective": cache[key]})
            if progress is not None:
                progress(len(history), options.max_evals, best[0])
        return cache[key]

    simplex = [x0]
    for i in range(len(keys)):
        v = x0.copy()
        v[i] = x0[i] * (1 + _INITIAL_STEP) if x0[i] * (1 + _INITIAL_STEP) <= hi[i] else x0[i] * (1 - _INITIAL_STEP)
        if v[i] == x0[i]:  # a start at 0 (an overhead): step in absolute units
            v[i] = min(hi[i], x0[i] + _INITIAL_STEP)
        simplex.append(v)
    res = minimize(f, x0, method="Nelder-Mead", bounds=list(zip(lo, hi)),
                   options={"maxfev": options.max_evals, "initial_simplex": np.array(simplex),
                            "xatol": 1e-3, "fatol": 1e-3})
    f(x0)  # the start is always scored (cached), so "best" below can fall back to it
    best_entry = min(history, key=lambda h: h["objective"])
    fitted = best_entry["values"] if best_entry["objective"] < f(res.x) else values(res.x)
    return fitted, len(history), history


# ------------------------------------------------------------------------------------------------ hardware entry
def _shipped_entry(gpu: str) -> tuple[str, dict]:
    path = packaged_hardware_config()
    raw = json.loads(path.read_text(encoding="utf-8"))
    for name in raw:
        if name == gpu or name.lower() == gpu.lower():
            return name, dict(raw[name])
    raise InputError(f"--hardware {gpu!r} is not in {path} (available: {', '.join(sorted(raw))})")


def _value(entry: dict, key: str) -> float:
    for k, v in entry.items():
        if k.lower() == key.lower():
            return float(v)
    return 0.0


def _set(entry: dict, key: str, value: float) -> None:
    """Set ``key`` in place of the entry's key of any case (the file matches keys case-insensitively)."""
    same = [k for k in entry if k.lower() == key.lower()]
    if not same:
        entry[key] = value
        return
    for k in same[1:]:
        del entry[k]
    items = [(key if k == same[0] else k, value if k == same[0] else v) for k, v in entry.items()]
    entry.clear()
    entry.update(items)


def _gpu_of(exp, default: str) -> str:
    from .resolve import gpu_entry

    if not exp.gpu:
        return default
    try:
        return gpu_entry(exp.gpu, packaged_hardware_config())
    except Unsimulatable:
        return exp.gpu

"""``calibrate``: fit a GPU entry's roofline calibration keys (v1 or v2) to measured experiments (the library entry
point behind ``blis calibrate``).

Split: by experiment, stratified (``split_experiments``): experiments are grouped by model and by load (``light``:
only concurrency-1 points; ``loaded``: rate sweeps and stages), and each group of two or more gives the held-out share
of its members, drawn with the seed from its sorted names, so loaded and light experiments of every model with
enough of them sit on both sides. Experiments whose every point is excluded (overloaded stages) carry no information
and stay in training.

Each experiment is planned once, exactly as ``evaluate`` plans it (model, GPU, KV blocks, engine loop, workload), with
fewer requests per point (concurrency-1 points fewer still: they do not queue, so their means settle fast); a
candidate travels to the worker processes in the plans' configuration (``LatencyConfig.hardware_overrides``), so no
file is written per candidate and one process pool serves the whole fit; candidates already scored are cached.
``scipy.optimize.minimize`` (bounded Nelder-Mead in units of the starting values, a fixed evaluation budget)
minimises the mean over training points of each point's mean over TTFT mean/p90, ITL mean, E2E mean/p90 of
|ln(predicted / measured)|, capped at ln 3: a log ratio treats too fast and too slow alike, and the cap keeps a few
saturated points (whose TTFT can be off a hundredfold) from outweighing all others. Fitted values stay physical: MFUs
and efficiencies in (0, 1], overheads >= 0. The starting and the fitted entry are then scored on both sets.
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

from ..config.names import DEFAULT_GPU, ROOFLINE_MODELS
from ..errors import InputError
from ..latency.select import packaged_hardware_config
from ..processes import init_worker, stop_pool
from .discover import GroundTruth, load_ground_truth
from .experiment import Failure
from .resolve import Unsimulatable
from .runner import Options, plan_experiment, score_outcomes
from .scoring import ScoredPoint, aggregate
from .simulate import RunPlan, run_plan, with_hardware_overrides

CALIBRATION_SCHEMA_VERSION = 2
LATENCY_MODELS = ROOFLINE_MODELS  # the models whose constants can be fitted
OBJECTIVE_METRICS = ("ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms")
LOG_ERROR_CAP = math.log(3.0)  # a point's error on one metric counts at most as a factor of 3
# Keys fitted by default, per latency model (hardware_config.json spelling). v2 prices kernels from its fitted
# efficiency model, so only its overheads are calibrated (stored under the entry's "rooflineV2" object).
DEFAULT_FIT: dict[str, tuple[str, ...]] = {
    "roofline-v1": ("mfuPrefill", "mfuDecode", "BwEffConstant", "TOverheadMicros", "requestOverheadMicros",
                    "decodeKvBwEff", "allReduceBwGBs"),
    "roofline-v2": ("TOverheadMicros", "allReduceLatency", "requestOverheadMicros", "gemmEta"),
}
# Keys set (not fitted) in every candidate by default: v1 prices MoE experts (ROOFLINE.md §9 D11 fixed).
DEFAULT_FIXED: dict[str, dict[str, float]] = {"roofline-v1": {"moeExperts": 1.0}, "roofline-v2": {}}
# Where the fit starts a key that is off (0) in the starting entry: a physical first guess.
INITIAL_GUESS = {"requestOverheadMicros": 5000.0, "decodeKvBwEff": 0.5, "allReduceBwGBs": 200.0, "gemmEta": 0.67,
                 "TOverheadMicros": 50.0, "prefillOverheadMicros": 100.0, "allReduceLatency": 20.0}
DEFAULT_HOLDOUT = 0.3
DEFAULT_REQUESTS_PER_POINT = 200
DEFAULT_SEQUENTIAL_REQUESTS = 40  # concurrency-1 points while fitting
DEFAULT_MAX_EVALS = 80
_FIRST_ROUND = 0.6  # share of the evaluation budget of the wide first Nelder-Mead round

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
    "requestOverheadMicros": (0.0, 100_000.0),
    "decodeKvBwEff": (1e-2, 1.0),
    "allReduceBwGBs": (1.0, 2_000.0),
    "gemmEta": (0.05, 1.0),
}
FIXABLE = {"moeExperts": (0.0, 1.0), "flatStepOverhead": (0.0, 1.0)}
V2_KEYS = ("TOverheadMicros", "prefillOverheadMicros", "mixedPrefillOverheadMicros", "allReduceLatency",
           "requestOverheadMicros", "gemmEta")

Progress = Callable[[int, int, float], None]  # (evaluations done, budget, best objective so far)


@dataclass(frozen=True)
class CalibrateOptions:
    hardware: str = DEFAULT_GPU
    latency_model: str = "roofline-v2"  # the most accurate model whose inputs exist (docs/gpu-transfer.md)
    holdout_fraction: float | None = None  # None with no holdout_experiments: DEFAULT_HOLDOUT
    holdout_experiments: tuple[str, ...] = ()
    fit: tuple[str, ...] | None = None  # None: DEFAULT_FIT of the latency model
    fixed: dict[str, float] | None = None  # None: DEFAULT_FIXED of the latency model
    jobs: int | None = None
    requests_per_point: int = DEFAULT_REQUESTS_PER_POINT  # while fitting
    sequential_requests_per_point: int = DEFAULT_SEQUENTIAL_REQUESTS  # concurrency-1 points while fitting
    hardware_config: Path | None = None  # the starting calibrations; None: the packaged hardware_config.json
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
                      seed: int = 42, strata: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """(training, held-out) experiment names, each sorted. ``holdout`` names them; else from each stratum (``strata``
    maps a name to its group; missing: one group; the key "" keeps a name in training) of two or more experiments
    ``fraction`` of its members (rounded, at least one when the fraction is > 0, never all) are drawn with ``seed``
    from its sorted names, so the split depends only on the names, their groups, the fraction and the seed."""
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
        groups: dict[str, list[str]] = {}
        for n in names:
            key = strata.get(n, "all") if strata is not None else "all"
            if key:
                groups.setdefault(key, []).append(n)
        test = []
        for key in sorted(groups):
            members = groups[key]
            k = round(fraction * len(members))
            if fraction > 0 and len(members) >= 2:
                k = min(max(k, 1), len(members) - 1)
            test.extend(random.Random(f"{seed}:{key}" if strata is not None else seed).sample(members, k))
        test = sorted(test)
    train = [n for n in names if n not in test]
    if not train:
        raise InputError("empty training set: every experiment is held out (hold out fewer)")
    return train, test


def stratum(exp) -> str:
    """The split group of an experiment: its model and load ("light": concurrency-1 points only), or "" (stays in
    training) when every point is excluded from the averages."""
    from .experiment import SEQUENTIAL
    from .resolve import model_key

    used = [p for p in exp.points if not p.excluded]
    if not used:
        return ""
    load = "light" if all(p.load.pattern == SEQUENTIAL for p in used) else "loaded"
    return f"{model_key(exp.model)}/{load}"


def point_error(p: ScoredPoint) -> float | None:
    """One point's objective term: mean over OBJECTIVE_METRICS of min(|ln(pred/meas)|, LOG_ERROR_CAP)."""
    vals = []
    for m in OBJECTIVE_METRICS:
        meas, pred = p.measured.get(m), p.predicted.get(m)
        if meas is None or pred is None or meas <= 0:
            continue
        vals.append(LOG_ERROR_CAP if pred <= 0 else min(abs(math.log(pred / meas)), LOG_ERROR_CAP))
    return sum(vals) / len(vals) if vals else None


def objective(points: list[ScoredPoint]) -> float:
    """100 x the mean over the non-excluded points of ``point_error`` (about a mean % error for small errors)."""
    per_point = [e for p in points if not p.excluded for e in [point_error(p)] if e is not None]
    return 100.0 * sum(per_point) / len(per_point) if per_point else math.inf


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
        plans = [replace(p, cfg=with_hardware_overrides(p.cfg, override)) for p in self.plans]
        outcomes = list(pool.map(run_plan, plans)) if pool is not None else [run_plan(p) for p in plans]
        return score_outcomes(self.gt, outcomes, plans, self.contexts, self.options)


def calibrate(ground_truth: Path | str, options: CalibrateOptions = CalibrateOptions(),
              progress: Progress | None = None) -> Calibration:
    """Fit ``options.fit`` of the ``options.hardware`` entry on the training experiments under ``ground_truth``."""
    started = time.perf_counter()
    model = options.latency_model
    if model not in LATENCY_MODELS:
        raise InputError(f"--latency-model {model}: calibration supports {', '.join(LATENCY_MODELS)} only")
    fit = tuple(options.fit) if options.fit is not None else DEFAULT_FIT[model]
    fittable = ({k: v for k, v in BOUNDS.items() if k != "gemmEta"} if model == "roofline-v1"
                else {k: BOUNDS[k] for k in V2_KEYS})
    unknown = [k for k in fit if k not in fittable]
    if unknown or not fit:
        raise InputError(f"--fit: {', '.join(unknown) or 'nothing'} cannot be fitted for {model} "
                         f"(fittable: {', '.join(fittable)})")
    fixed = dict(options.fixed) if options.fixed is not None else dict(DEFAULT_FIXED[model])
    for key, value in fixed.items():
        lo_hi = FIXABLE.get(key) or fittable.get(key)
        if lo_hi is None or not (lo_hi[0] <= value <= lo_hi[1]):
            raise InputError(f"--set {key}={value:g}: not a settable key or out of its range")
    if options.max_evals < 1 or options.requests_per_point < 1 or options.sequential_requests_per_point < 1:
        raise InputError("--max-evals and --requests-per-point must be integers >= 1")
    if options.model_configs is not None and not Path(options.model_configs).is_dir():
        raise InputError(f"--model-configs {options.model_configs}: no such folder (a folder of <name>/config.json)")
    from .runner import check_hardware_config

    check_hardware_config(options.hardware_config)
    hw_path = Path(options.hardware_config) if options.hardware_config is not None else packaged_hardware_config()
    entry_name, entry = _entry(options.hardware, hw_path)
    v2 = model == "roofline-v2"
    shipped = {k: float(_value(entry, k, v2)) for k in list(fit) + list(fixed)}
    start = {k: (shipped[k] if shipped[k] > 0 else INITIAL_GUESS.get(k, 0.0)) for k in fit}
    start = {k: min(max(v, BOUNDS[k][0]), BOUNDS[k][1]) for k, v in start.items()}

    gt = load_ground_truth(ground_truth)
    # Only experiments run on this GPU (files that name another GPU are left out of the split).
    eval_options = Options(latency_model=model, hardware=entry_name, model_configs=options.model_configs, jobs=1,
                           requests_per_point=options.requests_per_point,
                           sequential_requests_per_point=options.sequential_requests_per_point,
                           async_scheduling=options.async_scheduling, seed=options.seed, hardware_config=hw_path)
    exps = [e for e in gt.experiments if _gpu_of(e, entry_name, hw_path) == entry_name]
    names = [e.name for e in exps]
    if not names:
        raise InputError(f"empty training set: no experiment under {ground_truth} ran on {entry_name}")
    strata = {e.name: stratum(e) for e in exps}
    train, test = split_experiments(names, options.holdout_fraction, options.holdout_experiments, options.seed,
                                    strata)

    workers = max(1, options.jobs or os.cpu_count() or 1)
    pool = ProcessPoolExecutor(max_workers=workers, initializer=init_worker) if workers > 1 else None
    try:
        fit_scorer = _Scorer(gt, train, eval_options)
        if not fit_scorer.plans:
            reason = fit_scorer.failed[0].reason if fit_scorer.failed else "no point"
            raise InputError(f"empty training set: no training experiment can be simulated ({reason})")
        fitted, evals, history = _fit(fit_scorer, start, fixed, options, pool, progress)
        fit_s = time.perf_counter() - started
        report_opts = replace(eval_options, requests_per_point=options.report_requests_per_point
                              or options.requests_per_point, sequential_requests_per_point=None)
        table: dict[str, dict[str, dict]] = {}
        failed: list[Failure] = list(fit_scorer.failed)
        before = {k: shipped[k] for k in list(fit) + list(fixed)}
        after = {**fitted, **fixed}
        for label, members in (("train", train), ("holdout", test)):
            table[label] = {}
            if not members:
                continue
            scorer = _Scorer(gt, members, report_opts)
            for when, values in (("before", before), ("after", after)):
                pts, bad = scorer.points(values, pool)
                agg = aggregate(pts)
                agg["objective"] = objective(pts)
                table[label][when] = agg
                if when == "after":
                    failed.extend(scorer.failed + bad)
    finally:
        if pool is not None:  # the fit's tasks are all done, unless it is interrupted: do not wait for those
            stop_pool(pool)
    wall = time.perf_counter() - started
    full_entry = dict(entry)
    if v2:
        sub = dict(next((v for k, v in full_entry.items() if k.lower() == "rooflinev2" and isinstance(v, dict)), {}))
        for k in [k for k in full_entry if k.lower() == "rooflinev2"]:
            del full_entry[k]
        for key, value in after.items():
            _set(sub, key, value)
        full_entry["rooflineV2"] = sub
    else:
        for key, value in after.items():
            _set(full_entry, key, value)
    result = {
        entry_name: full_entry,  # the file is itself a hardware config: blis run --hardware-config FILE
        "calibration": {
            "schema_version": CALIBRATION_SCHEMA_VERSION,
            "hardware": entry_name,
            "latency_model": model,
            "fitted": fitted,
            "fixed": fixed,
            "initial": {k: shipped[k] for k in fit},
            "start": start,
            "starting_config": str(hw_path),
            "bounds": {k: list(BOUNDS[k]) for k in fit},
            "split": {"train": train, "holdout": test, "holdout_fraction": None if options.holdout_experiments
                      else (DEFAULT_HOLDOUT if options.holdout_fraction is None else options.holdout_fraction),
                      "holdout_experiments": list(options.holdout_experiments), "seed": options.seed,
                      "strata": {n: strata[n] for n in sorted(strata)}},
            "objective": ("100 x mean over points of the mean over " + ", ".join(OBJECTIVE_METRICS)
                          + " of min(|ln(predicted / measured)|, ln 3)"),
            "mape": table,
            "optimizer": {"method": "Nelder-Mead (bounded, scaled to the starting values)", "evaluations": evals,
                          "max_evals": options.max_evals, "requests_per_point": options.requests_per_point,
                          "sequential_requests_per_point": options.sequential_requests_per_point,
                          "report_requests_per_point": report_opts.requests_per_point, "jobs": workers,
                          "history": history},
            "failed": [f.to_dict() for f in failed],
            "fit_wall_time_s": round(fit_s, 3),
            "wall_time_s": round(wall, 3),
        },
    }
    return Calibration(result, table, wall, failed)


def _fit(scorer: _Scorer, start: dict[str, float], fixed: dict[str, float], options: CalibrateOptions,
         pool: Executor | None, progress: Progress | None) -> tuple[dict[str, float], int, list[dict]]:
    """Bounded Nelder-Mead over the logarithms of the keys of ``start`` (every key is a positive scale or time, so
    steps are ratios), in two rounds: a wide simplex (each key x2 or /2) with ``_FIRST_ROUND`` of the budget, then a
    narrow one (x1.2) around the best point so far. The simulated objective is piecewise constant on a fine scale
    (step times are whole microseconds), which stalls a single simplex early; the restart recovers from that."""
    from scipy.optimize import minimize

    keys = list(start)
    floor = np.array([max(BOUNDS[k][0], start[k] * 1e-3) for k in keys])  # an overhead's 0 bound: 1/1000 of start
    lo = np.log(floor)
    hi = np.log(np.array([BOUNDS[k][1] for k in keys]))
    x0 = np.clip(np.log(np.array([start[k] for k in keys])), lo, hi)
    cache: dict[tuple, float] = {}
    history: list[dict] = []
    best = [math.inf]

    def values(x: np.ndarray) -> dict[str, float]:
        return {k: float(v) for k, v in zip(keys, np.exp(np.clip(x, lo, hi)))}

    def f(x: np.ndarray) -> float:
        vals = values(x)
        key = tuple(round(v, 12) for v in vals.values())
        if key not in cache:
            if len(history) >= options.max_evals:
                return math.inf  # the budget is spent (the second round stops here)
            pts, _ = scorer.points({**vals, **fixed}, pool)
            cache[key] = objective(pts)
            best[0] = min(best[0], cache[key])
            history.append({"values": vals, "objective": cache[key]})
            if progress is not None:
                progress(len(history), options.max_evals, best[0])
        return cache[key]

    def simplex(center: np.ndarray, step: float) -> np.ndarray:
        rows = [center]
        for i in range(len(keys)):
            v = center.copy()
            v[i] = center[i] + step if center[i] + step <= hi[i] else center[i] - step
            rows.append(v)
        return np.array(rows)

    first = max(1, int(options.max_evals * _FIRST_ROUND))
    f(x0)  # the start is always scored, so the result is never worse than it
    for step, budget in ((math.log(2.0), first), (math.log(1.2), options.max_evals)):
        remaining = budget - len(history)
        if remaining <= 0:
            continue
        center = np.log(np.array([min(history, key=lambda h: h["objective"])["values"][k] for k in keys]))
        minimize(f, center, method="Nelder-Mead", bounds=list(zip(lo, hi)),
                 options={"maxfev": remaining, "initial_simplex": simplex(np.clip(center, lo, hi), step),
                          "xatol": 1e-3, "fatol": 1e-3})
    fitted = min(history, key=lambda h: h["objective"])["values"]
    return fitted, len(history), history


# ------------------------------------------------------------------------------------------------ hardware entry
def _entry(gpu: str, path: Path) -> tuple[str, dict]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    for name in raw:
        if name == gpu or name.lower() == gpu.lower():
            if not isinstance(raw[name], dict):
                raise InputError(f"--hardware-config {path}: entry {name!r} must be a JSON object")
            return name, dict(raw[name])
    raise InputError(f"--hardware {gpu!r} is not in {path} (available: {', '.join(sorted(raw))})")


def _value(entry: dict, key: str, v2: bool = False) -> float:
    """The entry's value of ``key`` (any case; 0 when missing); for v2 its ``rooflineV2`` value wins."""
    if v2:
        sub = next((v for k, v in entry.items() if k.lower() == "rooflinev2" and isinstance(v, dict)), {})
        for k, v in sub.items():
            if k.lower() == key.lower():
                return float(v)
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


def _gpu_of(exp, default: str, path: Path) -> str:
    from .resolve import gpu_entry

    if not exp.gpu:
        return default
    try:
        return gpu_entry(exp.gpu, path)
    except Unsimulatable:
        return exp.gpu

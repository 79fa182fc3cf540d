"""``evaluate``: measured experiments in, a report of predicted vs measured metrics out (the library entry point
behind ``blis evaluate``).

Per experiment it resolves the model config, the GPU entry, the KV blocks and the engine loop (``resolve``), builds
one ``RunPlan`` per point (one per experiment for staged loads), runs the plans on a process pool (largest first;
results are put back in experiment and point order, so the report never depends on scheduling), scores them, and
judges per point whether the simulated and the measured server kept up with the load (``saturation``).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from .. import api
from ..config import SimulationConfig
from ..config.names import DEFAULT_GPU, LATENCY_MODELS
from ..errors import InputError, Terminated
from ..latency.hardware import load_hardware
from ..latency.kv_capacity import kv_bytes_per_block
from ..latency.select import has_efficiency_model, packaged_hardware_config
from ..processes import init_worker, stop_pool
from ..report.intervals import packaged_intervals
from .discover import GroundTruth, load_ground_truth
from .experiment import SEQUENTIAL, Experiment, Failure, SharedPrefixPool, to_workload_description
from .resolve import (
    Unsimulatable,
    blackbox_row,
    defaults_file,
    find_model_config,
    gpu_entry,
    kv_blocks,
    load_model,
    model_key,
    wants_async,
)
from .saturation import judge, summary
from .scoring import ScoredPoint, aggregate, group
from .simulate import RunOutcome, RunPlan, run_plan

log = logging.getLogger("blis_sim")

REPORT_SCHEMA_VERSION = 1
# Every measured request of a point up to this many: a stage is simulated as long as it was measured, so effects that
# build up over minutes (a queue, a KV cache filling) show as they did; 2,000 missed the tail of the 20 req/s stages
# (10 minutes, 12,000 requests: TTFT 59 ms instead of 80, throughput 4% low)
DEFAULT_REQUESTS_PER_POINT = 20_000

Progress = Callable[[int, int], None]  # (runs done, runs in all)


KV_LINK_GBS = 40.0  # GB/s of a pinned host copy over PCIe Gen5 x16 (H100 servers), per GPU


@dataclass(frozen=True)
class Options:
    latency_model: str = "auto"  # auto = best: roofline v2 where the GPU has a kernel model, else v1 (issue 23)
    hardware: str = DEFAULT_GPU  # GPU of experiments whose files do not name one
    model_configs: Path | None = None
    jobs: int | None = None  # worker processes; None: every core
    requests_per_point: int = DEFAULT_REQUESTS_PER_POINT
    async_scheduling: bool | None = None  # None: per experiment, from its vLLM version
    seed: int = 42
    hardware_config: Path | None = None  # roofline GPU calibrations; None: the packaged hardware_config.json
    # Requests of a concurrency-1 (sequential) point; None: requests_per_point. Such a point has no queueing, so a
    # few requests already give its means (blis calibrate uses this to keep its inner evaluation cheap).
    sequential_requests_per_point: int | None = None
    # Ctrl-C or SIGTERM while the points run: score and report the points finished so far (the report says
    # ``"complete": false`` and lists the missing points; ``Evaluation.interrupted`` holds the interruption)
    # instead of unwinding with nothing
    keep_partial: bool = False
    # vLLM's CPU KV offloading as the shared family-2 servers ran it (docs/kv-tier.md): GiB of CPU memory over all
    # ranks (0: no CPU tier), the tier's model, and the host link per GPU in GB/s for the load times
    kv_cpu_gib: float = 0.0
    kv_offload_mode: str = "vllm"
    kv_link_gbs: float = KV_LINK_GBS

    @property
    def resolved_latency_model(self) -> str:
        return "best" if self.latency_model == "auto" else self.latency_model


@dataclass
class Evaluation:
    """The outcome: scored points (every point, excluded ones included), failures and the JSON report."""

    points: list[ScoredPoint]
    failed: list[Failure]
    experiments: list[dict]
    report: dict = field(default_factory=dict)
    interrupted: BaseException | None = None  # with Options.keep_partial: what stopped the runs (report incomplete)


def async_available() -> bool:
    """Whether the engine builds ENGINE.md §7.8's asynchronous loop (``api.UNAVAILABLE`` refuses it until then)."""
    return ("engine", "async_scheduling") not in api.UNAVAILABLE


def evaluate(ground_truth: Path | str, options: Options = Options(), progress: Progress | None = None) -> Evaluation:
    """Simulate every point of every experiment under ``ground_truth`` and compare with the measurements."""
    if options.latency_model not in LATENCY_MODELS:
        raise InputError(f"--latency-model must be one of {', '.join(LATENCY_MODELS)}, got {options.latency_model}")
    if options.requests_per_point < 1:
        raise InputError(f"--requests-per-point must be an integer >= 1, got {options.requests_per_point}")
    if options.model_configs is not None and not Path(options.model_configs).is_dir():
        raise InputError(f"--model-configs {options.model_configs}: no such folder (a folder of <name>/config.json)")
    check_hardware_config(options.hardware_config)
    started = time.perf_counter()
    gt = load_ground_truth(ground_truth)
    failed = list(gt.failed)
    plans: list[RunPlan] = []
    contexts: dict[str, dict] = {}
    sync_fallback: list[str] = []
    for exp in gt.experiments:
        try:
            ctx, exp_plans = plan_experiment(exp, options)
        except Unsimulatable as exc:
            failed.extend(Failure(exp.name, p.label, exp.source, str(exc)) for p in exp.points)
            contexts[exp.name] = _context(exp, options, None)
            continue
        if ctx["engine_loop_wanted"] == "async" and ctx["engine_loop"] == "sync":
            sync_fallback.append(exp.name)
        contexts[exp.name] = ctx
        plans.extend(replace(plan, saturation=True) for plan in exp_plans)
    if sync_fallback:
        log.warning("the asynchronous engine loop (ENGINE.md §7.8) is not available in this version yet: %d "
                    "experiment(s) measured with an asynchronous vLLM are simulated with the synchronous loop",
                    len(sync_fallback))
    outcomes, stopped = _run_all(plans, options.jobs, progress, options.keep_partial)
    missing: list[dict] = []
    if stopped is not None:  # keep_partial: score what finished, list the rest
        by_exp = {e.name: e for e in gt.experiments}
        missing = [{"experiment": plan.experiment, "point": by_exp[plan.experiment].points[i].label}
                   for plan, outcome in zip(plans, outcomes) if outcome is None for i in plan.points]
        kept = [i for i, outcome in enumerate(outcomes) if outcome is not None]
        if not kept:
            raise stopped
        plans = [plans[i] for i in kept]
        outcomes = [outcomes[i] for i in kept]
    points, failed_points = score_outcomes(gt, outcomes, plans, contexts, options)  # type: ignore[arg-type]
    judge(gt.experiments, points)
    failed.extend(failed_points)
    if not points and stopped is not None:
        raise stopped
    if not points:
        more = f" (and {len(failed) - 1} more failure(s))" if len(failed) > 1 else ""
        raise InputError(f"nothing could be evaluated: {failed[0].reason}{more}" if failed
                         else f"--ground-truth {ground_truth}: no measured point to evaluate")
    wall = time.perf_counter() - started
    evaluation = Evaluation(points, failed, [])
    evaluation.experiments = _experiment_entries(gt, points, contexts)
    evaluation.report = _report(gt, evaluation, options, wall, sync_fallback)
    if stopped is not None:
        evaluation.interrupted = stopped
        evaluation.report = {"complete": False, "interrupted_by": interruption_name(stopped),
                             "missing_points": missing, **evaluation.report}
    return evaluation


def interruption_name(exc: BaseException) -> str:
    return "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"


# ------------------------------------------------------------------------------------------------------ planning
def _context(exp: Experiment, options: Options, extra: dict | None) -> dict:
    ctx = {
        "name": exp.name, "format": exp.format, "source": exp.source, "model": exp.model,
        "hardware": exp.gpu or options.hardware, "tp": exp.tp, "vllm_version": exp.vllm_version,
        "vllm_version_source": exp.version_source or None, "workload": exp.workload, "metric_side": exp.metric_side,
        "latency_model": options.resolved_latency_model, "engine_loop_wanted": None, "engine_loop": None,
        "kv_blocks": None, "kv_blocks_source": None, "model_config": None, "notes": list(exp.notes),
    }
    if extra:
        ctx.update(extra)
    return ctx


HANDSET_ALIAS = "handset"  # --hardware-config handset: the packaged hand-set reference constants


def hardware_config_path(value: Path | str | None) -> Path | None:
    """``--hardware-config`` as a path: ``handset`` names the packaged hardware_config_handset.json."""
    if value is None:
        return None
    if str(value) == HANDSET_ALIAS and not Path(value).exists():
        return packaged_hardware_config().with_name("hardware_config_handset.json")
    return Path(value)


def check_hardware_config(path: Path | None) -> None:
    """``--hardware-config FILE``: it must be a readable JSON object (its entries are checked per experiment)."""
    if path is None:
        return
    import json

    where = f"--hardware-config {path}"
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{where}: no such file (a JSON file of GPU calibrations is required)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting too deep
        from ..config.files import unreadable_value

        raise InputError(f"{where}: not valid JSON ({unreadable_value(exc)})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{where}: must hold a JSON object mapping GPU names to calibrations")


def cpu_tier(model, tp: int, block_size: int, options: Options) -> dict:  # noqa: ANN001 (a ModelConfig)
    """Engine settings of a CPU KV tier of ``options.kv_cpu_gib`` GiB over all ranks: vLLM sizes its store as the
    bytes given over the bytes of one block on every rank; each rank copies its own shard over its own link, so a
    block moves at the link's rate over one rank's bytes per token."""
    per_rank = kv_bytes_per_block(model, tp, block_size)
    blocks = int(options.kv_cpu_gib * 2**30 // (per_rank * tp))
    if blocks < 1:
        raise Unsimulatable(f"--kv-cpu-gib {options.kv_cpu_gib:g} holds no KV block of this model "
                            f"({per_rank * tp:,} bytes each)")
    return {
        "kv_cpu_blocks": blocks, "kv_offload_mode": options.kv_offload_mode,
        "kv_transfer_bandwidth": options.kv_link_gbs * 1e3 / (per_rank / block_size),  # bytes per us / per token
    }


def plan_experiment(exp: Experiment, options: Options) -> tuple[dict, list[RunPlan]]:
    hw_path = Path(options.hardware_config) if options.hardware_config is not None else packaged_hardware_config()
    folder = find_model_config(exp.model, options.model_configs)
    model = load_model(folder)
    gpu = gpu_entry(exp.gpu or options.hardware, hw_path)
    try:
        hw = load_hardware(hw_path, gpu)
    except InputError as exc:
        raise Unsimulatable(str(exc)) from None
    kv = kv_blocks(exp, model, hw)
    wanted = options.async_scheduling if options.async_scheduling is not None else wants_async(exp.vllm_version)
    use_async = wanted and async_available()
    kind = options.resolved_latency_model
    if kind == "best":  # the most accurate model whose inputs exist (docs/gpu-transfer.md)
        kind = "roofline-v2" if has_efficiency_model(hw) else "roofline-v1"
    latency: dict = {"model": exp.model, "hardware": gpu, "tp": exp.tp}
    extra_notes = []
    if kind == "blackbox":
        row = blackbox_row(exp.model, gpu, exp.tp, exp.vllm_version, defaults_file())
        latency.update(model=row.id, hardware=row.GPU, vllm_version=row.vllm_version, latency_model="blackbox")
        extra_notes.append(f"blackbox coefficients of {row.id} {row.GPU} TP{row.tensor_parallelism} "
                           f"{row.vllm_version}")
    else:
        latency.update(model_config_folder=folder, hardware_config=hw_path, latency_model=kind)
    s = exp.server
    max_len = max(s.max_model_len, 1)
    engine = {
        "total_kv_blocks": kv.usable, "block_size_in_tokens": s.block_size, "max_num_running_reqs": s.max_num_seqs,
        "max_num_scheduled_tokens": s.max_num_batched_tokens, "max_model_len": max_len,
    }
    if use_async:
        engine["async_scheduling"] = True
    if options.kv_cpu_gib > 0:
        engine.update(cpu_tier(model, exp.tp, s.block_size, options))
        extra_notes.append(f"CPU KV tier ({options.kv_offload_mode}): {options.kv_cpu_gib:g} GiB = "
                           f"{engine['kv_cpu_blocks']} blocks, {engine['kv_transfer_bandwidth']:.3f} tokens/us")
    try:
        cfg = SimulationConfig(latency=latency, engine=engine, seed=options.seed)
    except ValueError as exc:
        raise Unsimulatable(f"cannot build the simulation: {exc}") from None
    ctx = _context(exp, options, {
        "hardware": gpu, "engine_loop_wanted": "async" if wanted else "sync",
        "engine_loop": "async" if use_async else "sync", "kv_blocks": kv.usable, "kv_blocks_source": kv.source,
        "model_config": str(folder / "config.json"), "notes": list(exp.notes) + extra_notes, "latency_model": kind,
    })
    cap = options.requests_per_point
    plans = []
    if isinstance(exp.lengths, SharedPrefixPool) or exp.staged:
        order = sorted(range(len(exp.points)), key=lambda i: exp.points[i].stage or 0)
        loads = tuple((exp.points[i].load, min(exp.points[i].load.num_requests, cap)) for i in order)
        plans.append(RunPlan(exp.name, tuple(order), cfg, to_workload_description(exp.lengths, loads, staged=True),
                             loads, tuple(exp.points[i].itl_definition for i in order)))
    else:
        seq_cap = options.sequential_requests_per_point or cap
        for i, p in enumerate(exp.points):
            n = min(p.load.num_requests, seq_cap if p.load.pattern == SEQUENTIAL else cap)
            load = ((p.load, n),)
            plans.append(RunPlan(exp.name, (i,), cfg, to_workload_description(exp.lengths, load, staged=False), load,
                                 (p.itl_definition,)))
    return ctx, plans


# ------------------------------------------------------------------------------------------------------ running
def _run_all(plans: list[RunPlan], jobs: int | None, progress: Progress | None,
             keep_partial: bool = False) -> tuple[list[RunOutcome | None], BaseException | None]:
    """Outcomes in plan order; the costliest plans are submitted first so that the pool finishes together.

    Ctrl-C or SIGTERM stops the runs under way at once (their workers are terminated, not awaited). With
    ``keep_partial`` the outcomes finished so far come back (None for the others) with the interruption;
    otherwise it propagates."""
    total = len(plans)
    workers = max(1, min(jobs or os.cpu_count() or 1, total or 1))
    outcomes: list[RunOutcome | None] = [None] * total
    done = 0
    pool = None
    try:
        if workers == 1:
            for i, plan in enumerate(plans):
                outcomes[i] = run_plan(plan)
                done += 1
                if progress is not None:
                    progress(done, total)
            return outcomes, None
        order = sorted(range(total), key=lambda i: plans[i].cost, reverse=True)
        pool = ProcessPoolExecutor(max_workers=workers, initializer=init_worker)
        futures = {pool.submit(run_plan, plans[i]): i for i in order}
        for fut in as_completed(futures):
            outcomes[futures[fut]] = fut.result()
            done += 1
            if progress is not None:
                progress(done, total)
        pool.shutdown(wait=True)
        pool = None
        return outcomes, None
    except (KeyboardInterrupt, Terminated) as exc:
        if pool is not None:
            stop_pool(pool)
            pool = None
        if not keep_partial:
            raise
        return outcomes, exc
    finally:
        if pool is not None:  # any other exception: the workers end with the command
            stop_pool(pool)


# ------------------------------------------------------------------------------------------------------ scoring
def score_outcomes(gt: GroundTruth, outcomes: list[RunOutcome], plans: list[RunPlan], contexts: dict[str, dict],
           options: Options) -> tuple[list[ScoredPoint], list[Failure]]:
    by_exp = {e.name: e for e in gt.experiments}
    predicted: dict[tuple[str, int], tuple] = {}
    failed: list[Failure] = []
    for plan, outcome in zip(plans, outcomes):
        exp = by_exp[plan.experiment]
        if outcome.error:
            failed.extend(Failure(exp.name, exp.points[i].label, exp.source, outcome.error) for i in plan.points)
            continue
        for pred, (_, count) in zip(outcome.predictions, plan.loads):
            predicted[(exp.name, pred.point)] = (pred, count, outcome.warnings, outcome.light_load)
    points: list[ScoredPoint] = []
    for exp in gt.experiments:
        ctx = contexts[exp.name]
        for i, p in enumerate(exp.points):
            entry = predicted.get((exp.name, i))
            if entry is None:
                continue  # failed above (its reason is in failed)
            pred, count, warnings, light = entry
            if not pred.predicted:
                failed.append(Failure(exp.name, p.label, exp.source,
                                      "no simulated request completed" + (f" ({'; '.join(pred.notes)})"
                                                                          if pred.notes else "")))
                continue
            notes = list(p.notes) + pred.notes + [w for w in warnings if w not in pred.notes]
            if count < p.load.num_requests:
                notes.append(f"simulated {count} of the {p.load.num_requests} requests measured "
                             f"(--requests-per-point)")
            points.append(ScoredPoint(
                experiment=exp.name, label=p.label, model=model_key(exp.model), hardware=ctx["hardware"],
                workload=exp.workload, measured=dict(p.measured), predicted=pred.predicted, rate=p.load.rate,
                pattern=p.load.pattern, simulated_requests=count, measured_requests=p.load.num_requests,
                excluded=p.excluded, notes=notes, index=i, sim_queue=pred.queue, light_load=light,
                intervals=_intervals(ctx.get("latency_model"), pred.predicted, options),
            ))
    return points, failed


def _intervals(kind: str | None, predicted: dict[str, float], options: Options) -> dict | None:
    """The packaged 80% intervals of ``kind`` around ``predicted``, when the run used the packaged constants (the
    intervals were drawn from their residuals; other constants have other errors)."""
    if options.hardware_config is not None or kind is None:
        return None
    ivs = packaged_intervals().get(kind)
    if ivs is None:
        return None
    return {m: (v["low"], v["high"]) for m, v in ivs.apply(predicted).items()}


def holdout_split(kind: str) -> set[str]:
    """The experiments the packaged calibration of ``kind`` held out (src/blis_sim/data/calibration_h100.json)."""
    path = resources.files("blis_sim") / "data" / "calibration_h100.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8")).get(kind, {})
    except (OSError, json.JSONDecodeError):
        return set()
    return set(record.get("split", {}).get("holdout", []))


def _experiment_entries(gt: GroundTruth, points: list[ScoredPoint], contexts: dict[str, dict]) -> list[dict]:
    out = []
    for exp in gt.experiments:
        mine = [p for p in points if p.experiment == exp.name]
        entry = dict(contexts[exp.name])
        entry.update(aggregate(mine))
        entry["point_results"] = [p.to_dict() for p in mine]
        out.append(entry)
    return out


def _holdout_of(ev: Evaluation) -> set[str]:
    kinds = {e.get("latency_model") for e in ev.experiments}
    return {name for kind in kinds if kind for name in holdout_split(kind)}


def _report(gt: GroundTruth, ev: Evaluation, options: Options, wall: float, sync_fallback: list[str]) -> dict:
    pts = ev.points
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "settings": {
            "latency_model": options.resolved_latency_model,
            "default_hardware": options.hardware,
            "hardware_config": str(options.hardware_config) if options.hardware_config else "packaged",
            "model_configs": str(options.model_configs) if options.model_configs else None,
            "requests_per_point": options.requests_per_point,
            "engine_loop": ("async" if options.async_scheduling else "sync") if options.async_scheduling is not None
            else "per vLLM version",
            "async_available": async_available(),
            "seed": options.seed,
        },
        "overall": aggregate(pts),
        # the experiments the packaged calibration held out (fitted on neither the constants nor the intervals)
        "holdout": aggregate([p for p in pts if p.experiment in _holdout_of(ev)]),
        "by_model": group(pts, "model"),
        "by_hardware": group(pts, "hardware"),
        "by_workload": group(pts, "workload"),
        "experiments": ev.experiments,
        "failed": [f.to_dict() for f in ev.failed],
        "excluded": [{"experiment": p.experiment, "point": p.label, "reason": p.excluded} for p in pts if p.excluded],
        "saturation": summary(pts),
        "duplicates_skipped": gt.duplicates,
        "async_fallback_experiments": sync_fallback,
        "wall_time_s": round(wall, 3),
    }

"""The Python API: ``run(SimulationConfig) -> Results``. The CLI is a thin layer over this function.

A run is a pure function of its configuration (and, optionally, a workload description): resolve the latency model
and KV capacity, build the workload stream, run the cluster loop, and summarise. Every run is assembled the same way,
``prepare`` then ``execute``: ``blis run`` describes its workload with flags, ``blis evaluate`` and ``blis calibrate``
pass a ``WorkloadDescription`` of the measured benchmark. Nothing here prints; diagnostics go to the ``blis_sim``
logger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from .cluster.policies import ADMISSION_POLICIES, ROUTING_POLICIES
from .cluster.simulator import ClusterSimulator
from .config import UNLIMITED_HORIZON, SimulationConfig
from .config.bundle import named_by, warn_ignored_scorers, with_policy_bundle
from .config.defaults_file import load_defaults
from .config.models import EngineConfig
from .config.names import PRESETS
from .config.validators import check_prefix_fits
from .engine.instance import Instance
from .engine.observer import Observer, combine
from .engine.policy import PRIORITY_POLICIES, SCHEDULING_POLICIES
from .errors import InputError
from .guards import check_run_size, expected_requests
from .kv.cpu_tier import CPUTier
from .kv.tier import KVTier
from .kv.vllm_offload import VLLMOffloadTier
from .latency.select import LatencyCache, ResolvedLatency, resolve_latency, uses_packaged_constants
from .metrics.anomalies import priority_inversions
from .metrics.counters import InstanceCounters
from .metrics.fitness import components as fitness_components
from .metrics.fitness import evaluate as evaluate_fitness
from .metrics.fitness import parse_weights
from .metrics.histogram import IntHistogram
from .metrics.summary import cluster_block, hol_blocking_events, instance_block, kv_rates, request_record
from .report.intervals import run_section
from .report.results import Results
from .report.results_file import check_writable as check_output_writable
from .report.slo import per_slo
from .report.timeline import TimelineRecorder, write_timeline
from .request import Request, RequestStatus
from .trace.decisions import DecisionTrace
from .workload import (
    Segment,
    SpecSource,
    WorkloadDescription,
    build,
    describe_workload,
    spec_workload,
    workload_description,
)
from .workload.export import ArrivalLog, check_writable, write_trace
from .workload.sessions import SessionDriver
from .workload.spec_gen import SessionPlan

log = logging.getLogger("blis_sim")

ProgressCallback = Callable[[int, int], None]  # (simulated tick, requests arrived so far)

# Features whose flags exist but whose behaviour is not built yet: (section, field) -> the only value accepted.
# Refusing them is better than silently ignoring them; the issue that builds a feature deletes its entry. Policy
# names are checked against their tables instead (``_POLICY_TABLES``): a policy is available once it has an entry.
UNAVAILABLE: dict[tuple[str, str], object] = {
}

_POLICY_TABLES: dict[tuple[str, str], Mapping[str, object]] = {
    ("cluster", "admission_policy"): ADMISSION_POLICIES,
    ("cluster", "routing_policy"): ROUTING_POLICIES,
    ("engine", "scheduler"): SCHEDULING_POLICIES,
    ("engine", "priority_policy"): PRIORITY_POLICIES,
}


@dataclass(frozen=True)
class PreparedRun:
    """A configuration whose inputs have all been read and checked: only the simulation is left."""

    cfg: SimulationConfig
    resolved: ResolvedLatency
    requests: Iterable[Request]
    expected_requests: int | None  # for progress displays; None when unknown
    # request indices [start, stop) of each stage of the workload, in stage order (one segment for a single stage)
    segments: tuple[Segment, ...] = ()
    workload_text: str = ""  # where the requests come from, one line for the info log
    sessions: SessionPlan | None = None  # a workload spec's multi-turn sessions: the run is closed-loop
    per_slo: bool = False  # requests carry SLO classes: keep routed requests for the per-SLO section


def prepare(
    cfg: SimulationConfig, workload: WorkloadDescription | None = None, *, latency_cache: LatencyCache | None = None
) -> PreparedRun:
    """Every input check, in the order of ENGINE.md §15.2: the policy bundle, features, files (workload), then the
    latency model.

    ``workload`` describes the requests; None takes them from ``cfg.workload`` (the ``blis run`` flags). Requests
    are generated with ``cfg.seed`` up to ``cfg.horizon`` either way. The prepared run's ``cfg`` is the one that
    runs: ``cfg`` with its policy bundle applied (``resolve_config``). ``latency_cache`` (``LatencyCache``) lets runs
    of one process that share latency and engine settings share one resolved latency model.
    """
    cfg = resolve_config(cfg)
    if workload is None and cfg.workload.workload_spec is not None:
        cfg, workload = spec_workload(cfg)
    from_flags = workload is None
    if workload is None:
        presets = load_defaults(cfg.latency.defaults_filepath).workloads if cfg.workload.workload in PRESETS else {}
        workload = workload_description(cfg.workload, presets)
        text = describe_workload(cfg.workload)
    else:
        text = workload.describe()
    if cfg.workload.export_trace is not None:
        check_writable(cfg.workload.export_trace)
    if cfg.output.timeline_out is not None:
        check_output_writable(cfg.output.timeline_out, "--timeline-out")
    if isinstance(workload.source, SpecSource):  # its requests are drawn before the run: sized before they are
        _check_spec_size(cfg, workload.source, cfg.output.results_path is not None)
    requests, segments = build(workload, cfg.seed, cfg.horizon)
    # a trace is read whole: its length is the expected count
    expected = len(requests) if isinstance(requests, list) else workload.num_requests
    if latency_cache is None:
        resolved = resolve_latency(cfg.latency, cfg.engine)
    else:
        resolved = latency_cache.resolve(cfg.latency, cfg.engine)
    if from_flags and cfg.workload.workload == "distribution":  # a prefix no request can hold: refused up front
        w = cfg.workload
        check_prefix_fits(w.prefix_tokens, w.prompt_tokens_min, w.output_tokens_min, cfg.engine.max_model_len,
                          cfg.engine.block_size_in_tokens, resolved.total_kv_blocks)
    if isinstance(requests, list):
        slo_section = len({r.slo_class for r in requests}) > 1
    else:
        source = workload.source
        slo_section = isinstance(source, SpecSource) and len({c.slo_class for c in source.spec.clients}) > 1
    _check_size(cfg, expected, from_flags and not isinstance(requests, list), cfg.output.results_path is not None)
    return PreparedRun(cfg, resolved, requests, expected, segments, text, getattr(requests, "sessions", None),
                       slo_section)


def _check_spec_size(cfg: SimulationConfig, source: SpecSource, records: bool) -> None:
    """Refuse a workload spec whose requests would not fit in memory or time once drawn (guards.py): its
    ``num_requests``, or what its aggregate rate gives within the horizon."""
    spec = source.spec
    horizon = cfg.horizon if cfg.horizon < UNLIMITED_HORIZON else None
    rate = None if getattr(spec, "staged", False) else getattr(spec, "aggregate_rate", None)
    limit = source.num_requests
    if not limit and (rate is None or horizon is None):
        return  # bounded by its stages or windows alone (or refused as infinite when drawn)
    count = expected_requests(limit or 2**62, rate, horizon)
    where = f"--workload-spec {source.path}" if source.path is not None else "the workload spec"
    what = (f"{where}: aggregate_rate {rate:g} up to --horizon {horizon} (about {count:,} requests)"
            if not limit or count < limit else f"{where}: num_requests {limit:,}")
    check_run_size(cfg.cluster.num_instances, count, records, source=what, drawn_upfront=True)


def _check_size(cfg: SimulationConfig, expected: int | None, rate_known: bool, records: bool) -> None:
    """Refuse a run that would never end or would exhaust memory, with the estimate (guards.py). ``expected`` is
    None for a workload bounded by the horizon alone: only the instances count then."""
    if expected is None:
        check_run_size(cfg.cluster.num_instances, 0, False)
        return
    horizon = cfg.horizon if cfg.horizon < UNLIMITED_HORIZON else None
    rate = cfg.workload.rate if rate_known else None
    count = expected_requests(expected, rate, horizon)
    source = (f"--rate {rate:g} up to --horizon {horizon} (about {count:,} requests)" if count < expected
              else f"--num-requests {count}" if rate_known else f"the workload's {count:,} requests")
    check_run_size(cfg.cluster.num_instances, count, records, source=source)


def execute(
    prepared: PreparedRun,
    progress: ProgressCallback | None = None,
    collect_requests: bool = True,
    observer: Observer | None = None,
) -> Results:
    """Simulate a prepared run. ``collect_requests`` keeps per-request records (the results file); ``observer``
    (engine/observer.py) hears of every admission, routing, formed step and completion."""
    cfg, resolved = prepared.cfg, prepared.resolved
    if collect_requests and cfg.output.results_path is None:  # records kept for a caller (sweeps, evaluate)
        _check_size(cfg, prepared.expected_requests, False, True)
    latency = resolved.model
    driver = None
    timeline = None
    if cfg.output.timeline_out is not None:  # --timeline-out: a TimelineRecorder beside the caller's observer
        timeline = TimelineRecorder(resolved.total_kv_blocks, resolved.kind, cfg.cluster.num_instances)
        observer = combine(observer, timeline)
    trace = None
    if cfg.output.trace_level == "decisions":  # the decision trace (§12.1), passing everything on to ``observer``
        observer = trace = DecisionTrace(cfg.cluster.routing_policy, cfg.output.counterfactual_k, observer)
    if prepared.sessions is not None:  # closed loop: a round's completion sends the session's next round
        driver = observer = SessionDriver(prepared.sessions, observer)
    arrivals = ArrivalLog(prepared.requests, cfg.horizon, cfg) if cfg.workload.export_trace is not None else None
    if arrivals is not None and driver is not None:
        driver.log = arrivals
    decode_memo: dict[int, int] = {}  # one latency model for every instance: they share its memoised durations
    instances = [
        Instance(i, cfg.engine, resolved.total_kv_blocks, latency, cfg.skip_ahead, decode_memo,
                 observer=observer, tier=kv_tier(cfg.engine, resolved.total_kv_blocks),
                 snapshot_refresh_interval=cfg.cluster.snapshot_refresh_interval)
        for i in range(cfg.cluster.num_instances)
    ]
    log.info(
        "latency model %s; %d instance(s) x %d KV blocks of %d tokens; %s",
        latency.describe(), cfg.cluster.num_instances, resolved.total_kv_blocks,
        cfg.engine.block_size_in_tokens, prepared.workload_text or describe_workload(cfg.workload),
    )
    inversions = cfg.engine.priority_policy != "constant"  # priority inversions read the completed requests
    sim = ClusterSimulator(
        instances,
        admission=ADMISSION_POLICIES[cfg.cluster.admission_policy](cfg.cluster, cfg.engine),
        routing=ROUTING_POLICIES[cfg.cluster.routing_policy](cfg.cluster, cfg.engine),
        admission_latency=cfg.cluster.admission_latency,
        routing_latency=cfg.cluster.routing_latency,
        horizon=cfg.horizon,
        keep_routed=collect_requests or prepared.per_slo or inversions,
        observer=observer,
        # with stale KV signals, every admission and routing builds snapshots (their refresh timers advance then)
        snapshots_always=cfg.cluster.snapshot_refresh_interval > 0,
        closed_loop=driver is not None,
    )
    if driver is not None:
        driver.sim = sim
    sim.run(arrivals if arrivals is not None else prepared.requests, progress)
    if arrivals is not None:
        write_trace(cfg.workload.export_trace, arrivals.processed(), cfg)
    if timeline is not None:
        write_timeline(timeline, cfg.output.timeline_out)
    counters = [inst.counters() for inst in instances]
    results = _summarise(sim, counters, latency.describe(), resolved, collect_requests)
    if inversions:
        results.anomalies["priority_inversions"] = priority_inversions(
            (r.instance, r.slo_class, r.arrival, r.index, r.e2e) for r in sim.routed
            if r.status == RequestStatus.FINISHED
        )
    weights = parse_weights(cfg.output.fitness_weights)
    if weights:
        ttft, e2e = IntHistogram(), IntHistogram()
        for c in counters:
            ttft.merge(c.stats.ttft)
            e2e.merge(c.stats.e2e)
        comps = fitness_components(ttft, e2e, results.cluster["responses_per_sec"], results.cluster["tokens_per_sec"])
        results.fitness = evaluate_fitness(weights, comps)
    if trace is not None:
        results.trace = trace
        results.show_trace_summary = cfg.output.summarize_trace
    if cfg.output.intervals:
        if resolved.kind != "blackbox" and not uses_packaged_constants(cfg.latency, resolved.hardware):
            log.warning("--intervals: the intervals were drawn from the residuals of the packaged calibrated "
                        "constants and fitted kernels; this run prices steps with other constants or kernel tables "
                        "(--hardware-config entry, overrides or --bench-data-path), whose errors differ; none printed")
        else:
            results.intervals = run_section(results.config["latency_model"], results.config["hardware"],
                                            results.cluster)
            if results.intervals is None:
                log.warning("--intervals: no prediction intervals for the %s latency model (only for the roofline "
                            "models, from their calibration); none printed", results.config["latency_model"])
    if prepared.per_slo:
        results.slo = per_slo(
            (r.slo_class, r.ttft if r.ttft >= 0 else None, r.e2e if r.status == RequestStatus.FINISHED else None)
            for r in sim.routed
        )
    return results


def kv_tier(engine: EngineConfig, num_gpu_blocks: int) -> KVTier | None:
    """One instance's KV tier below the GPU, as the engine settings ask (``--kv-cpu-blocks`` > 0), else None."""
    if engine.kv_cpu_blocks <= 0:
        return None
    if engine.kv_offload_mode == "vllm":
        return VLLMOffloadTier(engine.kv_cpu_blocks, engine.block_size_in_tokens, engine.kv_transfer_bandwidth,
                               engine.kv_transfer_base_latency)
    return CPUTier(engine.kv_cpu_blocks, num_gpu_blocks, engine.block_size_in_tokens, engine.kv_offload_threshold,
                   engine.kv_transfer_bandwidth, engine.kv_transfer_base_latency)


def run(cfg: SimulationConfig, progress: ProgressCallback | None = None, collect_requests: bool = True) -> Results:
    """Simulate ``cfg`` and return its metrics (``prepare`` then ``execute``)."""
    return execute(prepare(cfg), progress, collect_requests)


def resolve_config(cfg: SimulationConfig) -> SimulationConfig:
    """The configuration a run uses, checked before any workload or model file is read: ``cfg`` with its
    ``--policy-config`` bundle applied where no flag was given (so that a policy the bundle names but this version
    lacks is refused like its flag), features not built yet refused, ignored scorers warned about."""
    cfg = with_policy_bundle(cfg)
    check_available(cfg)
    warn_ignored_scorers(cfg)
    parse_weights(cfg.output.fitness_weights)
    out = cfg.output
    if out.trace_level != "decisions":
        if out.counterfactual_k > 0:
            log.warning("--counterfactual-k %d has no effect without --trace-level decisions", out.counterfactual_k)
        if out.summarize_trace:
            log.warning("--summarize-trace has no effect without --trace-level decisions")
        if out.trace_output is not None:
            raise InputError("--trace-output needs --trace-level decisions (there is no trace to write otherwise)")
    return cfg


def check_available(cfg: SimulationConfig) -> None:
    """Refuse flags whose feature is not built yet rather than silently ignoring them."""
    for (section, name), only in UNAVAILABLE.items():
        value = getattr(getattr(cfg, section), name)
        if value == only:
            continue
        flag = "--" + name.replace("_", "-")
        if only is None or only is False or only == "":
            raise InputError(f"{flag} is not available in this version yet")
        raise InputError(f"{flag} {value} is not available in this version yet (only {only})")
    for (section, name), table in _POLICY_TABLES.items():
        value = getattr(getattr(cfg, section), name)
        if value not in table:  # named by its flag or by the policy bundle
            raise InputError(f"{named_by(cfg, section, name)} {value} is not available in this version yet "
                             f"(only {', '.join(table)})")


def _summarise(
    sim: ClusterSimulator, instances: list[InstanceCounters], latency_desc: dict, resolved, collect: bool
) -> Results:
    cluster = cluster_block(instances)
    per_instance = [instance_block(i) for i in instances]
    dropped = cluster["dropped_unservable"]
    _warn_outcome(sim, instances, cluster)
    requests = None
    if collect:
        kept = [r for r in sim.routed if r.status != RequestStatus.DROPPED]
        kept.sort(key=lambda r: (r.arrival, r.index))
        requests = [request_record(r) for r in kept]
    return Results(
        cluster=cluster,
        instances=per_instance,
        kv=kv_rates(instances, cluster["completed_requests"]),
        anomalies={
            "priority_inversions": 0,
            "hol_blocking_events": hol_blocking_events(instances),
            "rejected_requests": sim.num_rejected,
            "dropped_unservable": dropped,
        },
        latency_model=latency_desc,
        requests=requests,
        config={
            "latency_model": resolved.kind,
            "hardware": resolved.hardware,
            "tp": resolved.tp,
            "total_kv_blocks": resolved.total_kv_blocks,
        },
    )


def _warn_outcome(sim: ClusterSimulator, instances: list[InstanceCounters], cluster: dict) -> None:
    for inst in instances:
        reasons = inst.stats.dropped_by_reason
        if reasons:
            detail = "; ".join(f"{n} because {why}" for why, n in sorted(reasons.items()))
            log.warning(
                "%s dropped %d request(s) as unservable: %s (vLLM would reject them too; "
                "raise --max-model-len or --total-kv-blocks to serve them)",
                inst.name, inst.stats.dropped_unservable, detail,
            )
    if cluster["completed_requests"] == 0 and sim.num_arrived:
        if sim.num_rejected == sim.num_arrived:
            log.warning("no request completed: every request was rejected by admission")
        elif cluster["dropped_unservable"] == cluster["injected_requests"]:
            log.warning("no request completed: every request was dropped as unservable")
        else:
            log.warning("no request completed before the horizon (%d ticks)", sim.horizon)

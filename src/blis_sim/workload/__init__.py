"""Workload sources (ENGINE.md §10): where the requests of a run come from.

Every run's requests are built the same way: a ``WorkloadDescription`` (``description``) is turned into requests by
``builder.build``. ``workload_description`` fills one in from the ``blis run`` flags, picking the source by the
precedence of §10.1:

1. ``--workload-spec`` (not supported in this version yet);
2. ``--workload traces``: a CSV trace (§10.3);
3. ``--workload chatbot|summarization|contentgen|multidoc``: a preset from the defaults file's ``workloads``;
4. ``--workload distribution``: the token-length flags.

``build_requests`` does both steps and returns the requests lazily, in arrival order. Other front ends
(``blis evaluate``'s measured benchmarks) fill in a description themselves and pass it to ``api.prepare``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

from ..config.models import PRESETS, SimulationConfig, WorkloadConfig
from ..errors import InputError
from ..request import Request
from .builder import build
from .description import (
    ClampedNormal,
    CsvTrace,
    GaussianLengths,
    PromptPool,
    Segment,
    SpecSource,
    Stage,
    WorkloadDescription,
)
from .distribution import DistributionParams, LengthParams, generate, params_from_config, preset_params
from .rng import Streams, stream
from .spec import ClientSpec, WorkloadSpec, load_spec
from .traces import read_csv_trace

__all__ = [
    "ClampedNormal",
    "CsvTrace",
    "DistributionParams",
    "GaussianLengths",
    "LengthParams",
    "PromptPool",
    "Segment",
    "SpecSource",
    "ClientSpec",
    "WorkloadSpec",
    "load_spec",
    "spec_workload",
    "Stage",
    "Streams",
    "WorkloadDescription",
    "build",
    "build_requests",
    "describe_workload",
    "generate",
    "params_from_config",
    "preset_params",
    "read_csv_trace",
    "stream",
    "workload_description",
]

log = logging.getLogger("blis_sim")


def workload_description(cfg: WorkloadConfig, presets: Mapping[str, Mapping[str, Any]]) -> WorkloadDescription:
    """The description of the ``blis run`` workload flags; ``presets`` is the defaults file's ``workloads``
    section. Flag and preset problems raise ``InputError`` here (file contents are read by ``build``)."""
    if cfg.workload_spec is not None:
        raise InputError("--workload-spec: a workload spec is read by workload.spec_workload (it sets the seed and "
                         "horizon too)")
    if cfg.num_requests == 0 and (cfg.workload != "traces" or cfg.is_set("num_requests")):
        raise InputError(f"--num-requests 0 with --workload {cfg.workload}: the run would have no request "
                         "(an integer >= 1)")
    if cfg.workload == "traces":
        if cfg.workload_traces_filepath is None:  # the config's cross-check normally catches this first
            raise InputError("--workload traces needs --workload-traces-filepath")
        if cfg.is_set("arrival_process"):
            log.warning("--arrival-process is ignored for --workload traces (arrival times come from the trace)")
        num_requests = cfg.num_requests if cfg.is_set("num_requests") else None
        return WorkloadDescription(CsvTrace(cfg.workload_traces_filepath, num_requests))
    if cfg.workload in PRESETS:
        preset = presets.get(cfg.workload)
        if preset is None:
            raise InputError(
                f"--workload {cfg.workload}: the defaults file has no '{cfg.workload}' entry in its workloads section "
                f"(it has: {', '.join(sorted(presets)) or 'none'})"
            )
        params = preset_params(cfg.workload, preset, cfg.rate, cfg.num_requests, cfg.arrival_process)
    else:
        params = params_from_config(cfg)
    lengths = GaussianLengths(params.prefix_tokens, ClampedNormal.of(params.prompt), ClampedNormal.of(params.output))
    return WorkloadDescription(lengths, (Stage(params.arrival_process, params.num_requests, params.rate),))


def spec_workload(cfg: SimulationConfig, spec: WorkloadSpec | None = None
                  ) -> tuple[SimulationConfig, WorkloadDescription]:
    """The run of a workload spec (``--workload-spec``, or ``spec`` built in code): the spec's ``seed``,
    ``horizon`` and ``num_requests`` apply unless ``--seed``, ``--horizon`` or ``--num-requests`` was passed
    explicitly. Returns the configuration that runs (its seed and horizon set) and the description."""
    path = cfg.workload.workload_spec
    if spec is None:
        if path is None:
            raise InputError("no workload spec: pass --workload-spec FILE")
        spec = load_spec(path)
    if cfg.workload.is_set("workload") and path is not None:
        log.warning("--workload %s is ignored: --workload-spec wins", cfg.workload.workload)
    limit = cfg.workload.num_requests if cfg.workload.is_set("num_requests") else spec.num_requests
    update: dict[str, Any] = {}
    if not cfg.is_set("seed"):
        update["seed"] = spec.seed
    if not cfg.is_set("horizon") and spec.horizon is not None:
        update["horizon"] = spec.horizon
    if update:
        cfg = cfg.model_copy(update=update)
    return cfg, WorkloadDescription(SpecSource(spec, limit, path))


def build_requests(
    cfg: WorkloadConfig,
    seed: int,
    horizon: int | float,
    presets: Mapping[str, Mapping[str, Any]],
) -> Iterator[Request]:
    """The run's requests in arrival order (lazily for generated workloads): ``workload_description`` then
    ``build``. File and preset problems raise ``InputError`` here, before any request is produced."""
    requests, _ = build(workload_description(cfg, presets), seed, horizon)
    return iter(requests)


def describe_workload(cfg: WorkloadConfig) -> str:
    """One line saying where the requests come from, for the info log."""
    if cfg.workload_spec is not None:
        return f"workload: spec {cfg.workload_spec}"
    if cfg.workload == "traces":
        limit = f", first {cfg.num_requests} rows" if cfg.is_set("num_requests") else ""
        return f"workload: CSV trace {cfg.workload_traces_filepath}{limit}"
    arrivals = f"{cfg.num_requests} requests at {cfg.rate:g} req/s ({cfg.arrival_process} arrivals)"
    if cfg.workload in PRESETS:
        return f"workload: preset {cfg.workload}, {arrivals}"
    return (
        f"workload: distribution, {arrivals}, prefix {cfg.prefix_tokens} tokens, "
        f"prompt mean {cfg.prompt_tokens} sd {cfg.prompt_tokens_stdev} in [{cfg.prompt_tokens_min}, "
        f"{cfg.prompt_tokens_max}], output mean {cfg.output_tokens} sd {cfg.output_tokens_stdev} in "
        f"[{cfg.output_tokens_min}, {cfg.output_tokens_max}]"
    )

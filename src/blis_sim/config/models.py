"""Validated, frozen configuration of one simulation run: the single edge where input is checked.

Field names are the ``blis run`` flag names with underscores, so an error on ``workload.rate`` reads
``--rate must be ...``. Which fields were given explicitly matters for some defaults (ENGINE.md §15.1); pydantic's
``model_fields_set`` records exactly that, and ``is_set`` asks it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .names import (
    ADMISSION_POLICIES,
    ARRIVAL_PROCESSES,
    KV_OFFLOAD_MODES,
    LATENCY_MODELS,
    LOG_LEVELS,
    PRESETS,
    PRIORITY_POLICIES,
    ROUTING_POLICIES,
    SCHEDULERS,
    SCORERS,
    TRACE_LEVELS,
    WORKLOADS,
)
from .validators import (
    Coeffs3,
    FiniteGT0,
    Fraction01,
    Int,
    IntGE0,
    IntGE1,
    IntGE1OrUnset,
    LatencyUS,
    NonEmptyStr,
    PrefixTokens,
    one_of,
    parse_scorers,
)

__all__ = [  # the name sets are re-exported for the CLI and older imports
    "ADMISSION_POLICIES", "ARRIVAL_PROCESSES", "LATENCY_MODELS", "LOG_LEVELS", "PRESETS", "PRIORITY_POLICIES",
    "ROUTING_POLICIES", "SCHEDULERS", "TRACE_LEVELS", "WORKLOADS", "ClusterConfig", "EngineConfig", "LatencyConfig",
    "OutputConfig", "SimulationConfig", "UNLIMITED_HORIZON", "WorkloadConfig",
]

UNLIMITED_HORIZON = 2**63 - 1


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, protected_namespaces=())

    def is_set(self, name: str) -> bool:
        """True when the field was given explicitly (flag passed / keyword given)."""
        return name in self.model_fields_set


def _known_hardware_keys(overrides: tuple[tuple[str, float], ...]) -> tuple[tuple[str, float], ...]:
    from ..latency.hardware import KEYS  # imported here: the latency package imports this module

    unknown = [key for key, _ in overrides if key not in KEYS]
    if unknown:
        raise ValueError(f"unknown hardware calibration key(s) {', '.join(map(repr, unknown))} (keys, spelled as in "
                         f"hardware_config.json: {', '.join(KEYS)})")
    return overrides


def _valid_scorers(text: str) -> str:
    parse_scorers(text, SCORERS)
    return text


class LatencyConfig(_Section):
    """Which latency model, and its inputs (ENGINE.md §9, ROOFLINE.md §7)."""

    model: NonEmptyStr
    hardware: str = ""
    tp: IntGE1OrUnset = 0  # 0 = not given: filled in from the defaults file
    vllm_version: str = ""
    defaults_filepath: Path | None = None
    alpha_coeffs: Coeffs3 = (0.0, 0.0, 0.0)
    beta_coeffs: Coeffs3 = (0.0, 0.0, 0.0)
    model_config_folder: Path | None = None
    hardware_config: Path | None = None
    bench_data_path: Path | None = None
    # "auto": roofline v2 with --bench-data-path, v1 with the two roofline files, else blackbox (the seed's rule)
    latency_model: Annotated[str, one_of(*LATENCY_MODELS)] = "auto"
    # Library only (no flag): calibration keys in hardware_config.json spelling, e.g. ("mfuPrefill", 0.6), replacing
    # the GPU entry's values for this run (latency/select.py). ``blis calibrate`` prices its candidates with them
    # instead of writing a hardware config per candidate. The values are checked with the entry (check_v1/check_v2).
    hardware_overrides: Annotated[tuple[tuple[str, float], ...], AfterValidator(_known_hardware_keys)] = ()

    @model_validator(mode="after")
    def _explicit_tp(self) -> "LatencyConfig":
        if self.is_set("tp") and self.tp < 1:
            raise ValueError(f"--tp must be an integer >= 1, got {self.tp} (leave --tp out to take the tensor-parallel "
                             "degree from the defaults file's entry for the model)")
        return self


class EngineConfig(_Section):
    """Per-instance vLLM server settings (ENGINE.md §7, §8)."""

    total_kv_blocks: IntGE1 = 1_000_000
    block_size_in_tokens: IntGE1 = 16
    max_num_running_reqs: IntGE1 = 256
    max_num_scheduled_tokens: IntGE1 = 2048
    long_prefill_token_threshold: IntGE0 = 0
    max_model_len: IntGE1 = 2048
    async_scheduling: bool = False
    kv_cpu_blocks: IntGE0 = 0
    kv_offload_threshold: Fraction01 = 0.9
    kv_transfer_bandwidth: FiniteGT0 = 100.0
    kv_transfer_base_latency: IntGE0 = 0
    kv_offload_mode: Annotated[str, one_of(*KV_OFFLOAD_MODES)] = "reference"  # kv/cpu_tier.py, kv/vllm_offload.py
    # per-instance policies: the waiting queue's order and preemption victims, and request priorities (§11.3-§11.4)
    scheduler: Annotated[str, one_of(*SCHEDULERS)] = "fcfs"
    priority_policy: Annotated[str, one_of(*PRIORITY_POLICIES)] = "constant"

    @model_validator(mode="after")
    def _vllm_priority_reads_request_priorities(self) -> "EngineConfig":
        # vllm-priority orders requests by their own fixed priorities (engine/policy.py, docs/scheduling.md)
        if self.scheduler == "vllm-priority" and self.priority_policy != "constant":
            raise ValueError(
                f"--priority-policy {self.priority_policy} cannot be combined with --scheduler vllm-priority, which "
                "orders requests by their own fixed priorities (a CSV trace's priority column) as vLLM does "
                "(leave --priority-policy at constant)"
            )
        return self


class WorkloadConfig(_Section):
    """Where requests come from (ENGINE.md §10)."""

    workload: Annotated[str, one_of(*WORKLOADS)] = "distribution"
    workload_traces_filepath: Path | None = None
    workload_spec: Path | None = None
    arrival_process: Annotated[str, one_of(*ARRIVAL_PROCESSES)] = "constant"
    rate: FiniteGT0 = 1.0
    num_requests: IntGE0 = 100
    prefix_tokens: PrefixTokens = 0
    prompt_tokens: Int = 512
    prompt_tokens_stdev: IntGE0 = 256
    prompt_tokens_min: Int = 2
    prompt_tokens_max: Int = 7000
    output_tokens: Int = 512
    output_tokens_stdev: IntGE0 = 256
    output_tokens_min: Int = 2
    output_tokens_max: Int = 7000
    export_trace: Path | None = None

    @model_validator(mode="after")
    def _cross_checks(self) -> "WorkloadConfig":
        if self.workload == "traces" and self.workload_traces_filepath is None:
            raise ValueError("--workload traces needs --workload-traces-filepath")
        if self.workload == "distribution" and self.workload_spec is None:
            for kind in ("prompt", "output"):
                lo = getattr(self, f"{kind}_tokens_min")
                mean = getattr(self, f"{kind}_tokens")
                hi = getattr(self, f"{kind}_tokens_max")
                if lo < 1:
                    raise ValueError(f"--{kind}-tokens-min must be an integer >= 1, got {lo}")
                if not lo <= mean <= hi:
                    raise ValueError(
                        f"--{kind}-tokens must lie between --{kind}-tokens-min and --{kind}-tokens-max "
                        f"(min <= mean <= max), got min={lo} mean={mean} max={hi}"
                    )
        return self


class ClusterConfig(_Section):
    """Instances and the control plane (ENGINE.md §6, §11)."""

    num_instances: IntGE1 = 1
    admission_policy: Annotated[str, one_of(*ADMISSION_POLICIES)] = "always-admit"
    admission_latency: LatencyUS = 0
    routing_latency: LatencyUS = 0
    token_bucket_capacity: FiniteGT0 = 10000.0
    token_bucket_refill_rate: FiniteGT0 = 1000.0
    routing_policy: Annotated[str, one_of(*ROUTING_POLICIES)] = "round-robin"
    routing_scorers: Annotated[str, AfterValidator(_valid_scorers)] = ""  # name:weight,... ("" = the default profile)
    policy_config: Path | None = None
    snapshot_refresh_interval: IntGE0 = 0


def _file_path(value: object) -> object:
    """An output file path: a string ending in a separator names a directory, which is never what is meant."""
    if isinstance(value, str) and value.endswith(("/", os.sep)):
        raise ValueError("must be a file path, not a directory (it ends in a separator)")
    return value


class OutputConfig(_Section):
    """Observability and result files (ENGINE.md §12, §14)."""

    results_path: Annotated[Path | None, BeforeValidator(_file_path)] = None
    log: Annotated[str, one_of(*LOG_LEVELS)] = "warn"
    trace_level: Annotated[str, one_of(*TRACE_LEVELS)] = "none"
    counterfactual_k: IntGE0 = 0
    summarize_trace: bool = False
    intervals: bool = False  # print 80% prediction intervals of the headline metrics (report/intervals.py)
    fitness_weights: str = ""
    trace_output: Annotated[Path | None, BeforeValidator(_file_path)] = None  # decision trace as JSON lines
    quiet: bool = False  # no progress bar
    # a Chrome trace-event timeline of the run (report/timeline.py, docs/timeline.md)
    timeline_out: Annotated[Path | None, BeforeValidator(_file_path)] = None


class SimulationConfig(_Section):
    """Everything one run needs. A run is a pure function of this object."""

    latency: LatencyConfig
    engine: EngineConfig = Field(default_factory=EngineConfig)
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    seed: Int = 42
    horizon: IntGE0 = UNLIMITED_HORIZON
    skip_ahead: bool = True  # advance stable decode-only stretches in one go (exact; --no-skip-ahead turns it off)

    @model_validator(mode="after")
    def _cross_checks(self) -> "SimulationConfig":
        lat = self.latency
        if (lat.model_config_folder is None) != (lat.hardware_config is None):
            raise ValueError("--model-config-folder and --hardware-config must be given together (roofline mode)")
        return self

"""The format-independent description of a measured experiment: what every loader produces, what the rest reads.

An ``Experiment`` holds what the measured server was (model, GPU, TP, vLLM version, scheduler limits, KV blocks when
recorded), what it was sent (a length model and, per point, how the requests arrived) and what was measured per
point. Nothing here knows which file format it came from, beyond ``format`` and ``source`` for messages.
``to_workload_description`` turns what an experiment's points sent into the simulator's ``WorkloadDescription``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..workload.description import ClampedNormal, GaussianLengths, PromptPool, Stage, WorkloadDescription

# The metrics compared, in report order (all ms except throughput, output tokens per second).
METRICS = ("ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms", "throughput_tokens_per_s")

# ITL definitions a measurement may use; the prediction is computed the same way (GROUND_TRUTH.md §4).
ITL_DECODE = "decode"  # mean over requests of (e2e - ttft) / (outputs - 1)
ITL_POOLED = "pooled"  # (sum of e2e - ttft) / (sum of outputs - 1), i.e. (E2E mean - TTFT mean) / (L - 1) for fixed L
ITL_BLIS = "blis"  # BLIS's evaluator: sum of (e2e - queueing) / sum of outputs (prefill time included)
ITL_DEFINITIONS = (ITL_DECODE, ITL_POOLED, ITL_BLIS)

# How the requests of one point arrive.
CONSTANT = "constant"  # at `rate`: evenly spaced (guidellm), randomly spread over the stage (inference-perf stages)
POISSON = "poisson"
SEQUENTIAL = "sequential"  # one request at a time (guidellm synchronous, concurrency 1)
BURST = "burst"  # all at once (guidellm throughput)
PATTERNS = (CONSTANT, POISSON, SEQUENTIAL, BURST)


@dataclass(frozen=True, slots=True)
class LengthDist:
    """A clamped normal token length: mean, standard deviation, inclusive [min, max]."""

    mean: int
    stdev: int
    min: int
    max: int


@dataclass(frozen=True, slots=True)
class SyntheticLengths:
    """Random prompts (a prefix shared by every request plus a random part) and random output lengths."""

    prefix_tokens: int
    prompt: LengthDist  # the random part, without the prefix
    output: LengthDist

    @property
    def max_total_tokens(self) -> int:
        return self.prefix_tokens + self.prompt.max + self.output.max


@dataclass(frozen=True, slots=True)
class SharedPrefixPool:
    """inference-perf's ``shared_prefix`` data: groups of prompts sharing a system prompt, reused in a fixed order."""

    num_groups: int
    prompts_per_group: int
    system_prompt_len: int
    question_len: int
    output_len: int

    @property
    def max_total_tokens(self) -> int:
        return self.system_prompt_len + self.question_len + self.output_len


Lengths = SyntheticLengths | SharedPrefixPool


@dataclass(frozen=True, slots=True)
class Load:
    """How the requests of one point arrive: a pattern, a rate for constant and Poisson arrivals, a count."""

    pattern: str  # one of PATTERNS
    rate: float | None  # requests per second (constant, poisson)
    num_requests: int  # as measured (the simulation may use fewer, see --requests-per-point)
    duration_s: float | None = None  # stage length for staged loads


@dataclass(frozen=True, slots=True)
class Served:
    """What the measurement says about whether the server kept up at one point, as far as its files tell
    (``evaluate/saturation.py`` judges it): request counts, latencies and the completion rate of the benchmark's own
    summary, and per request (per-request files) arrival, time in vLLM's waiting queue and TTFT, in seconds."""

    source: str  # the file(s) it was read from
    sent: int | None = None
    failed: int | None = None
    failed_latency_s: float | None = None  # median latency of the failed requests (a timeout, or a fast rejection)
    served_latency_s: float | None = None  # median latency of the successful ones
    completed_rps: float | None = None  # completions per second as the benchmark tool computed them
    arrival_s: tuple[float, ...] = ()
    queue_s: tuple[float, ...] = ()
    ttft_s: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Point:
    """One measured rate point or stage."""

    label: str  # e.g. "constant 0.759 rps", "stage 1 (20 rps)", "synchronous"
    load: Load
    measured: dict[str, float]  # metric name (METRICS) -> value; only the recorded ones
    itl_definition: str  # one of ITL_DEFINITIONS
    stage: int | None = None  # staged experiments: index of the stage (all stages are one simulation)
    excluded: str = ""  # non-empty: reported but kept out of the averages, with this reason
    notes: tuple[str, ...] = ()  # caveats worth showing next to the point (e.g. heuristic rate assignment)
    served: Served | None = None  # evidence of whether the measured server kept up (None: the files hold none)


@dataclass(frozen=True, slots=True)
class Server:
    """The measured vLLM server's settings that the simulation needs."""

    max_model_len: int
    max_num_batched_tokens: int
    max_num_seqs: int
    block_size: int = 16
    gpu_memory_utilization: float = 0.9
    num_gpu_blocks: int | None = None  # as vLLM logged it (its null block included); None when not recorded
    num_gpu_blocks_source: str = ""  # the file (and field) it came from


@dataclass(frozen=True, slots=True)
class Experiment:
    """One measured experiment, whatever file format it came from."""

    name: str
    format: str  # "combined" | "guidellm" | "inference-perf" | "sync-table"
    source: str  # the file or folder it was read from
    model: str  # as the files name it, e.g. "meta-llama/Llama-2-7b-hf"
    gpu: str | None  # GPU as named in the files (None: --hardware decides)
    tp: int
    vllm_version: str | None  # None when no file names it
    version_source: str
    server: Server
    workload: str  # workload type, for the by-workload grouping
    lengths: Lengths
    points: tuple[Point, ...]
    metric_side: str = "server"  # "server" (engine timestamps) or "client" (benchmark client, HTTP included)
    notes: tuple[str, ...] = field(default=())

    @property
    def staged(self) -> bool:
        """True when the points are consecutive stages of one run (simulated together)."""
        return any(p.stage is not None for p in self.points)


@dataclass(frozen=True, slots=True)
class Failure:
    """Something that could not be loaded or simulated, with the reason (never silently dropped)."""

    experiment: str
    point: str  # "" when the whole experiment failed
    source: str
    reason: str

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "point": self.point or None, "source": self.source,
                "reason": self.reason}


def to_workload_description(lengths: Lengths, loads: Sequence[tuple[Load, int]], staged: bool) -> WorkloadDescription:
    """What one simulated run sends: the experiment's length model and one stage per point, each with its load's
    pattern and rate and the number of requests to simulate (``loads``, in stage order).

    Staged points (inference-perf stages) run back to back in one simulation; with synthetic lengths each stage
    draws its own lengths and tokens (seed offset = its index), as inference-perf's ``random`` data does. A shared
    prefix pool is one pool for all stages, and its stages carry their durations: they are timed as inference-perf
    times them (``workload.shared_prefix``: randomly spaced sends, every send made, the next stage after the last).
    An unstaged run has the one point of its plan.
    """
    pooled = isinstance(lengths, SharedPrefixPool)
    stages = tuple(Stage(load.pattern, count, load.rate, seed_offset=i if staged and not pooled else 0,
                         duration=load.duration_s if pooled and load.pattern in (CONSTANT, POISSON) else None)
                   for i, (load, count) in enumerate(loads))
    if isinstance(lengths, SharedPrefixPool):
        pool = PromptPool(lengths.num_groups, lengths.prompts_per_group, lengths.system_prompt_len,
                          lengths.question_len, lengths.output_len)
        return WorkloadDescription(pool, stages)
    gaussian = GaussianLengths(lengths.prefix_tokens, _normal(lengths.prompt), _normal(lengths.output))
    return WorkloadDescription(gaussian, stages)


def _normal(d: LengthDist) -> ClampedNormal:
    return ClampedNormal(d.mean, d.stdev, d.min, d.max)

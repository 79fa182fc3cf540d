"""What a run's requests are, as data: one description that every workload source fills in and one builder reads.

A ``WorkloadDescription`` names what the requests contain (``source``) and how they arrive (``stages``):

* ``GaussianLengths``: generated requests whose prompt and output lengths are clamped normals, behind a prefix shared
  by every request of a stage (``--workload distribution``, the presets, and measured benchmarks' synthetic data);
* ``PromptPool``: inference-perf's ``shared_prefix`` data, a fixed pool of prompts in groups sharing a system prompt;
* ``CsvTrace``: a CSV trace (ENGINE.md §10.3), which brings its own arrivals and so has no stages.

Stages run back to back: a stage starts when the previous one has sent all its requests (``num_requests`` / rate
after it started; sequential stages ``num_requests`` gaps; a burst at once; inference-perf stages of a ``PromptPool``,
those with a ``duration``, as ``shared_prefix`` says), and its requests are numbered after the previous stage's.
``workload.builder.build`` turns a description into the requests and the ``Segment`` of request indices each stage
owns. Everything here is frozen, picklable, pure-Python data (the compiled ``LengthParams`` cannot
be pickled, hence ``ClampedNormal``), so a description travels to worker processes with the rest of a run's inputs;
the workload-spec YAML (ENGINE.md §10.5, §10.8: clients, arrival processes, prefix groups, inference-perf stages) is
meant to be read into this form too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .distribution import ARRIVAL_PATTERNS, BURST, SEQUENTIAL, SEQUENTIAL_GAP_US, LengthParams

__all__ = [
    "ARRIVAL_PATTERNS",
    "BURST",
    "CONSTANT",
    "POISSON",
    "SEQUENTIAL",
    "SEQUENTIAL_GAP_US",
    "ClampedNormal",
    "CsvTrace",
    "GaussianLengths",
    "PromptPool",
    "Segment",
    "SpecSource",
    "Stage",
    "WorkloadDescription",
]

CONSTANT = "constant"  # evenly spaced at the stage's rate
POISSON = "poisson"  # exponential gaps of mean 1 / rate


@dataclass(frozen=True)
class ClampedNormal:
    """A token length: a normal of ``mean`` and ``stdev`` clamped to [min, max] and rounded half up (no draw when
    min == max). The generator's ``LengthParams``, as plain data."""

    mean: float
    stdev: float
    min: int
    max: int

    def params(self) -> LengthParams:
        return LengthParams(self.mean, self.stdev, self.min, self.max)

    @classmethod
    def of(cls, p: LengthParams) -> "ClampedNormal":
        return cls(p.mean, p.stdev, p.min, p.max)


@dataclass(frozen=True)
class GaussianLengths:
    """Requests of the distribution generator (ENGINE.md §10.2): a prefix of ``prefix_tokens`` random tokens shared
    by every request of a stage, then a prompt and an output whose lengths are clamped normals."""

    prefix_tokens: int
    prompt: ClampedNormal  # the prompt after the prefix
    output: ClampedNormal


@dataclass(frozen=True)
class PromptPool:
    """inference-perf's ``shared_prefix`` data: ``num_groups`` random system prompts with ``prompts_per_group``
    random questions each; the pool is shuffled once, request k sends prompt ``k mod pool size`` and every output is
    exactly ``output_len`` tokens."""

    num_groups: int
    prompts_per_group: int
    system_prompt_len: int
    question_len: int
    output_len: int


@dataclass(frozen=True)
class CsvTrace:
    """A CSV trace (ENGINE.md §10.3); ``num_requests`` keeps its first rows (None: all of them)."""

    path: Path
    num_requests: int | None = None


@dataclass(frozen=True)
class SpecSource:
    """A workload spec (ENGINE.md §10.5; ``workload.spec.WorkloadSpec``), which brings its own clients and arrivals
    and so has no stages. ``num_requests``: the request limit (0: none); the run's seed and horizon apply."""

    spec: object  # a WorkloadSpec (kept untyped here: the model module imports pydantic)
    num_requests: int = 0
    path: Path | None = None


@dataclass(frozen=True)
class Stage:
    """How the requests of one stage arrive, and how many there are.

    ``arrival``: ``constant`` (every 1/rate seconds), ``poisson`` (exponential gaps of mean 1/rate), ``sequential``
    (one at a time, ``SEQUENTIAL_GAP_US`` apart) or ``burst`` (all at the stage's start). ``rate`` (requests per
    second) is read by constant and poisson arrivals only. ``seed_offset``: a ``GaussianLengths`` stage draws from
    the streams of ``seed + seed_offset`` (inference-perf's staged synthetic data uses the stage's index, so every
    stage has its own lengths and tokens); a ``PromptPool`` draws every stage from the one set of streams of
    ``seed``, so there it must be 0. ``duration`` (seconds, constant and poisson ``PromptPool`` stages) makes it an
    inference-perf stage, timed as inference-perf's load generator times it (``shared_prefix`` module).
    """

    arrival: str
    num_requests: int
    rate: float | None = None
    seed_offset: int = 0
    duration: float | None = None  # seconds: an inference-perf stage, timed as inference-perf times it (PromptPool)

    def problem(self) -> str:
        """Why the stage cannot be generated ("" when it can)."""
        if self.arrival not in ARRIVAL_PATTERNS:
            return f"arrival must be one of {', '.join(ARRIVAL_PATTERNS)}, got {self.arrival!r}"
        if self.arrival in (CONSTANT, POISSON) and not (
            self.rate is not None and math.isfinite(self.rate) and self.rate > 0
        ):
            return f"{self.arrival} arrivals need a rate that is a finite number > 0, got {self.rate}"
        if self.num_requests < 0:
            return f"num_requests must be an integer >= 0, got {self.num_requests}"
        if self.duration is not None and not (math.isfinite(self.duration) and self.duration > 0):
            return f"duration must be a finite number of seconds > 0, got {self.duration}"
        return ""


@dataclass(frozen=True)
class Segment:
    """The requests of one stage: request indices [start, stop). A horizon may cut a stage short, so some of them
    may never be produced."""

    start: int
    stop: int


@dataclass(frozen=True)
class WorkloadDescription:
    """A run's requests: what they contain and, for generated sources, the stages they arrive in."""

    source: GaussianLengths | PromptPool | CsvTrace | SpecSource
    stages: tuple[Stage, ...] = ()

    @property
    def num_requests(self) -> int | None:
        """Requests the stages ask for (before any horizon); None for a trace (known once it is read)."""
        if isinstance(self.source, CsvTrace):
            return None
        if isinstance(self.source, SpecSource):
            return self.source.num_requests or None
        return sum(s.num_requests for s in self.stages)

    def describe(self) -> str:
        """One line for the info log."""
        if isinstance(self.source, CsvTrace):
            limit = f", first {self.source.num_requests} rows" if self.source.num_requests is not None else ""
            return f"workload: CSV trace {self.source.path}{limit}"
        if isinstance(self.source, SpecSource):
            spec = self.source.spec
            where = f" {self.source.path}" if self.source.path is not None else ""
            return (f"workload: spec{where}, {len(spec.clients)} client(s), "  # type: ignore[attr-defined]
                    f"limit {self.source.num_requests or 'none'}")
        stages = ", ".join(
            f"{s.num_requests} {s.arrival}" + (f" at {s.rate:g} req/s" if s.rate is not None else "")
            for s in self.stages
        )
        return f"workload: {self.source}; stages: {stages or 'none'}"

    def segments(self) -> tuple[Segment, ...]:
        """The request indices of each stage, in stage order."""
        out = []
        start = 0
        for stage in self.stages:
            out.append(Segment(start, start + stage.num_requests))
            start += stage.num_requests
        return tuple(out)

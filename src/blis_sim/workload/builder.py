"""One builder for every workload description: ``build(description, seed, horizon) -> (requests, segments)``.

* ``GaussianLengths``: every stage is produced by the distribution generator (``distribution.generate``) from the
  streams of ``seed + stage.seed_offset``, numbered after the previous stages' requests and shifted to the stage's
  start. One stage starting at 0 with offset 0 is exactly ``--workload distribution`` (or a preset).
  A stage starts ``floor(num_requests x 1e6 / rate)`` µs after the previous one (sequential stages:
  ``num_requests x SEQUENTIAL_GAP_US``; a burst takes no time).
* ``PromptPool``: ``shared_prefix.pool_requests`` (also a spec made only of an ``inference_perf`` block).
* ``CsvTrace``: ``traces.read_csv_trace``; its single segment covers every row read.

Generated requests come lazily, in stage order; every input problem raises ``InputError`` here, before any request
is produced.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

from ..errors import InputError
from ..request import Request
from .description import (
    BURST,
    SEQUENTIAL,
    SEQUENTIAL_GAP_US,
    CsvTrace,
    GaussianLengths,
    PromptPool,
    Segment,
    SpecSource,
    Stage,
    WorkloadDescription,
)
from .distribution import DistributionParams, generate
from .expansions import inference_perf_pool
from .shared_prefix import pool_requests
from .spec_gen import UNLIMITED, SessionPlan, spec_requests
from .trace_v2 import is_trace_v2, read_trace_v2
from .traces import read_csv_trace


def build(description: WorkloadDescription, seed: int, horizon: int | float
          ) -> tuple[Iterator[Request] | list[Request], tuple[Segment, ...]]:
    """The requests of ``description`` under ``seed`` up to ``horizon``, and the segment of each stage."""
    source = description.source
    if isinstance(source, CsvTrace):
        if description.stages:
            raise InputError("a CSV trace brings its own arrivals: its workload description takes no stages")
        if is_trace_v2(source.path):
            requests = read_trace_v2(source.path, seed, horizon, source.num_requests)
        else:
            requests = read_csv_trace(source.path, horizon, source.num_requests)
        return requests, (Segment(0, len(requests)),)
    if isinstance(source, SpecSource):
        if description.stages:
            raise InputError("a workload spec brings its own arrivals: its workload description takes no stages")
        pooled = inference_perf_pool(source.spec)
        if pooled is not None:  # inference-perf's own generator, the one blis evaluate uses
            pool, stages = pooled
            _check_pool(pool, stages)
            requests = pool_requests(pool, stages, seed, horizon)
            # a Poisson stage may run past the next stage's start: the cluster takes arrivals in (arrival, index)
            # order (requests keep their stage-order ids)
            requests.sort(key=lambda r: (r.arrival, r.index))
            if source.num_requests:
                requests = requests[:source.num_requests]
            return requests, (Segment(0, len(requests)),)
        stream = SpecStream(source, seed, int(min(horizon, UNLIMITED)))
        return stream, (Segment(0, source.num_requests or stream.UNKNOWN),)
    if not description.stages:
        raise InputError("a generated workload needs at least one stage")
    for i, stage in enumerate(description.stages):
        problem = stage.problem()
        if problem:
            raise InputError(f"workload stage {i}: {problem}")
    segments = description.segments()
    if isinstance(source, PromptPool):
        _check_pool(source, description.stages)
        return pool_requests(source, description.stages, seed, horizon), segments
    if isinstance(source, GaussianLengths):
        return _generated(source, description.stages, segments, seed, horizon), segments
    raise InputError(f"unknown workload source {type(source).__name__}")


class SpecStream:
    """The requests of a workload spec, produced lazily in arrival order; ``sessions`` holds the rounds of
    multi-turn sessions that arrive when their previous round completes (None when the spec has no session)."""

    UNKNOWN = 2**62

    def __init__(self, source: SpecSource, seed: int, horizon: int) -> None:
        spec = source.spec
        self.sessions = SessionPlan() if any(c.multi_turn is not None  # type: ignore[attr-defined]
                                             for c in spec.clients) else None  # type: ignore[attr-defined]
        plan = self.sessions if self.sessions is not None else SessionPlan()
        self._it = spec_requests(spec, seed, horizon, source.num_requests, plan)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Request]:
        return iter(self._it)


def _generated(lengths: GaussianLengths, stages: tuple[Stage, ...], segments: tuple[Segment, ...], seed: int,
               horizon: int | float) -> Iterator[Request]:
    prompt, output = lengths.prompt.params(), lengths.output.params()
    parts = []
    start_us = 0
    for stage, segment in zip(stages, segments):
        # sequential and burst arrivals read no rate; 1.0 keeps the generator's parameters well-formed
        rate = stage.rate if stage.arrival not in (SEQUENTIAL, BURST) and stage.rate else 1.0
        params = DistributionParams(rate, stage.num_requests, lengths.prefix_tokens, prompt, output, stage.arrival)
        # each call checks its parameters now; the requests themselves are drawn lazily
        parts.append(generate(params, seed + stage.seed_offset, horizon, first_index=segment.start,
                              start_us=start_us))
        start_us += _stage_length_us(stage)
    return parts[0] if len(parts) == 1 else itertools.chain.from_iterable(parts)


def _stage_length_us(stage: Stage) -> int:
    if stage.arrival == SEQUENTIAL:
        return stage.num_requests * SEQUENTIAL_GAP_US
    if stage.arrival == BURST:
        return 0
    return math.floor(stage.num_requests * 1e6 / stage.rate)  # type: ignore[operator]  # checked: rate > 0


def _check_pool(pool: PromptPool, stages: tuple[Stage, ...]) -> None:
    if pool.num_groups < 1 or pool.prompts_per_group < 1:
        raise InputError(f"a shared-prefix pool needs at least one group and one prompt per group, got "
                         f"{pool.num_groups} group(s) of {pool.prompts_per_group}")
    for name in ("system_prompt_len", "question_len", "output_len"):
        if getattr(pool, name) < 0:
            raise InputError(f"a shared-prefix pool's {name} must be an integer >= 0, got {getattr(pool, name)}")
    if any(stage.seed_offset for stage in stages):
        raise InputError("a shared-prefix pool draws every stage from the run's seed: its stages' seed_offset "
                         "must be 0")

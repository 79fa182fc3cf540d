"""The requests of one simulated run, built in memory from an experiment's length model and its points' loads.

Synthetic lengths use the project's distribution generator (``workload.generate``: the same named streams and call
shapes as ``--workload distribution``), then re-time the arrivals for the patterns it does not produce: sequential
(one request at a time: arrivals far enough apart that requests never overlap) and burst (all at t = 0).

inference-perf's ``shared_prefix`` data is built the way inference-perf builds it: ``num_groups`` random system
prompts, ``prompts_per_group`` random questions each, the pool shuffled once, request k sending prompt ``k mod
pool``, every output exactly ``output_len`` tokens. Stages run back to back; a stage capped by
``--requests-per-point`` ends after its capped count (the next stage starts then).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..request import Request
from ..workload import DistributionParams, LengthParams, generate
from ..workload.distribution import TOKEN_ID_BOUND
from ..workload.rng import Streams
from .experiment import BURST, POISSON, SEQUENTIAL, Load, SharedPrefixPool, SyntheticLengths

SEQUENTIAL_GAP_US = 600_000_000  # 10 minutes between sequential requests: longer than any request takes
UNLIMITED = 2**63 - 1


@dataclass(frozen=True)
class Segment:
    """A run's requests belonging to one point: indices [start, stop) in arrival order."""

    start: int
    stop: int


def synthetic_requests(lengths: SyntheticLengths, load: Load, count: int, seed: int) -> list[Request]:
    """``count`` requests of ``lengths`` arriving as ``load`` says."""
    pattern = load.pattern
    rate = load.rate if load.rate and pattern not in (SEQUENTIAL, BURST) else 1.0
    params = DistributionParams(
        rate=rate,
        num_requests=count,
        prefix_tokens=lengths.prefix_tokens,
        prompt=LengthParams(lengths.prompt.mean, lengths.prompt.stdev, lengths.prompt.min, lengths.prompt.max),
        output=LengthParams(lengths.output.mean, lengths.output.stdev, lengths.output.min, lengths.output.max),
        arrival_process="poisson" if pattern == POISSON else "constant",
    )
    requests = list(generate(params, seed, UNLIMITED))
    if pattern == SEQUENTIAL:
        for i, r in enumerate(requests):
            r.arrival = i * SEQUENTIAL_GAP_US
    elif pattern == BURST:
        for r in requests:
            r.arrival = 0
    return requests


def staged_synthetic_requests(lengths: SyntheticLengths, stages: list[tuple[Load, int]], seed: int
                              ) -> tuple[list[Request], list[Segment]]:
    """Consecutive stages of synthetic-length requests (inference-perf ``random``/``synthetic`` data): each stage is
    drawn with its own seed (``seed + stage``) and starts when the previous one's requests have all been sent."""
    requests: list[Request] = []
    segments: list[Segment] = []
    start_us = 0
    for i, (load, count) in enumerate(stages):
        first = len(requests)
        for r in synthetic_requests(lengths, load, count, seed + i):
            requests.append(Request(len(requests), start_us + r.arrival, r.tokens, r.num_prompt_tokens))
        segments.append(Segment(first, len(requests)))
        start_us += math.floor(count * 1e6 / load.rate) if load.rate else 0
    return requests, segments


def shared_prefix_requests(pool: SharedPrefixPool, stages: list[tuple[Load, int]], seed: int
                           ) -> tuple[list[Request], list[Segment]]:
    """The requests of consecutive stages (each a load and the number of requests to simulate) over one prompt
    pool, and the segment of requests each stage owns."""
    streams = Streams(seed)
    token_rng = streams.get("evaluate/prompt-pool")
    prompts: list[np.ndarray] = []
    for _ in range(pool.num_groups):
        system = token_rng.integers(0, TOKEN_ID_BOUND, size=pool.system_prompt_len, dtype=np.int64)
        for _ in range(pool.prompts_per_group):
            question = token_rng.integers(0, TOKEN_ID_BOUND, size=pool.question_len, dtype=np.int64)
            prompts.append(np.concatenate((system, question)))
    order = streams.get("evaluate/pool-order").permutation(len(prompts))
    out_rng = streams.get("evaluate/output")
    gap_rng = streams.get("evaluate/arrival")
    requests: list[Request] = []
    segments: list[Segment] = []
    stage_start_us = 0.0
    for load, count in stages:
        first = len(requests)
        gap_us = 1e6 / load.rate
        t = stage_start_us
        for i in range(count):
            if load.pattern == POISSON:
                t = t + gap_rng.exponential(gap_us) if i else t
                arrival_us = t
            else:
                arrival_us = stage_start_us + i * gap_us
            k = len(requests)
            prompt = prompts[order[k % len(prompts)]]
            tokens = np.concatenate((prompt, out_rng.integers(0, TOKEN_ID_BOUND, size=pool.output_len, dtype=np.int64)))
            requests.append(Request(k, math.floor(arrival_us), tokens, len(prompt)))
        segments.append(Segment(first, len(requests)))
        stage_start_us += count * gap_us
    return requests, segments

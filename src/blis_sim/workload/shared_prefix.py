"""inference-perf's ``shared_prefix`` data, built the way inference-perf builds it (a ``PromptPool`` source).

``num_groups`` random system prompts with ``prompts_per_group`` random questions each, the pool shuffled once,
request k sending prompt ``k mod pool size`` followed by exactly ``output_len`` random output tokens. Four named
streams (ENGINE.md §3.1) of the run's seed feed it, shared by all stages; their names date from when ``blis evaluate``
built these requests itself and are kept so that the generated requests stay the same:

* ``evaluate/prompt-pool``  per group its system prompt, then its questions (one ``integers`` call each);
* ``evaluate/pool-order``   one ``permutation`` of the pool;
* ``evaluate/output``       per request its output tokens;
* ``evaluate/arrival``      poisson stages: one exponential gap per request after a stage's first.
"""

from __future__ import annotations

import math

import numpy as np

from ..request import Request
from .description import BURST, POISSON, SEQUENTIAL, SEQUENTIAL_GAP_US, PromptPool, Stage
from .distribution import TOKEN_ID_BOUND
from .rng import Streams

STREAM_POOL = "evaluate/prompt-pool"
STREAM_ORDER = "evaluate/pool-order"
STREAM_OUTPUT = "evaluate/output"
STREAM_ARRIVAL = "evaluate/arrival"


def pool_requests(pool: PromptPool, stages: tuple[Stage, ...], seed: int, horizon: int | float) -> list[Request]:
    """The requests of consecutive ``stages`` over one prompt pool, numbered in stage order. Times are float64
    microseconds, floored per request: a stage starts ``num_requests x (1e6 / rate)`` after the previous one.
    Requests arriving after ``horizon`` are left out (their draws are still made, so the others do not change)."""
    streams = Streams(seed)
    token_rng = streams.get(STREAM_POOL)
    prompts: list[np.ndarray] = []
    for _ in range(pool.num_groups):
        system = token_rng.integers(0, TOKEN_ID_BOUND, size=pool.system_prompt_len, dtype=np.int64)
        for _ in range(pool.prompts_per_group):
            question = token_rng.integers(0, TOKEN_ID_BOUND, size=pool.question_len, dtype=np.int64)
            prompts.append(np.concatenate((system, question)))
    order = streams.get(STREAM_ORDER).permutation(len(prompts))
    out_rng = streams.get(STREAM_OUTPUT)
    gap_rng = streams.get(STREAM_ARRIVAL)
    requests: list[Request] = []
    k = 0
    stage_start_us = 0.0
    for stage in stages:
        if stage.arrival == SEQUENTIAL:
            gap_us = float(SEQUENTIAL_GAP_US)
        elif stage.arrival == BURST:
            gap_us = 0.0
        else:
            gap_us = 1e6 / stage.rate  # type: ignore[operator]  # constant and poisson stages have a rate
        t = stage_start_us
        for i in range(stage.num_requests):
            if stage.arrival == POISSON:
                t = t + gap_rng.exponential(gap_us) if i else t
                arrival_us = t
            else:
                arrival_us = stage_start_us + i * gap_us
            prompt = prompts[order[k % len(prompts)]]
            tokens = np.concatenate((prompt, out_rng.integers(0, TOKEN_ID_BOUND, size=pool.output_len, dtype=np.int64)))
            arrival = math.floor(arrival_us)
            if arrival <= horizon:
                requests.append(Request(k, arrival, tokens, len(prompt)))
            k += 1
        stage_start_us += stage.num_requests * gap_us
    return requests

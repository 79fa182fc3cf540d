"""inference-perf's ``shared_prefix`` data, built the way inference-perf builds it (a ``PromptPool`` source): the one
code behind ``blis evaluate``'s inference-perf workloads and the workload spec's ``inference_perf`` expansion
(``expansions.inference_perf_pool``).

``num_groups`` random system prompts with ``prompts_per_group`` random questions each, the pool shuffled once,
request k sending prompt ``k mod pool size`` followed by exactly ``output_len`` random output tokens. Four named
streams (ENGINE.md §3.1) of the run's seed feed it, shared by all stages; their names date from when ``blis evaluate``
built these requests itself and are kept so that the generated requests stay the same:

* ``evaluate/prompt-pool``  per group its system prompt, then its questions (one ``integers`` call each);
* ``evaluate/pool-order``   one ``permutation`` of the pool;
* ``evaluate/output``       per request its output tokens;
* ``evaluate/arrival``      arrival times (see below).

Stage timing. A stage with a ``duration`` is an inference-perf stage and is timed the way inference-perf's load
generator times it (``inference_perf/loadgen/load_timer.py`` and ``load_generator.py``, ``run_stage``, in
https://github.com/kubernetes-sigs/inference-perf; unchanged from Aug 2025 to Aug 2026):

* ``constant``: ``int(rate x duration)`` exponential gaps of mean 1 / rate are drawn and rescaled to sum to
  ``duration``; request i is sent at the stage's start plus the sum of the first i + 1 gaps (so the last at exactly
  ``duration``): randomly spaced, not evenly;
* ``poisson``: one-second windows back to back; each draws a Poisson(rate) count (none: the window stays empty) and
  spreads that many requests over the window like a ``constant`` timer of that rate and one second;
* every one of the stage's requests is sent, even past ``duration``; the next stage starts only once they have all
  been sent (inference-perf also waits for them to complete, which is not modelled here), ``STAGE_GAP_US`` later
  (inference-perf's default ``load.interval`` of 1 s between stages plus the 1 s it leaves before a stage's first
  send). When fewer requests are simulated than the stage sent (``blis evaluate``'s cap), a ``constant`` stage is
  shortened in proportion (n requests over ``duration x n / int(rate x duration)``), so that the simulated requests
  arrive at exactly the stage's rate on average, as the whole measured stage did.

A stage without a duration keeps the simple timing: ``constant`` evenly spaced at 1 / rate, ``poisson`` one
exponential gap per request after the stage's first, and the next stage starting ``num_requests / rate`` after it,
or at its last arrival if that is later. Either way the arrivals come out in time order.

Prompt j of the pool (group-major: group p = j // prompts_per_group, question u = j mod prompts_per_group) is the
expansion's client ``prompt-<p>-user-<u>``: each request carries tenant ``prompt-<p>``, SLO class ``batch`` and, in
``Request.meta``, its client id and prefix group (``prompt-<p>``, when the system prompt is not empty).
"""

from __future__ import annotations

import math

import numpy as np

from ..request import Request
from .description import BURST, CONSTANT, POISSON, SEQUENTIAL, SEQUENTIAL_GAP_US, PromptPool, Stage
from .distribution import TOKEN_ID_BOUND
from .rng import Streams

STREAM_POOL = "evaluate/prompt-pool"
STREAM_ORDER = "evaluate/pool-order"
STREAM_OUTPUT = "evaluate/output"
STREAM_ARRIVAL = "evaluate/arrival"

# between an inference-perf stage's last send and the next stage's first possible send: load.interval (default
# 1 s) then the 1 s run_stage leaves before its first scheduled send
STAGE_GAP_US = 2_000_000.0


def pool_requests(pool: PromptPool, stages: tuple[Stage, ...], seed: int, horizon: int | float) -> list[Request]:
    """The requests of consecutive ``stages`` over one prompt pool, numbered in stage order and in time order (see
    the module's "Stage timing"). Times are float64 microseconds, floored per request. Requests arriving after
    ``horizon`` are left out (their draws are still made, so the others do not change)."""
    streams = Streams(seed)
    token_rng = streams.get(STREAM_POOL)
    prompts: list[np.ndarray] = []
    for _ in range(pool.num_groups):
        system = token_rng.integers(0, TOKEN_ID_BOUND, size=pool.system_prompt_len, dtype=np.int64)
        for _ in range(pool.prompts_per_group):
            question = token_rng.integers(0, TOKEN_ID_BOUND, size=pool.question_len, dtype=np.int64)
            prompts.append(np.concatenate((system, question)))
    order = streams.get(STREAM_ORDER).permutation(len(prompts))
    labels = [_label(pool, j) for j in range(len(prompts))]
    out_rng = streams.get(STREAM_OUTPUT)
    gap_rng = streams.get(STREAM_ARRIVAL)
    requests: list[Request] = []
    k = 0
    stage_start_us = 0.0
    for stage in stages:
        times, next_start_us = stage_times(stage, stage_start_us, gap_rng)
        for arrival_us in times:
            j = int(order[k % len(prompts)])
            prompt = prompts[j]
            tokens = np.concatenate((prompt, out_rng.integers(0, TOKEN_ID_BOUND, size=pool.output_len, dtype=np.int64)))
            arrival = math.floor(arrival_us)
            if arrival <= horizon:
                tenant, meta = labels[j]
                req = Request(k, arrival, tokens, len(prompt), None, "batch", tenant)
                req.meta = meta
                requests.append(req)
            k += 1
        stage_start_us = next_start_us
    return requests


def stage_times(stage: Stage, start_us: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """The send times (float µs, ascending, ``stage.num_requests`` of them) of a stage starting at ``start_us``, and
    when the next stage starts; arrival draws come from ``rng``."""
    n = stage.num_requests
    if stage.duration is not None and stage.arrival in (CONSTANT, POISSON):
        rate = float(stage.rate)  # type: ignore[arg-type]  # checked: constant and poisson stages have a rate
        if stage.arrival == CONSTANT:
            total = int(rate * stage.duration)
            length_s = stage.duration * n / total if total else n / rate  # a capped stage: n sends at the rate
            offsets_s = _spread(rng, n, length_s, 1.0 / rate)
        else:
            offsets_s = _poisson_windows(rng, rate, n)
        times = start_us + offsets_s * 1e6
        last_us = float(times[-1]) if n else start_us
        return times, last_us + STAGE_GAP_US
    if stage.arrival == SEQUENTIAL:
        gap_us = float(SEQUENTIAL_GAP_US)
    elif stage.arrival == BURST:
        gap_us = 0.0
    else:
        gap_us = 1e6 / stage.rate  # type: ignore[operator]  # constant and poisson stages have a rate
    if stage.arrival == POISSON:
        times = np.empty(n)
        t = start_us
        for i in range(n):  # one draw per gap, in request order (the stream's historical use)
            t = t + rng.exponential(gap_us) if i else t
            times[i] = t
    else:
        times = start_us + np.arange(n) * gap_us
    next_start = start_us + n * gap_us
    if n and times[-1] > next_start:
        next_start = float(times[-1])  # a poisson stage that ran over: the next one waits for its sends
    return times, next_start


def _spread(rng: np.random.Generator, count: int, length_s: float, mean_gap_s: float) -> np.ndarray:
    """inference-perf's ``ConstantLoadTimer``: ``count`` exponential gaps rescaled to sum to ``length_s``; the
    cumulative sums (offsets in seconds from the timer's start)."""
    if count <= 0:
        return np.empty(0)
    gaps = rng.exponential(mean_gap_s, count)
    return np.cumsum(gaps * (length_s / gaps.sum()))


def _poisson_windows(rng: np.random.Generator, rate: float, count: int) -> np.ndarray:
    """inference-perf's ``PoissonLoadTimer``: the first ``count`` offsets (seconds) of one-second windows, each with
    a Poisson(rate) number of requests spread over it by ``_spread``."""
    parts: list[np.ndarray] = []
    have = 0
    window = 0.0
    while have < count:
        k = int(rng.poisson(rate))
        if k >= 1:
            parts.append(window + _spread(rng, k, 1.0, 1.0 / k))
            have += k
        window += 1.0
    return np.concatenate(parts)[:count] if parts else np.empty(0)


def _label(pool: PromptPool, j: int) -> tuple[str, dict]:
    p, u = divmod(j, pool.prompts_per_group)
    meta = {"client_id": f"prompt-{p}-user-{u}"}
    if pool.system_prompt_len > 0:
        meta["prefix_group"] = f"prompt-{p}"
    return f"prompt-{p}", meta

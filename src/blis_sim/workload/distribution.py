"""The distribution generator behind ``--workload distribution`` and the presets (ENGINE.md §10.2).

Requests are produced lazily, one at a time in arrival order, so a million-request workload never sits in memory
at once. Three named streams (§3.1) feed it; the call shape of every draw is part of the output contract (§3.2) and
is written next to the draw:

* ``workload/token``   the shared prefix first, then per request its prompt tokens, then its output tokens;
* ``workload/length``  per request its prompt length, then its output length;
* ``workload/arrival`` Poisson only: one exponential gap per request after the first.

Besides the ``--arrival-process`` choices (constant, poisson) the generator produces the two arrival patterns that
measured benchmarks use (``blis evaluate``): ``sequential`` (one request at a time, ``SEQUENTIAL_GAP_US`` apart) and
``burst`` (every request at once). Like constant arrivals they draw no random number, so the lengths and tokens of
a workload do not depend on its arrival pattern.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from ..errors import InputError
from ..request import Request
from .rng import Streams

if TYPE_CHECKING:
    from ..config.models import WorkloadConfig

log = logging.getLogger("blis_sim")

TOKEN_ID_BOUND: Final = 128_000  # synthetic token IDs are uniform in [0, TOKEN_ID_BOUND)
MAX_TOKEN_LENGTH: Final = 1_048_576  # every sampled length is clamped to this (ENGINE.md §2)
ARRIVAL_PROCESSES = ("constant", "poisson")  # the --arrival-process choices: arrivals at a rate
SEQUENTIAL = "sequential"
BURST = "burst"
ARRIVAL_PATTERNS = ARRIVAL_PROCESSES + (SEQUENTIAL, BURST)  # everything the generator produces
# Between consecutive sequential requests: 10 minutes, longer than any request takes, so they never overlap.
SEQUENTIAL_GAP_US: Final = 600_000_000

STREAM_ARRIVAL = "workload/arrival"
STREAM_LENGTH = "workload/length"
STREAM_TOKEN = "workload/token"

_PRESET_KEYS = (
    "prompt_tokens",
    "prompt_tokens_stdev",
    "prompt_tokens_min",
    "prompt_tokens_max",
    "output_tokens",
    "output_tokens_stdev",
    "output_tokens_min",
    "output_tokens_max",
)


@dataclass(frozen=True, slots=True)
class LengthParams:
    """A clamped normal length distribution: mean, standard deviation and the inclusive range [min, max]."""

    mean: float  # a fraction is allowed (ground-truth workloads), so the compiled class takes floats
    stdev: float
    min: int
    max: int


@dataclass(frozen=True, slots=True)
class DistributionParams:
    """Everything the distribution generator needs (one preset or the token-length flags)."""

    rate: float  # requests per second (constant and poisson arrivals; unused by sequential and burst)
    num_requests: int
    prefix_tokens: int  # length of the prefix shared by every request
    prompt: LengthParams  # prompt length, not counting the prefix
    output: LengthParams
    arrival_process: str = "constant"  # one of ARRIVAL_PATTERNS


def round_half_up(x: float) -> int:
    """``floor(x + 0.5)``: halves go up (away from zero for x >= 0), unlike Python's ``round``."""
    return math.floor(x + 0.5)


def gauss_len(rng: np.random.Generator, p: LengthParams) -> int:
    """One length from the clamped normal ``p``; no draw at all when min == max."""
    lo, hi = p.min, p.max
    if lo == hi:
        return int(lo)
    z = rng.standard_normal()  # call shape: one scalar standard_normal() per length
    x: float = p.mean + p.stdev * z
    if x < lo:
        x = float(lo)
    elif x > hi:
        x = float(hi)
    return math.floor(x + 0.5)  # round_half_up, inlined: this runs twice per request


def generate(
    params: DistributionParams,
    seed: int,
    horizon: int | float,
    *,
    streams: Streams | None = None,
    first_index: int = 0,
    start_us: int = 0,
) -> Iterator[Request]:
    """Requests ``request_0, request_1, ...`` in arrival order, lazily; stops at the count or past ``horizon``.

    ``streams`` lets a run share its stream cache; by default fresh streams are derived from ``seed``.
    ``first_index`` and ``start_us`` place the requests later in a longer workload (one stage of several): the
    requests are numbered from ``first_index`` and every arrival is ``start_us`` later (the horizon applies to
    the shifted arrivals). They change no draw.
    """
    _check(params)
    return _generate(params, horizon, streams if streams is not None else Streams(seed), first_index, start_us)


def _check(params: DistributionParams) -> None:
    if params.arrival_process not in ARRIVAL_PATTERNS:
        raise InputError(f"--arrival-process must be one of constant, poisson; got {params.arrival_process!r}")
    if params.arrival_process in ARRIVAL_PROCESSES and not (math.isfinite(params.rate) and params.rate > 0):
        raise InputError(f"--rate must be a finite number > 0, got {params.rate}")
    if params.num_requests < 0:
        raise InputError(f"--num-requests must be an integer >= 0, got {params.num_requests}")
    if params.prefix_tokens < 0:
        raise InputError(f"--prefix-tokens must be an integer >= 0, got {params.prefix_tokens}")
    for kind, lp in (("prompt", params.prompt), ("output", params.output)):
        if not 0 <= lp.min <= lp.max:
            raise InputError(
                f"--{kind}-tokens-min and --{kind}-tokens-max must satisfy 0 <= min <= max, got {lp.min} and {lp.max}"
            )
        if lp.stdev < 0:
            raise InputError(f"--{kind}-tokens-stdev must be an integer >= 0, got {lp.stdev}")


# Requests are produced in chunks: the arrivals of up to _CHUNK_REQUESTS requests, then their lengths, then their
# token IDs in blocks of about _CHUNK_TOKENS, then the requests one by one. Chunks keep memory small and make taking
# the first few requests of a huge workload quick, while numpy's per-call overhead is paid once per chunk.
_CHUNK_REQUESTS: Final = 512
_CHUNK_TOKENS: Final = 1 << 20
_INF: Final = math.inf


def _probe_batched_draws_are_exact() -> bool:
    """Whether one vectorised numpy call equals the consecutive calls that the contract (§3.2) names.

    * ``integers(0, 128000, size=a+b+...)`` versus calls of sizes a, b, ...: numpy draws bounded integers with a range
      below 2**32 one 32-bit word at a time, and PCG64 keeps the unused half of a 64-bit output in its own state
      between calls, so the two agree value for value.
    * ``standard_normal(size=k)`` versus k scalar ``standard_normal()`` calls: both run the same ziggurat sampler.

    The probe checks both (values and final generator state) on this numpy, odd sizes and an empty draw included.
    If it ever fails, the generator makes the literal per-request calls instead, so the output never changes.
    """
    sizes = (1, 3, 0, 256, 7, 2, 1)
    split = np.random.Generator(np.random.PCG64(20240611))
    whole = np.random.Generator(np.random.PCG64(20240611))
    ok = np.array_equal(
        np.concatenate([split.integers(0, TOKEN_ID_BOUND, size=n, dtype=np.int64) for n in sizes]),
        whole.integers(0, TOKEN_ID_BOUND, size=sum(sizes), dtype=np.int64),
    )
    ok = ok and np.array_equal(
        np.array([split.standard_normal() for _ in range(1000)]), whole.standard_normal(size=1000)
    )
    return bool(ok) and split.bit_generator.state == whole.bit_generator.state


BATCHED_DRAWS_ARE_EXACT = _probe_batched_draws_are_exact()


def _draw_tokens(rng: np.random.Generator, sizes: list[int], total: int) -> np.ndarray:
    """Token IDs of consecutive draws of ``sizes`` (prompt, output, prompt, output, ...), concatenated.

    Call shape (the contract, §3.2): per request, one vectorised ``integers(0, 128000, size=num_prompt)`` call for
    its prompt, then one ``integers(0, 128000, size=num_output)`` call for its output. When the probe allows, one call
    of the summed size stands in for them: the same IDs without numpy's per-call overhead.
    """
    if BATCHED_DRAWS_ARE_EXACT:
        return rng.integers(0, TOKEN_ID_BOUND, size=total, dtype=np.int64)
    return np.concatenate([rng.integers(0, TOKEN_ID_BOUND, size=n, dtype=np.int64) for n in sizes])


def _draw_lengths(rng: np.random.Generator, n: int, prompt: LengthParams, output: LengthParams) -> np.ndarray:
    """Prompt and output lengths of ``n`` consecutive requests, as an (n, 2) int64 array.

    Call shape (the contract, §3.2): per request, one scalar ``standard_normal()`` for the prompt length, then one
    for the output length, each skipped when that distribution has min == max (``gauss_len``). A vectorised
    ``standard_normal(size=...)`` call stands in for them when the probe allows; the arithmetic below is the same
    float64 arithmetic as ``gauss_len``, element by element.
    """
    varying = [k for k, p in enumerate((prompt, output)) if p.min != p.max]
    out = np.empty((n, 2), dtype=np.int64)
    if varying:
        num_draws = n * len(varying)
        if BATCHED_DRAWS_ARE_EXACT:
            z = rng.standard_normal(size=num_draws)
        else:
            z = np.array([rng.standard_normal() for _ in range(num_draws)], dtype=np.float64)
        z = z.reshape(n, len(varying))
    # Values above MAX_TOKEN_LENGTH are capped at MAX_TOKEN_LENGTH + 1 here (so that any user maximum fits int64);
    # the caller clamps them to MAX_TOKEN_LENGTH and warns.
    for k, p in enumerate((prompt, output)):
        if p.min == p.max:
            out[:, k] = min(p.min, MAX_TOKEN_LENGTH + 1)
        else:
            x = p.mean + p.stdev * z[:, varying.index(k)]
            np.clip(x, p.min, p.max, out=x)
            x += 0.5
            np.floor(x, out=x)  # round_half_up = floor(x + 0.5)
            np.minimum(x, MAX_TOKEN_LENGTH + 1, out=x)
            out[:, k] = x
    return out


class _TokenChunk:
    """The token ids of one chunk of requests, drawn from the token stream on first read (``_LazyTokens``)."""

    __slots__ = ("stream", "sizes", "total", "block")

    def __init__(self, stream: _LazyTokens, sizes: list[int], total: int) -> None:
        self.stream = stream
        self.sizes = sizes
        self.total = total
        self.block: np.ndarray | None = None

    def ids(self, start: int, stop: int) -> np.ndarray:
        if self.block is None:
            self.stream.draw_through(self)
        return self.block[start:stop]  # type: ignore[index]


class _LazyTokens:
    """Chunks of independently drawn requests, drawn from the token stream in order and only when a request reads
    its ids (the KV cache keys only requests that can share blocks or were preempted): every id is the one an
    eager draw gives, and a run that never reads them never draws them."""

    __slots__ = ("rng", "pending")

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.pending: deque[_TokenChunk] = deque()  # not drawn yet, in stream order

    def add(self, sizes: list[int], total: int) -> _TokenChunk:
        # a batched draw needs only the total: a chunk never drawn then costs a few bytes
        chunk = _TokenChunk(self, [] if BATCHED_DRAWS_ARE_EXACT else sizes, total)
        self.pending.append(chunk)
        return chunk

    def draw_through(self, chunk: _TokenChunk) -> None:
        """Draw every pending chunk up to ``chunk`` (the stream's order), keeping each one's ids on it."""
        while chunk.block is None:
            head = self.pending.popleft()
            head.block = _draw_tokens(self.rng, head.sizes, head.total)


def _generate(params: DistributionParams, horizon: int | float, streams: Streams, first_index: int,
              start_us: int) -> Iterator[Request]:
    rate = float(params.rate)
    count = int(params.num_requests)
    gap_mean_us = 1e6 / rate
    num_prefix = int(params.prefix_tokens)
    # sequential and burst arrivals are exact integer ticks: i * fixed_gap_us (no float arithmetic, no draw)
    process = params.arrival_process
    fixed_gap_us = SEQUENTIAL_GAP_US if process == SEQUENTIAL else 0 if process == BURST else -1

    length_rng = streams.get(STREAM_LENGTH)
    token_rng = streams.get(STREAM_TOKEN)
    arrival_rng = streams.get(STREAM_ARRIVAL) if process == "poisson" else None
    floor = math.floor

    # call shape: one vectorised integers(0, 128000, size=prefix_tokens) call, before any request
    prefix = token_rng.integers(0, TOKEN_ID_BOUND, size=num_prefix, dtype=np.int64)
    lazy = _LazyTokens(token_rng)
    clamp_warned = False
    elapsed_us = 0.0  # S_i of the Poisson process, accumulated in float64
    i = 0
    while i < count:
        # 1. arrivals of the next chunk, stopping at the first one past the horizon
        first = i
        arrivals: list[int] = []
        past_horizon = False
        while i < count and i - first < _CHUNK_REQUESTS:
            if fixed_gap_us >= 0:  # sequential or burst
                arrival = start_us + i * fixed_gap_us
            else:
                if arrival_rng is not None:  # poisson; call shape: one scalar exponential(1e6/rate) per gap
                    if i:
                        elapsed_us += arrival_rng.exponential(gap_mean_us)
                    arrival_us = elapsed_us
                else:
                    arrival_us = i * 1e6 / rate  # float64: (i * 1e6) / rate
                if arrival_us == _INF:  # a rate so small that the float overflowed: never within any horizon
                    past_horizon = True
                    break
                arrival = start_us + floor(arrival_us)
            if arrival > horizon:
                past_horizon = True
                break
            arrivals.append(arrival)
            i += 1
        n = len(arrivals)
        if not n:
            return

        # 2. their lengths: per request the prompt length, then the output length (workload/length)
        # call shape: per request one scalar standard_normal() for the prompt length, then one for the output
        # length, each only when that distribution has min < max (batched exactly, see _draw_lengths)
        lengths = _draw_lengths(length_rng, n, params.prompt, params.output)
        if lengths.max() > MAX_TOKEN_LENGTH:
            if not clamp_warned:
                clamp_warned = True
                log.warning(
                    "a sampled token length exceeded %d and was clamped to it (such requests are dropped as "
                    "unservable)",
                    MAX_TOKEN_LENGTH,
                )
            np.minimum(lengths, MAX_TOKEN_LENGTH, out=lengths)
        sizes: list[int] = lengths.ravel().tolist()  # num_prompt, num_output, num_prompt, ...
        totals: list[int] = lengths.sum(axis=1).tolist()

        # 3. their tokens (workload/token), drawn in blocks of about _CHUNK_TOKENS, then the requests themselves
        k = 0
        while k < n:
            end_k = k + 1
            block_total = totals[k]
            while end_k < n and block_total + totals[end_k] <= _CHUNK_TOKENS:
                block_total += totals[end_k]
                end_k += 1
            # call shape: per request integers(0, 128000, size=num_prompt), then integers(0, 128000,
            # size=num_output) (batched exactly, see _draw_tokens)
            start = 0
            if num_prefix:  # tokens = prefix + prompt draw + output draw
                block = _draw_tokens(token_rng, sizes[2 * k : 2 * end_k], block_total)
                for j in range(k, end_k):
                    stop = start + totals[j]
                    yield Request(first_index + first + j, arrivals[j], np.concatenate((prefix, block[start:stop])),
                                  num_prefix + sizes[2 * j])
                    start = stop
            else:  # independent draws: the block is drawn when one of them first reads its tokens
                chunk = lazy.add(sizes[2 * k : 2 * end_k], block_total)
                for j in range(k, end_k):
                    yield Request(first_index + first + j, arrivals[j], None, sizes[2 * j], independent_tokens=True,
                                  token_source=chunk, token_start=start, num_tokens=totals[j])
                    start += totals[j]
            k = end_k
        if past_horizon:
            return


def _preset_int(name: str, preset: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = preset.get(key, default)
    if value is None:
        raise InputError(f"defaults file: workloads.{name}.{key} is missing (an integer is required)")
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"defaults file: workloads.{name}.{key} must be an integer, got {value!r}")
    return value


def preset_params(
    name: str,
    preset: Mapping[str, Any],
    rate: float,
    num_requests: int,
    arrival_process: str,
) -> DistributionParams:
    """Parameters of preset ``name`` (a ``workloads`` entry of the defaults file, §9.4) at the given rate and count.

    Preset figures are trusted beyond their types; a missing ``prefix_tokens`` means 0.
    """
    v = {key: _preset_int(name, preset, key) for key in _PRESET_KEYS}
    return DistributionParams(
        rate=rate,
        num_requests=num_requests,
        prefix_tokens=_preset_int(name, preset, "prefix_tokens", 0),
        prompt=_length_params(v, "prompt"),
        output=_length_params(v, "output"),
        arrival_process=arrival_process,
    )


def _length_params(values: Mapping[str, int], kind: str) -> LengthParams:
    return LengthParams(
        values[f"{kind}_tokens"],
        values[f"{kind}_tokens_stdev"],
        values[f"{kind}_tokens_min"],
        values[f"{kind}_tokens_max"],
    )


def params_from_config(cfg: WorkloadConfig) -> DistributionParams:
    """Parameters of ``--workload distribution`` from the (already validated) token-length flags."""
    values = {key: getattr(cfg, key) for key in _PRESET_KEYS}
    return DistributionParams(
        rate=cfg.rate,
        num_requests=cfg.num_requests,
        prefix_tokens=cfg.prefix_tokens,
        prompt=_length_params(values, "prompt"),
        output=_length_params(values, "output"),
        arrival_process=cfg.arrival_process,
    )

"""Annotated field types whose error messages say what is accepted ("must be a finite number > 0").

The CLI turns a pydantic error on field ``engine.total_kv_blocks`` into
``--total-kv-blocks must be an integer >= 1, got 0``: field names are the flag names with underscores.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Callable

from pydantic import AfterValidator, BeforeValidator


def _check(ok: Callable[[Any], bool], accepted: str) -> AfterValidator:
    def validate(value: Any) -> Any:
        if not ok(value):
            raise ValueError(f"must be {accepted}")
        return value

    return AfterValidator(validate)


def _finite(v: float) -> bool:
    return math.isfinite(v)


def _strict_int(value: Any) -> Any:
    # Reject floats like 2.5 and booleans with our own wording instead of pydantic's.
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("must be an integer")
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise ValueError("must be an integer") from None
    return value


def one_of(*choices: str) -> AfterValidator:
    def validate(value: str) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(sorted(choices))}")
        return value

    return AfterValidator(validate)


# Bounds on simulated time, so that tick arithmetic (int64 in the compiled engine) can never overflow: arrivals
# within about 31.7 years, control-plane latencies within about 11.6 days each.
MAX_ARRIVAL_SECONDS = 1e9
MAX_LATENCY_US = 10**12

# Physical bounds of the numbers a user gives that are not hardware keys (those: latency/hardware.PHYSICAL) or model
# dimensions (latency/hf_config.BOUNDS); every reader of such a number checks it against these.
#
# A blackbox coefficient (alpha, beta: a time in microseconds per request, per step, per token or per decode request),
# from --alpha-coeffs, --beta-coeffs or a defaults-file row: at most 10 s. The fitted rows stay below 0.1 s (the
# largest, an alpha0, is about 66 ms); 10 s per token or per step is no serving GPU, and the bound keeps a step of a
# million tokens within int64 ticks.
MAX_COEFF_US = 1e7
# A measured kernel latency in an MFU table (one GEMM or one layer's attention): at most 10 s. The published tables
# stay below 0.1 s; a kernel taking longer is not a measurement of a serving step, and a step built from such rows
# could overflow tick arithmetic.
MAX_KERNEL_LATENCY_US = 1e7
# The longest token sequence a request may have (ENGINE.md §2: every generated length is clamped to it); a shared
# prefix (--prefix-tokens, a preset's prefix_tokens) is bounded by it too, checked before any token is drawn.
MAX_TOKEN_LENGTH = 1_048_576

Int = Annotated[int, BeforeValidator(_strict_int)]
IntGE0 = Annotated[int, BeforeValidator(_strict_int), _check(lambda v: v >= 0, "an integer >= 0")]
IntGE1 = Annotated[int, BeforeValidator(_strict_int), _check(lambda v: v >= 1, "an integer >= 1")]
LatencyUS = Annotated[
    int, BeforeValidator(_strict_int),
    _check(lambda v: 0 <= v <= MAX_LATENCY_US, f"an integer from 0 to {MAX_LATENCY_US:,} (microseconds)"),
]
# An integer >= 1 whose unset default is 0 ("fill in later"); an explicit 0 is refused by the model that holds it.
IntGE1OrUnset = Annotated[int, BeforeValidator(_strict_int), _check(lambda v: v >= 0, "an integer >= 1")]
FiniteGT0 = Annotated[float, _check(lambda v: _finite(v) and v > 0, "a finite number > 0")]
FiniteGE0 = Annotated[float, _check(lambda v: _finite(v) and v >= 0, "a finite number >= 0")]
Fraction01 = Annotated[float, _check(lambda v: _finite(v) and 0 <= v <= 1, "a finite number in [0, 1]")]
Coeffs3 = Annotated[
    tuple[float, ...],
    _check(lambda v: len(v) == 3 and all(_finite(x) and x >= 0 for x in v), "exactly 3 finite numbers >= 0"),
    _check(lambda v: all(x <= MAX_COEFF_US for x in v),
           f"exactly 3 numbers from 0 to {MAX_COEFF_US:,.0f} (microseconds; no GPU step costs more)"),
]
# A shared prefix length (--prefix-tokens): the whole prefix is drawn before the first request.
PrefixTokens = Annotated[
    int, BeforeValidator(_strict_int),
    _check(lambda v: 0 <= v <= MAX_TOKEN_LENGTH, f"an integer from 0 to {MAX_TOKEN_LENGTH:,} (the longest request)"),
]
NonEmptyStr = Annotated[str, _check(lambda v: bool(v.strip()), "a non-empty string")]


def format_value(value: Any) -> str:
    """How a rejected value is echoed back: -3 rather than -3.0, strings quoted."""
    if isinstance(value, float):  # 1e+308 rather than its 309 digits
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value)
    return str(value)


def parse_scorers(text: str, known: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """``name:weight,...`` (weighted routing's scorers) as (name, weight) pairs in the given order; "" gives ().
    Each name from ``known`` at most once, each weight a finite number > 0; anything else raises ValueError saying
    what is accepted."""
    accepted = f"name:weight,... with names from {', '.join(sorted(known))}, each at most once, weights finite > 0"
    out: list[tuple[str, float]] = []
    if not text.strip():
        return ()
    for item in text.split(","):
        name, sep, weight = item.strip().partition(":")
        name = name.strip()
        if not sep:
            raise ValueError(f"must be {accepted}; {item.strip()!r} has no weight")
        if name not in known:
            raise ValueError(f"must be {accepted}; unknown scorer {name!r}")
        if any(name == seen for seen, _ in out):
            raise ValueError(f"must be {accepted}; {name} appears twice")
        try:
            w = float(weight)
        except ValueError:
            raise ValueError(f"must be {accepted}; weight {weight.strip()!r} of {name} is not a number") from None
        if not (math.isfinite(w) and w > 0):
            raise ValueError(f"must be {accepted}; weight of {name} is {weight.strip()}")
        out.append((name, w))
    return tuple(out)


def check_prefix_fits(prefix: int, prompt_min: int, output_min: int, max_model_len: int, block_size: int,
                      kv_blocks: int) -> None:
    """Refuse a distribution workload whose shared prefix leaves no request servable: every request holds the
    prefix, at least ``prompt_min`` own prompt tokens and ``output_min`` output tokens, and would be dropped for
    exceeding --max-model-len or the KV cache of an instance (ENGINE.md §7.1). Raises InputError with the numbers,
    before any token is drawn."""
    from ..errors import InputError

    if prefix <= 0:
        return
    least = prefix + max(prompt_min, 0) + max(output_min, 0)
    parts = f"--prefix-tokens {prefix} + --prompt-tokens-min {prompt_min} + --output-tokens-min {output_min}"
    if least > max_model_len:
        room = max(max_model_len - max(prompt_min, 0) - max(output_min, 0), 0)
        raise InputError(
            f"--prefix-tokens {prefix}: every request would hold at least {least:,} tokens ({parts}), more than "
            f"--max-model-len {max_model_len:,}, so every request would be dropped; accepted: a prefix of at most "
            f"{room:,} tokens, or a larger --max-model-len"
        )
    # the KV blocks a request needs before its last output token (as the engine's admission check counts them)
    blocks = -(-(least - 1) // block_size) if least > 1 else 1
    if blocks > kv_blocks:
        room = max(kv_blocks * block_size + 1 - max(prompt_min, 0) - max(output_min, 0), 0)
        raise InputError(
            f"--prefix-tokens {prefix}: every request would need at least {blocks:,} KV blocks of {block_size} tokens "
            f"({parts} = {least:,} tokens), more than the {kv_blocks:,} KV blocks of an instance, so every request "
            f"would be dropped; accepted: a prefix of at most {room:,} tokens, or more --total-kv-blocks"
        )

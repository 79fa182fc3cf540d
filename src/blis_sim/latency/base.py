"""The interface every latency model offers the engine (ENGINE.md §9.1).

Deterministic functions returning integer ticks >= 0. A model has no state that changes during a run. Each model's
``name`` ("blackbox", "roofline-v1", ...) is a class attribute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

from mypy_extensions import mypyc_attr

from ..step import StepRecord


@mypyc_attr(allow_interpreted_subclasses=True)  # roofline v2 and the tests' models are interpreted subclasses
class LatencyModel:
    """Base class of every latency model; each overrides all five methods. A class rather than a protocol so
    that the compiled engine calls a compiled model directly (``_compiled.py``)."""

    __slots__ = ()

    def step_time(self, step: StepRecord) -> int:
        """Duration of one engine step in ticks."""
        raise NotImplementedError

    def decode_step_time(self, num_decodes: int, context_sum: int) -> int:
        """``step_time`` of a decode-only step, from its decode count and the sum of their contexts.

        Must equal ``step_time`` of such a record exactly: decode skip-ahead prices the steps it advances with it.
        """
        raise NotImplementedError

    def queueing_time(self, num_prompt_tokens: int) -> int:
        """Ticks between the routing decision and entering the waiting queue (API-server work)."""
        raise NotImplementedError

    def output_token_time(self) -> int:
        """Per-output-token overhead added to TTFT and to every inter-token interval."""
        raise NotImplementedError

    def describe(self) -> dict:
        """Plain-data summary (model kind and its coefficients) for logs and the results file."""
        raise NotImplementedError

    def decode_is_cheap(self) -> bool:
        """Whether ``decode_step_time`` costs less than a dictionary lookup (a compiled model): decode skip-ahead
        then calls it for every step instead of remembering its values."""
        return False


def compiled(module_file: str) -> bool:
    """Whether the module whose ``__file__`` this is runs compiled (mypyc builds a shared library per module)."""
    return module_file.endswith((".so", ".pyd"))


@mypyc_attr(allow_interpreted_subclasses=True)  # roofline v2 is not compiled
class AlphaOverheads(LatencyModel):
    """``queueing_time`` and ``output_token_time`` from α = (α0, α1, α2) (ENGINE.md §9.2), as every model uses them."""

    __slots__ = ("alpha", "_a0", "_a1", "_out")

    def _set_alpha(self, alpha: Sequence[float], request_overhead_us: float = 0.0) -> None:
        """α, plus the roofline models' per-request API-server overhead (``requestOverheadMicros``; 0 = off), which
        joins α0: both are time between a request's arrival and its entering the waiting queue."""
        self.alpha = tuple(float(a) for a in alpha)
        self._a0, self._a1, a2 = self.alpha
        if request_overhead_us:
            self._a0 += float(request_overhead_us)
        self._out = int(a2)

    def queueing_time(self, num_prompt_tokens: int) -> int:
        return int(self._a0 + self._a1 * num_prompt_tokens)

    def output_token_time(self) -> int:
        return self._out


_LOG2_HALF: Final[list[float]] = [0.0, 0.0, 0.0]  # log2(r / 2) by batch size r > 2, filled on first use (same values)


def step_overhead_us(base_us: float, num_requests: int, num_decodes: int) -> float:
    """ROOFLINE.md §6: the per-step overhead grows with log2 of the batch size, more for decode-heavy batches."""
    if num_requests <= 2:
        return base_us
    table = _LOG2_HALF
    if num_requests >= len(table):
        table.extend([math.log2(r / 2.0) for r in range(len(table), num_requests + 1)])
    return base_us * (1.0 + 0.15 * table[num_requests] * (0.3 + 2.0 * num_decodes / num_requests))

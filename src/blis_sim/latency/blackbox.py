"""The α/β regression latency model (ENGINE.md §9.2).

Step time is affine in the prefill token count X and the decode count Y; the API-server delay is affine in the
prompt length. The coefficients come from a fitted defaults row or from the flags, already validated as finite and
>= 0, so every result is >= 0 and ``int()`` (truncation) is the required floor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np

from ..step import StepRecord
from .base import AlphaOverheads, compiled

_COMPILED: Final = compiled(__file__)


class BlackboxModel(AlphaOverheads):
    """``step_time = floor((β0 + β1·X) + β2·Y)``, ``queueing_time = floor(α0 + α1·P)``, ``output = floor(α2)``."""

    name = "blackbox"
    __slots__ = ("beta", "_b0", "_b1", "_b2")

    def __init__(self, alpha: Sequence[float], beta: Sequence[float]) -> None:
        self._set_alpha(alpha)
        self.beta = tuple(float(b) for b in beta)
        self._b0, self._b1, self._b2 = self.beta

    def step_time(self, step: StepRecord) -> int:
        # Left to right in float64, exactly as the spec writes it (the grouping changes the last bit).
        return int((self._b0 + self._b1 * step.num_prefill_tokens) + self._b2 * step.num_decodes)

    def decode_step_time(self, num_decodes: int, context_sum: int) -> int:
        """``step_time`` of a decode-only step (X = 0), with the same float operations."""
        return int((self._b0 + self._b1 * 0) + self._b2 * num_decodes)

    def decode_step_times(self, num_decodes: int, context_sums: np.ndarray) -> np.ndarray:
        """``decode_step_time`` for many context sums at once (it does not depend on them here)."""
        return np.full(len(context_sums), self.decode_step_time(num_decodes, 0), dtype=np.int64)

    def decode_is_cheap(self) -> bool:
        return _COMPILED

    def describe(self) -> dict:
        return {"kind": self.name, "alpha_coeffs": list(self.alpha), "beta_coeffs": list(self.beta)}

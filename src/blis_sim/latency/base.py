"""The interface every latency model offers the engine (ENGINE.md §9.1).

Three deterministic functions returning integer ticks >= 0. A model has no state that changes during a run.
"""

from __future__ import annotations

from typing import Protocol

from ..engine.step import StepRecord


class LatencyModel(Protocol):
    name: str  # "blackbox", "roofline-v1", ...

    def step_time(self, step: StepRecord) -> int:
        """Duration of one engine step in ticks."""
        ...

    def decode_step_time(self, num_decodes: int, context_sum: int) -> int:
        """``step_time`` of a decode-only step, from its decode count and the sum of their contexts.

        Must equal ``step_time`` of such a record exactly: decode skip-ahead prices the steps it advances with it.
        """
        ...

    def queueing_time(self, num_prompt_tokens: int) -> int:
        """Ticks between the routing decision and entering the waiting queue (API-server work)."""
        ...

    def output_token_time(self) -> int:
        """Per-output-token overhead added to TTFT and to every inter-token interval."""
        ...

    def describe(self) -> dict:
        """Plain-data summary (model kind and its coefficients) for logs and the results file."""
        ...

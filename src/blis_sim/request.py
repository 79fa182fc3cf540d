"""One inference request: what the workload generated plus the engine's compact state.

A request is created by a workload source and then mutated only by the instance engine that owns it.
All times are integer ticks (microseconds). ``tokens`` holds the prompt followed by every output token the
request will generate, so the "known tokens" at any moment are ``tokens[:num_prompt_tokens + num_generated]``.
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

import numpy as np

UNSET: Final = -1  # timestamp not reached yet


class RequestStatus(enum.IntEnum):
    """Lifecycle; every value >= FINISHED means the request left the engine for good."""

    PENDING = 0  # generated, not yet in a waiting queue
    WAITING = 1
    RUNNING = 2
    FINISHED = 3
    DROPPED = 4  # unservable on its instance (ENGINE.md §7.1)
    REJECTED = 5  # refused by admission


class TokenSource(Protocol):
    """Where a request whose token ids are drawn on demand gets them (workload/distribution.py)."""

    def ids(self, start: int, stop: int) -> np.ndarray: ...


class Request:
    """Workload fields (read-only by convention) and engine state of one request."""

    __slots__ = (
        # workload
        "index",
        "id",
        "arrival",
        "_tokens",
        "token_source",
        "token_start",
        "num_prompt_tokens",
        "num_output_tokens",
        "slo_class",
        "tenant_id",
        "session_id",
        "round_index",
        "meta",
        # engine state
        "status",
        "num_computed_tokens",
        "num_generated",
        "num_placeholders",
        "blocks",
        "num_cached_blocks",
        "block_keys",
        "keys_deferred",
        "seq",
        "cohort_off",
        "instance",
        "priority",
        # timestamps (ticks)
        "enqueue_time",
        "first_scheduled",
        "first_token",
        "last_token",
        "finish_time",
        "ttft",
        "e2e",
    )

    def __init__(
        self,
        index: int,
        arrival: int,
        tokens: np.ndarray | None,
        num_prompt_tokens: int,
        request_id: str | None = None,
        slo_class: str = "",
        tenant_id: str = "",
        independent_tokens: bool = False,
        token_source: TokenSource | None = None,
        token_start: int = 0,
        num_tokens: int = 0,
    ) -> None:
        self.index = index
        self.id = request_id if request_id is not None else f"request_{index}"
        self.arrival = arrival
        # the ids themselves, or (without them) ids [token_start, token_start + num_tokens) of ``token_source``,
        # drawn when first read: only requests whose prefix keys are computed ever read them (kv/cache.py)
        self._tokens = tokens
        self.token_source = token_source
        self.token_start = token_start
        self.num_prompt_tokens = num_prompt_tokens
        self.num_output_tokens = (len(tokens) if tokens is not None else num_tokens) - num_prompt_tokens
        self.slo_class = slo_class
        self.tenant_id = tenant_id
        self.session_id = ""  # multi-turn sessions (workload specs): the session and this request's round in it
        self.round_index = -1
        self.meta: dict | None = None  # other workload metadata for the results file (client_id, modality, ...)
        self.status = RequestStatus.PENDING
        self.num_computed_tokens = 0
        self.num_generated = 0
        self.num_placeholders = 0  # async scheduling: tokens in flight (ENGINE.md §7.8)
        self.blocks: list[int] = []
        self.num_cached_blocks = 0  # leading blocks whose keys are registered in the KV index
        self.block_keys: list[int] = []  # prefix keys of its full blocks, computed on first use and cached
        # True when the source drew its tokens independently and uniformly (no prefix shared by construction), so
        # no other request can hit its blocks: the KV manager then registers its keys only if it is preempted
        self.keys_deferred = independent_tokens
        self.seq = 0  # admission order on its instance (renewed when readmitted after a preemption)
        self.cohort_off = 0  # computed tokens less the instance's cohort level, while in its decode cohort
        self.instance = -1
        self.priority = 0.0
        self.enqueue_time = UNSET
        self.first_scheduled = UNSET
        self.first_token = UNSET
        self.last_token = UNSET
        self.finish_time = UNSET
        self.ttft = UNSET
        self.e2e = UNSET

    @property
    def tokens(self) -> np.ndarray:
        """Prompt then output token ids (drawn now if the source defers them)."""
        ids = self._tokens
        if ids is None and self.token_source is not None:
            stop = self.token_start + self.num_prompt_tokens + self.num_output_tokens
            ids = self._tokens = self.token_source.ids(self.token_start, stop)
        return ids  # type: ignore[return-value]  # None only after drop_tokens

    def drop_tokens(self) -> None:
        """Free the token ids of a request that left the engine (they are never read again)."""
        self._tokens = None
        self.token_source = None

    @property
    def num_tokens(self) -> int:
        """Known tokens: the prompt and the outputs generated so far."""
        return self.num_prompt_tokens + self.num_generated

    def __repr__(self) -> str:
        return (
            f"Request({self.id}, P={self.num_prompt_tokens}, N={self.num_output_tokens}, "
            f"g={self.num_generated}, c={self.num_computed_tokens}, {self.status.name})"
        )

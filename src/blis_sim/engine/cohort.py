"""The steady decoders of a synchronous instance, kept as one lazy group (the fast path of ENGINE.md §7.6).

A running request that has caught up with its known tokens decodes exactly one token in every step whose token
budget and free blocks cover the whole batch. All such requests then move in lock-step: one shared counter
(``level``, the number of those steps applied so far) plus a per-request offset gives each member's computed
tokens, ``c = level + off``, and generated tokens, ``g = c - P + 1``. A step therefore costs O(1) for the whole
group plus O(1) per request that *does* something at that step: takes a block (its context reaches a block
boundary), fills one (its key is registered), or finishes. Members are bucketed by ``off % block_size`` so the
requests with a block event at a given level are one list lookup away, and each bucket stays in admission order,
the order in which vLLM's scheduler visits them.

The group's state is written back into the requests (``materialize``) whenever something needs the explicit
fields: the slow path (a step the group cannot take as a whole), a finish, or the end of the run.
"""

from __future__ import annotations

import heapq
from bisect import insort
from operator import attrgetter
from typing import Final

from ..request import Request

by_seq: Final = attrgetter("seq")


class DecodeCohort:
    __slots__ = (
        "block_size",
        "level",
        "buckets",
        "size",
        "sum_off",
        "finishes",
        "newcomers",
        "last_emit",
    )

    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.level = 0  # cohort steps applied so far
        self.buckets: list[list[Request]] = [[] for _ in range(block_size)]  # by off % block_size, seq order
        self.size = 0
        self.sum_off = 0  # context sum of a cohort step formed at ``level`` = size * level + sum_off
        self.finishes: list[tuple[int, int, Request]] = []  # heap of (level of its last step, seq, request)
        self.newcomers: dict[Request, None] = {}  # joined since the last applied step: their last token is their own
        self.last_emit = 0  # tick of the last applied cohort step: every other member's last token

    def join(self, req: Request) -> None:
        """Add a running request that decodes next (c = P + g - 1, no tokens in flight)."""
        c = req.num_computed_tokens
        off = c - self.level
        req.cohort_off = off
        insort(self.buckets[off % self.block_size], req, key=by_seq)
        self.size += 1
        self.sum_off += off
        heapq.heappush(self.finishes, (req.num_prompt_tokens + req.num_output_tokens - 2 - off, req.seq, req))
        self.newcomers[req] = None

    def takers(self, level: int) -> list[Request]:
        """Members that need a new block to form the step at ``level`` (their context is a block multiple)."""
        return self.buckets[-level % self.block_size]

    def fillers(self, level: int) -> list[Request]:
        """Members whose last block fills in the step formed at ``level`` (its key is registered then)."""
        return self.buckets[(-level - 1) % self.block_size]

    def pop_finishing(self, level: int) -> list[Request]:
        """Remove and return, in admission order, the members whose last token comes from the step at ``level``."""
        finishes = self.finishes
        out: list[Request] = []
        while finishes and finishes[0][0] == level:
            req = heapq.heappop(finishes)[2]
            self.buckets[req.cohort_off % self.block_size].remove(req)
            self.size -= 1
            self.sum_off -= req.cohort_off
            out.append(req)
        return out

    def write_back(self, req: Request, in_flight: int = 0) -> None:
        """Explicit counters of one member; ``in_flight`` 1 while a formed cohort step has not been applied."""
        c = self.level + req.cohort_off
        req.num_generated = c - req.num_prompt_tokens + 1
        req.num_computed_tokens = c + in_flight
        if req not in self.newcomers:
            req.last_token = self.last_emit

    def members(self) -> list[Request]:
        """Every member, in admission order."""
        return sorted((r for bucket in self.buckets for r in bucket), key=by_seq)

    def materialize(self, in_flight: int = 0) -> list[Request]:
        """Write every member's explicit counters; returns the members in admission order (the group stays)."""
        members = self.members()
        for r in members:
            self.write_back(r, in_flight)
        return members

    def dissolve(self) -> list[Request]:
        """Empty the group after writing its members back (between steps); returns them in admission order."""
        members = self.materialize()
        for bucket in self.buckets:
            bucket.clear()
        self.size = 0
        self.sum_off = 0
        self.finishes.clear()
        self.newcomers.clear()
        return members

"""Closed-loop multi-turn sessions (ENGINE.md §10.6): the observer that sends a session's next round.

``SessionDriver(plan, inner)`` is handed to ``api.execute``'s instances and cluster (with
``ClusterSimulator(closed_loop=True)``); when round r of a session completes, round r + 1 arrives
``think_time_us`` after round r's client-side completion (its arrival + its E2E) through
``ClusterSimulator.add_arrival``. A round that is rejected, dropped or unfinished never completes, so the rest of
its session never arrives. Every other observer call is passed on to ``inner`` (the caller's observer, if any).
"""

from __future__ import annotations

from ..engine.observer import Observer
from ..request import Request, RequestStatus
from .spec_gen import SessionPlan


class SessionDriver(Observer):
    def __init__(self, plan: SessionPlan, inner: Observer | None = None) -> None:
        self.plan = plan
        self.inner = inner
        self.sim = None  # the ClusterSimulator, set once it is built
        self.log = None  # an export.ArrivalLog, told of every round sent (--export-trace)

    def on_admission(self, req, now, admitted, reason):  # type: ignore[no-untyped-def]
        if self.inner is not None:
            self.inner.on_admission(req, now, admitted, reason)

    def on_routing(self, req, now, target, snapshots, scores):  # type: ignore[no-untyped-def]
        if self.inner is not None:
            self.inner.on_routing(req, now, target, snapshots, scores)

    def on_step(self, instance, step, queue_depth, kv_used):  # type: ignore[no-untyped-def]
        if self.inner is not None:
            self.inner.on_step(instance, step, queue_depth, kv_used)

    def on_completion(self, instance: int, req: Request, now: int) -> None:
        if self.inner is not None:
            self.inner.on_completion(instance, req, now)
        nxt = self.plan.follow.pop(req.index, None)
        if nxt is None or req.status != RequestStatus.FINISHED:
            return
        follow, think = nxt
        follow.arrival = req.arrival + req.e2e + think
        self.sim.add_arrival(follow)  # type: ignore[union-attr]
        if self.log is not None:
            self.log.record(follow)

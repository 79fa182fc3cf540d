"""The run's one observation seam: an object told of every decision and event that tracing, timelines and anomaly
counters need.

Pass one to ``api.execute(prepared, observer=...)`` (the way ``progress`` is passed); ``None``, the default, costs a
single ``is None`` test at each place below. Methods are called in simulated-time order:

* ``on_admission(req, now, admitted, reason)``: the admission policy decided (§6.1);
* ``on_routing(req, now, target, snapshots, scores)``: the routing policy chose instance ``target``; ``snapshots``
  are every instance's snapshot at that moment (built for the observer when the policy itself reads none);
  ``scores`` the policy's score per instance when it scores them (weighted routing), else None;
* ``on_step(instance, step, queue_depth, kv_used)``: an instance formed and priced a batch (``step.start`` to
  ``step.end``); ``queue_depth`` requests were left waiting and ``kv_used`` GPU KV blocks were in use after forming it;
* ``on_completion(instance, req, now)``: a request finished (its metrics are set).

With an observer, synchronous instances form every step one by one (no skip-ahead stretches, which would advance
many steps without forming them); the results are the same, the run is slower.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from ..request import Request
from ..step import StepRecord
from .snapshot import Snapshot


@mypyc_attr(allow_interpreted_subclasses=True)
class Observer:
    """Base class: every method does nothing; subclasses override what they record."""

    def on_admission(self, req: Request, now: int, admitted: bool, reason: str) -> None:
        pass

    def on_routing(
        self, req: Request, now: int, target: int, snapshots: list[Snapshot], scores: list[float] | None
    ) -> None:
        pass

    def on_step(self, instance: int, step: StepRecord, queue_depth: int, kv_used: int) -> None:
        pass

    def on_completion(self, instance: int, req: Request, now: int) -> None:
        pass


class MultiObserver(Observer):
    """Several observers heard as one (``api.execute`` combines the caller's observer with the run's own outputs,
    a timeline say): each call goes to every observer, in the order given."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = list(observers)

    def on_admission(self, req: Request, now: int, admitted: bool, reason: str) -> None:
        for o in self.observers:
            o.on_admission(req, now, admitted, reason)

    def on_routing(
        self, req: Request, now: int, target: int, snapshots: list[Snapshot], scores: list[float] | None
    ) -> None:
        for o in self.observers:
            o.on_routing(req, now, target, snapshots, scores)

    def on_step(self, instance: int, step: StepRecord, queue_depth: int, kv_used: int) -> None:
        for o in self.observers:
            o.on_step(instance, step, queue_depth, kv_used)

    def on_completion(self, instance: int, req: Request, now: int) -> None:
        for o in self.observers:
            o.on_completion(instance, req, now)


def combine(*observers: Observer | None) -> Observer | None:
    """One observer for those given that are not None: None when there is none, the observer itself when one."""
    present = [o for o in observers if o is not None]
    if not present:
        return None
    return present[0] if len(present) == 1 else MultiObserver(present)

"""The run's one observation seam: an object told of every decision and event that tracing, timelines and anomaly
counters need.

Pass one to ``api.execute(prepared, observer=...)`` (the way ``progress`` is passed); ``None``, the default, costs a
single ``is None`` test at each place below. Methods are called in simulated-time order:

* ``on_admission(req, now, admitted, reason)``: the admission policy decided (§6.1);
* ``on_routing(req, now, target, snapshots)``: the routing policy chose instance ``target``; ``snapshots`` are every
  instance's snapshot at that moment (built for the observer when the policy itself reads none);
* ``on_step(instance, step)``: an instance formed and priced a batch (``step.start`` to ``step.end``);
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

    def on_routing(self, req: Request, now: int, target: int, snapshots: list[Snapshot]) -> None:
        pass

    def on_step(self, instance: int, step: StepRecord) -> None:
        pass

    def on_completion(self, instance: int, req: Request, now: int) -> None:
        pass

"""One point of a sweep or one probe of a capacity search, run in whichever process the backend chooses.

A ``Task`` is plain picklable data (a key and a ``SimulationConfig``); ``run_task`` assembles the run the way every
run is assembled (``api.prepare`` then ``api.execute``) in the calling process (no new interpreter per point) and
returns an ``Outcome``: the point's row, or the error that stopped it. Nothing is printed: the warnings a run logs
come back with the outcome.

What does not change between points is kept per process: the resolved latency model (the model config and
hardware entry read, roofline v2's kernel tables loaded, its memoised step times) is reused by every later point
with the same latency and engine settings (``api.prepare``'s ``latency_cache``); the defaults file is cached by
``config.defaults_file`` itself. A reused model gives the same step times, so rows do not depend on which process
ran which point, or in which order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .. import api
from ..config import SimulationConfig
from ..errors import InputError
from ..latency.select import LatencyCache
from ..logging_setup import captured_warnings
from .metrics import run_row

# resolved latency models kept for the later points of this process (``api.prepare``'s latency cache)
LATENCY_CACHE = LatencyCache(32)


@dataclass(frozen=True)
class Task:
    key: tuple  # where the outcome belongs (sweep: ("point", i); capacity: ("probe", config, sequence))
    cfg: SimulationConfig


@dataclass
class Outcome:
    key: tuple
    row: dict | None = None  # None when the run failed
    error: str = ""
    warnings: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    prepare_s: float = 0.0


def run_task(task: Task) -> Outcome:
    """Simulate ``task.cfg`` here and summarise it; never raises for a failing run (the outcome holds the error)."""
    started = time.perf_counter()
    prepared_at = started
    with captured_warnings(unique=True) as warnings:
        try:
            prepared = api.prepare(task.cfg, latency_cache=LATENCY_CACHE)
            prepared_at = time.perf_counter()
            results = api.execute(prepared, collect_requests=True)
            row = run_row(results, prepared.cfg)
        except InputError as exc:
            return Outcome(task.key, None, str(exc), list(warnings), time.perf_counter() - started)
        except Exception as exc:  # noqa: BLE001 - one broken point must not stop a sweep; it is recorded instead
            return Outcome(task.key, None, f"internal error: {type(exc).__name__}: {exc}", list(warnings),
                           time.perf_counter() - started)
    return Outcome(task.key, row, "", list(warnings), time.perf_counter() - started, prepared_at - started)

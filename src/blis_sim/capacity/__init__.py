"""Capacity planning on top of the Python API: sweeps over run fields, the largest request rate meeting SLOs per
configuration, cost per million output tokens, Pareto fronts, serial / process-pool / Ray backends and a
self-contained HTML report (docs/capacity.md).

    >>> from blis_sim.capacity import load_sweep, run_sweep, write_outputs
    >>> result = run_sweep(load_sweep("examples/sweeps/rate-tp.yaml"), backend="local")
    >>> write_outputs(result, Path("out"))

    >>> from blis_sim.capacity import CapacityQuestion, parse_slos, run_capacity
    >>> answer = run_capacity(CapacityQuestion(cfg, parse_slos("ttft_p90_ms<=200"), vary=(("tp", (1, 2)),)))

Names are imported on first use, so that ``blis capacity --help`` does not import matplotlib.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_PUBLIC = {
    "SweepSpec": "sweep", "SweepResult": "sweep", "load_sweep": "sweep", "make_sweep": "sweep",
    "run_sweep": "sweep", "write_outputs": "sweep",
    "CapacityQuestion": "capacity", "CapacityResult": "capacity", "run_capacity": "capacity",
    "parse_vary": "capacity",
    "RateSearch": "search", "SearchResult": "search", "find_max_rate": "search",
    "SLO": "slo", "parse_slos": "slo",
    "make_backend": "backends", "BACKENDS": "backends",
    "sweep_report": "report", "capacity_report": "report",
    "write_figures": "plot",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'blis_sim.capacity' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

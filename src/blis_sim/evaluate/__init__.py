"""``blis evaluate``: the simulator against real vLLM measurements.

Loaders (one module per ground-truth format) read files into format-independent ``Experiment`` objects; ``resolve``
decides what each experiment is simulated with (model config, GPU entry, KV blocks, engine loop);
``experiment.to_workload_description`` says what its points sent, for ``blis_sim.workload`` to build; ``simulate`` runs
one plan (in a worker process) through ``api.prepare`` and ``api.execute``; ``scoring`` computes errors and MAPE;
``runner.evaluate`` ties them together; ``render``, ``plots`` and ``command`` are the terminal, PNG and CLI faces.
The names below are imported on first use, so that ``blis --help`` stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GroundTruth": "discover", "load_ground_truth": "discover", "METRICS": "experiment", "Experiment": "experiment",
    "Failure": "experiment", "Point": "experiment", "Evaluation": "runner", "Options": "runner", "evaluate": "runner",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)

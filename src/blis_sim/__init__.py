"""blis-sim: a discrete-event simulator of vLLM inference serving.

    >>> from blis_sim import SimulationConfig, run
    >>> results = run(SimulationConfig(latency={"model": "meta-llama/llama-3.1-8b-instruct"}))
    >>> results.cluster["completed_requests"]

The public names below are imported on first use (PEP 562), so that ``blis --help`` or a script that needs only
one submodule does not pay for the whole package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from . import _compiled  # noqa: E402

engine_build = _compiled.choose()  # "compiled", "pure" or "stale" (see _compiled.py)

_PUBLIC = {
    "execute": "api",
    "prepare": "api",
    "run": "api",
    "SimulationConfig": "config",
    "InputError": "errors",
    "Results": "report.results",
}

if TYPE_CHECKING:  # for type checkers and IDEs: the same names, imported eagerly
    from .api import execute, prepare, run
    from .config import SimulationConfig
    from .errors import InputError
    from .report.results import Results


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'blis_sim' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_PUBLIC))


__all__ = ["InputError", "Results", "SimulationConfig", "__version__", "engine_build", "execute", "prepare", "run"]

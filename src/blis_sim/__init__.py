"""blis-sim: a discrete-event simulator of vLLM inference serving.

    >>> from blis_sim import SimulationConfig, run
    >>> results = run(SimulationConfig(latency={"model": "meta-llama/llama-3.1-8b-instruct"}))
    >>> results.cluster["completed_requests"]
"""

__version__ = "0.1.0"

from . import _compiled  # noqa: E402

engine_build = _compiled.choose()  # "compiled", "pure" or "stale" (see _compiled.py)

from .api import execute, prepare, run  # noqa: E402
from .config import SimulationConfig  # noqa: E402
from .errors import InputError  # noqa: E402
from .report.results import Results  # noqa: E402

__all__ = ["InputError", "Results", "SimulationConfig", "__version__", "execute", "prepare", "run"]

"""The engine's compiled build: which modules mypyc compiles, and when to run their Python sources instead.

``pip install`` compiles the modules below with mypyc into C extensions (setup.py; ``BLIS_SIM_PURE=1`` at install
time skips it). They are ordinary Python modules, and the extensions behave exactly like them, only faster.

The Python sources run instead of the extensions when ``BLIS_SIM_PURE=1`` is set at run time (to monkeypatch the
engine, profile it with cProfile, or check that both give the same results), and when any extension is older than
its source (an editable install whose sources were edited since the last ``pip install -e .``): the extensions call
each other directly, so they are used all together or not at all.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

# Module paths relative to the package; setup.py reads this tuple (keep it a literal).
MODULES = (
    "request.py",
    "step.py",
    "engine/snapshot.py",
    "engine/observer.py",
    "engine/policy.py",
    "engine/cohort.py",
    "engine/scheduler.py",
    "engine/fast_path.py",
    "engine/instance.py",
    "kv/tier.py",
    "kv/block_pool.py",
    "kv/cache.py",
    "workload/distribution.py",
    "latency/base.py",
    "latency/blackbox.py",
    "latency/roofline_v1.py",
    "metrics/histogram.py",
    "metrics/counters.py",
    "cluster/policies.py",
    "cluster/simulator.py",
)

PACKAGE_DIR = Path(__file__).resolve().parent


def _extension_of(source: Path) -> Path | None:
    for path in source.parent.glob(source.stem + ".*"):
        if path.suffix in (".so", ".pyd"):
            return path
    return None


def status() -> str:
    """``compiled``, ``pure`` (no extensions, or BLIS_SIM_PURE), or ``stale`` (extensions older than sources)."""
    if os.environ.get("BLIS_SIM_PURE", "") not in ("", "0"):
        return "pure"
    found = False
    for rel in MODULES:
        source = PACKAGE_DIR / rel
        ext = _extension_of(source)
        if ext is None:
            continue
        found = True
        if source.exists() and ext.stat().st_mtime < source.stat().st_mtime:
            return "stale"
    return "compiled" if found else "pure"


class _SourceFirst:
    """A meta path finder (``importlib.abc.MetaPathFinder``'s protocol, without importing importlib.abc) that loads
    the listed modules from their ``.py`` files even where a compiled extension sits beside them."""

    def __init__(self) -> None:
        self.names = {"blis_sim." + rel[:-3].replace("/", ".") for rel in MODULES}

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001 (importlib's signature)
        if name not in self.names:
            return None
        import importlib.util

        source = PACKAGE_DIR.joinpath(*name.split(".")[1:]).with_suffix(".py")
        return importlib.util.spec_from_file_location(name, source)


def choose() -> str:
    """Called once by ``blis_sim/__init__``, before any engine module is imported."""
    state = status()
    if state == "compiled" or any(isinstance(f, _SourceFirst) for f in sys.meta_path):
        return state  # nothing to do, or already done (blis_sim imported again)
    if state == "stale":
        warnings.warn(
            "blis-sim: the compiled engine is older than its sources; running the Python sources "
            "(run `pip install -e .` again to rebuild it)",
            RuntimeWarning,
            stacklevel=3,
        )
    sys.meta_path.insert(0, _SourceFirst())
    return state

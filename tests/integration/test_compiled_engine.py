"""The compiled engine (mypyc, src/blis_sim/_compiled.py) prints byte-identical output to its Python sources."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from test_skip_ahead_scenarios import SCENARIOS

import blis_sim
from blis_sim import _compiled

CHILD = """
import json, sys
from blis_sim import SimulationConfig, engine_build, run
spec = json.loads(sys.argv[1])
print(engine_build)
print(run(SimulationConfig(**spec), collect_requests=False).stdout_text())
"""


def _run(spec: dict, pure: bool) -> tuple[str, str]:
    env = dict(os.environ, BLIS_SIM_PURE="1" if pure else "0")
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env, capture_output=True, text=True,
                         check=True).stdout
    build, _, text = out.partition("\n")
    return build, text


@pytest.mark.skipif(blis_sim.engine_build != "compiled", reason="the engine is not compiled in this install "
                    f"({blis_sim.engine_build}; BLIS_SIM_PURE or no C compiler at install time)")
@pytest.mark.parametrize("name", ["kv-pressure-preemption", "shared-prefix-horizon", "c-4-instances"])
def test_compiled_engine_equals_python_sources(name):
    spec = SCENARIOS[name]
    compiled_build, compiled = _run(spec, pure=False)
    pure_build, pure = _run(spec, pure=True)
    assert (compiled_build, pure_build) == ("compiled", "pure")
    assert compiled == pure
    assert '"completed_requests"' in compiled


def test_edited_sources_run_instead_of_a_stale_build(tmp_path, monkeypatch):
    """An extension older than its source is ignored, all of them together (they call each other directly)."""
    pkg = tmp_path / "pkg"
    (pkg / "engine").mkdir(parents=True)
    for rel in _compiled.MODULES:
        source = pkg / rel
        source.parent.mkdir(parents=True, exist_ok=True)
        source.write_text("")
        ext = source.with_suffix(".cpython-311-x86_64-linux-gnu.so")
        ext.write_text("")
        os.utime(ext, (1_000, 1_000))
        os.utime(source, (500, 500))
    monkeypatch.setattr(_compiled, "PACKAGE_DIR", pkg)
    monkeypatch.delenv("BLIS_SIM_PURE", raising=False)
    assert _compiled.status() == "compiled"
    os.utime(pkg / "engine" / "fast_path.py", (2_000, 2_000))
    assert _compiled.status() == "stale"
    monkeypatch.setenv("BLIS_SIM_PURE", "1")
    assert _compiled.status() == "pure"

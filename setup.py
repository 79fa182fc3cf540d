"""Build hook: compile the engine's hot modules with mypyc (the list is src/blis_sim/_compiled.py).

Set BLIS_SIM_PURE=1 when installing to skip compilation; the package then runs as plain Python, with the same
results, several times slower on large runs. If compilation fails (no C compiler), the install stops with the
compiler's error; install with BLIS_SIM_PURE=1 then.
"""

import ast
import os
from pathlib import Path

from setuptools import setup

PACKAGE = Path("src") / "blis_sim"


def compiled_modules() -> list[str]:
    tree = ast.parse((PACKAGE / "_compiled.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "MODULES":
            return [str(PACKAGE / rel) for rel in ast.literal_eval(node.value)]
    raise RuntimeError("MODULES not found in src/blis_sim/_compiled.py")


ext_modules = []
if os.environ.get("BLIS_SIM_PURE", "") in ("", "0"):
    from mypyc.build import mypycify

    ext_modules = mypycify(
        ["--follow-imports=silent", "--ignore-missing-imports", *compiled_modules()],
        opt_level="3",
        group_name="blis_sim_engine",
    )
    for ext in ext_modules:
        # no fused multiply-add: float results stay bit-identical to the Python sources on every CPU
        ext.extra_compile_args = [*ext.extra_compile_args, "-ffp-contract=off"]

setup(ext_modules=ext_modules)

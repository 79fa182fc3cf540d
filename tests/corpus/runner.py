"""Running the bad-input corpus (``tests/corpus/bad_inputs``) through the command line, in-process.

Each case is a folder holding ``case.yaml`` (``kind``: the input kind; ``args``: the command line; ``error``: the
exact one line expected on stderr) and the files it needs. ``_common`` holds valid small inputs (a model config, a
hardware config, MFU tables, traces, a workload spec, a policy bundle, a defaults file, a sweep file, a ground-truth
file); a case's own files replace them. The command runs in a fresh copy of both, with relative paths, so the
expected lines hold no temporary folder.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

CORPUS = Path(__file__).resolve().parent / "bad_inputs"
COMMON = CORPUS / "_common"


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    args: tuple[str, ...]
    error: str

    @classmethod
    def load(cls, folder: Path) -> "Case":
        data = yaml.safe_load((folder / "case.yaml").read_text(encoding="utf-8"))
        return cls(folder.name, data["kind"], tuple(str(a) for a in data["args"]), data.get("error", ""))


def cases() -> list[Case]:
    return [Case.load(p) for p in sorted(CORPUS.iterdir()) if (p / "case.yaml").is_file()]


def stage(case: Case, where: Path) -> Path:
    """A working folder with the common files and the case's own files (which win)."""
    shutil.copytree(COMMON, where)
    for item in (CORPUS / case.name).iterdir():
        if item.name == "case.yaml":
            continue
        target = where / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(item, target)
    return where


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def run_in(folder: Path, args: tuple[str, ...]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``blis <args>`` run in-process with ``folder`` as the working directory."""
    from blis_sim import logging_setup
    from blis_sim.cli import run_cli

    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # a warning must show on every run, not once per process
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                rc = run_cli(list(args), prog_name="blis")
    finally:
        os.chdir(cwd)
        logging_setup.reset()
    return rc, out.getvalue(), err.getvalue().replace(str(PACKAGED), "{packaged}")


def _packaged() -> Path:
    from importlib import resources

    return Path(str(resources.files("blis_sim") / "data"))


PACKAGED = _packaged()  # the installed package's data folder: messages naming it read {packaged}

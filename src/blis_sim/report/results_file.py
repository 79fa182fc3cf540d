"""Atomic writing of the per-request results file (ENGINE.md §14.3): a reader never sees half a file."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from ..errors import InputError
from .results import Results


def check_writable(path: Path, flag: str = "--results-path") -> None:
    """Fail before the simulation when the file could not be written afterwards (§14.3)."""
    directory = path.parent
    if not directory.exists():
        raise InputError(f"{flag} {path}: directory '{directory}' does not exist")
    if not directory.is_dir():
        raise InputError(f"{flag} {path}: '{directory}' is not a directory")
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {path}: directory '{directory}' is not writable")
    if path.is_dir():
        raise InputError(f"{flag} {path}: is a directory, expected a file path")
    if path.exists() and not os.access(path, os.W_OK):
        raise InputError(f"{flag} {path}: file is not writable")


def write_json_atomic(path: Path, obj: dict) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(obj, indent=2, allow_nan=False) + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(results: Results, path: Path) -> None:
    write_json_atomic(Path(path), results.to_file_dict())

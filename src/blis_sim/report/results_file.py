"""Atomic writing of the per-request results file (ENGINE.md §14.3): a reader never sees half a file."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Final, Iterable, Iterator

from ..errors import InputError
from .results import Results

CHUNK: Final = 1 << 20  # characters of the results file written at a time

_KINDS = (
    (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
    (stat.S_ISSOCK, "a socket"),
)


def _target(path: Path) -> Path:
    """The file a write to ``path`` must replace: a symbolic link's final target (the link itself stays)."""
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def check_writable(path: Path, flag: str = "--results-path") -> None:
    """Fail before the simulation when the file could not be written afterwards (§14.3). Only a regular file (or a
    new one) is ever written: the atomic rename would otherwise replace a device, a pipe or a socket with a file."""
    path = _target(Path(path))
    if path.exists():
        mode = path.stat().st_mode
        for test, kind in _KINDS:
            if test(mode):
                raise InputError(f"{flag} {path}: is {kind}, not a regular file (give the path of a file to write)")
    name_max = 255
    try:
        name_max = os.pathconf(path.parent if str(path.parent) else ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        pass
    if len(os.fsencode(path.name)) + 16 > name_max:  # the temporary file's name adds a dot, a suffix and 8 chars
        raise InputError(f"{flag} {path}: the file name is too long ({len(os.fsencode(path.name))} bytes; at most "
                         f"{name_max - 16} here)")
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
    """Write ``obj`` as JSON to a temporary file beside the target, then rename it over the target (through a
    symbolic link to its final target, which keeps the link)."""
    write_text_atomic(path, json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_text_atomic(path: Path, text: str | Iterable[str]) -> None:
    """Write ``text`` (UTF-8; a string or an iterable of strings, written as they come) to a temporary file beside
    the target, then rename it over the target, as ``write_json_atomic``."""
    path = _target(Path(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            if isinstance(text, str):
                fh.write(text)
            else:
                fh.writelines(text)
        # mkstemp makes the file private (0600): give it the mode the file had, or the one a new file would get
        if path.exists():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_results(results: Results, path: Path) -> None:
    """The results file, streamed: the same bytes as ``json.dumps(results.to_file_dict(), indent=2)``, written a
    record at a time, so that a million records do not also exist as one string (and its parts) in memory."""
    write_text_atomic(Path(path), results_text(results))


def results_text(results: Results) -> Iterator[str]:
    """The text of the results file in pieces of about ``CHUNK`` characters (``write_results``)."""
    doc = results.to_file_dict()
    records = doc["requests"]
    if not records:
        yield json.dumps(doc, indent=2, allow_nan=False) + "\n"
        return
    head = json.dumps({**doc, "requests": []}, indent=2, allow_nan=False)
    tail = '"requests": []\n}'
    assert head.endswith(tail), "internal error: the records must come last in the results file"
    parts = [head[: -len("[]\n}")] + "[\n    "]
    size = 0
    dumps = json.dumps
    for i, rec in enumerate(records):
        text = dumps(rec, indent=2, allow_nan=False).replace("\n", "\n    ")  # each record one level deeper
        parts.append(text if i == 0 else ",\n    " + text)
        size += len(text)
        if size >= CHUNK:
            yield "".join(parts)
            parts = []
            size = 0
    parts.append("\n  ]\n}\n")
    yield "".join(parts)

"""Standard output that fails (a full device, a closed pipe) ends a command with one line, not a traceback.

``run_cli`` puts a ``GuardedStdout`` in front of ``sys.stdout`` for the command: an ``OSError`` of a write or a
flush becomes ``StdoutFailed``, which is not an ``OSError`` (click turns a broken pipe into a silent exit 1 and
every other ``OSError`` would look like an internal error), and ``report`` then ends the command:

* a broken pipe (``blis evaluate | head``): the reader has all it wanted. Nothing is printed and the status is 141,
  128 + SIGPIPE, what a shell reports for ``cat``, ``yes`` or ``seq`` killed by SIGPIPE in the same pipeline (so
  ``set -o pipefail`` treats blis like them);
* any other error (``blis run > /dev/full``: ENOSPC, EIO, EFBIG, EDQUOT): one line
  ``blis: error: writing standard output: <reason>`` on stderr, exit 2 like every ``blis: error:``.

Either way file descriptor 1 is then pointed at /dev/null, so that the interpreter's last flush at exit finds
nothing to complain about. Output files are written before standard output, atomically (report/results_file.py),
so a failing standard output never leaves half a file.
"""

from __future__ import annotations

import errno
import os
import sys
from typing import Any, Iterable

EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
EXIT_WRITE_ERROR = 2


class StdoutFailed(Exception):
    """Writing standard output failed; ``cause`` is the ``OSError``."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(cause.strerror or str(cause))
        self.cause = cause


class GuardedStdout:
    """``sys.stdout`` with its write errors raised as ``StdoutFailed``; every other attribute is the stream's."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> Any:
        return self._stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise StdoutFailed(exc) from None

    def writelines(self, lines: Iterable[str]) -> None:
        try:
            self._stream.writelines(lines)
        except OSError as exc:
            raise StdoutFailed(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise StdoutFailed(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def install() -> Any:
    """Guard ``sys.stdout``; returns the stream to put back (``restore``)."""
    real = sys.stdout
    if real is not None and not isinstance(real, GuardedStdout):
        sys.stdout = GuardedStdout(real)  # type: ignore[assignment]
    return real


def restore(real: Any) -> None:
    sys.stdout = real


def report(exc: StdoutFailed) -> int:
    """End the command after a failed write to standard output (module docstring); returns the exit status."""
    stream = sys.stdout.wrapped if isinstance(sys.stdout, GuardedStdout) else sys.stdout
    _silence(stream)
    if exc.cause.errno == errno.EPIPE or isinstance(exc.cause, BrokenPipeError):
        return EXIT_BROKEN_PIPE
    reason = exc.cause.strerror or str(exc.cause) or type(exc.cause).__name__
    sys.stderr.write(f"blis: error: writing standard output: {reason}\n")
    sys.stderr.flush()
    return EXIT_WRITE_ERROR


def _silence(stream: Any) -> None:
    """Point the failed stream's file descriptor at /dev/null (what is still buffered goes nowhere)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing is flushed at exit
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, fd)
        os.close(null)
    except OSError:
        pass

"""stderr logging of the command line (ENGINE.md §14.4): one line per record, ``blis: <level>: <message>``.

Only the ``blis_sim`` logger is configured; the library itself never configures logging, it only logs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

LOGGER_NAME = "blis_sim"
DEFAULT_LEVEL = "warn"

# --log value -> logging level. The reference's extra names are aliases.
LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
    "panic": logging.CRITICAL,
}


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = f"blis: {record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info).rstrip("\n")
        if record.stack_info:
            text += "\n" + self.formatStack(record.stack_info).rstrip("\n")
        return text


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (test runners and progress displays swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.held: list[logging.LogRecord] | None = None  # records kept back by hold()

    def emit(self, record: logging.LogRecord) -> None:
        if self.held is not None:
            self.held.append(record)
            return
        super().emit(record)

    @property  # type: ignore[override]
    def stream(self):  # noqa: D401
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ assigns it; the property ignores it
        pass


def level_for(name: str | None) -> int | None:
    """The logging level of a ``--log`` value, or None when the value is not one of the accepted names."""
    if name is None:
        return LEVELS[DEFAULT_LEVEL]
    return LEVELS.get(name)


def configure(name: str | None = None) -> int:
    """Send ``blis_sim`` records at or above the ``--log`` level to stderr; returns the level used.

    An unknown name falls back to the default (the configuration check reports the bad value). Calling it again
    replaces the handler installed before, so repeated in-process runs never print a record twice.
    """
    level = level_for(name)
    if level is None:
        level = LEVELS[DEFAULT_LEVEL]
    reset()
    logger = logging.getLogger(LOGGER_NAME)
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    return level


def reset() -> None:
    """Undo ``configure``: remove its handler and the level it set (for in-process callers such as tests)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _StderrHandler):
            logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


def _handler() -> _StderrHandler | None:
    for handler in logging.getLogger(LOGGER_NAME).handlers:
        if isinstance(handler, _StderrHandler):
            return handler
    return None


def hold() -> None:
    """Keep records back until ``release``: a run that fails on its input then prints its error line alone."""
    handler = _handler()
    if handler is not None and handler.held is None:
        handler.held = []


def release(emit: bool = True) -> None:
    """Stop holding records back; print the held ones (``emit``) or drop them."""
    handler = _handler()
    if handler is None or handler.held is None:
        return
    records, handler.held = handler.held, None
    if emit:
        for record in records:
            handler.handle(record)


class _ListHandler(logging.Handler):
    def __init__(self, unique: bool) -> None:
        super().__init__(logging.WARNING)
        self.unique = unique
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if not (self.unique and message in self.messages):
            self.messages.append(message)


@contextlib.contextmanager
def captured_warnings(unique: bool = False) -> Iterator[list[str]]:
    """Route the ``blis_sim`` logger's warnings into a list (and nothing to stderr) for the duration: runs done for
    a larger command (evaluate points, sweep points) return their warnings instead of printing them. ``unique``
    keeps each message once."""
    logger = logging.getLogger(LOGGER_NAME)
    handler = _ListHandler(unique)
    saved = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.WARNING)
    try:
        yield handler.messages
    finally:
        logger.handlers, logger.propagate = saved[0], saved[2]
        logger.setLevel(saved[1])

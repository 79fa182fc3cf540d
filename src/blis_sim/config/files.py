"""Reading a user's input file (a defaults file, a policy bundle): the checks and messages every such file shares.

``stat_input`` names a missing file, a directory or an unreadable path with its flag before anything is read, and
returns what the readers cache on (the file is read again only when it changed); ``read_input`` reads it as UTF-8;
``read_input_file`` does both for readers that do not cache (a hardware config, a workload spec, a sweep).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def stat_input(path: Path | str, flag: str, what: str) -> tuple[str, int, int]:
    """(path, mtime in ns, size) of the input file ``path`` given with ``flag``; ``what`` says what is required
    ("a YAML policy bundle")."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{flag} {p}: no such file ({what} is required)") from None
    except OSError as exc:
        raise InputError(f"{flag} {p}: cannot be read ({exc.strerror or exc})") from None
    if p.is_dir():
        raise InputError(f"{flag} {p}: is a directory ({what} is required)")
    return str(p), st.st_mtime_ns, st.st_size


def read_input(path: Path | str, where: str) -> str:
    """The text of an input file; ``where`` (the flag and path) prefixes the error."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where}: cannot be read (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot be read ({exc.strerror or exc})") from None


def read_input_file(path: Path | str, flag: str, what: str) -> str:
    """The UTF-8 text of the input file ``path`` given with ``flag`` (no caching); ``what`` says what is required
    ("a JSON file of GPU calibrations")."""
    p = Path(path)
    where = f"{flag} {p}"
    required = f" ({what} is required)"
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: no such file{required}") from None
    except IsADirectoryError:
        raise InputError(f"{where}: is a directory{required}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot be read ({exc})") from None


def unreadable_value(exc: BaseException) -> str:
    """What a JSON/YAML parser's ValueError or RecursionError means, for ``not valid YAML (...)`` messages: an
    integer of more than 4,300 digits (Python's conversion limit) or nesting deeper than the parser's recursion."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    if "digits" in str(exc):
        return "a number with more than 4,300 digits"
    return str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__

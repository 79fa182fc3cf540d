"""Reading ground-truth files and their fields, with errors that name the file and the field.

Every problem with a ground-truth file is a ``GroundTruthError`` whose message is one line: ``<file>: <field>:
<what is wrong>``. Loaders read fields only through these helpers, so no loader can produce a traceback or a vaguer
message.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from ..config.files import unreadable_value
from ..config.validators import MAX_TOKEN_LENGTH
from ..errors import InputError

_MISSING = object()


class GroundTruthError(InputError):
    """A ground-truth file that cannot be used: unreadable, malformed, or a field missing or out of range."""

    def __init__(self, path: Path | str, field: str, problem: str) -> None:
        self.path, self.field, self.problem = str(path), field, problem
        super().__init__(f"{path}: {field}: {problem}" if field else f"{path}: {problem}")


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GroundTruthError(path, "", "no such file") from None
    except IsADirectoryError:
        raise GroundTruthError(path, "", "is a folder, a file was expected") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise GroundTruthError(path, "", f"cannot be read ({exc})") from None


def read_json(path: Path) -> Any:
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise GroundTruthError(path, "", f"not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting too deep
        raise GroundTruthError(path, "", f"not valid JSON ({unreadable_value(exc)})") from None


def read_yaml(path: Path) -> Any:
    text = read_text(path)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1} column {mark.column + 1})" if mark is not None else ""
        raise GroundTruthError(path, "", f"not valid YAML{where}") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting too deep
        raise GroundTruthError(path, "", f"not valid YAML ({unreadable_value(exc)})") from None


class Fields:
    """Typed access to a decoded mapping, e.g. ``Fields(obj, path, "vllm_config").int("max_num_seqs")``."""

    __slots__ = ("obj", "path", "prefix")

    def __init__(self, obj: Any, path: Path | str, prefix: str = "") -> None:
        if not isinstance(obj, dict):
            raise GroundTruthError(path, prefix or "(top level)", f"must be an object, got {_kind(obj)}")
        self.obj, self.path, self.prefix = obj, path, prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def error(self, key: str, problem: str) -> GroundTruthError:
        return GroundTruthError(self.path, self.name(key), problem)

    def has(self, key: str) -> bool:
        return self.obj.get(key) is not None

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        value = self.obj.get(key)
        if value is None:
            if default is _MISSING:
                raise self.error(key, "missing")
            return default
        return value

    def sub(self, key: str, optional: bool = False) -> "Fields | None":
        value = self.obj.get(key)
        if value is None and optional:
            return None
        if value is None:
            raise self.error(key, "missing (an object is required)")
        return Fields(value, self.path, self.name(key))

    def list(self, key: str, optional: bool = False) -> list:
        value = self.obj.get(key)
        if value is None and optional:
            return []
        if not isinstance(value, list):
            problem = "missing (a list is required)" if value is None else f"must be a list, got {_kind(value)}"
            raise self.error(key, problem)
        return value

    def str(self, key: str, default: Any = _MISSING) -> str:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, got {_show(value)}")
        return value.strip()

    def int(self, key: str, default: Any = _MISSING, minimum: int = 0, maximum: int | None = None) -> int:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        number = as_int(value)
        if number is None or number < minimum or (maximum is not None and number > maximum):
            need = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum:,}"
            raise self.error(key, f"must be an integer {need}, got {_show(value)}")
        return number

    def tokens(self, key: str, default: Any = _MISSING, minimum: int = 0) -> int:
        """A token count: an integer from ``minimum`` to the longest sequence blis-sim simulates."""
        return self.int(key, default, minimum, MAX_TOKEN_LENGTH)

    def float(self, key: str, default: Any = _MISSING, positive: bool = False) -> float:
        value = self.raw(key, default)
        if value is default and default is not _MISSING:
            return value
        number = as_float(value)
        if number is None or number < 0 or (positive and number == 0):
            need = "a finite number > 0" if positive else "a finite number >= 0"
            raise self.error(key, f"must be {need}, got {_show(value)}")
        return number


def as_int(value: Any) -> int | None:
    """An integer from a JSON/YAML number or numeric string (integral floats allowed); None otherwise."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    number = as_float(value)
    return int(number) if number is not None and number.is_integer() else None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, (set, tuple)) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def measured_metrics(values: dict[str, Any], names: dict[str, str], path: Path | str) -> dict[str, float]:
    """The recorded metrics of one point: ``values`` maps metric -> raw value (None: not recorded) and ``names``
    metric -> the field it came from. A value that is recorded but not a finite number > 0 cannot be a percentage
    error's denominator: ``GroundTruthError`` naming that field."""
    out: dict[str, float] = {}
    for metric, value in values.items():
        if value is None:
            continue
        number = as_float(value)
        if number is None or number <= 0:
            raise GroundTruthError(path, names.get(metric, metric),
                                   f"must be a finite number > 0 to compare against, got {_show(value)}")
        out[metric] = number
    return out


def read_profile(folder: Path) -> dict | None:
    """``folder/profile.yaml`` as a mapping, or None when it is absent or unreadable (format sniffing only)."""
    profile = folder / "profile.yaml"
    if not profile.is_file():
        return None
    try:
        raw = read_yaml(profile)
    except GroundTruthError:
        return None
    return raw if isinstance(raw, dict) else None

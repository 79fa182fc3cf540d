"""Run fields by their flat names (the Python API's and ``blis run``'s: ``model``, ``tp``, ``rate``, ...), and
configurations built from them.

A sweep's ``base`` and ``axes`` and ``blis capacity --vary`` name fields flat; this module knows which section of
``SimulationConfig`` holds each one (read from the configuration models themselves, so a field added there is
sweepable at once), resolves relative paths, and locates a validation error (the field at fault, or the fields a
rule across fields names), so that the caller can say where the bad value came from (``axes.tp[1]: must be an
integer >= 1, got 0``).
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..config.models import SimulationConfig
from ..config.validators import format_value

SECTIONS = ("latency", "engine", "workload", "cluster")
TOP = ""
# Output settings belong to the command that runs the points, not to a point.
NOT_SWEEPABLE = frozenset(SimulationConfig.model_fields["output"].annotation.model_fields)  # type: ignore[union-attr]


def _section_fields() -> dict[str, str]:
    out: dict[str, str] = {}
    for section in SECTIONS:
        model = SimulationConfig.model_fields[section].annotation
        for name in model.model_fields:  # type: ignore[union-attr]
            out[name] = section
    for name in SimulationConfig.model_fields:
        if name not in SECTIONS and name != "output":
            out[name] = TOP
    return out


FIELD_SECTION: dict[str, str] = _section_fields()


def _is_path(annotation: Any) -> bool:
    if annotation is Path:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_is_path(a) for a in typing.get_args(annotation))
    return False


def _path_fields() -> frozenset[str]:
    out = set()
    for name, section in FIELD_SECTION.items():
        model = SimulationConfig if section == TOP else SimulationConfig.model_fields[section].annotation
        if _is_path(model.model_fields[name].annotation):  # type: ignore[union-attr]
            out.add(name)
    return frozenset(out)


PATH_FIELDS = _path_fields()


def field_names() -> list[str]:
    return sorted(FIELD_SECTION)


def check_field(name: Any, where: str) -> str:
    """``name`` when it is a run field a point may set; else an error message (raised as ``ValueError``)."""
    if not isinstance(name, str):
        raise ValueError(f"{where}: a run field name must be a string, got {format_value(name)}")
    if name in NOT_SWEEPABLE:
        raise ValueError(f"{where}: {name} is an output setting of one run, not a field a point can set")
    if name not in FIELD_SECTION:
        near = difflib.get_close_matches(name, field_names(), n=1, cutoff=0.75)
        hint = f"; did you mean {near[0]}?" if near else f" (fields: {', '.join(field_names())})"
        raise ValueError(f"{where}: unknown run field {name!r}{hint}")
    return name


def resolve_path(value: Any, root: Path | None) -> Any:
    """A relative path field read from a file is relative to that file's folder (``root``)."""
    if value is None or value == "" or root is None:
        return value
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else Path(os.path.normpath(root / path))


def nested(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Flat run fields as the keyword arguments of ``SimulationConfig``."""
    kwargs: dict[str, Any] = {}
    for name, value in fields.items():
        section = FIELD_SECTION[name]
        if section == TOP:
            kwargs[name] = value
        else:
            kwargs.setdefault(section, {})[name] = value
    kwargs.setdefault("latency", {})
    return kwargs


def flat(cfg: SimulationConfig) -> dict[str, Any]:
    """The fields of ``cfg`` that were given explicitly, by flat name (what ``nested`` turns back into ``cfg``)."""
    out: dict[str, Any] = {}
    dumped = cfg.model_dump(exclude_unset=True)
    for key, value in dumped.items():
        if key in SECTIONS and isinstance(value, dict):
            out.update(value)
        elif key != "output":
            out[key] = value
    return out


_FLAG = re.compile(r"--([a-z0-9]+(?:-[a-z0-9]+)*)")


class BuildError(ValueError):
    """A configuration that does not validate: ``field`` is the field at fault (None for a rule across fields,
    whose ``text`` names the fields it involves, listed in ``mentions``)."""

    def __init__(self, field: str | None, text: str, mentions: tuple[str, ...] = ()) -> None:
        super().__init__(text if field is None else f"{field}: {text}")
        self.field = field
        self.text = text
        self.mentions = mentions


def build(fields: Mapping[str, Any]) -> SimulationConfig:
    """A validated configuration from flat ``fields``; ``BuildError`` locates the first error."""
    try:
        return SimulationConfig(**nested(fields))
    except ValidationError as exc:
        raise describe_error(exc) from None


def _field_of(loc: tuple) -> str | None:
    if len(loc) >= 2 and loc[0] in SECTIONS and isinstance(loc[1], str):
        return loc[1]
    if loc and isinstance(loc[0], str) and FIELD_SECTION.get(loc[0]) == TOP:
        return loc[0]
    return None


def _text(err: dict) -> str:
    cause = (err.get("ctx") or {}).get("error")
    text = str(cause) if isinstance(cause, BaseException) else str(err.get("msg", "is invalid"))
    text = " ".join(text.split())
    return text.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _unflag(text: str) -> str:
    """Model-level messages name flags (``--tp``); in a file they are fields (``tp``)."""
    return _FLAG.sub(lambda m: m.group(1).replace("-", "_") if m.group(1).replace("-", "_") in FIELD_SECTION
                     else m.group(0), text)


def _mentions(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in (m.replace("-", "_") for m in _FLAG.findall(text)) if n in FIELD_SECTION))


def describe_error(exc: ValidationError) -> BuildError:
    """The first error of a validation, located: field errors before rules across fields, as the CLI orders them."""
    errors = exc.errors()
    errors.sort(key=lambda e: 0 if _field_of(tuple(e.get("loc", ()))) else 1)
    err = errors[0]
    name = _field_of(tuple(err.get("loc", ())))
    text = _text(err)
    if name is None:
        m = re.match(r"--([a-z0-9-]+) (must .*)", text)
        if m and m.group(1).replace("-", "_") in FIELD_SECTION and len(_mentions(text)) == 1:
            # "--tp must be ..." raised by the model about one field
            return BuildError(m.group(1).replace("-", "_"), _unflag(m.group(2)))
        return BuildError(None, _unflag(text), _mentions(text))
    if err.get("type") == "missing":
        return BuildError(name, "required")
    value = format_value(err.get("input"))
    if text.startswith("must"):
        return BuildError(name, f"{text}, got {value}")
    return BuildError(name, f"{text[:1].lower()}{text[1:]}, got {value}")

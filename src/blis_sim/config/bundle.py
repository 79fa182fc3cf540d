"""The policy bundle (``--policy-config FILE``, ENGINE.md §11.5): the four policy choices of a run in one YAML file.

```yaml
admission: {policy: token-bucket, token_bucket_capacity: 5000, token_bucket_refill_rate: 800}
routing: {policy: weighted, scorers: [{name: queue-depth, weight: 2}, {name: kv-utilization, weight: 1}]}
priority: {policy: slo-based}
scheduler: priority-fcfs
```

Every key is optional; a key left out (or written with no value) leaves that choice to its flag or default. A bundle
value applies only where its flag was not given explicitly (``is_set``): flags win over the bundle, the bundle wins
over the defaults. The result is a new frozen configuration whose fields carry the bundle's values while
``model_fields_set`` still lists only the explicit flags, so ``is_set`` keeps meaning "given on the command line".

The schema is strict, like the defaults file's: unknown keys at any level, duplicate keys, names outside the flags'
sets and numbers that are not finite and > 0 are ``InputError``s naming the file and the key path
(``routing.scorers[1].weight``).
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import InputError
from .files import read_input, stat_input, unreadable_value
from .models import SimulationConfig
from .names import (
    ADMISSION_POLICIES,
    DEFAULT_SCORERS,
    PRIORITY_POLICIES,
    ROUTING_POLICIES,
    SCHEDULERS,
    SCORERS,
)
from .validators import format_value

__all__ = ["TARGETS", "PolicyBundle", "apply_bundle", "load_bundle", "named_by", "parse_bundle",
           "warn_ignored_scorers", "with_policy_bundle"]

log = logging.getLogger("blis_sim")

# bundle key path -> (configuration section, field); the flag that wins over the key is --<field with dashes>
TARGETS: Mapping[str, tuple[str, str]] = MappingProxyType({
    "admission.policy": ("cluster", "admission_policy"),
    "admission.token_bucket_capacity": ("cluster", "token_bucket_capacity"),
    "admission.token_bucket_refill_rate": ("cluster", "token_bucket_refill_rate"),
    "routing.policy": ("cluster", "routing_policy"),
    "routing.scorers": ("cluster", "routing_scorers"),
    "priority.policy": ("engine", "priority_policy"),
    "scheduler": ("engine", "scheduler"),
})


class _BundleError(Exception):
    """A content error; ``message`` starts with or names the key path (``routing.scorers[1].weight``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class PolicyBundle:
    """A validated bundle: the values it sets, keyed by key path (``TARGETS``), in the configuration's own form
    (``routing.scorers`` as the ``name:weight,...`` text of ``--routing-scorers``)."""

    source: str
    values: Mapping[str, Any]


# ---------------------------------------------------------------------------------------------------------------------
# Reading: YAML with duplicate keys refused, then the schema
# ---------------------------------------------------------------------------------------------------------------------


def _path(parent: str, key: Any) -> str:
    return f"{parent}.{key}" if parent else str(key)


def _item(parent: str, index: int) -> str:
    return f"{parent}[{index}]"


def _check_duplicates(node: yaml.Node | None, path: str = "", seen: set[int] | None = None) -> None:
    """PyYAML keeps the last of two equal keys silently; a bundle with two ``policy`` keys is a mistake to report."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:  # an alias shares its node: visit it once
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], yaml.Node] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                earlier = first.setdefault((key_node.tag, key_node.value), key_node)
                if earlier is not key_node:
                    raise _BundleError(
                        f"duplicate key {_path(path, key_node.value)} at line {key_node.start_mark.line + 1} "
                        f"(first at line {earlier.start_mark.line + 1}; a key may appear once)"
                    )
                _check_duplicates(value_node, _path(path, key_node.value), seen)
            else:
                _check_duplicates(value_node, path, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_duplicates(item, _item(path, i), seen)


def _load_yaml(text: str) -> Any:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        _check_duplicates(node)
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _shown(value: Any) -> str:
    """A rejected YAML value as the user wrote it: null, true, 0, 'text'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return format_value(value)


def _name(choices: tuple[str, ...]) -> Callable[[Any, str], str]:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str) or value not in choices:
            raise _BundleError(f"{path} must be one of {', '.join(sorted(choices))}; got {_shown(value)}")
        return value

    return check


def _positive(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
        raise _BundleError(f"{path} must be a finite number > 0, got {_shown(value)}")
    return float(value)


_SCORER_KEYS = ("name", "weight")
_DEFAULT_PROFILE = ", ".join(f"{name}:{format_value(weight)}" for name, weight in DEFAULT_SCORERS)


def _scorers(value: Any, path: str) -> str:
    """``[{name, weight}, ...]`` as ``--routing-scorers`` text, in list order (the order scores are added in)."""
    if not isinstance(value, list):
        raise _BundleError(f"{path} must be a list of scorers, each a mapping with keys name, weight; "
                           f"got {_shown(value)}")
    if not value:
        raise _BundleError(f"{path} must list at least one scorer (leave the key out for the default profile "
                           f"{_DEFAULT_PROFILE})")
    where: dict[str, str] = {}
    out: list[str] = []
    for i, item in enumerate(value):
        item_path = _item(path, i)
        if not isinstance(item, dict):
            raise _BundleError(f"{item_path} must be a mapping with keys name, weight; got {_shown(item)}")
        _known_keys(item, _SCORER_KEYS, item_path)
        for key, accepted in (("name", "one of " + ", ".join(sorted(SCORERS))), ("weight", "a finite number > 0")):
            if key not in item:
                raise _BundleError(f"{_path(item_path, key)} is missing ({accepted})")
        name = _name(SCORERS)(item["name"], _path(item_path, "name"))
        if name in where:
            raise _BundleError(f"{_path(item_path, 'name')} repeats {name} (already {where[name]}); "
                               "each scorer may be listed once")
        where[name] = item_path
        weight = _positive(item["weight"], _path(item_path, "weight"))
        out.append(f"{name}:{format_value(weight)}")
    return ",".join(out)


# The schema: a mapping of key -> nested schema or a check (value, key path) -> value in the configuration's form.
_Schema = Mapping[str, Any]
SCHEMA: _Schema = {
    "admission": {
        "policy": _name(ADMISSION_POLICIES),
        "token_bucket_capacity": _positive,
        "token_bucket_refill_rate": _positive,
    },
    "routing": {"policy": _name(ROUTING_POLICIES), "scorers": _scorers},
    "priority": {"policy": _name(PRIORITY_POLICIES)},
    "scheduler": _name(SCHEDULERS),
}


def _known_keys(data: dict, accepted: tuple[str, ...] | Mapping[str, Any], path: str) -> None:
    for key in data:
        if key not in accepted:
            raise _BundleError(f"unknown key {_path(path, key)} (accepted there: {', '.join(accepted)})")


def _walk(data: dict, schema: _Schema, path: str, out: dict[str, Any]) -> None:
    _known_keys(data, schema, path)
    for key, rule in schema.items():  # schema order: the first failing key in a fixed order
        value = data.get(key)
        if value is None:  # left out, or written with no value: the flag or the default decides
            continue
        key_path = _path(path, key)
        if isinstance(rule, Mapping):
            if not isinstance(value, dict):
                example = f" (for example {key_path}: {{policy: {value}}})" if isinstance(value, str) else ""
                raise _BundleError(f"{key_path} must be a mapping with keys {', '.join(rule)}; "
                                   f"got {_shown(value)}{example}")
            _walk(value, rule, key_path, out)
        else:
            out[key_path] = rule(value, key_path)


def parse_bundle(text: str, where: str, source: str) -> PolicyBundle:
    """Validate YAML text; ``where`` names the file in error messages (flag and path)."""
    try:
        raw = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        pos = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"{where}: not valid YAML{pos} ({exc.problem})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({exc})") from None
    except _BundleError as exc:
        raise InputError(f"{where}: {exc.message}") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting too deep
        raise InputError(f"{where}: not valid YAML ({unreadable_value(exc)})") from None
    if raw is None:
        raw = {}  # an empty file (or only comments): a bundle that sets nothing
    if not isinstance(raw, dict):
        raise InputError(f"{where}: must be a YAML mapping with keys {', '.join(SCHEMA)}; got {_shown(raw)}")
    values: dict[str, Any] = {}
    try:
        _walk(raw, SCHEMA, "", values)
    except _BundleError as exc:
        raise InputError(f"{where}: {exc.message}") from None
    return PolicyBundle(source=source, values=MappingProxyType(values))


@functools.lru_cache(maxsize=8)
def _read(path: str, _mtime_ns: int, _size: int) -> PolicyBundle:
    where = f"--policy-config {path}"
    return parse_bundle(read_input(path, where), where, path)


def load_bundle(path: Path | str) -> PolicyBundle:
    """The bundle at ``path`` (cached while the file is unchanged)."""
    return _read(*stat_input(path, "--policy-config", "a YAML policy bundle"))


# ---------------------------------------------------------------------------------------------------------------------
# Applying: the bundle's values where no flag was given
# ---------------------------------------------------------------------------------------------------------------------


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else format_value(value)


def _replace_fields(section: BaseModel, fields: dict[str, Any], where: str) -> BaseModel:
    """``section`` with ``fields`` replaced and validated, its explicit fields (``model_fields_set``) unchanged."""
    model = type(section)
    try:
        checked = model.model_validate({**dict(section), **fields})  # the section's own rules, on the new values
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"{where}: {str(err['msg']).removeprefix('Value error, ')}") from None
    return model.model_construct(_fields_set=set(section.model_fields_set), **dict(checked))


def apply_bundle(cfg: SimulationConfig, bundle: PolicyBundle) -> SimulationConfig:
    """``cfg`` with the bundle's values wherever the corresponding flag was not given explicitly; logs (info) which
    values were applied and which were overridden by flags."""
    where = f"--policy-config {bundle.source}"
    updates: dict[str, dict[str, Any]] = {}
    applied: list[str] = []
    overridden: list[str] = []
    for key, value in bundle.values.items():
        section, field = TARGETS[key]
        current = getattr(cfg, section)
        if current.is_set(field):
            overridden.append(f"{key}={_text(value)} ({_flag(field)} {_text(getattr(current, field))})")
        else:
            updates.setdefault(section, {})[field] = value
            applied.append(f"{key}={_text(value)}")
    if not bundle.values:
        log.info("%s: the bundle sets no policy", where)
    if applied:
        log.info("%s: applied %s", where, ", ".join(applied))
    if overridden:
        log.info("%s: overridden by flags: %s", where, "; ".join(overridden))
    if not updates:
        return cfg
    sections = {name: _replace_fields(getattr(cfg, name), fields, where) for name, fields in updates.items()}
    return SimulationConfig.model_construct(_fields_set=set(cfg.model_fields_set), **{**dict(cfg), **sections})


def with_policy_bundle(cfg: SimulationConfig) -> SimulationConfig:
    """``cfg`` with its ``--policy-config`` bundle applied (``cfg`` itself when it names none)."""
    path = cfg.cluster.policy_config
    if path is None:
        return cfg
    return apply_bundle(cfg, load_bundle(path))


def named_by(cfg: SimulationConfig, section: str, field: str) -> str:
    """Who chose the value of a bundle field, for messages: its flag (``--scheduler``), or the bundle's key
    (``--policy-config FILE: scheduler``) when the flag was not given and a bundle was."""
    if getattr(cfg, section).is_set(field) or cfg.cluster.policy_config is None:
        return _flag(field)
    key = next(k for k, target in TARGETS.items() if target == (section, field))
    return f"--policy-config {cfg.cluster.policy_config}: {key}"


def warn_ignored_scorers(cfg: SimulationConfig) -> None:
    """ENGINE.md §11.2: scorers with a routing policy other than ``weighted`` are ignored, with a warning."""
    cluster = cfg.cluster
    if not cluster.routing_scorers or cluster.routing_policy == "weighted":
        return
    log.warning("%s %s ignored: scorers apply to --routing-policy weighted only (the routing policy is %s)",
                named_by(cfg, "cluster", "routing_scorers"), cluster.routing_scorers, cluster.routing_policy)

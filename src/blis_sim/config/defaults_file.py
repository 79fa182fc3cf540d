"""The defaults file (``--defaults-filepath``, ENGINE.md §9.4): coefficient rows, per-model defaults and presets.

The schema is strict because a misspelt key in a hand-edited file would otherwise be silently ignored and change
which row a run uses: unknown keys at any level, wrong types and out-of-range values are ``InputError``s naming the
file and the key path (``models[3].alpha_coeffs``). Without the flag the packaged file is read through
``importlib.resources`` (never from the current directory) and parsed once per process.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..errors import InputError
from .files import read_input, stat_input, unreadable_value
from .validators import MAX_COEFF_US, MAX_TOKEN_LENGTH

PRESET_KEYS = (
    "prefix_tokens",
    "prompt_tokens",
    "prompt_tokens_stdev",
    "prompt_tokens_min",
    "prompt_tokens_max",
    "output_tokens",
    "output_tokens_stdev",
    "output_tokens_min",
    "output_tokens_max",
)
PACKAGED_NAME = "defaults.yaml"


def _must(ok, accepted: str) -> AfterValidator:
    def check(value):
        if not ok(value):
            raise ValueError(f"must be {accepted}")
        return value

    return AfterValidator(check)


def _number_to_str(value: Any) -> Any:
    # YAML reads "version: 1.0" as a float; a version is text either way.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


_IntGE0 = Annotated[int, Strict(), _must(lambda v: v >= 0, "an integer >= 0")]
_IntGE1 = Annotated[int, Strict(), _must(lambda v: v >= 1, "an integer >= 1")]
_Str = Annotated[str, Strict()]
_NonEmpty = Annotated[str, Strict(), _must(lambda v: bool(v.strip()), "a non-empty string")]
_Coeff = Annotated[float, Strict(), _must(lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
                   _must(lambda v: v <= MAX_COEFF_US, f"a number from 0 to {MAX_COEFF_US:,.0f} (microseconds)")]
_Prefix = Annotated[int, Strict(), _must(lambda v: 0 <= v <= MAX_TOKEN_LENGTH,
                                         f"an integer from 0 to {MAX_TOKEN_LENGTH:,} (the longest request)")]
_Coeffs = Annotated[list[_Coeff], Field(min_length=3, max_length=3)]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in data:
                if key not in cls.model_fields:
                    raise PydanticCustomError(
                        "unknown_key",
                        "unknown key {key} (accepted there: {accepted})",
                        {"key": str(key), "accepted": ", ".join(cls.model_fields)},
                    )
        return data


class ModelDefault(_Strict):
    """``defaults[model]``: what fills ``--hardware``, ``--tp`` and ``--vllm-version`` when they are not given."""

    GPU: _NonEmpty
    tensor_parallelism: _IntGE1
    vllm_version: _NonEmpty


class _Preset(_Strict):
    prefix_tokens: _Prefix = 0
    prompt_tokens: _IntGE0
    prompt_tokens_stdev: _IntGE0
    prompt_tokens_min: _IntGE0
    prompt_tokens_max: _IntGE0
    output_tokens: _IntGE0
    output_tokens_stdev: _IntGE0
    output_tokens_min: _IntGE0
    output_tokens_max: _IntGE0


class CoeffRow(_Strict):
    """One fitted blackbox row: α (µs, µs/prompt token, µs/output token), β (µs, µs/prefill token, µs/decode)."""

    id: _NonEmpty
    GPU: _NonEmpty
    tensor_parallelism: _IntGE1
    vllm_version: _NonEmpty
    alpha_coeffs: _Coeffs
    beta_coeffs: _Coeffs
    total_kv_blocks: _IntGE1
    best_loss: Annotated[float, Strict()] | None = None  # fit quality; unused


class _Schema(_Strict):
    version: Annotated[str, BeforeValidator(_number_to_str), Strict()] | None = None
    defaults: dict[_Str, ModelDefault] = Field(default_factory=dict)
    workloads: dict[_Str, _Preset] = Field(default_factory=dict)
    models: list[CoeffRow] = Field(default_factory=list)


def normalize_vllm_version(version: str) -> str:
    """Compare versions by release only: ``vllm/vllm-openai:v0.8.4``, ``v0.8.4`` and ``0.8.4`` are all ``0.8.4``."""
    tag = version.strip().rsplit(":", 1)[-1].lower()
    return tag[1:] if tag.startswith("v") else tag


@dataclass(frozen=True)
class DefaultsFile:
    """A validated defaults file. ``workloads`` maps preset name -> the 9 length parameters (prefix filled with 0)."""

    source: str
    version: str | None
    defaults: Mapping[str, ModelDefault]  # keys lower-cased
    workloads: Mapping[str, Mapping[str, int]]
    models: tuple[CoeffRow, ...]

    def preset(self, name: str) -> dict[str, int]:
        """The 9 length parameters of preset ``name`` (a fresh dict)."""
        found = self.workloads.get(name)
        if found is None:
            raise InputError(
                f"--workload {name}: the defaults file {self.source} has no '{name}' entry in its workloads section "
                f"(it has: {', '.join(sorted(self.workloads)) or 'none'})"
            )
        return dict(found)

    def rows_for(self, model_id: str) -> list[CoeffRow]:
        """Every coefficient row of ``model_id`` (case-insensitive), in file order."""
        key = model_id.lower()
        return [row for row in self.models if row.id.lower() == key]

    def find_row(self, model_id: str, gpu: str, tp: int, vllm_version: str) -> CoeffRow | None:
        """The **first** row matching all four (model and GPU case-insensitively; versions by release, see above)."""
        gpu_key = gpu.lower()
        ver_key = normalize_vllm_version(vllm_version)
        for row in self.rows_for(model_id):
            if (
                row.GPU.lower() == gpu_key
                and row.tensor_parallelism == tp
                and normalize_vllm_version(row.vllm_version) == ver_key
            ):
                return row
        return None


def _loc(parts: tuple) -> str:
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_WORDS = {
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "string_type": "must be a string",
    "dict_type": "must be a mapping",
    "list_type": "must be a list",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "too_short": "must be a list of exactly 3 numbers",
    "too_long": "must be a list of exactly 3 numbers",
    "missing": "is missing",
}


def _message(err: dict) -> str:
    loc = tuple(err["loc"])
    if err["type"] == "unknown_key":
        ctx = err.get("ctx", {})
        return f"unknown key {_loc(loc + (ctx.get('key', '?'),))} (accepted there: {ctx.get('accepted', '')})"
    words = _TYPE_WORDS.get(err["type"])
    if words is None:
        words = str(err["msg"]).removeprefix("Value error, ")
    got = "" if err["type"] == "missing" else f", got {err.get('input')!r}"
    return f"{_loc(loc) or 'top level'} {words}{got}"


def parse_defaults(text: str, where: str, source: str) -> DefaultsFile:
    """Validate YAML text; ``where`` names the file in error messages (flag and path)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        raw = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        pos = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise InputError(f"{where}: not valid YAML{pos} ({exc.problem})") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: not valid YAML ({exc})") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting too deep
        raise InputError(f"{where}: not valid YAML ({unreadable_value(exc)})") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InputError(f"{where}: must be a YAML mapping with keys version, defaults, workloads, models")
    try:
        schema = _Schema.model_validate(raw)
    except ValidationError as exc:
        raise InputError(f"{where}: {_message(exc.errors()[0])}") from None
    workloads = {
        name: MappingProxyType({key: getattr(p, key) for key in PRESET_KEYS}) for name, p in schema.workloads.items()
    }
    return DefaultsFile(
        source=source,
        version=schema.version,
        defaults=MappingProxyType({k.lower(): v for k, v in schema.defaults.items()}),
        workloads=MappingProxyType(workloads),
        models=tuple(schema.models),
    )


@functools.lru_cache(maxsize=1)
def _packaged() -> DefaultsFile:
    res = resources.files("blis_sim").joinpath("data", PACKAGED_NAME)
    source = str(res)
    try:
        text = res.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:  # a broken installation, still reported as one line
        raise InputError(f"packaged defaults file {source}: cannot be read ({exc})") from None
    return parse_defaults(text, f"packaged defaults file {source}", source)


@functools.lru_cache(maxsize=8)
def _user_file(path: str, _mtime_ns: int, _size: int) -> DefaultsFile:
    where = f"--defaults-filepath {path}"
    return parse_defaults(read_input(path, where), where, path)


def load_defaults(path: Path | str | None = None) -> DefaultsFile:
    """The defaults file at ``path``, or the packaged one when ``path`` is None (both cached while unchanged)."""
    if path is None:
        return _packaged()
    return _user_file(*stat_input(path, "--defaults-filepath", "a YAML defaults file"))


def preset(name: str, path: Path | str | None = None) -> dict[str, int]:
    """The 9 length parameters of preset ``name`` from the defaults file at ``path`` (packaged when None)."""
    return load_defaults(path).preset(name)

"""Workload specs (ENGINE.md §10.5): the pydantic model that a ``--workload-spec`` YAML file fills, and its loader.

Build one in code (``WorkloadSpec(clients=[ClientSpec(...)], aggregate_rate=10, num_requests=100)``) or read a file
with ``load_spec(path)``; either way every field is checked the same way. Parsing is strict: unknown keys are errors,
and each error is one line naming the YAML path of the bad field and what is accepted, e.g.
``--workload-spec w.yaml: clients[1].arrival.cv: must be a finite number > 0, got -1``. The ``inference_perf`` and
``servegen_data`` blocks are expanded into clients (workload/expansions.py) before the whole spec is checked.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, model_validator

from ..config.files import read_input_file, unreadable_value
from ..config.validators import MAX_ARRIVAL_SECONDS, MAX_TOKEN_LENGTH
from ..errors import InputError
from .samplers import PROCESSES, SAMPLERS, WEIBULL_CV_RANGE

FLAG = "--workload-spec"
SLO_CLASSES = ("", "realtime", "interactive", "batch")
CATEGORIES = ("", "language", "multimodal", "reasoning")
DEFAULT_PREFIX_LENGTH = 50


def _got(v: Any) -> str:
    text = repr(v) if isinstance(v, str) else ("null" if v is None else str(v).lower() if isinstance(v, bool)
                                               else str(v))
    return text if len(text) <= 60 else text[:60] + "..."


def _number(v: Any, what: str, ok) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not ok(v):
        raise ValueError(f"must be {what}, got {_got(v)}")
    return float(v)


def _integer(v: Any, what: str, ok) -> int:
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, bool) or not isinstance(v, int) or not ok(v):
        raise ValueError(f"must be {what}, got {_got(v)}")
    return v


def _v(fn):
    return BeforeValidator(fn)


Finite = Annotated[float, _v(lambda v: _number(v, "a finite number", lambda x: True))]
FiniteGT0 = Annotated[float, _v(lambda v: _number(v, "a finite number > 0", lambda x: x > 0))]
FiniteGE0 = Annotated[float, _v(lambda v: _number(v, "a finite number >= 0", lambda x: x >= 0))]
IntGE0 = Annotated[int, _v(lambda v: _integer(v, "an integer >= 0", lambda x: x >= 0))]
IntGE1 = Annotated[int, _v(lambda v: _integer(v, "an integer >= 1", lambda x: x >= 1))]
Int = Annotated[int, _v(lambda v: _integer(v, "an integer", lambda x: abs(x) <= 2**53))]
# Bounded like trace arrivals (config/validators.py): simulated times within MAX_ARRIVAL_SECONDS, token lengths
# within MAX_TOKEN_LENGTH (a prefix is drawn whole, before any request).
_MAX_US = int(MAX_ARRIVAL_SECONDS * 1e6)
Ticks = Annotated[int, _v(lambda v: _integer(v, f"an integer from 0 to {_MAX_US:,} (microseconds)",
                                             lambda x: 0 <= x <= _MAX_US))]
Seconds = Annotated[float, _v(lambda v: _number(v, f"a finite number > 0 and at most {MAX_ARRIVAL_SECONDS:g} (seconds)",
                                                lambda x: 0 < x <= MAX_ARRIVAL_SECONDS))]
Tokens = Annotated[int, _v(lambda v: _integer(v, f"an integer from 0 to {MAX_TOKEN_LENGTH:,}",
                                              lambda x: 0 <= x <= MAX_TOKEN_LENGTH))]


def _string(v: Any) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return str(v)  # YAML reads `version: 1` as a number
    if not isinstance(v, str):
        raise ValueError(f"must be a string, got {_got(v)}")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"must be true or false, got {_got(v)}")
    return v


def _one_of(*names: str):
    def check(v: Any) -> str:
        if not isinstance(v, str) or v not in names:
            raise ValueError(f"must be one of {', '.join(repr(n) for n in names)}, got {_got(v)}")
        return v
    return _v(check)


Str = Annotated[str, _v(_string)]
Bool = Annotated[bool, _v(_bool)]


class _Strict(BaseModel):
    """Unknown keys are errors that list the accepted ones; a non-mapping is an error too."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, dict):
            raise ValueError(f"must be a mapping with the keys {', '.join(cls.model_fields)}, got {_got(data)}")
        unknown = [k for k in data if k not in cls.model_fields]
        if unknown:
            raise ValueError(f"unknown key {unknown[0]!r} (accepted: {', '.join(cls.model_fields)})")
        return data


def _check_params(kind: str, params: Any, where: str) -> dict:
    """The parameters of a length sampler (§10.4); errors say ``@params.<key>: ...`` (the path is joined later)."""
    if not isinstance(params, dict):
        raise ValueError(f"@{where}: must be a mapping, got {_got(params)}")
    if kind == "empirical":
        if "file" in params:
            raise ValueError(f"@{where}.file: an empirical distribution from a file is not supported (give the "
                             "bins inline: token count -> probability)")
        if not params:
            raise ValueError(f"@{where}: an empirical distribution needs at least one bin (token count -> probability)")
        out = {}
        for key, p in params.items():
            try:
                count = _integer(int(key) if isinstance(key, str) and key.strip().lstrip("+").isdigit() else key,
                                 "an integer >= 1", lambda x: x >= 1)
            except ValueError as exc:
                raise ValueError(f"@{where}: bin {_got(key)}: a token count {exc}") from None
            try:
                out[count] = _number(p, "a finite number >= 0", lambda x: x >= 0)
            except ValueError as exc:
                raise ValueError(f"@{where}.{key}: {exc}") from None
        if not any(p > 0 for p in out.values()):
            raise ValueError(f"@{where}: at least one probability must be > 0")
        return out
    rules: dict[str, tuple[str, Any]] = {
        "gaussian": {"mean": ("a finite number", lambda x: True), "std_dev": ("a finite number >= 0", lambda x: x >= 0),
                     "min": ("a finite number", lambda x: True), "max": ("a finite number", lambda x: True)},
        "exponential": {"mean": ("a finite number > 0", lambda x: x > 0)},
        "pareto_lognormal": {"alpha": ("a finite number > 0", lambda x: x > 0),
                             "xm": ("a finite number > 0", lambda x: x > 0),
                             "mu": ("a finite number", lambda x: True),
                             "sigma": ("a finite number >= 0", lambda x: x >= 0),
                             "mix_weight": ("a finite number in [0, 1]", lambda x: 0 <= x <= 1)},
        "constant": {"value": ("a finite number >= 1", lambda x: x >= 1)},
    }[kind]
    unknown = [k for k in params if k not in rules]
    if unknown:
        raise ValueError(f"@{where}: unknown key {unknown[0]!r} (accepted for {kind}: {', '.join(rules)})")
    out = {}
    for key, (what, ok) in rules.items():
        if key not in params:
            raise ValueError(f"@{where}.{key}: is required ({what})")
        try:
            out[key] = _number(params[key], what, ok)
        except ValueError as exc:
            raise ValueError(f"@{where}.{key}: {exc}") from None
    if kind == "gaussian" and out["min"] > out["max"]:
        raise ValueError(f"@{where}.min: must be <= max, got min={out['min']:g} max={out['max']:g}")
    return out


class Distribution(_Strict):
    """A length sampler (§10.4): ``type`` and its ``params``."""

    type: Annotated[str, _one_of(*SAMPLERS)]
    params: dict = {}

    @model_validator(mode="after")
    def _params(self) -> "Distribution":
        object.__setattr__(self, "params", _check_params(self.type, self.params, "params"))
        return self


class Arrival(_Strict):
    process: Annotated[str, _one_of(*PROCESSES)] = "poisson"
    cv: FiniteGT0 = 1.0

    @model_validator(mode="after")
    def _weibull(self) -> "Arrival":
        lo, hi = WEIBULL_CV_RANGE
        if self.process == "weibull" and not lo <= self.cv <= hi:
            raise ValueError(f"@cv: must be a finite number in [{lo}, {hi}] for weibull arrivals, got {_got(self.cv)}")
        return self


class Window(_Strict):
    start_us: Ticks
    end_us: Ticks

    @model_validator(mode="after")
    def _order(self) -> "Window":
        if self.end_us <= self.start_us:
            raise ValueError(f"@end_us: must be an integer > start_us ({self.start_us}), got {self.end_us}")
        return self


class Lifecycle(_Strict):
    windows: tuple[Window, ...] = ()


class Network(_Strict):
    rtt_ms: FiniteGE0 = 0.0
    bandwidth_mbps: FiniteGT0 = 1000.0


class Multimodal(_Strict):
    text_distribution: Distribution | None = None
    image_distribution: Distribution | None = None
    image_count_distribution: Distribution | None = None
    audio_distribution: Distribution | None = None
    audio_count_distribution: Distribution | None = None
    video_distribution: Distribution | None = None
    video_count_distribution: Distribution | None = None


class MultiTurn(_Strict):
    max_rounds: IntGE1 = 1
    think_time_us: Ticks = 0
    context_growth: Annotated[str, _one_of("", "accumulate")] = ""


class Reasoning(_Strict):
    reason_ratio_distribution: Distribution | None = None
    multi_turn: MultiTurn | None = None


class ClientSpec(_Strict):
    """One client (§10.5)."""

    id: Str = ""
    tenant_id: Str = ""
    slo_class: Annotated[str, _one_of(*SLO_CLASSES)] = ""
    rate_fraction: FiniteGT0 = 1.0
    streaming: Bool = False
    priority: Int = 0  # Request.priority for --scheduler vllm-priority (lower is served first)
    arrival: Arrival = Arrival()
    input_distribution: Distribution | None = None
    output_distribution: Distribution | None = None
    prefix_group: Str = ""
    prefix_length: Tokens = 0
    network: Network | None = None
    lifecycle: Lifecycle | None = None
    multimodal: Multimodal | None = None
    reasoning: Reasoning | None = None

    @model_validator(mode="after")
    def _lengths(self) -> "ClientSpec":
        if self.output_distribution is None:
            raise ValueError("@output_distribution: is required (a length sampler {type, params})")
        if self.input_distribution is None and self.multimodal is None:
            raise ValueError("@input_distribution: is required unless multimodal supplies the input "
                             "(a length sampler {type, params})")
        return self

    @property
    def multi_turn(self) -> MultiTurn | None:
        return self.reasoning.multi_turn if self.reasoning is not None else None


class IPStage(_Strict):
    rate: FiniteGT0
    duration: Seconds


class IPSharedPrefix(_Strict):
    num_unique_system_prompts: IntGE1 = 1
    num_users_per_system_prompt: IntGE1 = 1
    system_prompt_len: Tokens = 0
    question_len: Tokens = 0
    output_len: Tokens = 0
    enable_multi_turn_chat: Bool = False


class InferencePerf(_Strict):
    stages: tuple[IPStage, ...]
    shared_prefix: IPSharedPrefix = IPSharedPrefix()

    @model_validator(mode="after")
    def _stages(self) -> "InferencePerf":
        if not self.stages:
            raise ValueError("@stages: needs at least one stage {rate, duration}")
        return self


class ServegenData(_Strict):
    path: Str
    span_start: FiniteGE0 = 0.0
    span_end: FiniteGT0 = float(2**53)


class WorkloadSpec(_Strict):
    """A workload spec (§10.5). ``stages`` (filled by the inference_perf expansion) bound each client's arrivals to
    back-to-back windows ``[start_us, end_us)`` at their own aggregate rates."""

    version: Str = ""
    seed: Int = 0
    category: Annotated[str, _one_of(*CATEGORIES)] = ""
    aggregate_rate: FiniteGT0 | None = None
    num_requests: IntGE0 = 0
    horizon: Ticks | None = None
    clients: tuple[ClientSpec, ...] = ()
    servegen_data: ServegenData | None = None
    inference_perf: InferencePerf | None = None

    @model_validator(mode="after")
    def _whole(self) -> "WorkloadSpec":
        if not self.clients:
            raise ValueError("@clients: needs at least one client (or an inference_perf or servegen_data block)")
        if self.aggregate_rate is None and not self.staged:
            raise ValueError("@aggregate_rate: is required (a finite number > 0, requests per second)")
        return self

    @property
    def staged(self) -> bool:
        return self.inference_perf is not None and self.inference_perf.stages != ()


def format_errors(exc: ValidationError, where: str) -> str:
    """The first error of ``exc`` as one line: ``where: yaml.path: message``."""
    err = exc.errors(include_url=False)[0]
    parts: list[str] = []
    for item in err["loc"]:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif str(item).startswith(("function-", "tagged-union", "nullable")) or item in ("Distribution",):
            continue
        else:
            parts.append(("." if parts else "") + str(item))
    path = "".join(parts)
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if msg.startswith("@"):
        sub, msg = msg[1:].split(": ", 1)
        path = f"{path}.{sub}" if path else sub
    elif err["type"] == "missing":
        msg = "is required"
    elif not msg.startswith("must") and not msg.startswith("unknown") and not msg.startswith("needs"):
        msg = f"{msg}, got {_got(err.get('input'))}"
    return f"{where}: {path or '(top level)'}: {msg}"


def parse_spec(data: Any, where: str, base_dir: Path | None = None) -> WorkloadSpec:
    """A checked spec from parsed YAML ``data`` (expansions applied first); problems raise ``InputError``."""
    from .expansions import expand  # expansions build ClientSpecs

    if not isinstance(data, dict):
        raise InputError(f"{where}: must be a YAML mapping at the top level, got {_got(data)}")
    data = expand(data, where, base_dir)
    try:
        return WorkloadSpec.model_validate(data)
    except ValidationError as exc:
        raise InputError(format_errors(exc, where)) from None


def load_spec(path: Path) -> WorkloadSpec:
    """Read and check a workload-spec YAML file."""
    path = Path(path)
    where = f"{FLAG} {path}"
    text = read_input_file(path, FLAG, "an existing workload-spec YAML file")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark is not None else ""
        raise InputError(f"{where}: {line}not valid YAML ({getattr(exc, 'problem', None) or exc})") from None
    except (ValueError, RecursionError) as exc:  # a number of thousands of digits; nesting too deep
        raise InputError(f"{where}: not valid YAML ({unreadable_value(exc)})") from None
    return parse_spec(data, where, path.parent)

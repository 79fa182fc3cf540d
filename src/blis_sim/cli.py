"""The ``blis`` / ``simulation_worker`` command line (ENGINE.md §14.4, §14.5, §15): a thin layer over ``api.run``.

Parsing is click's, but click never prints: it runs with ``standalone_mode=False`` and every failure is translated
here into the one-line contract ``blis: error: <message>`` (exit 2), ``blis: internal error: ...`` (exit 1) or
``blis: interrupted`` (exit 130).

Explicitness: every option defaults to ``None`` and only the flags whose value came from the command line are handed
to the configuration models, so ``cfg.<section>.is_set(field)`` tells which flags the user gave; the real defaults
live in ``config.models`` (the help text shows them).

Checks happen in the order of §15.2: (1) syntax (click's parser and the value types below), (2) ranges and
(3) cross-flag rules (pydantic; the first error in flag-table order wins), then features this version lacks, then
the results directory, then ``api.run`` (files, coefficients, simulation).
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, NoReturn

import click
from click.core import ParameterSource
from pydantic import ValidationError

from . import __version__, logging_setup, stdout_guard
from .config.models import (
    ADMISSION_POLICIES,
    ARRIVAL_PROCESSES,
    KV_OFFLOAD_MODES,
    LATENCY_MODELS,
    LOG_LEVELS,
    PRIORITY_POLICIES,
    ROUTING_POLICIES,
    SCHEDULERS,
    TRACE_LEVELS,
    WORKLOADS,
    ClusterConfig,
    EngineConfig,
    LatencyConfig,
    OutputConfig,
    SimulationConfig,
    WorkloadConfig,
)
from .config.validators import format_value
from .errors import InputError, Terminated
from .processes import stop_children

log = logging.getLogger("blis_sim")

PROG_NAMES = ("blis", "simulation_worker")
_STATE = {"debug": False}  # whether this invocation logs at debug level (internal errors then show a traceback)
EXIT_OK, EXIT_INTERNAL, EXIT_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 130, 143


# ---------------------------------------------------------------------------------------------------------------------
# The flag table (ENGINE.md §15.3), in the spec's order: that order is also the order of the range checks.
# ---------------------------------------------------------------------------------------------------------------------

MODEL, SERVER, WORKLOAD, CLUSTER, CPU_KV, OUTPUT = (
    "Model and latency",
    "vLLM server (per instance)",
    "Workload",
    "Cluster and policies",
    "CPU KV tier",
    "Observability and output",
)
SECTIONS = ("latency", "engine", "workload", "cluster", "output")
TOP = ""  # --seed and --horizon are fields of SimulationConfig itself


@dataclass(frozen=True)
class Flag:
    name: str  # the configuration field; the flag is --name with dashes
    section: str  # SimulationConfig section holding the field ("" = top level)
    group: str  # heading in --help
    kind: str  # str | choice | int | float | path | coeffs | switch | offswitch (--no-<name> sets False)
    shown: str  # the default as --help shows it; AUTO: the configuration model's default, formatted
    help: str
    accepted: str = ""  # what a value of the wrong type is told ("an integer >= 0")

    @property
    def opt(self) -> str:
        return ("--no-" if self.kind == "offswitch" else "--") + self.name.replace("_", "-")


AUTO = ""


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values)


FLAGS: tuple[Flag, ...] = (
    # Model and latency
    Flag("model", "latency", MODEL, "str", AUTO, "Model id; lowercased for the defaults lookup.",
         "a non-empty string"),
    Flag("hardware", "latency", MODEL, "str", '"" (filled from the defaults file)', "GPU name."),
    Flag("tp", "latency", MODEL, "int", "unset (filled from the defaults file)",
         "Tensor-parallel degree; must divide the model's attention heads (as in vLLM).", "an integer >= 1"),
    Flag("vllm_version", "latency", MODEL, "str", '"" (filled from the defaults file)',
         "vLLM version; selects the coefficient row."),
    Flag("defaults_filepath", "latency", MODEL, "path", "packaged defaults", "Defaults YAML file (coefficients, presets)."),
    Flag("alpha_coeffs", "latency", MODEL, "coeffs", AUTO,
         "alpha0 (us), alpha1 (us per prompt token), alpha2 (us per output token); 3 comma-separated numbers >= 0.",
         "exactly 3 finite numbers >= 0"),
    Flag("beta_coeffs", "latency", MODEL, "coeffs", AUTO,
         "beta0 (us), beta1 (us per prefill token), beta2 (us per decode request); 3 comma-separated numbers >= 0.",
         "exactly 3 finite numbers >= 0"),
    Flag("model_config_folder", "latency", MODEL, "path", AUTO,
         "Roofline: folder holding config.json (only together with --hardware-config)."),
    Flag("hardware_config", "latency", MODEL, "path", AUTO,
         "Roofline: hardware JSON file (only together with --model-config-folder)."),
    Flag("bench_data_path", "latency", MODEL, "path", AUTO, "Roofline v2: folder of MFU tables."),
    Flag("max_model_len", "engine", MODEL, "int", AUTO, "Maximum prompt + output tokens of a request.",
         "an integer >= 1"),
    # vLLM server
    Flag("total_kv_blocks", "engine", SERVER, "int", "1000000, replaced by the coefficient row's value unless given",
         "GPU KV blocks per instance.", "an integer >= 1"),
    Flag("block_size_in_tokens", "engine", SERVER, "int", AUTO, "Tokens per KV block.", "an integer >= 1"),
    Flag("max_num_running_reqs", "engine", SERVER, "int", AUTO, "vLLM max_num_seqs.", "an integer >= 1"),
    Flag("max_num_scheduled_tokens", "engine", SERVER, "int", AUTO,
         "vLLM max_num_batched_tokens: token budget per step.", "an integer >= 1"),
    Flag("long_prefill_token_threshold", "engine", SERVER, "int", AUTO,
         "Per-request cap on tokens per step; 0 = off.", "an integer >= 0"),
    Flag("async_scheduling", "engine", SERVER, "switch", AUTO,
         "Form the next batch while the current one runs (vLLM's async scheduler)."),
    # Workload
    Flag("workload", "workload", WORKLOAD, "choice", AUTO, f"Workload source: {_choices(WORKLOADS)}."),
    Flag("workload_traces_filepath", "workload", WORKLOAD, "path", AUTO,
         "CSV or trace v2 file; required with --workload traces."),
    Flag("workload_spec", "workload", WORKLOAD, "path", AUTO, "Workload-spec YAML; wins over --workload."),
    Flag("arrival_process", "workload", WORKLOAD, "choice", AUTO,
         f"Arrival process of distribution and presets: {_choices(ARRIVAL_PROCESSES)}."),
    Flag("rate", "workload", WORKLOAD, "float", AUTO, "Requests per second (distribution, presets).",
         "a finite number > 0"),
    Flag("num_requests", "workload", WORKLOAD, "int", AUTO,
         "Number of requests (distribution, presets; for traces and specs only when given).", "an integer >= 0"),
    Flag("prefix_tokens", "workload", WORKLOAD, "int", AUTO, "Shared prefix length (distribution).",
         "an integer from 0 to 1,048,576 (the longest request)"),
    Flag("prompt_tokens", "workload", WORKLOAD, "int", AUTO, "Mean prompt length (distribution).", "an integer"),
    Flag("prompt_tokens_stdev", "workload", WORKLOAD, "int", AUTO, "Prompt length standard deviation.",
         "an integer >= 0"),
    Flag("prompt_tokens_min", "workload", WORKLOAD, "int", AUTO, "Minimum prompt length (>= 1).", "an integer"),
    Flag("prompt_tokens_max", "workload", WORKLOAD, "int", AUTO, "Maximum prompt length.", "an integer"),
    Flag("output_tokens", "workload", WORKLOAD, "int", AUTO, "Mean output length (distribution).", "an integer"),
    Flag("output_tokens_stdev", "workload", WORKLOAD, "int", AUTO, "Output length standard deviation.",
         "an integer >= 0"),
    Flag("output_tokens_min", "workload", WORKLOAD, "int", AUTO, "Minimum output length (>= 1).", "an integer"),
    Flag("output_tokens_max", "workload", WORKLOAD, "int", AUTO, "Maximum output length.", "an integer"),
    Flag("seed", TOP, WORKLOAD, "int", AUTO, "Seed of all random streams.", "an integer"),
    Flag("horizon", TOP, WORKLOAD, "int", "unlimited", "Last tick (us) simulated; also bounds generation.",
         "an integer >= 0"),
    Flag("export_trace", "workload", WORKLOAD, "path", AUTO, "Write the generated workload as a trace."),
    # Cluster and policies
    Flag("num_instances", "cluster", CLUSTER, "int", AUTO, "Instances in the cluster.", "an integer >= 1"),
    Flag("admission_policy", "cluster", CLUSTER, "choice", AUTO,
         f"Admission policy: {_choices(ADMISSION_POLICIES)}."),
    Flag("admission_latency", "cluster", CLUSTER, "int", AUTO, "Microseconds from arrival to admission decision.",
         "an integer from 0 to 1,000,000,000,000 (microseconds)"),
    Flag("routing_latency", "cluster", CLUSTER, "int", AUTO, "Microseconds from admission to routing decision.",
         "an integer from 0 to 1,000,000,000,000 (microseconds)"),
    Flag("token_bucket_capacity", "cluster", CLUSTER, "float", AUTO, "Token bucket size in tokens.",
         "a finite number > 0"),
    Flag("token_bucket_refill_rate", "cluster", CLUSTER, "float", AUTO, "Token bucket refill, tokens per second.",
         "a finite number > 0"),
    Flag("routing_policy", "cluster", CLUSTER, "choice", AUTO, f"Routing policy: {_choices(ROUTING_POLICIES)}."),
    Flag("routing_scorers", "cluster", CLUSTER, "str", '"" (default profile)',
         "name:weight,... for weighted routing (kv-utilization, load-balance, prefix-affinity, queue-depth)."),
    Flag("priority_policy", "engine", CLUSTER, "choice", AUTO, f"Priority policy: {_choices(PRIORITY_POLICIES)}."),
    Flag("scheduler", "engine", CLUSTER, "choice", AUTO, f"Scheduler: {_choices(SCHEDULERS)}."),
    Flag("policy_config", "cluster", CLUSTER, "path", AUTO,
         "Policy bundle YAML: admission, routing (with scorers), priority and scheduler in one file; a flag given "
         "explicitly wins over the file's value (docs/policy-bundles.md)."),
    Flag("snapshot_refresh_interval", "cluster", CLUSTER, "int", AUTO, "Microseconds between KV snapshot refreshes.",
         "an integer >= 0"),
    # CPU KV tier
    Flag("kv_cpu_blocks", "engine", CPU_KV, "int", AUTO, "CPU store capacity in blocks; 0 disables the tier.",
         "an integer >= 0"),
    Flag("kv_offload_threshold", "engine", CPU_KV, "float", AUTO,
         "GPU utilization above which evicted blocks are offloaded.", "a finite number in [0, 1]"),
    Flag("kv_transfer_bandwidth", "engine", CPU_KV, "float", AUTO, "Tokens per tick for reloads.",
         "a finite number > 0"),
    Flag("kv_transfer_base_latency", "engine", CPU_KV, "int", AUTO, "Fixed ticks per reloaded block.",
         "an integer >= 0"),
    Flag("trace_level", "output", OUTPUT, "choice", AUTO, f"Decision tracing: {_choices(TRACE_LEVELS)}."),
    Flag("counterfactual_k", "output", OUTPUT, "int", AUTO, "Counterfactual candidates per routing.",
         "an integer >= 0"),
    Flag("summarize_trace", "output", OUTPUT, "switch", AUTO, "Print the decision-trace summary."),
    Flag("fitness_weights", "output", OUTPUT, "str", AUTO, "key:weight,... fitness score weights."),
    Flag("results_path", "output", OUTPUT, "path", AUTO,
         "Write the results file (cluster metrics and per-request records) here."),
    Flag("log", "output", OUTPUT, "choice", AUTO, f"stderr log level: {_choices(LOG_LEVELS)}."),
    Flag("quiet", "output", OUTPUT, "switch", AUTO, "No progress bar on stderr."),
    Flag("skip_ahead", TOP, OUTPUT, "offswitch", AUTO,
         "Form every step with the reference scheduler, one by one, instead of the decode-cohort fast path and "
         "its stable decode stretches (same results, slower; for verification)."),
    Flag("latency_model", "latency", MODEL, "choice", AUTO,
         f"Latency model: {_choices(LATENCY_MODELS)}. auto: roofline-v2 when --bench-data-path is given, roofline-v1 "
         "with --model-config-folder and --hardware-config, else blackbox. roofline-v2 without --bench-data-path "
         "uses the shipped fitted efficiency model of the GPU."),
    Flag("timeline_out", "output", OUTPUT, "path", AUTO,
         "Write a Chrome trace-event timeline (steps, request lifecycles, queue and KV counters per instance) here, "
         "for Perfetto, chrome://tracing or blis timeline --html (docs/timeline.md)."),
    Flag("kv_offload_mode", "engine", CPU_KV, "choice", AUTO,
         f"CPU tier model: {_choices(KV_OFFLOAD_MODES)}. reference: offload on eviction above the threshold, reload "
         "inside the admitting step; vllm: vLLM's offloading connector (every full block stored as computed, "
         "loads the request waits for; docs/kv-tier.md)."),
    # Observability and output
    Flag("trace_output", "output", OUTPUT, "path", AUTO,
         "Write the decision trace (--trace-level decisions) here as JSON lines, one record per decision."),
    Flag("intervals", "output", OUTPUT, "switch", AUTO,
         "Print 80% prediction intervals of TTFT, ITL and E2E (mean, p90) from the calibration's held-out-checked "
         "residuals (roofline models; docs/intervals.md)."),
)

FLAG_BY_NAME = {f.name: f for f in FLAGS}
FLAG_BY_OPT = {f.opt: f for f in FLAGS}
_TABLE_INDEX = {(f.section, f.name): i for i, f in enumerate(FLAGS)}


# ---------------------------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------------------------


class _BadValue(click.BadParameter):
    """A command-line value of the wrong type; ``message`` is the complete one-line error."""


class _Interrupted(Exception):
    """Ctrl-C inside the command, re-raised past click so that click prints nothing."""


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def _help_hint(ctx: click.Context | None, prog: str) -> str:
    # click leaves ctx unset on some parser errors; those all come from the options of ``run``.
    path = ctx.command_path if ctx is not None and ctx.command_path else f"{prog} run"
    return f"see {path} --help"


def _click_message(exc: click.ClickException, prog: str) -> str:
    """Translate click's own errors (syntax errors) into one line."""
    ctx = getattr(exc, "ctx", None)
    hint = _help_hint(ctx, prog)
    if isinstance(exc, _BadValue):
        return exc.message
    if isinstance(exc, click.NoSuchOption):
        # Only suggest near-identical names (a typo), so "--foo" stays the plain message of §15.2.
        near = difflib.get_close_matches(exc.option_name, sorted(exc.possibilities or []), n=2, cutoff=0.8)
        if near:
            return f"unknown option {exc.option_name}; did you mean {' or '.join(near)}? ({hint})"
        return f"unknown option {exc.option_name} ({hint})"
    if isinstance(exc, click.BadOptionUsage):
        flag = FLAG_BY_OPT.get(exc.option_name)
        if flag is not None and flag.kind in ("switch", "offswitch"):
            return f"{exc.option_name} is a switch and takes no value ({hint})"
        if "requires an argument" in exc.message:
            return _missing_value(exc.option_name, flag)
        return f"{exc.option_name}: {_one_line(exc.message)} ({hint})"
    if isinstance(exc, click.MissingParameter):
        opt = exc.param.opts[0] if exc.param is not None and exc.param.opts else "an option"
        return f"{opt} is required ({hint})"
    if isinstance(exc, click.BadParameter):
        opt = exc.param.opts[0] if exc.param is not None and exc.param.opts else "value"
        return f"{opt}: {_one_line(exc.message)}"
    no_args = getattr(click.exceptions, "NoArgsIsHelpError", ())
    if (no_args and isinstance(exc, no_args)) or exc.message.startswith("Missing command"):
        root = ctx.find_root() if ctx is not None else None
        commands = ", ".join(sorted(root.command.list_commands(root))) if root is not None else "run"
        return f"missing command: expected one of {commands} ({hint})"
    if isinstance(exc, click.UsageError):
        m = re.match(r"No such command '(.*)'", exc.message)
        if m:
            return f"unknown command '{m.group(1)}' ({hint})"
        m = re.match(r"Got unexpected extra arguments? \((.*)\)", exc.message)
        if m:
            return f"unexpected argument {m.group(1)!r}: {ctx.info_name if ctx else 'run'} takes flags only ({hint})"
    text = _one_line(exc.format_message()).rstrip(".")
    return f"{text[:1].lower()}{text[1:]} ({hint})"


def _missing_value(opt: str, flag: Flag | None) -> str:
    if flag is not None and flag.accepted:
        return f"{opt} requires a value ({flag.accepted})"
    return f"{opt} requires a value"


def _error_text(err: dict) -> str:
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, BaseException):
        return _one_line(str(cause))
    text = _one_line(err.get("msg", "is invalid"))
    return text.removeprefix("Value error, ").removeprefix("Assertion failed, ")


def _locate(loc: tuple) -> tuple[str, str] | None:
    """(section, field) of a pydantic error location that names a flag, else None (a model-level error)."""
    if not loc:
        return None
    if loc[0] in SECTIONS:
        if len(loc) > 1 and (loc[0], loc[1]) in _TABLE_INDEX:
            return loc[0], loc[1]
        return None
    if (TOP, loc[0]) in _TABLE_INDEX:
        return TOP, loc[0]
    return None


def validation_message(exc: ValidationError) -> str:
    """The first failing check of a configuration: flag errors in flag-table order, then model-level (cross-flag)."""
    errors = exc.errors()

    def order(indexed: tuple[int, dict]) -> tuple[int, int]:
        pos, err = indexed
        where = _locate(tuple(err.get("loc", ())))
        return (0, _TABLE_INDEX[where]) if where is not None else (1, pos)

    _, err = min(enumerate(errors), key=order)
    where = _locate(tuple(err.get("loc", ())))
    text = _error_text(err)
    if where is None:  # cross-flag rules: their messages already name the flags
        return text
    opt = FLAG_BY_NAME[where[1]].opt
    if err.get("type") == "missing":
        return f"{opt} is required"
    value = format_value(err.get("input"))
    if text.startswith("must be one of"):
        return f"{opt} {text}; got {value}"
    if text.startswith("must"):
        return f"{opt} {text}, got {value}"
    return f"{opt}: {text[:1].lower()}{text[1:]}, got {value}"


# ---------------------------------------------------------------------------------------------------------------------
# Value types: syntax errors (step 1 of §15.2) with the flag's accepted values in the message
# ---------------------------------------------------------------------------------------------------------------------

_INT = re.compile(r"[+-]?[0-9]+")


def _parse_int(text: str) -> int:
    text = text.strip()
    if not _INT.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _parse_coeffs(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(","))


_PARSERS: dict[str, Callable[[str], Any]] = {"int": _parse_int, "float": float, "coeffs": _parse_coeffs}
_METAVARS = {"int": "INT", "float": "NUMBER", "coeffs": "A,B,C", "path": "PATH", "str": "TEXT", "choice": "NAME"}


class _FlagValue(click.ParamType):
    def __init__(self, flag: Flag) -> None:
        self.flag = flag
        self.name = flag.kind

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        if value.startswith("--") and ctx is not None and value.split("=", 1)[0] in _option_names(ctx):
            # "--rate --seed 3": click would take "--seed" as the rate.
            raise _BadValue(_missing_value(self.flag.opt, self.flag))
        parse = _PARSERS.get(self.flag.kind)
        if parse is None:
            return value
        try:
            return parse(value)
        except ValueError:
            raise _BadValue(f"{self.flag.opt} must be {self.flag.accepted}, got {format_value(value)}") from None


def _option_names(ctx: click.Context) -> set[str]:
    return {opt for param in ctx.command.params for opt in param.opts}


# ---------------------------------------------------------------------------------------------------------------------
# Building and checking the configuration
# ---------------------------------------------------------------------------------------------------------------------


def build_config(values: dict[str, Any], given: set[str]) -> SimulationConfig:
    """A validated configuration from the flags in ``given`` (the ones on the command line) only."""
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    top: dict[str, Any] = {}
    for flag in FLAGS:
        if flag.name not in given:
            continue
        value = values[flag.name]
        if flag.kind == "path" and flag.name in ("results_path", "timeline_out", "trace_output") and value:
            pass  # kept a string: the configuration refuses a trailing separator (a directory, not a file)
        elif flag.kind == "path":
            value = Path(value) if value else None  # an explicit "" means "none", like the default
        (top if flag.section == TOP else sections[flag.section])[flag.name] = value
    kwargs: dict[str, Any] = {"latency": sections["latency"], **top}
    kwargs.update({name: fields for name, fields in sections.items() if fields and name != "latency"})
    try:
        return SimulationConfig(**kwargs)
    except ValidationError as exc:
        raise InputError(validation_message(exc)) from None


# ---------------------------------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------------------------------


class _RunCommand(click.Command):
    """``run`` with its options listed under the headings of the flag table."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        others: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            flag = FLAG_BY_NAME.get(param.name or "")
            (groups.setdefault(flag.group, []) if flag is not None else others).append(record)
        for title, records in groups.items():
            with formatter.section(f"{title} options"):
                formatter.write_dl(records)
        if others:
            with formatter.section("Other options"):
                formatter.write_dl(others)


def _option(flag: Flag) -> click.Option:
    if flag.kind == "switch":
        return click.Option([flag.opt], is_flag=True, default=False, help=_help_text(flag), show_default=False)
    if flag.kind == "offswitch":
        return click.Option([flag.opt, flag.name], is_flag=True, flag_value=False, default=True,
                            help=_help_text(flag), show_default=False)
    # default=None: an option not on the command line is not handed to the configuration (explicitness).
    return click.Option(
        [flag.opt],
        type=_FlagValue(flag),
        default=None,
        metavar=_METAVARS[flag.kind],
        help=_help_text(flag),
        show_default=False,
    )


_SECTION_MODELS = {
    "latency": LatencyConfig, "engine": EngineConfig, "workload": WorkloadConfig, "cluster": ClusterConfig,
    "output": OutputConfig, TOP: SimulationConfig,
}


def default_text(flag: Flag) -> str:
    """The default of ``flag`` as --help shows it: the configuration model's own default (one source of truth),
    unless the flag's table entry says more (``shown``), e.g. that an unset value is filled in later."""
    field = _SECTION_MODELS[flag.section].model_fields[flag.name]
    if field.is_required():
        return "(required)"
    if flag.shown:
        return flag.shown
    value = field.default
    if flag.kind in ("switch", "offswitch"):
        return "off"  # a switch not given: the field keeps its default (True for --no-<name> switches)
    if value is None or value == "":
        return '""'
    return value if isinstance(value, str) else format_value(value)


def _help_text(flag: Flag) -> str:
    text = default_text(flag)
    if text == "(required)":
        return f"{flag.help}  [required]"
    return f"{flag.help}  [default: {text}]"


_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}


class _LazyGroup(click.Group):
    """A command group whose heavier commands are imported only when named (or listed by --help), so that
    ``blis run`` does not import the evaluation package."""

    lazy: dict[str, tuple[str, str]] = {
        "evaluate": ("blis_sim.evaluate.command", "evaluate_command"),
        "calibrate": ("blis_sim.evaluate.calibrate_command", "calibrate_command"),
        "sweep": ("blis_sim.capacity.command", "sweep_command"),
        "capacity": ("blis_sim.capacity.command", "capacity_command"),
        "plot": ("blis_sim.capacity.command", "plot_command"),
        "timeline": ("blis_sim.report.timeline_command", "timeline_command"),
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})  # a lazy command, once loaded, is in both

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # in any command: click would print an empty line before our one line
            raise _Interrupted() from None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            from importlib import import_module

            module, attr = self.lazy[cmd_name]
            self.add_command(getattr(import_module(module), attr), cmd_name)
        return super().get_command(ctx, cmd_name)


@click.group(name="blis", cls=_LazyGroup, context_settings=_CONTEXT, no_args_is_help=False)
@click.version_option(__version__, "--version", message="%(prog)s %(version)s")
def cli() -> None:
    """blis-sim: discrete-event simulator of vLLM inference serving."""


def _run(**values: Any) -> int:
    ctx = click.get_current_context()
    given = {name for name in values if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    level = logging_setup.configure(values.get("log") if "log" in given else None)
    _STATE["debug"] = level <= logging.DEBUG
    try:
        return _simulate(values, given)
    except KeyboardInterrupt:
        raise _Interrupted() from None


def _simulate(values: dict[str, Any], given: set[str]) -> int:
    from . import api  # imported here so that --help and --version stay quick
    from .report.results_file import check_writable, write_results, write_text_atomic

    cfg = build_config(values, given)  # (2) ranges, (3) cross-flag rules
    started = time.perf_counter()
    # Input checks may log warnings before failing on a later check: hold the records back so that a failure
    # prints its one error line alone (§14.5). At debug level everything is shown as it happens.
    if not _STATE["debug"]:
        logging_setup.hold()
    try:
        prepared = api.prepare(cfg)  # (4) files, (5) coefficients, features not built yet
        if cfg.output.results_path is not None:
            check_writable(cfg.output.results_path)  # (6) before any simulation work
        if cfg.output.trace_output is not None:
            check_writable(cfg.output.trace_output, "--trace-output")
    except BaseException:
        logging_setup.release(emit=False)
        raise
    logging_setup.release()
    sample = None
    if isinstance(prepared, api.PreparedRun) and prepared.sessions is None:
        # open loop: whether the server kept up is judged after the run on a sample of its requests
        from dataclasses import replace

        from .metrics.saturation import RequestSample

        sample = RequestSample(prepared.requests)
        prepared = replace(prepared, requests=sample)
    with _progress_display(prepared.expected_requests, cfg.output.quiet) as display:
        results = api.execute(prepared, progress=display, collect_requests=cfg.output.results_path is not None)
    log.info("wall-clock time of the run: %.3f s", time.perf_counter() - started)
    if sample is not None:
        from .metrics.saturation import run_warning

        end_tick = round(results.cluster["vllm_estimated_duration_s"] * 1e6)
        warning = run_warning(sample, prepared.segments, end_tick)
        if warning:
            log.warning("%s", warning)
    if cfg.output.results_path is not None:
        try:
            write_results(results, cfg.output.results_path)
        except OSError as exc:
            raise InputError(f"--results-path {cfg.output.results_path}: cannot write: {exc.strerror or exc}") from None
    if cfg.output.trace_output is not None:
        text = results.trace.jsonl() if results.trace is not None else ""
        try:
            write_text_atomic(cfg.output.trace_output, text)
        except OSError as exc:
            raise InputError(f"--trace-output {cfg.output.trace_output}: cannot write: {exc.strerror or exc}") from None
    sys.stdout.write(results.stdout_text())
    sys.stdout.flush()
    return EXIT_OK


cli.add_command(
    _RunCommand(
        "run",
        callback=_run,
        params=[_option(flag) for flag in FLAGS],
        context_settings=_CONTEXT,
        help="Simulate a vLLM serving deployment and print its metrics.",
        short_help="Simulate a vLLM serving deployment and print its metrics.",
    )
)


@cli.command(
    "bench-mfu",
    context_settings=_CONTEXT,
    help="Measure roofline v2's kernel tables (GEMM, prefill and decode attention) on the local GPU and write them "
         "in the --bench-data-path layout. Needs PyTorch with CUDA: pip install 'blis-sim[gpu]'.",
    short_help="Measure the MFU tables of roofline v2 on the local GPU.",
)
@click.option("--output", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Folder to write gemm/ and mha/ into (created; existing tables of the same GPU are replaced).")
@click.option("--gpu-folder", default=None, metavar="NAME",
              help="GPU folder name [default: from the CUDA device name, e.g. h100].")
@click.option("--hardware", default=None, metavar="NAME",
              help="Entry of --hardware-config whose TFlopsPeak the mfu column is computed against "
                   "[default: the GPU folder name].")
@click.option("--hardware-config", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="Hardware JSON [default: the packaged one].")
@click.option("--quick", is_flag=True, help="A small grid (seconds) instead of the full one (about 5 minutes on an H100).")
@click.option("--iters", type=click.IntRange(min=3), default=10, show_default=True,
              help="Timed repetitions per cell (fewer for slow kernels).")
def _bench_mfu(output: Path, gpu_folder: str | None, hardware: str | None, hardware_config: Path | None,
               quick: bool, iters: int) -> int:
    from importlib import resources

    from .latency.hardware import load_hardware
    from .latency.mfu.bench import BenchGrid, TorchTimer, gpu_folder_name, run_bench

    logging_setup.configure(None)
    timer = TorchTimer.create(iters=iters)  # "no CUDA device" before anything else
    folder = gpu_folder or gpu_folder_name(timer.device_name)
    config = hardware_config or Path(str(resources.files("blis_sim") / "data" / "hardware_config.json"))
    hw = load_hardware(config, hardware or folder)
    hw.check_v2()
    if output.exists() and not output.is_dir():
        raise InputError(f"--output {output}: exists and is not a folder")
    grid = BenchGrid.quick() if quick else BenchGrid()
    with _bench_progress() as progress:
        result = run_bench(timer, grid, output, folder, hw.tflops_peak, progress)
    wins = ", ".join(f"{name} {n}" for name, n in sorted(timer.attention_wins.items()))
    sys.stderr.write(f"timed from CUDA graphs ({timer.eager_fallbacks} kernels launched back to back instead); "
                     f"fastest attention kernel per cell: {wins}\n")
    sys.stdout.write(f"wrote {len(result.files)} tables ({result.cells} cells) for {timer.device_name} under "
                     f"{output}; use them with --bench-data-path {output} --hardware {hw.name}\n")
    return EXIT_OK


@contextlib.contextmanager
def _bench_progress() -> Iterator[Callable[[str, int, int], None]]:
    """One rich progress bar per table on stderr (a plain line per finished table when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, disable=not console.is_terminal)
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = bars.add_task(label, total=total)
        bars.update(tasks[label], completed=done)
        if done == total and not console.is_terminal:
            console.print(f"measured {label} ({total} cells)")

    with bars:
        yield update


@contextlib.contextmanager
def _progress_display(total: int | None, quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich progress bar on stderr for runs longer than about a second (§14.4), only when stderr is
    a terminal and ``--quiet`` is not given. It counts arrived requests against the expected number."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("requests arrived,"),
        TextColumn("{task.fields[simulated]} simulated"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )
    started = time.perf_counter()
    task = None

    def update(tick: int, arrived: int) -> None:
        nonlocal task
        if task is None:
            if time.perf_counter() - started < 1.0:
                return  # short runs never show a bar
            bar.start()
            task = bar.add_task("run", total=total, simulated="0 s")
        bar.update(task, completed=arrived, simulated=f"{tick / 1e6:,.1f} s")

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


# ---------------------------------------------------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------------------------------------------------


def _prog_name() -> str:
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    return name if name in PROG_NAMES else "blis"


def _fail(message: str) -> int:
    sys.stderr.write(f"blis: error: {_one_line(message)}\n")
    sys.stderr.flush()
    return EXIT_INPUT


def main(args: list[str] | None = None, prog_name: str | None = None) -> NoReturn:
    """Console entry of ``blis`` and ``simulation_worker`` (and ``python -m blis_sim``): exits with the status."""
    sys.exit(run_cli(args, prog_name))


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
    """Python warnings (numpy's RuntimeWarnings among them) as one ``blis: warning:`` line, without source lines."""
    log.warning("%s: %s", category.__name__, _one_line(str(message)))


def run_cli(args: list[str] | None = None, prog_name: str | None = None) -> int:
    """Run the command line in-process and return its exit status (§14.5) instead of exiting."""
    import warnings

    warnings.showwarning = _one_line_warning
    prog = prog_name or _prog_name()
    _STATE["debug"] = False
    real_stdout = stdout_guard.install()  # a failing standard output ends the command with one line
    try:
        rc = cli.main(args=args, prog_name=prog, standalone_mode=False)
        sys.stdout.flush()
        return rc if isinstance(rc, int) else EXIT_OK
    except stdout_guard.StdoutFailed as exc:
        stop_children()
        return stdout_guard.report(exc)
    except click.ClickException as exc:
        try:
            message = _click_message(exc, prog)
        except Exception:  # noqa: BLE001 - never let the translation itself crash
            message = _one_line(exc.format_message())
        return _fail(message)
    except InputError as exc:
        return _fail(str(exc))
    except (_Interrupted, KeyboardInterrupt, click.Abort):
        stop_children()
        sys.stderr.write("blis: interrupted\n")
        sys.stderr.flush()
        return EXIT_INTERRUPTED
    except Terminated:
        stop_children()
        sys.stderr.write("blis: terminated\n")
        sys.stderr.flush()
        return EXIT_TERMINATED
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, traceback only when debugging
        if _STATE["debug"]:
            log.debug("traceback of the internal error:", exc_info=exc)
        detail = _one_line(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        sys.stderr.write(f"blis: internal error: {detail} (a bug in blis-sim {__version__}: please report it with "
                         "the command line; --log debug shows the traceback)\n")
        sys.stderr.flush()
        return EXIT_INTERNAL
    finally:
        stdout_guard.restore(real_stdout)



if __name__ == "__main__":
    main()

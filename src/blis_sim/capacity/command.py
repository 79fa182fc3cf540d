"""``blis sweep``, ``blis capacity`` and ``blis plot``: parse, run through ``sweep`` / ``capacity``, write, print.

``blis capacity`` takes the flags of ``blis run`` (the same flag table, ``cli.FLAGS``, and the same configuration
builder), less the ones a search sets itself (``--rate`` is the first probe's rate, ``--num-requests`` the shortest
probe) or that write per-run files.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .. import cli, logging_setup
from ..errors import InputError
from .backends import BACKENDS

log = logging.getLogger("blis_sim")

_CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 120}
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


def _precheck(cfgs: list[Any], name_of) -> list[str]:
    """The checks of a run that need no file (policy bundle, features not built yet) on every configuration before
    any simulation, so that a mistake shared by all points is one error line, not a sweep of failures."""
    from .. import api
    from ..logging_setup import captured_warnings

    seen: list[str] = []
    with captured_warnings(unique=True) as warnings:
        for i, cfg in enumerate(cfgs):
            try:
                api.resolve_config(cfg)
            except InputError as exc:
                raise InputError(f"{name_of(i)}: {exc}") from None
        seen = list(warnings)
    return seen  # emitted with the run's own warnings once it succeeded: a failure prints its error line alone


def _emit_warnings(warnings: list[str]) -> None:
    for w in warnings:
        log.warning("%s", w)


def _common_options(f):
    f = click.option("--quiet", is_flag=True, help="No progress bar on stderr.")(f)
    f = click.option("--log", "log_level", type=click.Choice(sorted(logging_setup.LEVELS)), default="warn",
                     show_default=True, help="stderr log level.")(f)
    f = click.option("--ray-address", default=None, metavar="ADDRESS",
                     help="--backend ray: join this running Ray cluster (e.g. ray://head:10001 or auto) instead of "
                          "starting a local Ray instance for the command.")(f)
    f = click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
                     help="Worker processes of --backend local (Ray CPUs of a local Ray instance) [default: every "
                          "core].")(f)
    f = click.option("--backend", type=click.Choice(BACKENDS), default="local", show_default=True,
                     help="serial: in this process; local: a process pool over the cores; ray: Ray tasks "
                          "(pip install 'blis-sim[ray]').")(f)
    return f


# ---------------------------------------------------------------------------------------------------------- sweep
@click.command(
    "sweep", context_settings=_CONTEXT,
    help="Run every combination of a sweep file's axes over its base run configuration and write results.json, "
         "results.csv, results.parquet (with pyarrow) and report.html into --output (docs/capacity.md).",
    short_help="Run a grid of simulations and report them.",
)
@click.option("--config", "config", required=True, type=click.Path(path_type=Path), metavar="FILE",
              help="Sweep YAML: base (run fields by their Python API names), axes (lists over run fields), "
                   "optional slo and title. Relative paths are relative to the file's folder.")
@click.option("--output", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Folder for results.json, results.csv, results.parquet and report.html (created).")
@click.option("--no-report", is_flag=True, help="Skip report.html.")
@click.option("--keep-partial", "keep_partial", is_flag=True,
              help="On Ctrl-C or SIGTERM, write the finished points to results.json, marked \"complete\": false "
                   "with the missing points listed [default: nothing is written].")
@_common_options
def sweep_command(config: Path, output: Path, no_report: bool, backend: str, jobs: int | None,
                  ray_address: str | None, log_level: str, quiet: bool, keep_partial: bool = False) -> int:
    from .progress import sweep_bar
    from .sweep import label, load_sweep, prepare_output_dir, run_sweep, write_outputs, write_report

    logging_setup.configure(log_level)
    if ray_address and backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    spec = load_sweep(config)
    early = _precheck(list(spec.points),
                      lambda i: f"--config {config}: the point {label(spec.values[i], list(spec.axes))}")
    existed = output.exists()
    prepare_output_dir(output)
    with sweep_bar(quiet) as bar:
        result = run_sweep(spec, backend, jobs, ray_address, bar)
    if result.interrupted:
        return _sweep_interrupted(result, output, keep_partial, existed)
    if result.rows and len(result.failed) == len(result.rows) and not result.interrupted:
        first = result.failed[0]
        raise InputError(f"every point failed; the first, {first['configuration']} rate {first['rate']:g}: "
                         f"{first['error']}")
    _emit_warnings(early + [w for w in result.warnings if w not in early])
    written = write_outputs(result, output, report=False) if result.rows else []
    if result.rows and not no_report:
        try:
            written.append(write_report(result, output))
        except KeyboardInterrupt:  # the rows are written already: keep them
            result.interrupted = True
    log.info("%s", timing_text(len(result.rows), "points", result.wall_s, result.busy_s, result.prepare_s,
                                result.backend, result.workers))
    failed = len(result.failed)
    if failed:
        log.warning("%d of %d points failed (their rows hold the errors); the first: %s", failed, len(result.rows),
                    result.failed[0]["error"])
    if result.interrupted:
        sys.stderr.write(f"blis: interrupted: {len(result.rows)} of {len(spec.points)} points finished"
                         + (f"; their rows are in {output}\n" if result.rows else "\n"))
        sys.stderr.flush()
        return EXIT_INTERRUPTED
    sys.stdout.write(f"sweep: {len(result.rows)} points ({failed} failed) in {result.wall_s:.1f} s, backend "
                     f"{result.backend} with {result.workers} worker(s)\n")
    sys.stdout.write("wrote " + ", ".join(str(p) for p in written) + "\n")
    sys.stdout.flush()
    return 0


def _sweep_interrupted(result: Any, output: Path, keep_partial: bool, existed: bool) -> int:
    """Ctrl-C or SIGTERM stopped the sweep: one line, exit 130 or 143. Nothing is written unless --keep-partial
    (then results.json holds the finished rows, marked incomplete); a folder this command created stays only
    when it holds something."""
    from .sweep import write_partial

    total = len(result.spec.points)
    where = "; nothing written (--keep-partial keeps them)" if result.rows else ""
    if keep_partial and result.rows:
        path = write_partial(result, output)
        where = f"; their rows are in {path} (\"complete\": false)"
    elif not existed:
        try:
            output.rmdir()  # only when empty
        except OSError:
            pass
    terminated = result.stopped_by == "SIGTERM"
    sys.stderr.write(f"blis: {'terminated' if terminated else 'interrupted'}: {len(result.rows)} of {total} points "
                     f"finished{where}\n")
    sys.stderr.flush()
    return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED


# ---------------------------------------------------------------------------------------------------------- capacity
# run flags a capacity search sets itself, or that write per-run output
_NOT_CAPACITY = ("rate", "num_requests", "results_path", "export_trace", "log", "quiet")
_RUN_FLAGS = [f for f in cli.FLAGS if f.name not in _NOT_CAPACITY]


def _capacity(**values: Any) -> int:
    from ..report.results_file import check_writable
    from .capacity import DEFAULT_PROBE_REQUESTS, DEFAULT_PROBE_SECONDS, CapacityQuestion, parse_vary, run_capacity
    from .progress import capacity_bar
    from .report import capacity_report
    from .slo import parse_slos
    from .sweep import label, write_atomic

    ctx = click.get_current_context()
    given = {name for name in values if ctx.get_parameter_source(name) is ParameterSource.COMMANDLINE}
    logging_setup.configure(values["log_level"])
    if values["ray_address"] and values["backend"] != "ray":
        raise InputError("--ray-address needs --backend ray")
    try:
        slos = parse_slos(values["slo"])
        vary = parse_vary(values["vary"]) if values["vary"] is not None else ()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if "latency_model" not in given:  # capacity planning defaults to the most accurate model (docs/gpu-transfer.md)
        values["latency_model"] = "best"
        given.add("latency_model")
    base = cli.build_config(values, given & {f.name for f in _RUN_FLAGS})
    question = CapacityQuestion(
        base, slos, vary,
        tolerance=values["tolerance"], min_rate=values["min_rate"], max_rate=values["max_rate"],
        start_rate=values["rate"],
        probe_requests=values["num_requests"] or DEFAULT_PROBE_REQUESTS,
        probe_seconds=values["probe_seconds"] or DEFAULT_PROBE_SECONDS,
    )
    try:
        configs = question.configurations()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if not question.min_rate <= question.first_rate() <= question.max_rate:
        raise InputError(f"--rate must lie between --min-rate {question.min_rate:g} and --max-rate "
                         f"{question.max_rate:g}, got {question.first_rate():g}")
    names = [n for n, _ in vary]
    early = _precheck([c for _, c in configs], lambda i: f"--vary: the configuration {label(configs[i][0], names)}"
                      if names else "the run flags")
    output, report_path = values["output"], values["report"]
    for flag, path in (("--output", output), ("--report", report_path)):
        if path is not None:
            check_writable(path, flag)
    with capacity_bar(values["quiet"]) as bar:
        result = run_capacity(question, values["backend"], values["jobs"], values["ray_address"], bar)
    failed = [r for r in result.rows if r["status"] == "failed"]
    if failed and len(failed) == len(result.rows):
        raise InputError(f"every configuration failed; the first, {failed[0]['configuration']}: {failed[0]['error']}")
    _emit_warnings(early + [w for w in result.warnings if w not in early])
    log.info("%s", timing_text(len(result.probes), f"probes ({result.probe_requests:,} requests)", result.wall_s,
                                result.busy_s, result.prepare_s, result.backend, result.workers))
    doc = result.to_dict()
    if output is not None:
        write_atomic(output, (json.dumps(doc, indent=2, allow_nan=False) + "\n").encode("utf-8"))
    if report_path is not None:
        try:
            write_atomic(report_path, capacity_report(doc).encode("utf-8"))
        except KeyboardInterrupt:  # the answer is written already: keep it
            result.interrupted = True
            report_path = None
    if result.interrupted:
        sys.stderr.write("blis: interrupted: " + ("the configurations finished so far are in "
                                                  f"{output}\n" if output is not None else "nothing written\n"))
        sys.stderr.flush()
        return EXIT_INTERRUPTED
    sys.stdout.write(capacity_text(doc))
    for flag, path in (("answer", output), ("report", report_path)):
        if path is not None:
            sys.stdout.write(f"wrote the {flag} to {path}\n")
    sys.stdout.flush()
    return 0


def timing_text(n: int, what: str, wall: float, busy: float, prepare: float, backend: str, workers: int) -> str:
    """Where the time went: wall-clock against the runs' own time summed over the workers."""
    share = busy / (wall * workers) if wall > 0 and workers else 0.0
    return (f"{n} {what} in {wall:.1f} s wall-clock on {backend} ({workers} worker(s)); the runs took {busy:.1f} s "
            f"summed over the workers ({prepare:.2f} s of it preparing: reading inputs, resolving latency models, "
            f"building workloads), {share:.0%} of the workers' time; the rest is start-up, dispatch and idle workers")


def _cell(x: Any, money: bool = False) -> str:
    if x is None:
        return "-"
    if money:
        return f"${x:,.2f}" if x >= 10 else f"${x:.3g}"
    if isinstance(x, float):
        return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
    return str(x)


def capacity_text(doc: dict) -> str:
    """The ranked table, the Pareto front and the answer, as printed on stdout."""
    from .report import answer_text

    q = doc["question"]
    metrics = [s.split("<")[0].split(">")[0] for s in q["slo"]]
    head = ["rank", "configuration", "max req/s", "limited by", "GPUs", "out tok/s/GPU", "$/GPU-h", "$/M out tok",
            *[f"{m}@max" for m in metrics]]
    lines = []
    for r in doc["configurations"]:
        at = r.get("at_max_rate") or {}
        limited = r["limited_by"] if r["status"] == "ok" else (
            f"failed: {r['error']}" if r["status"] == "failed" else r["status"])
        lines.append([_cell(r.get("rank")), r["configuration"], _cell(r.get("max_rate")), limited or "-",
                      _cell(r.get("gpus")), _cell(r.get("output_tokens_per_sec_per_gpu")),
                      _cell(r.get("price_usd_per_gpu_hour"), True),
                      _cell(r.get("cost_usd_per_million_output_tokens"), True), *[_cell(at.get(m)) for m in metrics]])
    widths = [max(len(h), *(len(row[i]) for row in lines)) for i, h in enumerate(head)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i in (1, 3) else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [f"=== Capacity: {', '.join(q['slo'])} (tolerance {q['tolerance']:.0%}) ===", fmt(head)]
    out += [fmt(row) for row in lines]
    out.append(f"Pareto front (output tokens/s per GPU vs {doc['pareto_metric']}): "
               + (", ".join(doc["pareto"]) or "none"))
    for r in doc["configurations"]:
        if r["status"] == "ok" and r.get("reason"):
            out.append(f"  {r['configuration']}: max {r['max_rate']:g} req/s, limited by {r['limited_by']} "
                       f"({r['reason']})")
    out.append(answer_text(doc))
    return "\n".join(out) + "\n"


def _capacity_command() -> click.Command:
    params: list[click.Parameter] = [cli._option(f) for f in _RUN_FLAGS]
    params += [
        click.Option(["--slo"], required=True, metavar="METRIC<=BOUND,...",
                     help="Every SLO a rate must meet, e.g. ttft_p90_ms<=200,itl_mean_ms<=30 (any metric of a "
                          "sweep row; <=, <, >=, >)."),
        click.Option(["--vary"], default=None, metavar="FIELD=V1,V2;...",
                     help="Configurations: every combination of these run fields' values over the run flags, e.g. "
                          "tp=1,2;hardware=H100,A100-80GB [default: the run flags alone]."),
        click.Option(["--output"], type=click.Path(path_type=Path), default=None, metavar="FILE",
                     help="Write the answer (ranked configurations, Pareto front, every probe) as JSON."),
        click.Option(["--report"], type=click.Path(path_type=Path), default=None, metavar="FILE",
                     help="Write a self-contained HTML report (table, curves of the probes, Pareto front)."),
        click.Option(["--rate"], type=click.FloatRange(min=0, min_open=True), default=None, metavar="NUMBER",
                     help="Rate of the first probe, req/s [default: 1]."),
        click.Option(["--num-requests"], type=click.IntRange(min=1), default=None, metavar="INT",
                     help="Requests of the shortest probe [default: 1000]; a probe also spans at least "
                          "--probe-seconds of arrivals."),
        click.Option(["--probe-seconds"], type=click.FloatRange(min=0, min_open=True), default=None,
                     metavar="NUMBER", help="Simulated seconds of arrivals per probe at least [default: 120]."),
        click.Option(["--tolerance"], type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
                     default=0.02, show_default=True, metavar="FRACTION",
                     help="Stop bisecting when the bracket [lo, hi] is narrower than this share of hi."),
        click.Option(["--min-rate"], type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True,
                     metavar="NUMBER", help="Lowest rate probed (req/s)."),
        click.Option(["--max-rate"], type=click.FloatRange(min=0, min_open=True), default=10000.0,
                     show_default=True, metavar="NUMBER", help="Highest rate probed (req/s)."),
    ]
    cmd = cli._RunCommand(
        "capacity", callback=_capacity, params=params, context_settings=_CONTEXT,
        help="For each configuration, the largest request rate meeting every SLO (bracketing, then bisection to "
             "--tolerance), with GPUs, throughput per GPU and cost per million output tokens (from the hardware "
             "config's priceUsdPerHour); a ranked table and the Pareto front (docs/capacity.md).",
        short_help="Find the largest request rate meeting SLOs, per configuration.",
    )
    return _common_options(cmd)


capacity_command = _capacity_command()


# ---------------------------------------------------------------------------------------------------------- plot
@click.command(
    "plot", context_settings=_CONTEXT,
    help="Draw latency against rate, throughput against rate (with the knee) and the Pareto front of a sweep's "
         "results.json (or its folder) or a capacity answer (--output FILE.json of blis capacity) as PNG and/or SVG.",
    short_help="Plot sweep or capacity results.",
)
@click.argument("results", type=click.Path(path_type=Path), metavar="RESULTS")
@click.option("--output", required=True, type=click.Path(path_type=Path), metavar="DIR",
              help="Folder for latency, throughput and pareto .png/.svg (created).")
@click.option("--format", "fmt", type=click.Choice(["png", "svg", "both"]), default="both", show_default=True,
              help="Image format.")
def plot_command(results: Path, output: Path, fmt: str) -> int:
    from .plot import write_figures
    from .sweep import prepare_output_dir

    logging_setup.configure(None)
    path = results / "results.json" if results.is_dir() else results
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"RESULTS {results}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"RESULTS {results}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"RESULTS {results}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") \
            from None
    from .plot import figures_for, series

    try:
        if not series(figures_for(doc)[0]):
            raise InputError("nothing to plot: no finished point in the results")
    except InputError as exc:
        raise InputError(f"RESULTS {results}: {exc}") from None
    prepare_output_dir(output)
    formats = ("png", "svg") if fmt == "both" else (fmt,)
    written = write_figures(doc, output, formats)
    sys.stdout.write("wrote " + ", ".join(str(p) for p in written) + "\n")
    return 0

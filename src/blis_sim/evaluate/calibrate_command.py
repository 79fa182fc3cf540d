"""``blis calibrate``: parse the options, call ``calibrate.calibrate``, print the before/after MAPE table, write the
fitted hardware config. Bad input is an ``InputError``: one ``blis: error:`` line and exit status 2.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable, Iterator

import click

from .. import logging_setup
from ..config.names import DEFAULT_GPU
from ..errors import InputError
from .command import GroundTruthPath
from .experiment import METRICS

_COLUMNS = {"ttft_mean_ms": "TTFT", "ttft_p90_ms": "TTFT p90", "itl_mean_ms": "ITL", "e2e_mean_ms": "E2E",
            "e2e_p90_ms": "E2E p90", "throughput_tokens_per_s": "Tput"}


@click.command(
    "calibrate",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    help="Fit a GPU's roofline calibration constants (v1, or v2's overheads) to real vLLM measurements (any format "
         "`blis evaluate` reads), on a stratified training subset of the experiments, and print train and held-out "
         "MAPE before (starting constants) and after (fitted). --out is a hardware config: `blis run "
         "--hardware-config FILE` and `blis evaluate --hardware-config FILE` read it.",
    short_help="Fit roofline calibration constants to real vLLM measurements.",
)
@click.option("--ground-truth", "ground_truth", required=True, type=GroundTruthPath(path_type=Path), metavar="PATH",
              help="A ground-truth file, an experiment folder, or a folder holding any mix of them.")
@click.option("--hardware", default=DEFAULT_GPU, show_default=True, metavar="GPU",
              help="The packaged hardware-config entry to fit; experiments whose files name another GPU are left out.")
@click.option("--latency-model", "latency_model", default="roofline-v2", show_default=True, metavar="MODEL",
              help="The latency model whose constants are fitted: roofline-v2 (the most accurate: its overheads and "
                   "GEMM bandwidth efficiency, written under the entry's rooflineV2 object) or roofline-v1.")
@click.option("--holdout", "holdout", type=float, default=None, metavar="FRACTION",
              help="Fraction of the experiments held out, drawn with --seed per group of model and load (light: "
                   "concurrency 1 only; loaded) [default: 0.3].")
@click.option("--holdout-experiments", "holdout_experiments", default=None, metavar="A,B",
              help="Hold out exactly these experiments (comma-separated names) instead.")
@click.option("--fit", "fit", default=None, metavar="KEYS",
              help="Comma-separated hardware-config keys to fit [default v1: mfuPrefill,mfuDecode,BwEffConstant,"
                   "TOverheadMicros,requestOverheadMicros,decodeKvBwEff,allReduceBwGBs; v2: TOverheadMicros,"
                   "allReduceLatency,requestOverheadMicros,gemmEta].")
@click.option("--set", "set_keys", default=None, metavar="KEY=V,...",
              help="Keys held at a value in every candidate and written to --out [default v1: moeExperts=1; v2: "
                   "none]; --set '' holds nothing.")
@click.option("--hardware-config", "hardware_config", type=click.Path(path_type=Path), default=None,
              metavar="FILE", help="Starting constants [default: the packaged hardware_config.json; `handset` is "
                                   "the packaged hand-set reference constants].")
@click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Worker processes [default: every core].")
@click.option("--requests-per-point", "requests_per_point", type=click.IntRange(min=1), default=200,
              show_default=True, metavar="N", help="Requests simulated per point while fitting.")
@click.option("--sequential-requests-per-point", "sequential_requests_per_point", type=click.IntRange(min=1),
              default=40, show_default=True, metavar="N",
              help="Requests per concurrency-1 point while fitting (no queueing: a few settle the means).")
@click.option("--report-requests-per-point", "report_requests_per_point", type=click.IntRange(min=1), default=None,
              metavar="N", help="Requests per point of the final before/after table [default: --requests-per-point].")
@click.option("--max-evals", "max_evals", type=click.IntRange(min=1), default=80, show_default=True, metavar="N",
              help="Optimizer budget: objective evaluations (one simulation of every training point each).")
@click.option("--model-configs", "model_configs", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Extra <name>/config.json folders; they win over the packaged ones.")
@click.option("--async-scheduling/--sync-scheduling", "async_scheduling", default=None,
              help="Engine loop for every experiment [default: per experiment, from its vLLM version].")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the workloads and the held-out draw.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), metavar="FILE.json",
              help="Write the fitted entry (a full hardware config) with the split and the MAPE table here.")
@click.option("--log", "log_level", type=click.Choice(sorted(logging_setup.LEVELS)), default="warn",
              show_default=True, help="stderr log level.")
@click.option("--quiet", is_flag=True, help="No progress on stderr.")
def calibrate_command(ground_truth: Path, hardware: str, latency_model: str, holdout: float | None,
                      holdout_experiments: str | None, fit: str | None, set_keys: str | None,
                      hardware_config: Path | None, jobs: int | None, requests_per_point: int,
                      sequential_requests_per_point: int,
                      report_requests_per_point: int | None, max_evals: int, model_configs: Path | None,
                      async_scheduling: bool | None, seed: int, out: Path, log_level: str, quiet: bool) -> int:
    from ..report.results_file import check_writable, write_json_atomic
    from .calibrate import CalibrateOptions, calibrate
    from .runner import hardware_config_path

    logging_setup.configure(log_level)
    check_writable(out, "--out")
    names = tuple(n.strip() for n in (holdout_experiments or "").split(",") if n.strip())
    if holdout_experiments is not None and not names:
        raise InputError("--holdout-experiments: give one or more comma-separated experiment names")
    keys = tuple(k.strip() for k in fit.split(",") if k.strip()) if fit is not None else None
    fixed = _parse_set(set_keys) if set_keys is not None else None
    options = CalibrateOptions(
        hardware=hardware, latency_model=latency_model, holdout_fraction=holdout, holdout_experiments=names,
        fit=keys, fixed=fixed, jobs=jobs, requests_per_point=requests_per_point,
        sequential_requests_per_point=sequential_requests_per_point,
        hardware_config=hardware_config_path(hardware_config),
        report_requests_per_point=report_requests_per_point, max_evals=max_evals, model_configs=model_configs,
        async_scheduling=async_scheduling, seed=seed,
    )
    with _progress(quiet) as progress:
        result = calibrate(ground_truth, options, progress)
    _print(result.result)
    try:
        write_json_atomic(out, result.result)
    except OSError as exc:
        raise InputError(f"--out {out}: cannot write: {exc.strerror or exc}") from None
    sys.stdout.flush()
    return 0


def _parse_set(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"--set {item}: expected KEY=NUMBER") from None
        if not sep or not key.strip():
            raise InputError(f"--set {item}: expected KEY=NUMBER")
    return out


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _print(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    cal = result["calibration"]
    console = Console(width=140)
    split = cal["split"]
    console.print(f"{cal['hardware']} {cal['latency_model']}: {len(split['train'])} training experiment(s), "
                  f"{len(split['holdout'])} held out: {', '.join(split['holdout']) or 'none'}")
    params = Table(title="fitted constants")
    for col in ("key", "shipped", "fitted"):
        params.add_column(col, justify="left" if col == "key" else "right")
    for key, value in cal["fitted"].items():
        params.add_row(key, f"{cal['initial'][key]:.4g}", f"{value:.4g}")
    for key, value in cal.get("fixed", {}).items():
        params.add_row(f"{key} (set)", "-", f"{value:.4g}")
    console.print(params)
    table = Table(title="MAPE before (shipped) / after (fitted); excluded and failed points not included")
    table.add_column("set")
    table.add_column("pts", justify="right")
    table.add_column("objective", justify="right")
    for m in METRICS:
        table.add_column(_COLUMNS.get(m, m), justify="right")
    for label, whens in cal["mape"].items():
        for when, agg in whens.items():
            table.add_row(f"{label} {when}", str(agg["points"]), _pct(agg["objective"]),
                          *(_pct(agg["mape"].get(m)) for m in METRICS))
    console.print(table)
    opt = cal["optimizer"]
    console.print(f"cost: {opt['evaluations']} objective evaluations of {opt['requests_per_point']} requests per point "
                  f"({opt['sequential_requests_per_point']} per concurrency-1 point) on {opt['jobs']} process(es); "
                  f"fit {cal['fit_wall_time_s']:.1f} s, total {cal['wall_time_s']:.1f} s wall")
    if cal["failed"]:
        console.print(f"{len(cal['failed'])} point(s) failed: " + "; ".join(
            f"{f['experiment']} {f['point']}: {f['reason']}" for f in cal["failed"][:5]))


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, int, float], None] | None]:
    """A rich bar on stderr counting objective evaluations, with the best objective so far."""
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("calibrating"), BarColumn(), MofNCompleteColumn(), TextColumn("evaluations"),
                   TextColumn("best {task.fields[best]}"), TimeElapsedColumn(), console=console,
                   transient=console.is_terminal)
    task = None

    def update(done: int, total: int, best: float) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("fit", total=total, best="-")
        bar.update(task, completed=min(done, total), best=f"{best:.2f}%")

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()

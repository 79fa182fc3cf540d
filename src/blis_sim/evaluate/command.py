"""``blis evaluate``: parse the options, call ``runner.evaluate``, print the tables, write the report and plots.

Bad input (an unreadable ground truth, a bad option value) is an ``InputError``: the CLI prints its one line and
exits 2. A ground-truth tree with some broken experiments still evaluates the rest and lists the broken ones.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Callable, Iterator

import click

from .. import logging_setup
from ..config.names import DEFAULT_GPU, LATENCY_MODELS
from ..errors import InputError


class GroundTruthPath(click.Path):
    """A path that must not be empty: an empty --ground-truth would evaluate the current folder."""

    def convert(self, value, param, ctx):  # noqa: ANN001 (click's signature)
        if isinstance(value, str) and not value.strip():
            self.fail("an empty path (give a ground-truth file or a folder of them)", param, ctx)
        return super().convert(value, param, ctx)


@click.command(
    "evaluate",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
    help="Simulate every measured point of real vLLM benchmarks (combined ground-truth JSON, guidellm sweeps, "
         "inference-perf result folders, the synchronous means table; detected automatically) and report predicted "
         "vs measured TTFT, ITL, E2E and throughput with percentage errors and MAPE.",
    short_help="Compare the simulator with real vLLM measurements.",
)
@click.option("--ground-truth", "ground_truth", required=True, type=GroundTruthPath(path_type=Path), metavar="PATH",
              help="A ground-truth file, an experiment folder, or a folder holding any mix of them.")
@click.option("--hardware", default=DEFAULT_GPU, show_default=True, metavar="GPU",
              help="GPU of experiments whose files do not name one (an entry of the packaged hardware config).")
@click.option("--latency-model", "latency_model", type=click.Choice(LATENCY_MODELS), default="auto",
              show_default=True, help="auto = best: roofline-v2 where the GPU entry has a shipped kernel efficiency model "
                                      "(every packaged GPU), else roofline-v1. blackbox uses the defaults-file "
                                      "coefficients where they exist for the model, GPU and TP (other experiments "
                                      "fail with the reason).")
@click.option("--model-configs", "model_configs", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Extra <name>/config.json folders; they win over the packaged ones. A model matches the folder "
                   "named like its last path component, case-insensitively.")
@click.option("--hardware-config", "hardware_config", type=click.Path(path_type=Path), default=None,
              metavar="FILE", help="GPU calibrations of the roofline models [default: the packaged "
                                   "hardware_config.json]; `handset` = the packaged hand-set reference constants "
                                   "(hardware_config_handset.json); `blis calibrate --out` writes such a file.")
@click.option("--jobs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Worker processes [default: every core].")
@click.option("--output", type=click.Path(path_type=Path), default=None, metavar="FILE",
              help="Write the JSON report here (overall, by_model, by_hardware, by_workload, experiments, failed).")
@click.option("--plots", type=click.Path(path_type=Path), default=None, metavar="DIR",
              help="Write predicted-vs-measured PNGs per experiment and parity.png here.")
@click.option("--requests-per-point", "requests_per_point", type=click.IntRange(min=1), default=None, metavar="N",
              help="Simulate at most N requests per rate point or stage [default: 20000, every measured request up to "
                   "that; a capped point says so in its notes].")
@click.option("--async-scheduling/--sync-scheduling", "async_scheduling", default=None,
              help="Engine loop for every experiment [default: per experiment, from the vLLM version its files "
                   "name: asynchronous from 0.12 on and when unknown, synchronous before].")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the generated workloads.")
@click.option("--log", "log_level", type=click.Choice(sorted(logging_setup.LEVELS)), default="warn",
              show_default=True, help="stderr log level.")
@click.option("--quiet", is_flag=True, help="No progress bar on stderr.")
@click.option("--kv-cpu-gib", "kv_cpu_gib", type=click.FloatRange(min=0, max=1e6), default=0.0, metavar="GIB",
              help="Give every server a CPU KV tier of this many GiB over all ranks, as vLLM's "
                   "--kv-offloading-size (the shared family-2 servers ran with 8) [default: none].")
@click.option("--kv-offload-mode", "kv_offload_mode", type=click.Choice(["reference", "vllm"]), default="vllm",
              show_default=True, help="The CPU tier's model (docs/kv-tier.md).")
@click.option("--kv-link-gbs", "kv_link_gbs", type=click.FloatRange(min=0.001, max=1e5), default=40.0,
              show_default=True, metavar="GBS", help="Host link per GPU for CPU tier loads, in GB/s.")
@click.option("--keep-partial", "keep_partial", is_flag=True,
              help="On Ctrl-C or SIGTERM, write the points finished so far to --output, marked "
                   "\"complete\": false with the missing points listed [default: nothing is written].")
def evaluate_command(ground_truth: Path, hardware: str, latency_model: str, model_configs: Path | None,
                     hardware_config: Path | None, jobs: int | None, output: Path | None, plots: Path | None,
                     requests_per_point: int | None,
                     async_scheduling: bool | None, seed: int, log_level: str, quiet: bool,
                     keep_partial: bool = False, kv_cpu_gib: float = 0.0, kv_offload_mode: str = "vllm",
                     kv_link_gbs: float = 40.0) -> int:
    from ..report.results_file import check_writable, write_json_atomic
    from .render import print_report
    from .runner import DEFAULT_REQUESTS_PER_POINT, Options, evaluate, hardware_config_path

    logging_setup.configure(log_level)
    if output is not None:
        check_writable(output, "--output")
    if plots is not None and plots.exists() and not plots.is_dir():
        raise InputError(f"--plots {plots}: exists and is not a folder")
    options = Options(
        latency_model=latency_model, hardware=hardware, model_configs=model_configs, jobs=jobs,
        requests_per_point=requests_per_point or DEFAULT_REQUESTS_PER_POINT, async_scheduling=async_scheduling,
        seed=seed, hardware_config=hardware_config_path(hardware_config), keep_partial=keep_partial,
        kv_cpu_gib=kv_cpu_gib, kv_offload_mode=kv_offload_mode, kv_link_gbs=kv_link_gbs,
    )
    with _progress(quiet) as progress:
        ev = evaluate(ground_truth, options, progress)
    if ev.interrupted is not None:
        return _keep_partial(ev, output)
    print_report(ev.report)
    if output is not None:
        try:
            write_json_atomic(output, ev.report)
        except OSError as exc:
            raise InputError(f"--output {output}: cannot write: {exc.strerror or exc}") from None
    if plots is not None:
        from .plots import write_plots

        write_plots(ev.points, plots)
    sys.stdout.flush()
    return 0


def _keep_partial(ev, output: Path | None) -> int:  # noqa: ANN001 (an Evaluation)
    """--keep-partial after Ctrl-C or SIGTERM: the finished points go to --output (the report says
    ``"complete": false`` and lists the missing points), one line on stderr, nothing on stdout, exit 130 or 143."""
    from ..errors import Terminated
    from ..report.results_file import write_json_atomic

    report = ev.report
    done = sum(len(e.get("point_results", [])) for e in report.get("experiments", []))
    missing = len(report.get("missing_points", []))
    where = "; nothing written (no --output)"
    if output is not None:
        try:
            write_json_atomic(output, report)
            where = f"; they are in {output} (\"complete\": false)"
        except OSError as exc:
            where = f"; --output {output}: cannot write: {exc.strerror or exc}"
    terminated = isinstance(ev.interrupted, Terminated)
    sys.stderr.write(f"blis: {'terminated' if terminated else 'interrupted'}: {done} points evaluated, {missing} not "
                     f"run{where}\n")
    sys.stderr.flush()
    return 143 if terminated else 130


@contextlib.contextmanager
def _progress(quiet: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich bar on stderr counting finished runs (only on a terminal, and not with --quiet)."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(), TextColumn("runs"),
                   TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("runs", total=total)
        bar.update(task, completed=done)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()

"""The synchronous means table: one CSV row per experiment measured at concurrency 1 (guidellm ``synchronous``).

Required columns: ``experiment``, ``model_config`` (or ``model``), ``tp``, the measured means ``gt_ttft_mean_ms``,
``gt_tpot_mean_ms`` (time per output token after the first: the decode ITL) and ``gt_e2e_mean_ms`` (any may be
empty), and the workload's ``wl_prefix_tokens``, ``wl_prompt_tokens(_stdev/_min/_max)``,
``wl_output_tokens(_stdev/_min/_max)``. Optional: ``gpu``, ``workload``, ``vllm_version``, ``num_requests``
(default 100), ``max_num_batched_tokens`` (default 4096, the setting of the runs this table comes from),
``max_num_seqs`` (256), ``max_model_len`` (default: the longest request the workload can produce).
Other columns (earlier models' predictions) are ignored.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from .experiment import ITL_DECODE, SEQUENTIAL, Experiment, Failure, LengthDist, Load, Point, Server, SyntheticLengths
from .fields import Fields, GroundTruthError, measured_metrics, read_text

FORMAT = "sync-table"
_MEASURED = {"ttft_mean_ms": "gt_ttft_mean_ms", "itl_mean_ms": "gt_tpot_mean_ms", "e2e_mean_ms": "gt_e2e_mean_ms"}
DEFAULT_REQUESTS = 100
DEFAULT_MAX_NUM_BATCHED_TOKENS = 4096


def is_sync_table(header: list[str]) -> bool:
    return "experiment" in header and any(col in header for col in _MEASURED.values())


def read_header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def load_sync_table(path: Path) -> tuple[list[Experiment], list[Failure]]:
    rows = list(csv.DictReader(io.StringIO(read_text(path), newline="")))
    experiments, failed = [], []
    for i, row in enumerate(rows, start=2):  # line numbers: the header is line 1
        values = {k: (v.strip() if isinstance(v, str) and v.strip() else None) for k, v in row.items() if k}
        f = Fields(values, f"{path}: line {i}")
        name = values.get("experiment") or f"line {i}"
        try:
            experiments.append(_row(f, path, name))
        except GroundTruthError as exc:
            failed.append(Failure(name, "", str(path), str(exc)))
    return experiments, failed


def _row(f: Fields, path: Path, name: str) -> Experiment:
    model = f.str("model_config", None) or f.str("model")

    def dist(kind: str) -> LengthDist:
        mean = f.tokens(f"wl_{kind}_tokens", minimum=1)
        return LengthDist(mean, f.tokens(f"wl_{kind}_tokens_stdev", 0),
                          f.tokens(f"wl_{kind}_tokens_min", mean, minimum=1),
                          f.tokens(f"wl_{kind}_tokens_max", mean, minimum=1))

    lengths = SyntheticLengths(f.tokens("wl_prefix_tokens", 0), dist("prompt"), dist("output"))
    measured = measured_metrics({m: f.raw(col, None) for m, col in _MEASURED.items()},
                                {m: f.name(col) for m, col in _MEASURED.items()}, f.path)
    if not measured:
        raise f.error("gt_ttft_mean_ms", "no measured value in this row (gt_ttft_mean_ms, gt_tpot_mean_ms, "
                                         "gt_e2e_mean_ms all empty)")
    requests = f.int("num_requests", DEFAULT_REQUESTS, minimum=1)
    notes = []
    if not f.has("max_num_batched_tokens"):
        notes.append(f"max_num_batched_tokens not recorded: {DEFAULT_MAX_NUM_BATCHED_TOKENS} assumed")
    server = Server(
        max_model_len=f.int("max_model_len", lengths.max_total_tokens, minimum=1),
        max_num_batched_tokens=f.int("max_num_batched_tokens", DEFAULT_MAX_NUM_BATCHED_TOKENS, minimum=1),
        max_num_seqs=f.int("max_num_seqs", 256, minimum=1),
        num_gpu_blocks=f.int("num_gpu_blocks", None, minimum=2),
        num_gpu_blocks_source=f"{f.path}: num_gpu_blocks" if f.has("num_gpu_blocks") else "",
    )
    version = f.str("vllm_version", None)
    return Experiment(
        name=name, format=FORMAT, source=str(path), model=model, gpu=f.str("gpu", None), tp=f.int("tp", minimum=1),
        vllm_version=version, version_source=f"{f.path}: vllm_version" if version else "",
        server=server, workload=f.str("workload", "synchronous"), lengths=lengths,
        points=(Point("synchronous", Load(SEQUENTIAL, None, requests), measured, ITL_DECODE),),
        metric_side="client", notes=tuple(notes),
    )

"""The combined ground-truth JSON of BLIS's evaluator (ROOFLINE.md §11): ``{experiments: [...]}``.

Each experiment has ``model``, ``vllm_config`` (TP and scheduler limits), ``workload_config`` (guidellm's data
block and requests per benchmark), ``total_kv_blocks`` (vLLM's logged ``num_gpu_blocks``) and ``qps_sweeps`` (one
constant-rate point each). Its ITL is BLIS's definition (prefill time included); its latencies are server side. The
file names neither the GPU nor the vLLM version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .experiment import CONSTANT, ITL_BLIS, Experiment, Failure, LengthDist, Load, Point, Server, SyntheticLengths
from .fields import Fields, GroundTruthError, measured_metrics

FORMAT = "combined"
_POINT_METRICS = ("ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms")


def is_combined(raw: Any) -> bool:
    return isinstance(raw, dict) and isinstance(raw.get("experiments"), list)


def load_combined(raw: Any, path: Path) -> tuple[list[Experiment], list[Failure]]:
    """Every experiment of a decoded combined file; a malformed experiment becomes a ``Failure`` naming the field."""
    top = Fields(raw, path)
    experiments: list[Experiment] = []
    failed: list[Failure] = []
    for i, item in enumerate(top.list("experiments")):
        label = item.get("experiment_name") if isinstance(item, dict) else None
        name = label if isinstance(label, str) and label else f"experiments[{i}]"
        try:
            exp, bad = _experiment(Fields(item, path, f"experiments[{i}]"), path, name)
        except GroundTruthError as exc:
            failed.append(Failure(name, "", str(path), str(exc)))
            continue
        experiments.append(exp)
        failed.extend(bad)
    return experiments, failed


def synthetic_lengths(data: Fields) -> SyntheticLengths:
    """guidellm's emulated-data block (prefix, prompt and output clamped normals)."""

    def dist(kind: str) -> LengthDist:
        mean = data.tokens(f"{kind}_tokens", minimum=1)
        stdev = data.tokens(f"{kind}_tokens_stdev", 0)
        lo = data.tokens(f"{kind}_tokens_min", mean if stdev == 0 else 1, minimum=1)
        hi = data.tokens(f"{kind}_tokens_max", mean if stdev == 0 else max(mean, lo), minimum=1)
        if lo > hi:
            raise data.error(f"{kind}_tokens_min", f"must be <= {kind}_tokens_max ({hi}), got {lo}")
        return LengthDist(mean, stdev, lo, hi)

    return SyntheticLengths(data.tokens("prefix_tokens", 0), dist("prompt"), dist("output"))


def _experiment(f: Fields, path: Path, name: str) -> tuple[Experiment, list[Failure]]:
    vc = f.sub("vllm_config")
    wc = f.sub("workload_config")
    requests = wc.int("max_requests", minimum=1)
    blocks = f.int("total_kv_blocks", None, minimum=2)
    points: list[Point] = []
    failed: list[Failure] = []
    for j, sweep in enumerate(f.list("qps_sweeps")):
        s = Fields(sweep, path, f"{f.prefix}.qps_sweeps[{j}]")
        try:
            rate = s.float("qps", positive=True)
            measured = measured_metrics({m: s.raw(m, None) for m in _POINT_METRICS},
                                        {m: s.name(m) for m in _POINT_METRICS}, path)
        except GroundTruthError as exc:
            failed.append(Failure(name, f"qps_sweeps[{j}]", str(path), str(exc)))
            continue
        points.append(Point(f"constant {rate:.4g} rps", Load(CONSTANT, rate, requests), measured, ITL_BLIS))
    server = Server(
        max_model_len=vc.int("max_model_len", minimum=1),
        max_num_batched_tokens=vc.int("max_num_batched_tokens", minimum=1),
        max_num_seqs=vc.int("max_num_seqs", minimum=1),
        num_gpu_blocks=blocks,
        num_gpu_blocks_source=f"{path}: {f.name('total_kv_blocks')}" if blocks is not None else "",
    )
    exp = Experiment(
        name=name,
        format=FORMAT,
        source=str(path),
        model=f.str("model"),
        gpu=None,
        tp=vc.int("tensor_parallelism", minimum=1),
        vllm_version=None,
        version_source="",
        server=server,
        workload=vc.str("app", "unknown"),
        lengths=synthetic_lengths(wc.sub("data")),
        points=tuple(points),
        metric_side="server",
    )
    return exp, failed

"""``blis bench-mfu``: measure the kernel tables of roofline v2 on the local GPU, in the ``--bench-data-path`` layout.

The plan (which shapes) and the writing (which files, which columns) are plain Python and tested with a fake timer;
only ``TorchTimer`` touches the GPU, and torch is imported when it is built (``pip install 'blis-sim[gpu]'``).

Measured, per GPU and per layer, in BF16:

* ``gemm/<gpu>/data.csv``: ``y = x @ W^T`` (``torch.nn.functional.linear``) for every (m, k, n) of the grid, with a
  sixth column ``dtype`` so that readers need not infer it. The weight is rotated among enough copies to exceed the
  L2 cache, so that small GEMMs read their weights from HBM as they do in a model.
* ``mha/prefill/<gpu>/{H}-{Hkv}-{dh}.csv``: causal ``scaled_dot_product_attention`` of one sequence.
* ``mha/decode/<gpu>/{H}-{Hkv}-{dh}-tp{T}.csv``: one query token per sequence against ``kv_len`` cached tokens, the
  heads of one GPU at TP T (H/T query heads, max(1, Hkv/T) KV heads). Cells whose KV cache would not fit the memory
  budget are skipped (the grid may miss its large corners, as the published tables do).

``mfu`` = FLOPs / (latency x peak): GEMM 2mkn, prefill 2·H·dh·S² (causal), decode 4·(H/T)·dh·batch·kv_len, against
the GPU's dense BF16 ``TFlopsPeak``; written with six decimals, so it is 0 only where it rounds to 0.
"""

from __future__ import annotations

import csv
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ...errors import InputError
from .tables import DECODE_COLUMNS, GEMM_COLUMNS, PREFILL_COLUMNS, shape_key

Progress = Callable[[str, int, int], None]  # (table being measured, cells done, cells in the table)


class KernelTimer(Protocol):
    """Times one kernel call in microseconds (median of repeated runs)."""

    def gemm_us(self, m: int, k: int, n: int) -> float: ...

    def prefill_us(self, heads: int, kv_heads: int, head_dim: int, seq_len: int) -> float: ...

    def decode_us(self, heads: int, kv_heads: int, head_dim: int, batch: int, kv_len: int) -> float: ...


# ---------------------------------------------------------------------------------------------------------------------
# The grid
# ---------------------------------------------------------------------------------------------------------------------

# The attention shapes (H, Hkv, dh) of the packaged model configs and of the published tables.
DEFAULT_SHAPES = ((12, 2, 128), (16, 2, 128), (28, 4, 128), (32, 4, 128), (32, 8, 128), (32, 32, 128), (40, 8, 128),
                  (40, 40, 128), (56, 8, 128), (64, 8, 128))


@dataclass(frozen=True)
class BenchGrid:
    """What to measure. The GEMM (k, n) axes span the fused layer shapes of 1.5B-70B models at TP 1-8, lm_head
    included, so that lookups interpolate instead of extrapolating; m stops at 4096, beyond which GEMMs are
    compute-bound and the lookup's roofline ratio (time proportional to m) is accurate. 4,620 cells in 4.5 minutes
    on an H100 (PyTorch 2.11; trying each attention kernel dominates); ``quick()`` takes 11 seconds."""

    gemm_m: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
    gemm_k: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384)
    gemm_n: tuple[int, ...] = (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
    shapes: tuple[tuple[int, int, int], ...] = DEFAULT_SHAPES
    tps: tuple[int, ...] = (1, 2, 4, 8)
    prefill_seq: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
    decode_batch: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
    decode_kv: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
    max_kv_bytes: float = 16e9  # decode cells whose one-layer K + V cache exceeds this are not measured
    kv_bytes_per_elem: int = 2

    @classmethod
    def quick(cls) -> "BenchGrid":
        """A small grid for a first look or a smoke test."""
        return cls(gemm_m=(1, 8, 64, 512, 4096), gemm_k=(2048, 8192), gemm_n=(2048, 16384, 131072),
                   shapes=((32, 8, 128),), tps=(1, 2), prefill_seq=(512, 2048, 8192),
                   decode_batch=(1, 16, 128), decode_kv=(256, 2048, 16384))

    def gemm_cells(self) -> list[tuple[int, int, int]]:
        """Every (m, k, n) of the full grid (the reader needs a full grid), ordered by (k, n) then m."""
        return [(m, k, n) for k in self.gemm_k for n in self.gemm_n for m in self.gemm_m]

    def tp_degrees(self, heads: int, kv_heads: int) -> list[int]:
        """The TP degrees vLLM accepts for this shape: heads divisible, KV heads divisible or replicated."""
        return [t for t in self.tps if heads % t == 0 and (kv_heads % t == 0 or t % kv_heads == 0)]

    def decode_cells(self, heads: int, kv_heads: int, head_dim: int, tp: int) -> list[tuple[int, int]]:
        kv_heads_gpu = max(1, kv_heads // tp)
        per_token = 2 * kv_heads_gpu * head_dim * self.kv_bytes_per_elem
        return [(b, kv) for b in self.decode_batch for kv in self.decode_kv if b * kv * per_token <= self.max_kv_bytes]


# ---------------------------------------------------------------------------------------------------------------------
# Measuring and writing
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class BenchResult:
    files: list[Path] = field(default_factory=list)
    cells: int = 0


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Write atomically: a reader (or a crash) never sees half a table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def run_bench(timer: KernelTimer, grid: BenchGrid, output: Path, gpu_folder: str, peak_tflops: float,
              progress: Progress | None = None) -> BenchResult:
    """Measure every table of ``grid`` with ``timer`` and write them under ``output`` for GPU folder ``gpu_folder``."""
    if not gpu_folder or "/" in gpu_folder or "\\" in gpu_folder or gpu_folder in (".", ".."):
        raise InputError(f"--gpu-folder {gpu_folder!r} must be a plain folder name, e.g. h100")
    peak = peak_tflops * 1e12
    result = BenchResult()
    tick = progress or (lambda label, done, total: None)

    def measure(label: str, cells: list, one: Callable) -> list:
        rows = []
        tick(label, 0, len(cells))
        for i, cell in enumerate(cells, start=1):
            rows.append(one(*cell))
            tick(label, i, len(cells))
        result.cells += len(cells)
        return rows

    def write(rel: str, header: Sequence[str], rows: list) -> None:
        path = output / rel
        _write_csv(path, header, rows)
        result.files.append(path)

    def gemm_row(m: int, k: int, n: int) -> list[str]:
        t = timer.gemm_us(m, k, n)
        return [str(m), str(k), str(n), f"{t:.3f}", f"{2.0 * m * k * n / (t * 1e-6 * peak):.6f}", "bf16"]

    rel = f"gemm/{gpu_folder}/data.csv"
    write(rel, (*GEMM_COLUMNS, "dtype"), measure(rel, grid.gemm_cells(), gemm_row))

    for h, hkv, dh in grid.shapes:
        key = shape_key(h, hkv, dh)

        def prefill_row(s: int, h=h, hkv=hkv, dh=dh) -> list[str]:
            t = timer.prefill_us(h, hkv, dh, s)
            return ["bf16", str(s), f"{t:.3f}", f"{2.0 * h * dh * s * s / (t * 1e-6 * peak):.6f}"]

        rel = f"mha/prefill/{gpu_folder}/{key}.csv"
        write(rel, PREFILL_COLUMNS, measure(rel, [(s,) for s in grid.prefill_seq], prefill_row))

        for tp in grid.tp_degrees(h, hkv):
            hq, hk = h // tp, max(1, hkv // tp)

            def decode_row(b: int, kv: int, hq=hq, hk=hk, dh=dh) -> list[str]:
                t = timer.decode_us(hq, hk, dh, b, kv)
                mfu = 4.0 * hq * dh * b * kv / (t * 1e-6 * peak)
                return ["bf16", "bf16", str(b), str(kv), f"{t:.3f}", f"{mfu:.6f}"]

            rel = f"mha/decode/{gpu_folder}/{key}-tp{tp}.csv"
            write(rel, DECODE_COLUMNS, measure(rel, grid.decode_cells(h, hkv, dh, tp), decode_row))
    return result


# ---------------------------------------------------------------------------------------------------------------------
# The GPU timer
# ---------------------------------------------------------------------------------------------------------------------


def gpu_folder_name(device_name: str) -> str:
    """A folder name from a CUDA device name: "NVIDIA H100 80GB HBM3" -> "h100"."""
    words = [w for w in device_name.replace("-", " ").split() if w.upper() not in ("NVIDIA", "TESLA", "GEFORCE")]
    return (words[0] if words else "gpu").lower()


def graph_reps(first_us: float, copies: int, budget_us: float = 1000.0, max_reps: int = 64) -> int:
    """Kernel calls per captured CUDA graph: about ``budget_us`` of work, so the graph launch and the event records
    vanish in the average, and at least one call per rotated weight copy, so no weight stays in the L2 cache."""
    return max(1, copies, min(max_reps, int(budget_us / max(first_us, 1.0))))


class TorchTimer:
    """Times kernels on ``cuda:0`` as vLLM runs them: replayed from a CUDA graph (vLLM captures its forward passes),
    so a small kernel's time is the GPU's, not PyTorch's dispatch (30 us on an H100, more than the kernel). Attention
    is the fastest of PyTorch's SDPA kernels that accept the shape (flash, cuDNN, memory-efficient; KV heads expanded
    for prefill kernels without grouped-query support). ``create`` raises ``InputError`` without torch or a GPU."""

    L2_FLUSH_BYTES = 256 * 2**20  # weights rotated through at least this much memory (H100 L2: 50 MB)

    def __init__(self, torch, warmup: int, iters: int) -> None:
        self.torch = torch
        self.warmup, self.iters = warmup, iters
        self.device = torch.device("cuda:0")
        self.dtype = torch.bfloat16
        self.device_name = torch.cuda.get_device_name(0)
        self.eager_fallbacks = 0  # kernels that could not be captured in a graph, timed back to back instead
        self.attention_wins: dict[str, int] = {}  # SDPA kernel name -> cells where it was the fastest

    @classmethod
    def create(cls, warmup: int = 3, iters: int = 10) -> "TorchTimer":
        try:
            import torch  # noqa: PLC0415 - imported lazily: only bench-mfu needs it
        except ImportError:
            raise InputError("no CUDA device: bench-mfu needs PyTorch with CUDA, and torch is not installed "
                             "(pip install 'blis-sim[gpu]')") from None
        if not torch.cuda.is_available():
            raise InputError("no CUDA device: bench-mfu measures kernels on the local GPU "
                             "(torch.cuda.is_available() is False)")
        return cls(torch, warmup, iters)

    def _events_us(self, run: Callable[[], object]) -> float:
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run()
        end.record()
        torch.cuda.synchronize()
        return start.elapsed_time(end) * 1000.0  # ms -> us

    def _time_us(self, fn: Callable[[int], object], copies: int = 1) -> float:
        """Median time of one call of ``fn``. Warm-up on a side stream (as CUDA graph capture requires), then a graph
        of ``graph_reps`` calls replayed ``iters`` times (fewer for slow kernels: about 0.2 s per cell, at least 3).
        A kernel that cannot be captured is timed as the same calls launched back to back."""
        torch = self.torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for i in range(self.warmup):
                fn(i)
        torch.cuda.current_stream().wait_stream(side)
        first_us = self._events_us(lambda: fn(0))
        reps = graph_reps(first_us, copies)

        def calls() -> None:
            for i in range(reps):
                fn(i)

        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                calls()
            run: Callable[[], object] = graph.replay
        except RuntimeError:
            torch.cuda.synchronize()
            self.eager_fallbacks += 1
            graph, run = None, calls
        run()
        iters = max(3, min(self.iters, int(2e5 / max(first_us * reps, 1.0))))
        times = sorted(self._events_us(run) / reps for _ in range(iters))
        del graph
        return times[len(times) // 2]

    def _fastest_sdpa_us(self, q, k, v, causal: bool, expand_for_prefill: bool) -> float:
        """The fastest SDPA kernel for these tensors. Kernels that reject the shape raise (RuntimeError) and are
        skipped; where none accepts grouped-query attention, prefill retries with the KV heads expanded."""
        torch = self.torch
        from torch.nn.attention import SDPBackend, sdpa_kernel  # noqa: PLC0415

        sdpa = torch.nn.functional.scaled_dot_product_attention
        variants = [(k, v, q.shape[1] != k.shape[1])]
        if expand_for_prefill and q.shape[1] != k.shape[1]:
            group = q.shape[1] // k.shape[1]
            variants.append((k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1), False))
        best, winner = float("inf"), "math"
        for backend in (SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION):
            for kk, vv, gqa in variants:
                try:
                    with warnings.catch_warnings(), sdpa_kernel(backend):
                        warnings.simplefilter("ignore")
                        t = self._time_us(lambda i, kk=kk, vv=vv, gqa=gqa: sdpa(q, kk, vv, is_causal=causal,
                                                                                enable_gqa=gqa))
                except RuntimeError:
                    torch.cuda.synchronize()
                    continue
                if t < best:
                    best, winner = t, backend.name.lower() + ("" if kk is k else " (expanded KV)")
        self.attention_wins[winner] = self.attention_wins.get(winner, 0) + 1
        if best == float("inf"):  # no fused kernel: PyTorch's default choice (the math kernel)
            best = self._time_us(lambda i: sdpa(q, k, v, is_causal=causal, enable_gqa=q.shape[1] != k.shape[1]))
        return best

    def _release(self) -> None:
        self.torch.cuda.empty_cache()

    def gemm_us(self, m: int, k: int, n: int) -> float:
        torch = self.torch
        copies = max(1, min(16, -(-self.L2_FLUSH_BYTES // (k * n * 2))))
        weights = [torch.randn(n, k, device=self.device, dtype=self.dtype) for _ in range(copies)]
        x = torch.randn(m, k, device=self.device, dtype=self.dtype)
        try:
            return self._time_us(lambda i: torch.nn.functional.linear(x, weights[i % copies]), copies)
        finally:
            del weights, x
            self._release()

    def prefill_us(self, heads: int, kv_heads: int, head_dim: int, seq_len: int) -> float:
        torch = self.torch
        q = torch.randn(1, heads, seq_len, head_dim, device=self.device, dtype=self.dtype)
        k = torch.randn(1, kv_heads, seq_len, head_dim, device=self.device, dtype=self.dtype)
        v = torch.randn_like(k)
        try:
            return self._fastest_sdpa_us(q, k, v, causal=True, expand_for_prefill=True)
        finally:
            del q, k, v
            self._release()

    def decode_us(self, heads: int, kv_heads: int, head_dim: int, batch: int, kv_len: int) -> float:
        torch = self.torch
        q = torch.randn(batch, heads, 1, head_dim, device=self.device, dtype=self.dtype)
        k = torch.randn(batch, kv_heads, kv_len, head_dim, device=self.device, dtype=self.dtype)
        v = torch.randn_like(k)
        try:
            return self._fastest_sdpa_us(q, k, v, causal=False, expand_for_prefill=False)
        finally:
            del q, k, v
            self._release()

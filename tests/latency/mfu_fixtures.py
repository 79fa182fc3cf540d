"""Small synthetic MFU tables in the --bench-data-path layout, written into a temporary folder.

Latencies follow a roofline with fixed efficiencies, so they are physically possible on an H100 (989.5 TFLOP/s BF16,
3.35 TB/s) and their ``mfu`` column is consistent with them.
"""

from __future__ import annotations

from pathlib import Path

from blis_sim.step import StepRecord

# Paths computed from this file (never from the working directory); the shared tables may be absent.
REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "src" / "blis_sim" / "data"
BENCH_DATA = REPO / ".." / "shared" / "data" / "bench_data"

PEAK = 989.5e12
BW = 3.35e12
GEMM_M = (8, 64, 512, 4096)
GEMM_K = (2048, 8192)
GEMM_N = (4096, 16384)
PREFILL_S = (1024, 4096, 16384)
DECODE_B = (1, 16, 128)
DECODE_KV = (1024, 4096, 16384)


make_step = StepRecord.priced


def gemm_latency_us(m: int, k: int, n: int, nbytes: int = 2) -> float:
    compute = 2 * m * k * n / (PEAK * 0.6)
    memory = (m * k + k * n + m * n) * nbytes / (BW * 0.8)
    return 4.0 + max(compute, memory) * 1e6


def prefill_latency_us(h: int, dh: int, s: int) -> float:
    return 20.0 + 2 * h * dh * s * s / (PEAK * 0.7) * 1e6


def decode_latency_us(hkv: int, dh: int, b: int, kv: int) -> float:
    return 18.0 + b * kv * 2 * hkv * dh * 2 / (BW * 0.9) * 1e6


def gemm_rows(dtype_column: bool = False) -> list[str]:
    rows = []
    for k in GEMM_K:
        for n in GEMM_N:
            for m in GEMM_M:
                t = gemm_latency_us(m, k, n)
                row = f"{m},{k},{n},{t:.3f},{2 * m * k * n / (t * 1e-6 * PEAK):.3f}"
                rows.append(row + (",bf16" if dtype_column else ""))
    return rows


def write_tables(root: Path, gpu: str = "h100", shapes=((32, 8, 128),), tps=(1, 2), drop_corner: bool = True) -> Path:
    """A complete, valid database under ``root``; returns ``root``. With ``drop_corner`` the decode grids miss their
    largest (batch, kv_len) cell, as the published ones do."""
    (root / "gemm" / gpu).mkdir(parents=True)
    (root / "gemm" / gpu / "data.csv").write_text("m,k,n,latency_us,mfu\n" + "\n".join(gemm_rows()) + "\n")
    (root / "mha" / "prefill" / gpu).mkdir(parents=True)
    (root / "mha" / "decode" / gpu).mkdir(parents=True)
    for h, hkv, dh in shapes:
        lines = ["dtype,seq_len,latency_us,mfu"]
        for s in PREFILL_S:
            t = prefill_latency_us(h, dh, s)
            lines.append(f"bf16,{s},{t:.3f},{2 * h * dh * s * s / (t * 1e-6 * PEAK):.3f}")
        (root / "mha" / "prefill" / gpu / f"{h}-{hkv}-{dh}.csv").write_text("\n".join(lines) + "\n")
        for tp in tps:
            lines = ["dtype,kv_dtype,batch_size,kv_len,latency_us,mfu"]
            for b in DECODE_B:
                for kv in DECODE_KV:
                    if drop_corner and (b, kv) == (DECODE_B[-1], DECODE_KV[-1]):
                        continue
                    t = decode_latency_us(max(1, hkv // tp), dh, b, kv)
                    lines.append(f"bf16,bf16,{b},{kv},{t:.3f},{4 * (h // tp) * dh * b * kv / (t * 1e-6 * PEAK):.3f}")
            (root / "mha" / "decode" / gpu / f"{h}-{hkv}-{dh}-tp{tp}.csv").write_text("\n".join(lines) + "\n")
    return root

#!/usr/bin/env python3
"""Derive every shipped GPU's calibration from the H100 fit and each GPU's datasheet (issue 23, docs/gpu-transfer.md).

The H100 entry of src/blis_sim/data/hardware_config.json is fitted on real vLLM measurements (`blis calibrate`), and
src/blis_sim/data/efficiency_h100.json on H100 kernel micro-benchmarks. No other GPU has measurements here, so their
entries are not fitted but *transferred*: what the H100 fit learned is split into quantities that carry over to
another GPU unchanged and quantities that follow from each GPU's datasheet.

* **Efficiencies relative to the GPU's own peaks carry over, scaled by what each GPU achieves of its peak**: the
  MFUs, the bandwidth efficiencies, roofline v2's GEMM/attention efficiencies (mu, eta) and launch costs, the TP
  scaling exponents. Both GPUs run the same vLLM kernels (cuBLAS, FlashAttention, the fused MoE kernel), written to
  saturate whichever unit bounds them, so a serving kernel's efficiency is taken to be the H100's times the ratio of
  the two GPUs' *achievable* shares of their peaks, measured by one public benchmark on both
  (``ACHIEVABLE`` below, sources in docs/data/gpu_achievable.yaml): BabelStream Triad for memory (an A100 reaches
  83.4% of its HBM2e peak where an H100 reaches 88.7% of its HBM3's: streaming efficiencies x 0.940). Where no such
  measurement was found the ratio is 1. The same is recorded for compute (the maximum achievable matmul FLOPS of
  large square BF16 GEMMs: A100 86.9%, H100 80.3%) but not applied (``APPLY_GEMM_RATIO``): a serving step's GEMMs
  are skinny (a few to a few thousand rows), where the H100 fit's compute efficiency already holds, and large
  square GEMMs at boost clocks do not measure them; applied, it made A100 steps faster and the published A100
  prefill-heavy points 5 points worse (docs/gpu-transfer.md).
* **Host-side overheads carry over unchanged**: the per-step (`TOverheadMicros`), per-prefill and per-request
  (`requestOverheadMicros`) terms are CPU time of the vLLM engine and API server (scheduling, sampling bookkeeping,
  detokenising, HTTP), which the GPU model does not change.
* **Peaks, memory and links come from datasheets** (table `DATASHEETS` below, sources in its comments): dense BF16
  and FP8 tensor peaks (FP8 0 where the GPU has no FP8 tensor cores: vLLM then runs FP8 checkpoints weight-only,
  W8A16), HBM/GDDR bandwidth, memory, and the GPU-to-GPU link bandwidth per direction.
* **Interconnect terms scale with the link**: the all-reduce bus bandwidth roofline v1 was given (`allReduceBwGBs`)
  keeps its share of the link bandwidth; the per-all-reduce latency is scaled by the ratio of NCCL's own latency
  model for a two-rank ring all-reduce with the low-latency protocol on the GPU's link class to the same on NVLink
  (NCCL's tuning tables, src/graph/tuning.cc: a ring LL base latency of 3.6 us plus 0.47 us per step over NVLink and
  1.0 us per step over PCIe, two steps for two ranks: (3.6 + 2 x 1.0) / (3.6 + 2 x 0.47) = 1.23 for PCIe).

What does not carry over, and is left out knowingly: per-GPU kernel maturity (new GPUs' kernels often reach a lower
share of the peak at first), clock throttling under sustained load (L40S), and GDDR6's lower achievable share of
its bandwidth. docs/gpu-transfer.md compares the transferred entries with published vLLM measurements.

    python scripts/transfer_calibration.py           # rewrite hardware_config.json and efficiency_<gpu>.json
    python scripts/transfer_calibration.py --check   # exit 1 when the packaged files differ from a fresh derivation
    python scripts/transfer_calibration.py --table   # print the derivation table (Markdown, for the docs)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "blis_sim" / "data"
HARDWARE = DATA / "hardware_config.json"
SOURCE_GPU = "H100"
SIG = 6  # significant digits of derived values

# Datasheet figures per GPU (dense, i.e. without structured sparsity; per GPU; link bandwidth per direction):
#   H100 SXM5, H200 SXM: NVIDIA H100 / H200 Tensor Core GPU datasheets (BF16 1,979 and FP8 3,958 TFLOPS with
#     sparsity; HBM3 3.35 TB/s, 80 GB; HBM3e 4.8 TB/s, 141 GB; NVLink 4 900 GB/s bidirectional).
#   H100 PCIe: the same datasheet's PCIe column (BF16 1,513 and FP8 3,026 TFLOPS with sparsity; HBM2e 2 TB/s, 80 GB;
#     PCIe Gen5 128 GB/s bidirectional; an NVLink bridge pairs two cards at most: taken as absent, as for A100 PCIe).
#     No price: the GPU clouds whose rates the others use do not list it (capacity reports no cost for it).
#   A100 80GB / 40GB SXM: NVIDIA A100 datasheet (BF16 312 TFLOPS dense; no FP8 tensor cores; HBM2e 2,039 GB/s, HBM2
#     1,555 GB/s; NVLink 3 600 GB/s bidirectional). A100 80GB PCIe: 1,935 GB/s, 300 W, PCIe Gen4 x16 (an NVLink bridge
#     pairs two cards at most; taken as absent); priced as the A100 80GB (Modal lists one A100 80GB rate).
#   L40S: NVIDIA L40S datasheet (BF16 362.05 / FP8 733 TFLOPS dense; GDDR6 864 GB/s, 48 GB; PCIe Gen4 x16, 64 GB/s
#     bidirectional, no NVLink).
#   B200: NVIDIA HGX B200 datasheet (per 8 GPUs: FP16/BF16 36 PFLOPS and FP8 72 PFLOPS with sparsity, 1,440 GB,
#     64 TB/s; NVLink 5 1.8 TB/s bidirectional per GPU).
# priceUsdPerHour: Modal's published per-second rates x 3,600 (src/blis_sim/data/README.md); read by capacity only.
DATASHEETS: dict[str, dict] = {
    "H100": {"TFlopsPeak": 989.5, "fp8TFlopsPeak": 1979.0, "BwPeakTBs": 3.35, "memoryGB": 80, "link": "nvlink",
             "linkBwGBs": 450, "priceUsdPerHour": 3.9492},
    "H100-PCIe": {"TFlopsPeak": 756.5, "fp8TFlopsPeak": 1513.0, "BwPeakTBs": 2.0, "memoryGB": 80, "link": "pcie",
                  "linkBwGBs": 64},
    "H200": {"TFlopsPeak": 989.5, "fp8TFlopsPeak": 1979.0, "BwPeakTBs": 4.8, "memoryGB": 141, "link": "nvlink",
             "linkBwGBs": 450, "priceUsdPerHour": 4.5396},
    "A100-80GB": {"TFlopsPeak": 312.0, "fp8TFlopsPeak": 0.0, "BwPeakTBs": 2.039, "memoryGB": 80, "link": "nvlink",
                  "linkBwGBs": 300, "priceUsdPerHour": 2.4984},
    "A100-80GB-PCIe": {"TFlopsPeak": 312.0, "fp8TFlopsPeak": 0.0, "BwPeakTBs": 1.935, "memoryGB": 80, "link": "pcie",
                       "linkBwGBs": 32, "priceUsdPerHour": 2.4984},
    "A100-40GB": {"TFlopsPeak": 312.0, "fp8TFlopsPeak": 0.0, "BwPeakTBs": 1.555, "memoryGB": 40, "link": "nvlink",
                  "linkBwGBs": 300, "priceUsdPerHour": 2.0988},
    "L40S": {"TFlopsPeak": 362.05, "fp8TFlopsPeak": 733.0, "BwPeakTBs": 0.864, "memoryGB": 48, "link": "pcie",
             "linkBwGBs": 32, "priceUsdPerHour": 1.9512},
    "B200": {"TFlopsPeak": 2250.0, "fp8TFlopsPeak": 4500.0, "BwPeakTBs": 8.0, "memoryGB": 180, "link": "nvlink",
             "linkBwGBs": 900, "priceUsdPerHour": 6.2496},
}
# What each GPU achieves of its datasheet peak in one public benchmark run on several GPUs (docs/data/
# gpu_achievable.yaml, read 2026-12-05): memory = BabelStream Triad (Azure's HPC benchmark results for H100, H200
# and A100 SXM4 80GB; BabelStream 5.0 on ALCF Polaris for A100 40GB), GEMM = the maximum achievable BF16 matmul
# FLOPS (stas00/ml-engineering MAMF table for H100, A100 SXM, A100 PCIe, B200; the PyTorch crowd-sourced 8192^3 table
# for H200, L40S, A100 40GB, whose H100 row, 80.6%, agrees with MAMF's 80.3%). None: not found (ratio 1).
ACHIEVABLE: dict[str, dict[str, float | None]] = {
    "H100": {"memory": 2970 / 3350, "gemm": 794.5 / 989.5},
    "H100-PCIe": {"memory": None, "gemm": None},  # none found
    "H200": {"memory": 4150 / 4800, "gemm": 790.29 / 989.5 * (794.5 / 797.51)},
    "A100-80GB": {"memory": 1700 / 2039, "gemm": 271.2 / 312},
    "A100-80GB-PCIe": {"memory": 1700 / 2039, "gemm": 252.9 / 312},  # memory: the SXM4 card's share (none found)
    "A100-40GB": {"memory": 1377.5 / 1555, "gemm": 246.33 / 312 * (794.5 / 797.51)},
    "L40S": {"memory": None, "gemm": 269.15 / 362.05 * (794.5 / 797.51)},
    "B200": {"memory": None, "gemm": 1745.0 / 2250},
}
# Keys scaled by the memory ratio, and by the GEMM ratio (the rest of the efficiencies carry over unchanged).
MEMORY_KEYS = ("BwEffConstant", "decodeKvBwEff", "gemmEta")
GEMM_KEYS = ("mfuPrefill", "mfuDecode")
APPLY_GEMM_RATIO = False  # see the module docstring

# Other names of the same GPU (the blackbox rows say A100-80, the reference's roofline file A100-SXM).
ALIASES = {"A100-80": "A100-80GB", "A100-SXM": "A100-80GB"}
ORDER = ("H100", "H100-PCIe", "H200", "A100-80", "A100-80GB", "A100-SXM", "A100-80GB-PCIe", "A100-40GB", "L40S", "B200")

# NCCL's latency model of a ring all-reduce with the LL protocol, in us: base + hops x per-hop latency of the link.
NCCL_BASE_US = 3.6
NCCL_HOP_US = {"nvlink": 0.47, "pcie": 1.0}
NCCL_HOPS = 2  # a two-rank ring: 2 (n - 1) steps

# What each calibration key is, for the transfer. Keys not listed are copied (documented as carried over).
DATASHEET_KEYS = ("TFlopsPeak", "fp8TFlopsPeak", "BwPeakTBs", "memoryGB", "linkBwGBs", "priceUsdPerHour")
LATENCY_KEYS = ("allReduceLatency",)  # scaled by the link class's latency ratio
LINK_BW_KEYS = ("allReduceBwGBs",)  # keeps its share of the link bandwidth
EFFICIENCY_KEYS = ("BwEffConstant", "mfuPrefill", "mfuDecode", "mfuPrefillMultiplier", "mfuDecodeMultiplier",
                   "prefillBwFactor", "decodeBwFactor", "vectorPeakFraction", "tpScalingExponent",
                   "decodeTpScalingExponent", "decodeKvBwEff", "gemmEta")
HOST_KEYS = ("TOverheadMicros", "prefillOverheadMicros", "mixedPrefillOverheadMicros", "requestOverheadMicros",
             "perLayerOverhead")
SWITCH_KEYS = ("moeExperts",)


def _round(x: float) -> float:
    return float(f"{x:.{SIG}g}")


def latency_ratio(link: str) -> float:
    source = DATASHEETS[SOURCE_GPU]["link"]
    return (NCCL_BASE_US + NCCL_HOPS * NCCL_HOP_US[link]) / (NCCL_BASE_US + NCCL_HOPS * NCCL_HOP_US[source])


def achievable_ratio(gpu: str, kind: str, applied: bool = True) -> float:
    """What ``gpu`` achieves of its peak over what the H100 achieves of its own, in one benchmark (1: unknown, or
    the GEMM ratio when it is not applied)."""
    if applied and kind == "gemm" and not APPLY_GEMM_RATIO:
        return 1.0
    mine, source = ACHIEVABLE[gpu][kind], ACHIEVABLE[SOURCE_GPU][kind]
    return 1.0 if mine is None or source is None else mine / source


def transfer_value(key: str, value: float, gpu: str) -> float:
    """The value of calibration key ``key`` on ``gpu``, given its H100 value."""
    sheet, source = DATASHEETS[gpu], DATASHEETS[SOURCE_GPU]
    if key in LATENCY_KEYS:
        return _round(value * latency_ratio(sheet["link"]))
    if key in LINK_BW_KEYS:
        return _round(value * sheet["linkBwGBs"] / source["linkBwGBs"])
    if key in MEMORY_KEYS and gpu != SOURCE_GPU:
        return _round(min(1.0, value * achievable_ratio(gpu, "memory")))
    if key in GEMM_KEYS and gpu != SOURCE_GPU:
        return _round(min(1.0, value * achievable_ratio(gpu, "gemm")))
    return value  # host overheads, launch costs and switches carry over unchanged


def derive_entry(source: dict, gpu: str) -> dict:
    """The hardware_config.json entry of ``gpu`` (a canonical name) from the H100 entry ``source``."""
    sheet = DATASHEETS[gpu]
    out: dict = {}
    for key, value in source.items():
        if key in DATASHEET_KEYS or key == "efficiencyModel":
            continue
        if key == "rooflineV2":
            out[key] = {k: transfer_value(k, v, gpu) for k, v in value.items()}
        else:
            out[key] = transfer_value(key, value, gpu)
    for key in DATASHEET_KEYS:
        if key in sheet:  # priceUsdPerHour may be unknown
            out[key] = sheet[key]
    out["efficiencyModel"] = gpu
    # the order of the H100 entry, datasheet keys first
    return {**{k: out[k] for k in ("TFlopsPeak", "fp8TFlopsPeak", "BwPeakTBs")},
            **{k: v for k, v in out.items() if k not in ("TFlopsPeak", "fp8TFlopsPeak", "BwPeakTBs")}}


def derive_efficiency(source: dict, gpu: str) -> dict:
    """efficiency_<gpu>.json from efficiency_h100.json: the H100's efficiencies scaled by the achievable-share ratios
    (bandwidth efficiencies by memory, compute efficiencies by GEMM), the same launch costs, this GPU's peaks."""
    sheet = DATASHEETS[gpu]
    mem, gemm = achievable_ratio(gpu, "memory"), achievable_ratio(gpu, "gemm")

    def scaled(block: dict, keys: dict[str, float]) -> dict:
        return {k: (_round(min(1.0, v * keys[k])) if k in keys else v) for k, v in block.items()}

    return {
        "schema_version": source["schema_version"],
        "gpu": gpu,
        "about": (f"Kernel efficiency model of roofline v2 for {gpu}, transferred from the H100 model by "
                  "scripts/transfer_calibration.py: efficiencies are shares of the GPU's own peaks, scaled by the "
                  "ratio of what this GPU and the H100 achieve of their peaks in public benchmarks (achievable_ratio); "
                  "launch costs in microseconds carry over; P and B are this GPU's TFlopsPeak and BwPeakTBs. Not "
                  "fitted on this GPU's kernels (docs/gpu-transfer.md)."),
        "transferred_from": {"gpu": SOURCE_GPU, "file": "efficiency_h100.json",
                             "fitted_with": source.get("fitted_with")},
        "peaks": {"TFlopsPeak": sheet["TFlopsPeak"], "fp8TFlopsPeak": sheet["fp8TFlopsPeak"],
                  "BwPeakTBs": sheet["BwPeakTBs"]},
        "achievable_ratio": {"memory": _round(mem), "gemm": _round(gemm),
                             "gemm_recorded": _round(achievable_ratio(gpu, "gemm", applied=False))},
        "gemm": scaled(source["gemm"], {"mu": gemm, "eta": mem}),
        "decode_attention": scaled(source["decode_attention"], {"eta": mem}),
        "prefill_attention": scaled(source["prefill_attention"], {"mu": gemm}),
    }


def derive(hardware: dict, efficiency: dict) -> tuple[dict, dict[str, dict]]:
    source = hardware[SOURCE_GPU]
    entries: dict = {}
    for name in ORDER:
        if name == SOURCE_GPU:
            entries[name] = {**source, "fp8TFlopsPeak": DATASHEETS[SOURCE_GPU]["fp8TFlopsPeak"],
                             "efficiencyModel": SOURCE_GPU}
            continue
        canonical = ALIASES.get(name, name)
        entries[name] = derive_entry(source, canonical)
    effs = {gpu: derive_efficiency(efficiency, gpu) for gpu in DATASHEETS if gpu != SOURCE_GPU}
    return entries, effs


def _dump(obj) -> str:
    return json.dumps(obj, indent=2) + "\n"


def table(entries: dict) -> str:
    """The derivation table of docs/gpu-transfer.md."""
    keys = ("TFlopsPeak", "fp8TFlopsPeak", "BwPeakTBs", "memoryGB", "linkBwGBs", "mfuPrefill", "mfuDecode",
            "BwEffConstant", "decodeKvBwEff", "TOverheadMicros", "requestOverheadMicros", "allReduceLatency",
            "allReduceBwGBs")
    gpus = [g for g in ORDER if g not in ALIASES]
    lines = ["| key | how | " + " | ".join(gpus) + " |", "|---|---|" + "---|" * len(gpus)]

    def how(k: str) -> str:
        if k in DATASHEET_KEYS:
            return "datasheet"
        if k in LATENCY_KEYS:
            return "x NCCL latency ratio"
        if k in LINK_BW_KEYS:
            return "x link / H100 link"
        if k in HOST_KEYS:
            return "host: copied"
        if k in MEMORY_KEYS:
            return "x achievable memory ratio"
        if k in GEMM_KEYS and APPLY_GEMM_RATIO:
            return "x achievable GEMM ratio"
        return "share of peak: copied"

    for kind in ("memory", "gemm"):
        how_used = "applied" if kind == "memory" or APPLY_GEMM_RATIO else "recorded, not applied"
        lines.append(f"| achievable {kind} ratio | benchmark share / H100's ({how_used}) | "
                     + " | ".join(f"{achievable_ratio(g, kind, applied=False):.3f}" for g in gpus) + " |")
    for k in keys:
        lines.append(f"| {k} | {how(k)} | " + " | ".join(f"{entries[g].get(k, 0):g}" for g in gpus) + " |")
    for k in ("TOverheadMicros", "requestOverheadMicros", "allReduceLatency", "gemmEta"):
        lines.append(f"| rooflineV2.{k} | {how(k)} | "
                     + " | ".join(f"{entries[g]['rooflineV2'][k]:g}" for g in gpus) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when the packaged files are not current")
    ap.add_argument("--table", action="store_true", help="print the derivation table (Markdown)")
    args = ap.parse_args(argv)
    hardware = json.loads(HARDWARE.read_text(encoding="utf-8"))
    efficiency = json.loads((DATA / "efficiency_h100.json").read_text(encoding="utf-8"))
    entries, effs = derive(hardware, efficiency)
    files = {HARDWARE: _dump(entries)}
    for gpu, eff in effs.items():
        files[DATA / f"efficiency_{gpu.lower()}.json"] = _dump(eff)
    if args.table:
        print(table(entries))
        return 0
    stale = [p for p, text in files.items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    if args.check:
        for p in stale:
            print(f"not current: {p.relative_to(ROOT)} (run python scripts/transfer_calibration.py)", file=sys.stderr)
        return 1 if stale else 0
    for p in stale:
        p.write_text(files[p], encoding="utf-8")
        print(f"wrote {p.relative_to(ROOT)}")
    if not stale:
        print("all files current")
    return 0


if __name__ == "__main__":
    sys.exit(main())

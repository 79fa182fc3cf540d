#!/usr/bin/env python3
"""Print roofline v2's per-kernel breakdown of one step (docs/fp8-moe.md), as a Markdown table.

    python scripts/step_breakdown.py --model-config-folder model_configs/llama-4-scout-17b-16e-instruct-fp8-dynamic \
        --hardware H100 --tp 2 --decodes 32 --context 2048 [--prefill 512] [--hardware-config FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from blis_sim.latency.hardware import load_hardware  # noqa: E402
from blis_sim.latency.hf_config import load_model_config  # noqa: E402
from blis_sim.latency.mfu.fitted import load_packaged_efficiency  # noqa: E402
from blis_sim.latency.roofline_v2 import RooflineV2  # noqa: E402
from blis_sim.step import StepRecord  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-config-folder", type=Path, required=True)
    ap.add_argument("--hardware", default="H100")
    ap.add_argument("--hardware-config", type=Path, default=ROOT / "src" / "blis_sim" / "data" / "hardware_config.json")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--decodes", type=int, default=32)
    ap.add_argument("--context", type=int, default=2048, help="context of every decode")
    ap.add_argument("--prefill", type=int, default=0, help="new tokens of one prefill chunk (0: none)")
    args = ap.parse_args(argv)
    hw = load_hardware(args.hardware_config, args.hardware).for_v2()
    model = RooflineV2.fitted(load_model_config(args.model_config_folder), hw, args.tp,
                              load_packaged_efficiency(hw.efficiency_model or hw.name))
    step = StepRecord(0)
    step.num_decodes, step.decode_context_sum = args.decodes, args.decodes * args.context
    if args.prefill:
        step.prefill_items = [(0, args.prefill)]
        step.num_prefill_tokens = args.prefill
    rows = model.breakdown(step)
    total = sum(us for _, us, _ in rows)
    print("| kernel | µs | share | what |")
    print("|---|---:|---:|---|")
    for name, us, what in rows:
        print(f"| {name} | {us:,.1f} | {us / total:.1%} | {what} |")
    print(f"| **step** | **{total:,.1f}** | 100% | step_time = {model.step_time(step)} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

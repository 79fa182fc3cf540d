#!/usr/bin/env python3
"""Print step times of roofline v1, v2 with measured tables and v2 with the shipped fitted model, side by side.

    python scripts/compare_latency_models.py --bench-data-path ../shared/data/bench_data \\
        llama-3.1-8b-instruct qwen2.5-7b-instruct

Steps: decode batches of 1, 32 and 128 requests at context 1024, and one 2048-token prefill (from an empty cache),
on the packaged model configs and hardware entry (default H100, TP 1). v1 reads the entry's own keys, v2 the entry as
``blis run`` gives it to v2 (``HardwareCalib.for_v2``: the ``rooflineV2`` object's keys replace the entry's) with the
entry's ``efficiencyModel``. Without --bench-data-path the tables column is left out. Output is a Markdown table in
microseconds.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from blis_sim.latency.hardware import load_hardware  # noqa: E402
from blis_sim.latency.hf_config import load_model_config  # noqa: E402
from blis_sim.latency.mfu.fitted import load_packaged_efficiency  # noqa: E402
from blis_sim.latency.mfu.tables import MFUDatabase  # noqa: E402
from blis_sim.latency.roofline_v1 import RooflineV1  # noqa: E402
from blis_sim.latency.roofline_v2 import RooflineV2  # noqa: E402
from blis_sim.step import StepRecord  # noqa: E402

DATA = ROOT / "src" / "blis_sim" / "data"


_step = StepRecord.priced


CASES = [("decode 1 @ 1024", _step((), [1024])), ("decode 32 @ 1024", _step((), [1024] * 32)),
         ("decode 128 @ 1024", _step((), [1024] * 128)), ("prefill 2048", _step([(0, 2048)]))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="folders under src/blis_sim/data/model_configs")
    ap.add_argument("--bench-data-path", type=Path)
    ap.add_argument("--hardware", default="H100")
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--hardware-config", type=Path, default=DATA / "hardware_config.json",
                    help="default: the packaged (calibrated) file; hardware_config_handset.json for the hand-set one")
    args = ap.parse_args(argv)
    logging.getLogger("blis_sim").setLevel(logging.ERROR)
    hw = load_hardware(args.hardware_config, args.hardware)
    hw_v2 = hw.for_v2()  # v2 reads the entry's ``rooflineV2`` overrides (its own overheads, gemmEta), as blis run does
    db = (MFUDatabase.load(args.bench_data_path, args.hardware, hw_v2.tflops_peak, hw_v2.bw_peak_tbs)
          if args.bench_data_path else None)
    eff = load_packaged_efficiency(hw.efficiency_model or hw.name)
    columns = ["v1", *(["v2 (tables)"] if db else []), "v2 (fitted)"]
    print(f"| model ({hw.name}, TP {args.tp}) | step | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for name in args.models:
        cfg = load_model_config(DATA / "model_configs" / name)
        models = [RooflineV1(cfg, hw, args.tp), *([RooflineV2.from_tables(cfg, hw_v2, args.tp, db)] if db else []),
                  RooflineV2.fitted(cfg, hw_v2, args.tp, eff)]
        for label, step in CASES:
            print(f"| {name} | {label} | " + " | ".join(f"{m.step_time(step):,}" for m in models) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The accuracy table of the README: MAPE of every latency model and engine loop over the shared experiments.

    python scripts/accuracy_table.py --ground-truth ../shared/data/ground_truth --calibration h100-v1.json \
        [--calibration-v2 h100-v2.json] [--jobs 1] [--requests-per-point 20000] [--json out.json]

Runs ``blis_sim.evaluate.evaluate`` once per (latency model, hardware config, engine loop): roofline v1 with the
hand-set constants (``hardware_config_handset.json``) and with the packaged (calibrated) ones, roofline v2 with both,
and blackbox, each with the synchronous and the asynchronous loop. Every row is reported over all averaged points
and over the held-out experiments of the calibration file(s) only (the split recorded in their ``calibration.split``),
as MAPE with the median absolute error in brackets. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from blis_sim.evaluate.runner import DEFAULT_REQUESTS_PER_POINT, Options, evaluate, hardware_config_path
from blis_sim.evaluate.scoring import aggregate

COLS = ("ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms", "throughput_tokens_per_s")


def _cell(agg: dict, m: str) -> str:
    v, med = agg["mape"].get(m), agg["median_ape"].get(m)
    return "-" if v is None else f"{v:.1f}% ({med:.1f}%)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ground-truth", required=True, type=Path)
    ap.add_argument("--calibration", type=Path, help="blis calibrate --out of roofline v1 (its held-out split)")
    ap.add_argument("--calibration-v2", type=Path, help="blis calibrate --out of roofline v2 (its held-out split)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--requests-per-point", type=int, default=DEFAULT_REQUESTS_PER_POINT)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--only", default=None, help="comma-separated row labels to run (default: all)")
    args = ap.parse_args(argv)
    holdout = {}
    for key, path in (("roofline-v1", args.calibration), ("roofline-v2", args.calibration_v2)):
        if path is not None:
            holdout[key] = set(json.loads(path.read_text())["calibration"]["split"]["holdout"])
    handset, packaged = hardware_config_path("handset"), None
    rows = [
        ("roofline v1, hand-set", "roofline-v1", handset),
        ("roofline v1, calibrated (packaged default)", "roofline-v1", packaged),
        ("roofline v2, hand-set overheads", "roofline-v2", handset),
        ("roofline v2, calibrated overheads (packaged default)", "roofline-v2", packaged),
        ("blackbox (defaults-file rows)", "blackbox", packaged),
    ]
    only = set(args.only.split(",")) if args.only else None
    results = []
    for label, model, hw in rows:
        for loop_name, loop in (("sync", False), ("async", True)):
            tag = f"{label}, {loop_name}"
            if only and not any(o in tag for o in only):
                continue
            started = time.perf_counter()
            try:
                ev = evaluate(args.ground_truth, Options(latency_model=model, hardware_config=hw, jobs=args.jobs,
                                                          requests_per_point=args.requests_per_point,
                                                          async_scheduling=loop))
            except ValueError as exc:
                print(f"{tag}: {exc}", file=sys.stderr)
                continue
            wall = time.perf_counter() - started
            entry = {"row": tag, "latency_model": model, "hardware_config": str(hw or "packaged"), "loop": loop_name,
                     "all": aggregate(ev.points), "wall_s": round(wall, 1), "failed": len(ev.failed)}
            held = holdout.get(model) or holdout.get("roofline-v1")
            if held:
                entry["holdout"] = aggregate([p for p in ev.points if p.experiment in held])
            results.append(entry)
            print(f"{tag}: {wall:.0f} s", file=sys.stderr)
    head = "| latency model, loop | set | points | TTFT mean | TTFT p90 | ITL | E2E mean | E2E p90 | throughput |"
    print(head)
    print("|" + "---|" * 10)
    for r in results:
        for which in ("all", "holdout"):
            if which not in r or not r[which]["points"]:
                continue
            agg = r[which]
            print(f"| {r['row']} | {'held-out' if which == 'holdout' else 'all'} | {agg['points']} | "
                  + " | ".join(_cell(agg, m) for m in COLS) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

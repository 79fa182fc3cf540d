"""Per-point signed errors of a `blis evaluate --output` report, grouped by experiment, for error analysis.

    python scripts/error_analysis.py report.json [--metric ttft_mean_ms ...]

Prints, per experiment (model, TP, workload, engine loop), each point's rate, measured and predicted TTFT / ITL /
E2E means and the signed % errors, so that the direction and the load dependence of each group's error are visible.
"""

from __future__ import annotations

import argparse
import json
import sys

COLS = (("ttft_mean_ms", "TTFT"), ("ttft_p90_ms", "TTFTp90"), ("itl_mean_ms", "ITL"), ("e2e_mean_ms", "E2E"),
        ("e2e_p90_ms", "E2Ep90"), ("throughput_tokens_per_s", "Tput"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report")
    args = ap.parse_args(argv)
    rep = json.load(open(args.report, encoding="utf-8"))
    for exp in rep["experiments"]:
        print(f"\n== {exp['name']}  model={exp['model']} tp={exp['tp']} wl={exp['workload']} "
              f"loop={exp['engine_loop']} kv={exp['kv_blocks']}")
        print(f"  {'point':<24}{'rate':>7} {'TTFT meas':>10} {'pred':>9} {'ITL meas':>9} {'pred':>7} "
              + " ".join(f"{c:>8}" for _, c in COLS))
        for p in exp["point_results"]:
            m, pr, e = p["measured"], p["predicted"], p["error_pct"]
            rate = p["rate_rps"]
            print(f"  {p['label'][:24]:<24}{(rate if rate is not None else float('nan')):>7.2f} "
                  f"{m.get('ttft_mean_ms', float('nan')):>10.1f} {pr.get('ttft_mean_ms', float('nan')):>9.1f} "
                  f"{m.get('itl_mean_ms', float('nan')):>9.2f} {pr.get('itl_mean_ms', float('nan')):>7.2f} "
                  + " ".join(f"{e[k]:>+8.1f}" if k in e else f"{'-':>8}" for k, _ in COLS)
                  + ("  EXCL" if p["excluded"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

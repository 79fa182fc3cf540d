#!/usr/bin/env python3
"""Write src/blis_sim/data/intervals.json: 80% prediction intervals per metric from the calibration's residuals.

    python scripts/fit_intervals.py --ground-truth ../shared/data/ground_truth [--jobs 2] [--check]

For each roofline model, ``blis evaluate`` runs with the packaged (calibrated) constants on the shared measurements;
the residuals ln(measured / predicted) of the points of the calibration's *training* experiments
(src/blis_sim/data/calibration_h100.json, that model's split) give split-conformal bounds per metric
(blis_sim.report.intervals), and the points of its *held-out* experiments, used neither for the constants nor for
the bounds, give the coverage: the share of measured values inside their interval. Points evaluate excludes
(overloaded stages, saturation tests) are left out of both, as from the MAPE.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from blis_sim.evaluate.runner import Options, evaluate  # noqa: E402
from blis_sim.report.intervals import (  # noqa: E402
    LEVEL,
    SCHEMA_VERSION,
    MetricInterval,
    conformal_bounds,
    coverage,
    residual,
)

DATA = ROOT / "src" / "blis_sim" / "data"
METRICS = ("ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms", "throughput_tokens_per_s")
MODELS = ("roofline-v2", "roofline-v1")
SIG = 6


def _round(x: float) -> float:
    return float(f"{x:.{SIG}g}")


def fit(ground_truth: Path, kind: str, jobs: int) -> dict:
    split = json.loads((DATA / "calibration_h100.json").read_text())[kind]["split"]
    train, hold = set(split["train"]), set(split["holdout"])
    ev = evaluate(ground_truth, Options(latency_model=kind, jobs=jobs))
    pts = [p for p in ev.points if not p.excluded]
    metrics, cov, cov_n, mape = {}, {}, {}, {}
    for m in METRICS:
        tr_pts = [p for p in pts if p.experiment in train and m in p.measured and m in p.predicted
                  and residual(p.measured[m], p.predicted[m]) is not None]
        ho = [(p.measured[m], p.predicted[m]) for p in pts if p.experiment in hold and m in p.measured
              and m in p.predicted]
        res = [residual(p.measured[m], p.predicted[m]) for p in tr_pts]
        if len(res) < 5:
            continue
        try:
            lo, hi = conformal_bounds(res, LEVEL, groups=[p.experiment for p in tr_pts])
        except ValueError:  # too few experiments for a finite interval of this level: no interval for the metric
            continue
        iv = MetricInterval(_round(lo), _round(hi), len(res))
        metrics[m] = {"log_low": iv.log_low, "log_high": iv.log_high, "points": iv.points,
                      "experiments": len({p.experiment for p in tr_pts}),
                      "factor_low": _round(2.718281828459045 ** iv.log_low),
                      "factor_high": _round(2.718281828459045 ** iv.log_high)}
        c, n = coverage(ho, iv)
        if n:
            cov[m], cov_n[m] = _round(c), n
            mape[m] = _round(100 * sum(abs(b - a) / a for a, b in ho) / len(ho))
    return {"gpu": "H100", "train_experiments": len(train), "holdout_experiments": len(hold),
            "metrics": metrics, "holdout": {"coverage": cov, "points": cov_n, "mape": mape}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ground-truth", type=Path, default=ROOT / ".." / "shared" / "data" / "ground_truth")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--check", action="store_true", help="exit 1 when the packaged file is not current")
    args = ap.parse_args(argv)
    doc = {"schema_version": SCHEMA_VERSION, "level": LEVEL,
           "about": ("Prediction intervals: split-conformal bounds of ln(measured / predicted) per metric over the "
                     "training experiments of each model's calibration split, and the held-out coverage. Written by "
                     "scripts/fit_intervals.py; read by blis run --intervals and blis evaluate (docs/intervals.md)."),
           "models": {kind: fit(args.ground_truth, kind, args.jobs) for kind in MODELS}}
    text = json.dumps(doc, indent=1) + "\n"
    path = DATA / "intervals.json"
    if args.check:
        current = path.exists() and path.read_text() == text
        print("current" if current else f"not current: {path.relative_to(ROOT)}")
        return 0 if current else 1
    path.write_text(text)
    print(json.dumps({k: v["holdout"] for k, v in doc["models"].items()}, indent=1))
    print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

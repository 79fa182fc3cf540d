"""PNG plots of an evaluation (matplotlib, Agg backend: no display needed).

* ``<experiment>.png``: one panel per metric, measured and predicted per point, in point order;
* ``parity.png``: predicted against measured for every point and metric (log axes, y = x and the +-20% band).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InputError
from .experiment import METRICS
from .scoring import ScoredPoint


def write_plots(points: list[ScoredPoint], folder: Path) -> list[Path]:
    """Write the plots into ``folder`` (created) and return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--plots {folder}: cannot create the folder ({exc.strerror or exc})") from None
    written = []
    experiments = list(dict.fromkeys(p.experiment for p in points))
    for name in experiments:
        mine = [p for p in points if p.experiment == name]
        metrics = [m for m in METRICS if any(m in p.measured and m in p.predicted for p in mine)]
        if not metrics:
            continue
        fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics), 3.0), squeeze=False)
        for ax, m in zip(axes[0], metrics):
            xs = [i for i, p in enumerate(mine) if m in p.measured and m in p.predicted]
            ax.plot(xs, [mine[i].measured[m] for i in xs], "o-", label="measured")
            ax.plot(xs, [mine[i].predicted[m] for i in xs], "s--", label="predicted")
            for i in xs:
                if mine[i].excluded:
                    ax.axvspan(i - 0.4, i + 0.4, color="0.9")
            ax.set_title(m, fontsize=9)
            ax.set_xticks(xs)
            ax.set_xticklabels([_short(mine[i].label) for i in xs], rotation=60, fontsize=6)
            ax.tick_params(axis="y", labelsize=7)
        axes[0][0].legend(fontsize=7)
        fig.suptitle(name, fontsize=9)
        fig.tight_layout()
        path = folder / f"{_safe(name)}.png"
        written.append(_save(fig, path, plt))
    fig, ax = plt.subplots(figsize=(6, 6))
    lo, hi = float("inf"), 0.0
    for m in METRICS:
        pairs = [(p.measured[m], p.predicted[m]) for p in points
                 if not p.excluded and m in p.measured and m in p.predicted and p.predicted[m] > 0]
        if pairs:
            ax.scatter([a for a, _ in pairs], [b for _, b in pairs], s=12, label=m, alpha=0.7)
            lo = min(lo, *(min(a, b) for a, b in pairs))
            hi = max(hi, *(max(a, b) for a, b in pairs))
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
        ax.plot([lo, hi], [lo * 1.2, hi * 1.2], "k:", lw=0.6)
        ax.plot([lo, hi], [lo * 0.8, hi * 0.8], "k:", lw=0.6)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    ax.set_xlabel("measured")
    ax.set_ylabel("predicted")
    ax.set_title("predicted vs measured, every point (dotted: +-20%)", fontsize=9)
    written.append(_save(fig, folder / "parity.png", plt))
    return written


def _save(fig, path: Path, plt) -> Path:
    try:
        fig.savefig(path, dpi=110)
    except OSError as exc:
        raise InputError(f"--plots {path.parent}: cannot write {path.name} ({exc.strerror or exc})") from None
    finally:
        plt.close(fig)
    return path


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:120] or "experiment"


def _short(label: str) -> str:
    return label if len(label) <= 18 else label[:17] + "…"

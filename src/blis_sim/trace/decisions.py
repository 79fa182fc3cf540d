"""The decision trace (ENGINE.md §12.1): every admission and routing decision of a run, with counterfactuals.

``DecisionTrace`` is an observer (engine/observer.py). It keeps, in memory and in decision order, one record per
admission ``{"kind": "admission", "request", "clock", "admitted", "reason"}`` and one per routing ``{"kind":
"routing", "request", "clock", "chosen", "reason", "scores", "candidates", "regret"}``. ``scores`` are the routing
policy's per-instance scores when it scores instances (weighted routing), else None.

Counterfactuals (``k`` > 0): every instance gets a score, its policy score when the policy produced scores, else
minus its effective load (queue depth + running batch + requests routed to it and not yet queued); instances are
sorted by score descending, then by index; the first min(k, N) are kept as candidates with their snapshot fields,
and ``regret = max(0, best score - the chosen instance's score)``: how much better the best-looking instance was
than the one the policy chose (0 when the policy took the best). Without counterfactuals regret is 0.

``summary()`` gives the ``=== Trace Summary ===`` counts: decisions (admission decisions), admitted, rejected,
unique routing targets and their distribution, mean and max regret over routings.
"""

from __future__ import annotations

import json
from collections import Counter

from ..engine.observer import Observer
from ..engine.snapshot import Snapshot
from ..request import Request


def _snapshot_fields(index: int, snap: Snapshot, score: float) -> dict:
    return {
        "instance": f"instance_{index}",
        "score": score,
        "queue_depth": snap.queue_depth,
        "batch_size": snap.batch_size,
        "pending_requests": snap.pending_requests,
        "kv_utilization": snap.kv_utilization,
        "free_kv_blocks": snap.free_kv_blocks,
        "cache_hit_rate": snap.cache_hit_rate,
    }


class DecisionTrace(Observer):
    """Records every admission and routing decision (module docstring); ``inner`` also hears everything."""

    def __init__(self, routing_policy: str, counterfactual_k: int = 0, inner: Observer | None = None) -> None:
        self.routing_policy = routing_policy
        self.k = counterfactual_k
        self.inner = inner
        self.records: list[dict] = []

    # -- the observer ------------------------------------------------------------------------------------------
    def on_admission(self, req: Request, now: int, admitted: bool, reason: str) -> None:
        self.records.append(
            {"kind": "admission", "request": req.id, "clock": now, "admitted": admitted, "reason": reason}
        )
        if self.inner is not None:
            self.inner.on_admission(req, now, admitted, reason)

    def on_routing(
        self, req: Request, now: int, target: int, snapshots: list[Snapshot], scores: list[float] | None
    ) -> None:
        record = {
            "kind": "routing", "request": req.id, "clock": now, "chosen": f"instance_{target}",
            "reason": self.routing_policy, "scores": list(scores) if scores is not None else None,
            "candidates": [], "regret": 0.0,
        }
        if self.k > 0:
            values = list(scores) if scores is not None else [float(-s.effective_load) for s in snapshots]
            order = sorted(range(len(values)), key=lambda i: (-values[i], i))
            record["candidates"] = [_snapshot_fields(i, snapshots[i], values[i]) for i in order[: self.k]]
            record["regret"] = max(0.0, values[order[0]] - values[target])
        self.records.append(record)
        if self.inner is not None:
            self.inner.on_routing(req, now, target, snapshots, scores)

    def on_step(self, instance, step, queue_depth, kv_used):  # type: ignore[no-untyped-def]
        if self.inner is not None:
            self.inner.on_step(instance, step, queue_depth, kv_used)

    def on_completion(self, instance, req, now):  # type: ignore[no-untyped-def]
        if self.inner is not None:
            self.inner.on_completion(instance, req, now)

    # -- reading it ----------------------------------------------------------------------------------------------
    @property
    def admissions(self) -> list[dict]:
        return [r for r in self.records if r["kind"] == "admission"]

    @property
    def routings(self) -> list[dict]:
        return [r for r in self.records if r["kind"] == "routing"]

    def summary(self) -> dict:
        admissions = self.admissions
        routings = self.routings
        admitted = sum(1 for r in admissions if r["admitted"])
        targets = Counter(r["chosen"] for r in routings)
        regrets = [r["regret"] for r in routings]
        return {
            "total_decisions": len(admissions),
            "admitted": admitted,
            "rejected": len(admissions) - admitted,
            "unique_targets": len(targets),
            # by instance index, not by name ("instance_10" after "instance_9")
            "target_distribution": {t: targets[t] for t in sorted(targets, key=lambda t: int(t.rsplit("_", 1)[1]))},
            "mean_regret": sum(regrets) / len(regrets) if regrets else 0.0,
            "max_regret": max(regrets, default=0.0),
        }

    def jsonl(self) -> str:
        """The records as JSON lines (``--trace-output``)."""
        return "".join(json.dumps(r, allow_nan=False) + "\n" for r in self.records)


def summary_text(summary: dict) -> str:
    """The ``=== Trace Summary ===`` section (§14.1 item 7)."""
    lines = [
        "=== Trace Summary ===",
        "Total Decisions: %d" % summary["total_decisions"],
        "  Admitted: %d" % summary["admitted"],
        "  Rejected: %d" % summary["rejected"],
        "Unique Targets: %d" % summary["unique_targets"],
    ]
    if summary["target_distribution"]:
        lines.append("Target Distribution:")
        lines += ["  %s: %d" % (name, n) for name, n in summary["target_distribution"].items()]
    lines.append("Mean Regret: %.6f" % summary["mean_regret"])
    lines.append("Max Regret: %.6f" % summary["max_regret"])
    return "\n".join(lines) + "\n"

"""Turn instance counters into the reference's metrics blocks (ENGINE.md §13.3, §14.2) and per-request records.

Blocks are plain ordered dicts with the reference field names; ``report`` only formats them. The input is each
instance's ``InstanceCounters`` (``Instance.counters()``), never the instance itself.
"""

from __future__ import annotations

from ..request import Request, RequestStatus
from .counters import InstanceCounters, InstanceStats
from .histogram import IntHistogram

_PERCENTILES = (90, 95, 99)


def _merged(stats: list[InstanceStats], name: str) -> IntHistogram:
    out = IntHistogram()
    for s in stats:
        out.merge(getattr(s, name))
    return out


def metrics_block(
    instance_id: str,
    stats: list[InstanceStats],
    still_queued: int,
    still_running: int,
    preemptions: int,
    self_preemptions: int,
    duration_ticks: int,
) -> dict:
    """One ``=== Simulation Metrics ===`` JSON object over the given instances' counters."""
    completed = sum(s.completed for s in stats)
    out_tokens = sum(s.total_output_tokens for s in stats)
    duration_s = duration_ticks / 1e6
    block: dict = {
        "instance_id": instance_id,
        "completed_requests": completed,
        "still_queued": still_queued,
        "still_running": still_running,
        "injected_requests": sum(s.injected for s in stats),
        "total_input_tokens": sum(s.total_input_tokens for s in stats),
        "total_output_tokens": out_tokens,
        "vllm_estimated_duration_s": duration_s,
        "responses_per_sec": completed / duration_s if duration_s > 0 else 0.0,
        "tokens_per_sec": out_tokens / duration_s if duration_s > 0 else 0.0,
    }
    for name in ("e2e", "ttft", "itl"):
        hist = _merged(stats, name)
        block[f"{name}_mean_ms"] = hist.mean_ms()
        for p, v in zip(_PERCENTILES, hist.percentiles_ms(_PERCENTILES)):
            block[f"{name}_p{p}_ms"] = v
    block["scheduling_delay_p99_ms"] = _merged(stats, "scheduling_delay").percentile_ms(99)
    if self_preemptions:
        block["kv_allocation_failures"] = self_preemptions
    block["preemption_count"] = preemptions
    block["dropped_unservable"] = sum(s.dropped_unservable for s in stats)
    return block


def instance_block(inst: InstanceCounters, instance_id: str | None = None) -> dict:
    return cluster_block([inst], instance_id or inst.name)


def cluster_block(instances: list[InstanceCounters], instance_id: str = "cluster") -> dict:
    return metrics_block(
        instance_id,
        [i.stats for i in instances],
        still_queued=sum(i.still_queued for i in instances),
        still_running=sum(i.still_running for i in instances),
        preemptions=sum(i.preemptions for i in instances),
        self_preemptions=sum(i.self_preemptions for i in instances),
        duration_ticks=max((i.stats.last_event_time for i in instances), default=0),
    )


def kv_rates(instances: list[InstanceCounters], completed: int) -> dict[str, float]:
    """Cluster KV section (§13.3): preemption rate, pooled prefix-cache hit rate, pooled thrash / pooled offloads."""
    preemptions = sum(i.preemptions for i in instances)
    queries = sum(i.prefix_query_tokens for i in instances)
    hits = sum(i.prefix_hit_tokens for i in instances)
    offloads = sum(i.offloads for i in instances)
    return {
        "preemption_rate": preemptions / completed if completed else 0.0,
        "cache_hit_rate": hits / queries if queries else 0.0,
        "kv_thrashing_rate": sum(i.thrash for i in instances) / offloads if offloads else 0.0,
    }


def request_record(req: Request) -> dict:
    """Per-request record of the results file (§14.3); metrics not reached yet are 0.0."""
    N = req.num_output_tokens
    done = req.status == RequestStatus.FINISHED
    ttft = req.ttft if req.ttft >= 0 else 0
    e2e = req.e2e if done else 0
    itl = (e2e - ttft) / (N - 1) if done and N >= 2 else 0
    rec = {
        "arrived_at": req.arrival / 1e6,
        "requestID": req.id,
        "num_prefill_tokens": req.num_prompt_tokens,
        "num_decode_tokens": N,
        "ttft_ms": ttft / 1000,
        "itl_ms": itl / 1000,
        "e2e_ms": e2e / 1000,
        "scheduling_delay_ms": (req.first_scheduled - req.arrival) / 1000 if req.first_scheduled >= 0 else 0.0,
    }
    if req.slo_class:
        rec["slo_class"] = req.slo_class
    if req.tenant_id:
        rec["tenant_id"] = req.tenant_id
    if req.session_id:
        rec["session_id"] = req.session_id
        rec["round_index"] = req.round_index
    if req.meta:
        rec.update(req.meta)
    if req.instance >= 0:
        rec["handled_by"] = f"instance_{req.instance}"
    return rec


def hol_blocking_events(instances: list[InstanceCounters]) -> int:
    """Instances whose mean waiting-queue length per step exceeds twice the mean over instances (§12.3)."""
    if len(instances) < 2:
        return 0
    avgs = [i.stats.hol_sum / i.stats.hol_steps if i.stats.hol_steps else 0.0 for i in instances]
    mean = sum(avgs) / len(avgs)
    return sum(1 for a in avgs if a > 2 * mean) if mean > 0 else 0

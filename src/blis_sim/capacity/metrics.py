"""The row of one run: every summary metric of ``blis run``, the resolved settings, GPUs, the steady-state
throughput, whether the run saturated, and its cost.

Steady state: the first ``WARMUP_FRACTION`` of the arrival span is warm-up (the first requests find an empty
server). Over the rest of the span (the window), a server that keeps up completes as many requests as arrive (the
requests in flight at both ends of the window are as many, Little's law); a saturated one completes fewer, and its
queue grows for as long as requests arrive. So ``served_ratio`` = completions in the window / arrivals in the window,
and the run is saturated when it is below ``SATURATED_BELOW``. The steady throughput counts the output tokens of the
requests that completed in the window: the server's rate when it keeps up, its capacity when it does not.
``steady_state`` is false when a request took longer than the warm-up (its p90 end-to-end latency): the window may
then still be filling, and capacity search runs such a probe again, longer.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..latency.select import packaged_hardware_config

WARMUP_FRACTION = 0.25
SATURATED_BELOW = 0.95

# The cluster block of ``blis run`` (metrics/summary.py), in its order.
RUN_METRICS = (
    "completed_requests", "still_queued", "still_running", "injected_requests", "total_input_tokens",
    "total_output_tokens", "vllm_estimated_duration_s", "responses_per_sec", "tokens_per_sec",
    "e2e_mean_ms", "e2e_p90_ms", "e2e_p95_ms", "e2e_p99_ms",
    "ttft_mean_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms",
    "itl_mean_ms", "itl_p90_ms", "itl_p95_ms", "itl_p99_ms",
    "scheduling_delay_p99_ms", "kv_allocation_failures", "preemption_count", "dropped_unservable",
)
EXTRA_METRICS = ("preemption_rate", "cache_hit_rate", "rejected_requests")
DERIVED_METRICS = (
    "gpus", "served_ratio", "saturated", "steady_state", "steady_requests_per_sec", "steady_output_tokens_per_sec",
    "output_tokens_per_sec_per_gpu", "price_usd_per_gpu_hour", "cost_usd_per_million_output_tokens",
)
# every numeric metric a row holds (what an SLO may bound)
METRICS = tuple(m for m in (*RUN_METRICS, *EXTRA_METRICS, *DERIVED_METRICS) if m not in ("saturated", "steady_state"))
RESOLVED = ("resolved_latency_model", "resolved_hardware", "resolved_tp", "total_kv_blocks")

PRICE_KEY = "priceUsdPerHour"


def run_row(results: Any, cfg: Any) -> dict:
    """The metrics of one finished run (``api.Results`` of configuration ``cfg``), as a flat dict."""
    cluster = results.cluster
    row: dict[str, Any] = {name: cluster.get(name) for name in RUN_METRICS}
    if row["kv_allocation_failures"] is None:
        row["kv_allocation_failures"] = 0
    row["preemption_rate"] = results.kv.get("preemption_rate")
    row["cache_hit_rate"] = results.kv.get("cache_hit_rate")
    row["rejected_requests"] = results.anomalies.get("rejected_requests", 0)
    conf = results.config
    row.update(resolved_latency_model=conf.get("latency_model"), resolved_hardware=conf.get("hardware"),
               resolved_tp=conf.get("tp"), total_kv_blocks=conf.get("total_kv_blocks"))
    gpus = int(conf.get("tp") or 1) * cfg.cluster.num_instances
    row["gpus"] = gpus
    row.update(steady(results.requests or []))
    if cluster.get("still_queued") or cluster.get("still_running"):
        row["saturated"] = True  # the horizon cut the run short with requests waiting
    per_gpu = row["steady_output_tokens_per_sec"] / gpus
    row["output_tokens_per_sec_per_gpu"] = per_gpu
    price = gpu_price(cfg.latency.hardware_config, str(conf.get("hardware") or ""))
    row["price_usd_per_gpu_hour"] = price
    row["cost_usd_per_million_output_tokens"] = cost_per_million(price, per_gpu)
    return row


def cost_per_million(price_per_gpu_hour: float | None, tokens_per_sec_per_gpu: float) -> float | None:
    if price_per_gpu_hour is None or not tokens_per_sec_per_gpu > 0:
        return None
    return price_per_gpu_hour / (tokens_per_sec_per_gpu * 3600.0) * 1e6


def steady(records: list[dict]) -> dict[str, Any]:
    """Served ratio, saturation, steady throughput and the steady-state check over per-request records."""
    if not records:
        return {"served_ratio": 0.0, "saturated": True, "steady_state": False, "steady_requests_per_sec": 0.0,
                "steady_output_tokens_per_sec": 0.0}
    arrivals = sorted(r["arrived_at"] for r in records)
    t0, t_end = arrivals[0], arrivals[-1]
    t_a = t0 + WARMUP_FRACTION * (t_end - t0)
    window = t_end - t_a
    if window <= 0:  # one request, or all at once: the whole run is the window
        done = [r for r in records if r["e2e_ms"] > 0]
        last = max((r["arrived_at"] + r["e2e_ms"] / 1000 for r in done), default=t0)
        span = max(last - t0, 1e-9)
        return {"served_ratio": len(done) / len(records), "saturated": len(done) < len(records),
                "steady_state": False, "steady_requests_per_sec": len(done) / span,
                "steady_output_tokens_per_sec": sum(r["num_decode_tokens"] for r in done) / span}
    arrived = sum(1 for a in arrivals if a > t_a)
    completed = 0
    tokens = 0
    e2e = []
    for r in records:
        if r["e2e_ms"] <= 0:
            continue
        e2e.append(r["e2e_ms"])
        finish = r["arrived_at"] + r["e2e_ms"] / 1000
        if t_a < finish <= t_end:
            completed += 1
            tokens += r["num_decode_tokens"]
    ratio = completed / arrived if arrived else 1.0
    e2e.sort()
    p90_s = e2e[min(len(e2e) - 1, int(math.ceil(0.9 * len(e2e))) - 1)] / 1000 if e2e else math.inf
    return {
        "served_ratio": ratio,
        "saturated": ratio < SATURATED_BELOW,
        "steady_state": p90_s <= t_a - t0,
        "steady_requests_per_sec": completed / window,
        "steady_output_tokens_per_sec": tokens / window,
    }


# ------------------------------------------------------------------------------------------------------ prices
_PRICES: dict[tuple[str, float], dict[str, Any]] = {}


def gpu_price(hardware_config: Path | None, gpu: str) -> float | None:
    """The GPU entry's ``priceUsdPerHour`` (US dollars per GPU-hour) in ``hardware_config`` (the packaged file when
    None, as in blackbox runs); None when the entry or the key is absent. A key that is not a positive number is
    an ``InputError`` naming the GPU."""
    if not gpu:
        return None
    path = Path(hardware_config) if hardware_config is not None else packaged_hardware_config()
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return None
    raw = _PRICES.get(key)
    if raw is None:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None  # the run itself reports an unreadable hardware config
        if not isinstance(raw, dict):
            return None
        _PRICES[key] = raw
    entry = raw.get(gpu)
    if entry is None:
        folded = [v for k, v in raw.items() if k.lower() == gpu.lower()]
        entry = folded[0] if len(folded) == 1 else None
    if not isinstance(entry, dict):
        return None
    for k, value in entry.items():
        if k.lower() == PRICE_KEY.lower():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value)
                                                                                    and value > 0):
                raise InputError(f"hardware config {gpu}: {PRICE_KEY} must be a positive number (US dollars per "
                                 f"GPU-hour), got {json.dumps(value)}")
            return float(value)
    return None

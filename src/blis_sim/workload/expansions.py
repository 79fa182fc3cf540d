"""Spec expansions (ENGINE.md §10.8): ``inference_perf`` blocks become clients, run before the spec is checked.

``inference_perf_clients(shared_prefix)`` is the one definition of inference-perf's shared-prefix clients; the spec's
``inference_perf.stages`` then bound every client's arrivals (workload/spec_gen.py). ``servegen_data`` is not
expanded in this version (refused with a clear error).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..errors import InputError

log = logging.getLogger("blis_sim")

MULTI_TURN_CHAT = {"max_rounds": 5, "think_time_us": 500_000, "context_growth": "accumulate"}


def inference_perf_clients(shared: dict[str, Any]) -> list[dict[str, Any]]:
    """P·U clients ``prompt-<p>-user-<u>`` (p-major) of inference-perf's shared-prefix data."""
    P = shared.get("num_unique_system_prompts", 1)
    U = shared.get("num_users_per_system_prompt", 1)
    sys_len = shared.get("system_prompt_len", 0)
    question = shared.get("question_len", 0)
    output = shared.get("output_len", 0)
    multi = shared.get("enable_multi_turn_chat", False)
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (P, U, sys_len, question, output)):
        return []  # the spec check names the bad field
    clients = []
    for p in range(P):
        for u in range(U):
            c: dict[str, Any] = {
                "id": f"prompt-{p}-user-{u}",
                "tenant_id": f"prompt-{p}",
                "slo_class": "batch",
                "rate_fraction": 1.0,
                "arrival": {"process": "poisson"},
                "input_distribution": {"type": "constant", "params": {"value": max(1, question)}},
                "output_distribution": {"type": "constant", "params": {"value": max(1, output)}},
            }
            if sys_len > 0:
                c["prefix_group"] = f"prompt-{p}"
                c["prefix_length"] = sys_len
            if multi is True:
                c["reasoning"] = {"multi_turn": dict(MULTI_TURN_CHAT)}
            clients.append(c)
    return clients


def expand(data: dict[str, Any], where: str, base_dir: Path | None) -> dict[str, Any]:
    """``data`` with its expansion blocks turned into clients (when it has no ``clients``)."""
    ip = data.get("inference_perf")
    if isinstance(ip, dict):
        if "aggregate_rate" in data:
            log.warning("%s: aggregate_rate is ignored: inference_perf stages set the rates", where)
        if "clients" not in data:
            shared = ip.get("shared_prefix", {})
            if isinstance(shared, dict):
                data = {**data, "clients": inference_perf_clients(shared)}
    sg = data.get("servegen_data")
    if sg is not None and "clients" not in data:
        raise InputError(f"{where}: servegen_data: expanding ServeGen data files is not available in this version "
                         "yet (give the clients explicitly)")
    return data

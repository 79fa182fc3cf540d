"""Canned workload specs (ENGINE.md §10.8), built in code with the spec model: ``SCENARIOS[name](aggregate_rate,
num_requests, seed=0) -> WorkloadSpec``.

* ``bursty``: one client with gamma arrivals of CV 3.5;
* ``unfair_tenants``: two tenants sending 90% and 10% of the traffic;
* ``prefix_heavy``: 80% of the requests behind one shared 512-token prefix group;
* ``mixed_slo``: realtime / interactive / batch clients at 0.33 / 0.34 / 0.33.
"""

from __future__ import annotations

from typing import Any, Callable

from .spec import ClientSpec, WorkloadSpec

_LENGTHS: dict[str, Any] = {
    "input_distribution": {"type": "gaussian", "params": {"mean": 512, "std_dev": 128, "min": 16, "max": 2048}},
    "output_distribution": {"type": "exponential", "params": {"mean": 128}},
}


def _client(**kw: Any) -> ClientSpec:
    return ClientSpec(**{**_LENGTHS, **kw})


def _spec(clients: list[ClientSpec], aggregate_rate: float, num_requests: int, seed: int) -> WorkloadSpec:
    return WorkloadSpec(seed=seed, aggregate_rate=aggregate_rate, num_requests=num_requests, clients=clients)


def bursty(aggregate_rate: float, num_requests: int, seed: int = 0) -> WorkloadSpec:
    return _spec([_client(id="bursty", arrival={"process": "gamma", "cv": 3.5})], aggregate_rate, num_requests, seed)


def unfair_tenants(aggregate_rate: float, num_requests: int, seed: int = 0) -> WorkloadSpec:
    return _spec([_client(id="heavy", tenant_id="tenant-heavy", rate_fraction=0.9),
                  _client(id="light", tenant_id="tenant-light", rate_fraction=0.1)], aggregate_rate, num_requests,
                 seed)


def prefix_heavy(aggregate_rate: float, num_requests: int, seed: int = 0) -> WorkloadSpec:
    return _spec([_client(id="shared", rate_fraction=0.8, prefix_group="system", prefix_length=512),
                  _client(id="unique", rate_fraction=0.2)], aggregate_rate, num_requests, seed)


def mixed_slo(aggregate_rate: float, num_requests: int, seed: int = 0) -> WorkloadSpec:
    return _spec([_client(id="realtime", slo_class="realtime", rate_fraction=0.33),
                  _client(id="interactive", slo_class="interactive", rate_fraction=0.34),
                  _client(id="batch", slo_class="batch", rate_fraction=0.33)], aggregate_rate, num_requests, seed)


SCENARIOS: dict[str, Callable[..., WorkloadSpec]] = {
    "bursty": bursty,
    "unfair_tenants": unfair_tenants,
    "prefix_heavy": prefix_heavy,
    "mixed_slo": mixed_slo,
}

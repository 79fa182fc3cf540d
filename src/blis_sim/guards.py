"""Runs that would never end or would exhaust memory are refused before anything is allocated (issue 24).

Two estimates, both from measured figures (docs/performance.md, "What grows with what"):

* memory: a fixed base, plus ``BYTES_PER_INSTANCE`` per instance (the engine objects of an idle instance; its KV
  block bookkeeping grows only with the blocks it touches), plus ``BYTES_PER_RECORD`` per request when per-request
  records are kept (``--results-path``, sweeps and evaluate); without records the memory of a run does not grow
  with its requests (streaming metrics). The run is refused when the estimate exceeds the memory available (Linux's
  MemAvailable, and a cgroup limit when there is one), with the estimate and what to change.
* time: a run of more than ``MAX_REQUESTS`` requests (the workload's count, or what its rate gives within the
  horizon) is refused with its duration at ``REQUESTS_PER_SECOND``, the speed of the benchmark scenarios.

The figures are upper bounds (measured with the compiled engine and rounded up), so a realistic run, a million
requests with records included, is never refused on a machine that could run it.
"""

from __future__ import annotations

import math
import os
from typing import Final

from .errors import InputError

BASE_BYTES: Final = 200 * 2**20  # interpreter, numpy, the latency model and the workload generator
BYTES_PER_INSTANCE: Final = 12 * 2**10  # measured 9.2 KB (RSS slope over 10,000 -> 40,000 idle instances)
BYTES_PER_RECORD: Final = 1_200  # measured about 0.9 KB per request with records (1,000,000 chatbot requests)
# A workload spec's requests are drawn before the run (arrival ticks, lengths and order of every client): measured
# about 310 B per request (3.18 GB peak for 10,000,000 requests of one Poisson client)
BYTES_PER_SPEC_REQUEST: Final = 400
MAX_REQUESTS: Final = 10**10  # about 3 days at REQUESTS_PER_SECOND
REQUESTS_PER_SECOND: Final = 36_000  # scenario (a)/(d) of benchmarks/run.py, compiled engine


def available_memory() -> int | None:
    """Bytes this process may still allocate: MemAvailable, lowered by a cgroup (v2 or v1) limit; None if unknown."""
    avail: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        avail = None
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return None
    try:  # an address-space limit (ulimit -v) bounds what can still be mapped
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            with open("/proc/self/status", encoding="ascii") as fh:
                vm = next((int(line.split()[1]) * 1024 for line in fh if line.startswith("VmSize:")), 0)
            avail = min(avail, max(soft - vm, 0))
    except (ImportError, OSError, ValueError):
        pass
    for limit_path, usage_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_path, encoding="ascii") as fh:
                raw = fh.read().strip()
            if raw == "max":
                continue
            with open(usage_path, encoding="ascii") as fh:
                used = int(fh.read().strip())
            limit = int(raw)
            if limit < 2**60:
                avail = min(avail, max(limit - used, 0))
        except (OSError, ValueError):
            continue
    return avail


def _size(n: float) -> str:
    for unit, scale in (("TB", 2**40), ("GB", 2**30), ("MB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 2**10:,.0f} KB"


def _duration(seconds: float) -> str:
    for unit, scale in (("years", 365.25 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= scale:
            return f"{seconds / scale:,.0f} {unit}"
    return f"{seconds / 60:,.0f} minutes"


def expected_requests(count: int, rate: float | None, horizon: int | None) -> int:
    """Requests a run will see: the workload's count, capped by what ``rate`` (per second) gives within ``horizon``
    (microseconds; None: unlimited), generously for Poisson arrivals."""
    if rate is None or horizon is None or not math.isfinite(rate):
        return count
    mean = rate * horizon / 1e6
    if mean >= count:
        return count
    return min(count, int(mean + 10 * math.sqrt(mean) + 10))


def check_run_size(num_instances: int, requests: int, records: bool, available: int | None = None,
                   source: str = "", drawn_upfront: bool = False) -> None:
    """Refuse a run too long or too large for this machine (module docstring). ``source`` says where the request
    count comes from (default ``--num-requests N``); ``drawn_upfront``: the requests are drawn before the run (a
    workload spec), ``BYTES_PER_SPEC_REQUEST`` each; ``available`` is for tests."""
    source = source or f"--num-requests {requests}"
    if requests > MAX_REQUESTS:
        raise InputError(
            f"{source}: the run would take about {_duration(requests / REQUESTS_PER_SECOND)} "
            f"(about {REQUESTS_PER_SECOND:,} simulated requests per second); accepted: at most {MAX_REQUESTS:,} "
            "requests per run (fewer requests, or a shorter --horizon)")
    per_request = (BYTES_PER_RECORD if records else 0) + (BYTES_PER_SPEC_REQUEST if drawn_upfront else 0)
    need = BASE_BYTES + num_instances * BYTES_PER_INSTANCE + requests * per_request
    if available is None:
        available = available_memory()
    if available is None or need <= available:
        return
    parts = [f"{num_instances:,} instance(s) x {BYTES_PER_INSTANCE // 1024} KB"]
    if records:
        parts.append(f"{requests:,} per-request records x {BYTES_PER_RECORD:,} B")
    if drawn_upfront:
        parts.append(f"{requests:,} workload-spec requests drawn before the run x {BYTES_PER_SPEC_REQUEST} B")
    culprit = "--num-instances" if num_instances * BYTES_PER_INSTANCE >= requests * per_request else "--num-requests"
    what = (f"--num-instances {num_instances}" if culprit == "--num-instances"
            else f"{source} with per-request records (--results-path)" if records and not drawn_upfront
            else source)
    fix = ("fewer instances" if culprit == "--num-instances"
           else "fewer requests, or no --results-path (the metrics alone do not grow with the requests)"
           if records and not drawn_upfront else "fewer requests (num_requests), or a shorter horizon")
    raise InputError(f"{what}: the run would need about {_size(need)} of memory ({' + '.join(parts)}), more than "
                     f"the {_size(available)} available; accepted: {fix}")

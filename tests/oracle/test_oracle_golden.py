"""Golden cases from vLLM 0.15.1's own scheduler: ``blis run`` must reproduce them exactly.

Each case in ``data/`` is a small CSV trace (``<name>.csv``), the engine flags it ran with (``<name>.flags.json``)
and what vLLM's v1 ``Scheduler`` and KV cache manager produced on it under the blis time model
(``<name>.oracle.json``: the metric keys, the prefix-cache counters and per-request TTFT/E2E), recorded with
``scripts/oracle_diff.py --golden-out tests/oracle/data`` (the oracle of shared/tools/vllm-oracle). vLLM is not
needed here: only the recorded outputs are read.

The cases: preemption with self-preemption, prefix-cache hits after cached blocks were evicted, chunked-prefill
heavy (long-prefill threshold), a same-tick burst, block size 1. Every case runs as users get it (decode
skip-ahead on) and stepped one boundary at a time (``--no-skip-ahead``).

The ``priority_*`` cases run vLLM's ``--scheduling-policy priority`` (``--scheduler vllm-priority``; recorded with
``scripts/oracle_diff.py --priority``, docs/scheduling.md): a victim already scheduled in the pass
(``priority_victim_scheduled``), equal priorities (no priority column) where vLLM's rules differ from FCFS
(``priority_equal``), a pass that preempts everything it scheduled (``priority_empty_batch``), and two with
``--async-scheduling``: an already-scheduled victim (``priority_async``) and a victim before the request being
scheduled that got no tokens in the pass (``priority_async_skipped``). Each also runs under ``--scheduler fcfs``,
which must differ from vLLM's result: the case checks the priority policy, not only the engine.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CASES = sorted(p.name[: -len(".flags.json")] for p in DATA.glob("*.flags.json"))
EXPECTED_CASES = ["block_size_1", "chunked_prefill", "hits_after_eviction", "preempt_self", "priority_async",
                  "priority_async_skipped", "priority_empty_batch", "priority_equal", "priority_victim_scheduled",
                  "same_tick_burst"]
PRIORITY_CASES = [name for name in EXPECTED_CASES if name.startswith("priority_")]

EXACT = ("completed_requests", "injected_requests", "total_input_tokens", "total_output_tokens",
         "preemption_count", "kv_allocation_failures", "dropped_unservable")
FLOATS = ("ttft_mean_ms", "ttft_p90_ms", "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms", "ttft_p95_ms", "ttft_p99_ms",
          "itl_p90_ms", "itl_p95_ms", "itl_p99_ms", "e2e_p95_ms", "e2e_p99_ms", "scheduling_delay_p99_ms",
          "vllm_estimated_duration_s")
MODES = {"skip-ahead": [], "stepped": ["--no-skip-ahead"]}


def test_golden_set_is_complete():
    assert CASES == EXPECTED_CASES
    for name in CASES:
        assert (DATA / f"{name}.csv").is_file() and (DATA / f"{name}.oracle.json").is_file()


def _run(name: str, extra: list[str], tmp_path: Path, **override: str) -> tuple[dict, str]:
    flags = json.loads((DATA / f"{name}.flags.json").read_text())
    flags.update(override)
    results = tmp_path / "results.json"
    argv = [sys.executable, "-m", "blis_sim", "run", "--model", "x", "--workload", "traces",
            "--workload-traces-filepath", str(DATA / f"{name}.csv")]
    for flag, value in flags.items():
        argv += [flag] if value is True else [flag, str(value)]
    argv += [*extra, "--results-path", str(results)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(results.read_text()), proc.stdout


def _cache_hit_line(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("Cache Hit Rate: "):
            return line.split(": ", 1)[1]
    return "0.0000"  # the KV section is printed only when a rate is non-zero


def _close(a: float, b: float) -> bool:
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("name", CASES)
def test_matches_vllm(name, mode, tmp_path):
    ref = json.loads((DATA / f"{name}.oracle.json").read_text())
    ours, stdout = _run(name, MODES[mode], tmp_path)

    for key in EXACT:
        assert ours.get(key, 0) == ref.get(key, 0), key
    for key in FLOATS:
        assert _close(ours[key], ref[key]), (key, ours[key], ref[key])
    assert _cache_hit_line(stdout) == "%.4f" % ref["cache_hit_rate"]

    mine = {r["requestID"]: r for r in ours["requests"]}
    assert list(mine) == [r["requestID"] for r in ref["requests"]]
    for r in ref["requests"]:
        assert mine[r["requestID"]]["ttft_ms"] == r["ttft_ms"], r["requestID"]
        assert mine[r["requestID"]]["e2e_ms"] == r["e2e_ms"], r["requestID"]


@pytest.mark.parametrize("name", PRIORITY_CASES)
def test_priority_cases_are_not_fcfs(name, tmp_path):
    ref = json.loads((DATA / f"{name}.oracle.json").read_text())
    assert json.loads((DATA / f"{name}.flags.json").read_text())["--scheduler"] == "vllm-priority"
    ours, _ = _run(name, [], tmp_path, **{"--scheduler": "fcfs"})
    fcfs = [(r["ttft_ms"], r["e2e_ms"]) for r in ours["requests"]]
    assert fcfs != [(r["ttft_ms"], r["e2e_ms"]) for r in ref["requests"]]

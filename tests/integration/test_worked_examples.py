"""ENGINE.md §18: the three worked examples, end to end through the CLI, byte for byte where the spec prints it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EXPECTED_18_1 = """=== Simulation Metrics ===
{
  "instance_id": "cluster",
  "completed_requests": 1,
  "still_queued": 0,
  "still_running": 0,
  "injected_requests": 1,
  "total_input_tokens": 100,
  "total_output_tokens": 5,
  "vllm_estimated_duration_s": 0.027004,
  "responses_per_sec": 37.03155088135091,
  "tokens_per_sec": 185.15775440675455,
  "e2e_mean_ms": 27.504,
  "e2e_p90_ms": 27.504,
  "e2e_p95_ms": 27.504,
  "e2e_p99_ms": 27.504,
  "ttft_mean_ms": 7.1,
  "ttft_p90_ms": 7.1,
  "ttft_p95_ms": 7.1,
  "ttft_p99_ms": 7.1,
  "itl_mean_ms": 5.101,
  "itl_p90_ms": 5.101,
  "itl_p95_ms": 5.101,
  "itl_p99_ms": 5.101,
  "scheduling_delay_p99_ms": 1.0,
  "preemption_count": 0,
  "dropped_unservable": 0
}
"""


def blis(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "blis_sim", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )


def test_one_request_18_1(tmp_path):
    out = tmp_path / "r.json"
    p = blis(
        "run", "--model", "x", "--alpha-coeffs", "1000,0,100", "--beta-coeffs", "5000,10,1", "--num-requests", "1",
        "--prompt-tokens", "100", "--prompt-tokens-stdev", "0", "--prompt-tokens-min", "100",
        "--prompt-tokens-max", "100", "--output-tokens", "5", "--output-tokens-stdev", "0",
        "--output-tokens-min", "5", "--output-tokens-max", "5", "--results-path", str(out),
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == EXPECTED_18_1
    rec = json.loads(out.read_text())["requests"]
    assert rec == [{
        "arrived_at": 0.0, "requestID": "request_0", "num_prefill_tokens": 100, "num_decode_tokens": 5,
        "ttft_ms": 7.1, "itl_ms": 5.101, "e2e_ms": 27.504, "scheduling_delay_ms": 1.0, "handled_by": "instance_0",
    }]


def _write_trace(path: Path, rows: list[tuple[float, list[int], list[int]]]) -> None:
    lines = ["arrival_time,request_id,model,prefill_tokens,decode_tokens"]
    for i, (t, prompt, output) in enumerate(rows):
        lines.append(f'{t},{i},x,"{json.dumps(prompt)}","{json.dumps(output)}"')
    path.write_text("\n".join(lines) + "\n")


def _block(stdout: str) -> dict:
    i = stdout.rindex("=== Simulation Metrics ===")
    return json.JSONDecoder().raw_decode(stdout[stdout.index("{", i):])[0]


def test_same_tick_arrivals_18_2(tmp_path):
    trace = tmp_path / "two.csv"
    _write_trace(trace, [(0.0, list(range(32)), list(range(5))), (0.0, list(range(1000, 1032)), list(range(5)))])
    p = blis("run", "--model", "x", "--alpha-coeffs", "1000,0,100", "--beta-coeffs", "5000,10,1",
             "--workload", "traces", "--workload-traces-filepath", str(trace))
    assert p.returncode == 0, p.stderr
    b = _block(p.stdout)
    assert b["completed_requests"] == 2
    assert b["total_input_tokens"] == 64 and b["total_output_tokens"] == 10
    assert b["vllm_estimated_duration_s"] == 0.026648
    assert b["responses_per_sec"] == 75.05253677574302
    assert b["tokens_per_sec"] == 375.26268387871505
    for stat in ("mean", "p90", "p95", "p99"):
        assert b[f"e2e_{stat}_ms"] == 27.148
        assert b[f"ttft_{stat}_ms"] == 6.74
        assert b[f"itl_{stat}_ms"] == 5.102
    assert b["scheduling_delay_p99_ms"] == 1.0


def test_preemption_18_3(tmp_path):
    trace = tmp_path / "pre.csv"
    _write_trace(trace, [(0.0, [1, 2, 3, 4], list(range(11, 17))), (0.0, [5, 6, 7, 8], list(range(21, 27)))])
    p = blis("run", "--model", "x", "--alpha-coeffs", "0,0,0", "--beta-coeffs", "1000,10,1",
             "--block-size-in-tokens", "4", "--total-kv-blocks", "4",
             "--workload", "traces", "--workload-traces-filepath", str(trace))
    assert p.returncode == 0, p.stderr
    b = _block(p.stdout)
    assert b["itl_mean_ms"] == 1.1068
    assert (b["itl_p90_ms"], b["itl_p95_ms"], b["itl_p99_ms"]) == (1.1068999999999996, 1.5789500000000007, 1.95659)
    assert (b["e2e_mean_ms"], b["e2e_p90_ms"], b["e2e_p95_ms"], b["e2e_p99_ms"]) == (6.614, 7.034, 7.0865, 7.1285)
    assert b["ttft_mean_ms"] == 1.08
    assert b["vllm_estimated_duration_s"] == 0.007139
    assert b["responses_per_sec"] == 280.15128169211374
    assert b["tokens_per_sec"] == 1680.9076901526823
    assert b["preemption_count"] == 1 and "kv_allocation_failures" not in b
    assert b["scheduling_delay_p99_ms"] == 0.0
    assert p.stdout.endswith(
        "=== KV Cache Metrics ===\nPreemption Rate: 0.5000\nCache Hit Rate: 0.2353\nKV Thrashing Rate: 0.0000\n"
    )

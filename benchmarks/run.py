"""Benchmark blis-sim on fixed scenarios: requests simulated per wall-second, peak memory, skip-ahead speed-up.

    python benchmarks/run.py                 # every scenario, skip-ahead and single stepping
    python benchmarks/run.py a b --no-single # chosen scenarios, skip-ahead only
    python benchmarks/run.py --scale 0.1     # every scenario with a tenth of the requests (a quick look)
    python benchmarks/run.py a --scale 0.06 --instructions   # instructions executed (valgrind), not seconds

Each (scenario, mode) runs in a fresh child process so that its peak RSS is its own. Both modes must print the
same metrics; the table says so in its last column. Its caption says whether the compiled engine ran
(``BLIS_SIM_PURE=1 python benchmarks/run.py`` times the Python sources). Scenarios (c) and (f) differ in routing:
round-robin lets each instance run ahead to its own next arrival, weighted routing reads every instance's state at
every arrival.

Wall times on a shared machine drift; ``--instructions`` counts the instructions the simulation executes instead
(valgrind's callgrind: repeatable whatever else the machine does, about 50 times slower, so use a small
``--scale``). With the compiled engine only ``ClusterSimulator.run`` is counted; with the Python sources the whole
process is (imports included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOFLINE = {
    "model": "meta-llama/llama-3.1-8b-instruct",
    "model_config_folder": str(ROOT / "model_configs" / "llama-3.1-8b-instruct"),
    "hardware_config": str(ROOT / "hardware_config.json"),
    "hardware": "H100",
    "tp": 1,
}

BLACKBOX_TP1 = {"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "tp": 1,
                "vllm_version": "vllm/vllm-openai:v0.8.4"}

SCENARIOS: dict[str, tuple[str, dict]] = {
    "a": ("50,000 chatbot requests at 8 req/s, roofline v1, llama-3.1-8b H100 TP1",
          {"latency": ROOFLINE, "workload": {"workload": "chatbot", "rate": 8, "num_requests": 50_000}}),
    "b": ("10,000 chatbot requests at 120 req/s (overloaded: about 80 served), roofline v1",
          {"latency": ROOFLINE, "workload": {"workload": "chatbot", "rate": 120, "num_requests": 10_000}}),
    "c": ("4 instances (round-robin), 20,000 chatbot requests at 32 req/s, roofline v1",
          {"latency": ROOFLINE, "workload": {"workload": "chatbot", "rate": 32, "num_requests": 20_000},
           "cluster": {"num_instances": 4}}),
    "d": ("1,000,000 chatbot requests at 8 req/s, roofline v1",
          {"latency": ROOFLINE, "workload": {"workload": "chatbot", "rate": 8, "num_requests": 1_000_000}}),
    "e": ("blackbox default quickstart (blis run --model meta-llama/llama-3.1-8b-instruct)",
          {"latency": {"model": "meta-llama/llama-3.1-8b-instruct"}}),
    "f": ("4 instances, weighted routing (default scorers), 20,000 chatbot requests at 32 req/s, blackbox TP1",
          {"latency": BLACKBOX_TP1, "workload": {"workload": "chatbot", "rate": 32, "num_requests": 20_000},
           "cluster": {"num_instances": 4, "routing_policy": "weighted"}}),
    "g": ("16 instances, weighted routing, 1,000,000 chatbot requests at 128 req/s, blackbox TP1",
          {"latency": BLACKBOX_TP1, "workload": {"workload": "chatbot", "rate": 128, "num_requests": 1_000_000},
           "cluster": {"num_instances": 16, "routing_policy": "weighted"}}),
    "h": ("scenario (a) as a workload spec (benchmarks/chatbot-spec.yaml): 50,000 requests at 8 req/s, roofline v1",
          {"latency": ROOFLINE, "workload": {"workload_spec": str(ROOT / "benchmarks" / "chatbot-spec.yaml"),
                                             "num_requests": 50_000}}),
    "i": ("10 requests of 200,000 output tokens, --max-model-len 1000000, roofline v1 (a full KV cache: 25 "
          "preemptions; issue 24)",
          {"latency": ROOFLINE, "engine": {"max_model_len": 1_000_000},
           "workload": {"num_requests": 10, "output_tokens": 200_000, "output_tokens_stdev": 0,
                        "output_tokens_min": 200_000, "output_tokens_max": 200_000}}),
}
LONG = ("d", "g", "i")  # single stepping would take too long: skip-ahead only


def _child(name: str, skip_ahead: bool, scale: float) -> None:
    """Run one scenario in this process and print one JSON line: wall seconds, peak RSS, metrics digest."""
    import hashlib
    import logging

    from blis_sim import SimulationConfig, engine_build, run

    logging.getLogger("blis_sim").setLevel(logging.ERROR)
    spec = json.loads(json.dumps(SCENARIOS[name][1]))
    if "workload" in spec and scale != 1.0:
        spec["workload"]["num_requests"] = max(1, int(spec["workload"]["num_requests"] * scale))
    cfg = SimulationConfig(**spec, skip_ahead=skip_ahead)
    started = time.perf_counter()
    results = run(cfg, collect_requests=False)
    wall = time.perf_counter() - started
    print(json.dumps({
        "wall_s": wall,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "requests": results.cluster["injected_requests"],
        "digest": hashlib.sha256(results.stdout_text().encode()).hexdigest(),
        "engine": engine_build,
    }))


RUN_SYMBOL = "CPyDef_simulator___ClusterSimulator___run"  # the compiled cluster loop


def _instructions(name: str, scale: float) -> tuple[int, str]:
    """Instructions executed by one skip-ahead run of ``name`` under callgrind, and what was counted."""
    import os
    import re
    import shutil
    import tempfile

    if shutil.which("valgrind") is None:
        sys.exit("error: --instructions needs valgrind on PATH (Debian: apt install valgrind)")
    probe = subprocess.run([sys.executable, "-c", "import blis_sim; print(blis_sim.engine_build)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    counted = "ClusterSimulator.run" if probe == "compiled" else "whole process"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.path.join(tmp, 'out')}"]
        if probe == "compiled":
            cmd.append(f"--toggle-collect={RUN_SYMBOL}")
        # sys.executable as it is: resolving a virtual environment's link would leave the environment
        cmd += [sys.executable, __file__, "--child", name, "--scale", str(scale)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        sys.exit(f"error: valgrind printed no instruction count for scenario {name}")
    return int(found.group(1)), counted


def _requests_of(name: str, scale: float) -> int:
    """Requests the child simulates (``_child`` scales only scenarios that name a workload)."""
    workload = SCENARIOS[name][1].get("workload")
    if workload is None:
        return 100  # e: the default workload
    return max(1, int(workload["num_requests"] * scale)) if scale != 1.0 else workload["num_requests"]


def _measure(name: str, skip_ahead: bool, scale: float) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--scale", str(scale)]
    if not skip_ahead:
        cmd.append("--no-skip-ahead")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=list(SCENARIOS), help="scenario letters (default: all)")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every request count by this")
    ap.add_argument("--no-single", action="store_true", help="skip the single-stepping comparison runs")
    ap.add_argument("--instructions", action="store_true",
                    help="count executed instructions with valgrind instead of timing (skip-ahead only)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--no-skip-ahead", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, not args.no_skip_ahead, args.scale)
        return
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")

    from rich.console import Console
    from rich.table import Table

    if args.instructions:
        table = Table(title="blis-sim benchmark: instructions executed (valgrind callgrind)")
        for col in ("", "scenario", "requests", "counted", "instructions", "per request"):
            table.add_column(col, justify="right" if col not in ("", "scenario", "counted") else "left")
        for name in args.scenarios:
            Console(stderr=True).print(f"counting {name}: {SCENARIOS[name][0]} ...")
            requests = _requests_of(name, args.scale)
            count, counted = _instructions(name, args.scale)
            table.add_row(name, SCENARIOS[name][0], f"{requests:,}", counted, f"{count:,}", f"{count // requests:,}")
        Console().print(table)
        return

    table = Table(title="blis-sim benchmark")
    for col in ("", "scenario", "requests", "wall s", "requests/s", "peak MB", "single-step s", "speed-up", "same"):
        table.add_column(col, justify="right" if col not in ("", "scenario") else "left")
    console = Console(stderr=True)
    builds = set()
    for name in args.scenarios:
        console.print(f"running {name}: {SCENARIOS[name][0]} ...")
        fast = _measure(name, True, args.scale)
        builds.add(fast["engine"])
        single = None if args.no_single or name in LONG else _measure(name, False, args.scale)
        table.add_row(
            name, SCENARIOS[name][0], f"{fast['requests']:,}", f"{fast['wall_s']:.2f}",
            f"{fast['requests'] / fast['wall_s']:,.0f}", f"{fast['peak_mb']:.0f}",
            f"{single['wall_s']:.2f}" if single else "-",
            f"{single['wall_s'] / fast['wall_s']:.1f}x" if single else "-",
            ("yes" if single["digest"] == fast["digest"] else "NO") if single else "-",
        )
    table.caption = f"engine: {', '.join(sorted(builds))} (blis_sim.engine_build; BLIS_SIM_PURE=1 runs the sources)"
    Console().print(table)


if __name__ == "__main__":
    main()

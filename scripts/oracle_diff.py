#!/usr/bin/env python3
"""oracle_diff.py: differential test of blis-sim's engine against vLLM 0.15.1's own scheduler (development tool).

Not part of the test suite and not run in CI: it needs the vLLM oracle of ``shared/tools/vllm-oracle`` (see its
README.md) installed in its own virtual environment (default ``/tmp/vllm-oracle-venv``; ``--oracle-python``).
Run it with the project's Python, where ``blis_sim`` is importable:

    python scripts/oracle_diff.py --n 500 --seed 1
    python scripts/oracle_diff.py --n 500 --seed 1 --priority [--async-scheduling]  # vLLM's priority policy
    python scripts/oracle_diff.py --n 2000 --seed 7 --golden-out tests/oracle/data   # also (re)writes golden files
    python scripts/oracle_diff.py --replay /tmp/oracle_fail/case_s1_00042            # re-check one stored case
    python scripts/oracle_diff.py --reduce /tmp/oracle_fail/case_s1_00042            # shrink it: <DIR>/reduced/

What it does, for each of N configurations:

1. **Generate** a small random CSV trace (ENGINE.md §10.3: header row, then
   ``arrival_seconds,request_id,model,"[prompt ids]","[output ids]"``) and engine flags built to stress the engine:
   prompts drawn from a few shared prefix families over a tiny vocabulary (prefix-cache hits), duplicate prompts
   and outputs (generated tokens hit too), follow-up turns whose prompt extends an earlier prompt and part of its
   output, KV caches barely larger than the largest request (preemption, including self-preemption, and eviction
   of cached blocks), small token budgets, long-prefill thresholds, block sizes 1..16, bursts of same-tick
   arrivals, rows occasionally out of order, alpha/beta coefficients with fractional parts.
   Every request has at least one output token (the oracle's limit), every request is servable
   (``P + N <= --max-model-len`` and ``ceil((P + N - 1) / bs) <= --total-kv-blocks``), and
   ``--max-num-scheduled-tokens >= --max-num-running-reqs`` (vLLM refuses a smaller budget).
2. **Run** ``blis run --model x --workload traces --workload-traces-filepath T <flags> --results-path R`` in-process
   (``blis_sim.cli.run_cli``, the console script's own entry point) twice: once as users get it (its metrics are
   the ones compared), and once with ``--no-skip-ahead`` (the reference scheduler at every step, no decode cohort
   or skip-ahead, ENGINE.md §7.6) and ``Instance.step`` wrapped to log every step as ``{"t", "d", "X", "Y",
   "items": [[id, k, is_decode, c_before], ...], "preempted", "free_blocks", "waiting", "running"}``: the shape of
   the oracle's ``--steps-out`` lines (this stepped run must give the same results file and stdout as the first; a
   difference is reported as a fast-path error). The oracle runs on the same trace and flags
   (``--output O --steps-out S``) in one long-lived worker process of the oracle's venv, which imports
   ``oracle.py`` once and calls its ``parse_args``/``run`` per case, concurrently with our run (vLLM's ~20 s import
   is paid once).
3. **Compare**, in this order, and report the first mismatch:
   every key of the §14.2 metrics block (counts such as ``completed_requests``, ``preemption_count``,
   ``kv_allocation_failures``, ``dropped_unservable`` and every mean/percentile, all exactly), the §8.7 prefix-cache
   counters (query and hit tokens, exactly, and the ``Cache Hit Rate`` line of our KV section against the oracle's
   rate printed the same way), then per request ``ttft_ms`` and ``e2e_ms`` (our results file vs the oracle's
   records), then the two step logs line by line (first differing step, with its neighbours from both logs).
   A case "matches" only when all of these are equal.

Failing cases are kept under ``--fail-dir`` (default ``/tmp/oracle_fail/case_<i>/``: ``trace.csv``,
``flags.json``, ``ours.json``, ``ours.stdout``, ``ours_steps.jsonl``, ``oracle.json``, ``oracle_steps.jsonl``,
``report.txt``). ``--golden-out DIR`` picks five matching cases of different kinds (preemption with self-preemption,
prefix hits after an eviction, chunked-prefill heavy, same-tick burst, block size 1) and writes each as
``<name>.csv``, ``<name>.flags.json`` and ``<name>.oracle.json`` (the oracle's metric keys and per-request TTFT/E2E)
for ``tests/oracle/test_oracle_golden.py``.

``--priority`` runs vLLM's ``--scheduling-policy priority`` instead of FCFS: our ``--scheduler vllm-priority``
against the oracle's ``--scheduling-policy priority``, on traces whose rows carry random priorities in a ``priority``
column (all equal, a few levels, a wide range, or no column: every priority 0). Two adaptations of the oracle, both
in the worker, make it model what a real vLLM server does (docs/scheduling.md): (1) distinct arrival stamps in
arrival order (the oracle stamps each request with its tick, so same-tick requests tie, which a server never sees,
and vLLM's tie rules can then livelock); (2) its synchronous loop runs an empty batch (a pass that preempted every
request it scheduled) and schedules again at the same tick, as ``EngineCore.step`` does, instead of stopping. The
victims of such an empty pass are logged with the next step, by both sides. With ``--golden-out`` the priority
kinds are written (``PRIORITY_GOLDEN_KINDS``: an already-scheduled victim, equal priorities, an empty batch; with
``--async-scheduling`` an already-scheduled victim and one skipped earlier in the pass).

``--oracle-worker`` is internal: the worker mode, run with the oracle's Python.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
import traceback

# The instrumentation below patches engine classes, which the compiled engine does not allow: run the Python
# sources (the same results; src/blis_sim/_compiled.py).
os.environ["BLIS_SIM_PURE"] = "1"

ORACLE_DIR = "/work/shared/tools/vllm-oracle"
DEFAULT_ORACLE_PY = "/tmp/vllm-oracle-venv/bin/python"

# Metric keys of ENGINE.md §14.2 that the oracle also reports (all compared exactly).
METRIC_KEYS = (
    "completed_requests", "still_queued", "still_running", "injected_requests", "total_input_tokens",
    "total_output_tokens", "vllm_estimated_duration_s", "responses_per_sec", "tokens_per_sec",
    "e2e_mean_ms", "e2e_p90_ms", "e2e_p95_ms", "e2e_p99_ms", "ttft_mean_ms", "ttft_p90_ms", "ttft_p95_ms",
    "ttft_p99_ms", "itl_mean_ms", "itl_p90_ms", "itl_p95_ms", "itl_p99_ms", "scheduling_delay_p99_ms",
    "kv_allocation_failures", "preemption_count", "dropped_unservable",
)
# The first keys reported (the brief's order), then the rest.
PRIMARY = ("completed_requests", "preemption_count", "kv_allocation_failures", "ttft_mean_ms", "ttft_p90_ms",
           "itl_mean_ms", "e2e_mean_ms", "e2e_p90_ms")
STEP_KEYS = ("t", "d", "X", "Y", "items", "preempted", "free_blocks", "waiting", "running")
FLAG_ORDER = ("--alpha-coeffs", "--beta-coeffs", "--total-kv-blocks", "--block-size-in-tokens",
              "--max-num-running-reqs", "--max-num-scheduled-tokens", "--long-prefill-token-threshold",
              "--max-model-len")


# =====================================================================================================================
# Oracle worker (runs under the oracle's Python; must not import blis_sim)
# =====================================================================================================================
def oracle_worker(oracle_dir: str) -> int:
    """Serve one JSON request per stdin line: {"argv": [...], "output": path}; answer one JSON line."""
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything vLLM/torch prints goes to stderr, never into the protocol
    sys.stdout = sys.stderr
    import importlib.util

    spec = importlib.util.spec_from_file_location("vllm_oracle", os.path.join(oracle_dir, "oracle.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    import vllm  # noqa: F401  (import now, so that the first case is not slow)

    _run_empty_batches(mod)
    _unique_arrival_stamps(mod)

    proto.write(json.dumps({"ready": True, "vllm": vllm.__version__}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        job = json.loads(line)
        t0 = time.time()
        try:
            a = mod.parse_args(job["argv"])
            out = mod.run(a)
            with open(job["output"], "w") as fh:
                fh.write(mod.dumps(out))
            reply = {"ok": True}
        except SystemExit as exc:  # oracle.die()
            reply = {"ok": False, "error": f"oracle exited with status {exc.code} (see worker stderr)"}
        except BaseException as exc:  # noqa: BLE001 - report and keep serving
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        reply["wall_s"] = round(time.time() - t0, 3)
        proto.write(json.dumps(reply) + "\n")
    return 0


def _run_empty_batches(mod) -> None:
    """Let the oracle's synchronous loop run an empty batch, as vLLM's ``EngineCore.step`` does.

    Under vLLM's priority policy one ``schedule()`` pass can preempt every request it scheduled (a victim may be
    a request scheduled earlier in the pass, whose tokens go back), leaving a batch without tokens. vLLM's engine
    executes it (no tokens: nothing runs), applies its empty output and schedules again; the oracle's synchronous
    loop stops at an empty batch instead. Here the synchronous ``Scheduler.schedule`` does what the engine does, at
    the same tick (an empty batch takes no time in the blis time model), and reports the victims of the empty
    passes with the batch that follows, which is how blis-sim logs them too. The asynchronous loop of the oracle
    handles empty batches itself; FCFS never forms one.
    """
    from vllm.v1.core.sched.scheduler import Scheduler
    from vllm.v1.outputs import ModelRunnerOutput

    orig = Scheduler.schedule

    def schedule(self):
        so = orig(self)
        if type(self) is not Scheduler:  # AsyncScheduler: the oracle's own loop
            return so
        carried: set[str] = set()
        while not so.total_num_scheduled_tokens and so.preempted_req_ids and self.has_requests():
            carried |= set(so.preempted_req_ids)
            self.update_from_output(so, ModelRunnerOutput(req_ids=[], req_id_to_index={}, sampled_token_ids=[]))
            so = orig(self)
        if carried:
            so.preempted_req_ids = set(so.preempted_req_ids or ()) | carried
        return so

    Scheduler.schedule = schedule


def _unique_arrival_stamps(mod) -> None:
    """Give the oracle's requests distinct arrival times, as vLLM's wall-clock stamps always are.

    The oracle stamps each request with its arrival tick (``arrival_time = tick / 1e6``), so same-tick requests
    share an arrival time, which a real vLLM server never sees (it stamps requests as it receives them, one after
    the other). vLLM's priority policy orders by (priority, arrival time) and, on an exact tie, takes the first
    victim in running order, which can livelock (two same-tick requests preempting each other at every step).
    blis-sim's vllm-priority models distinct stamps: same-tick requests in arrival order (engine/policy.py). Here
    the oracle's stamps get the same order: tick / 1e6 + row index * 1e-12 (rows of one tick are in arrival order
    in the file; 1e-12 s is far below the 1e-6 s between ticks and above the float spacing of these small traces'
    times). Only the priority policy reads arrival_time; FCFS runs are unchanged.
    """
    orig = mod.make_request

    def make_request(r, hasher):
        req = orig(r, hasher)
        req.arrival_time = r["arrival"] / 1e6 + r["index"] * 1e-12
        assert r["arrival"] < 10**9 and r["index"] < 10**5, "stamps would not keep (tick, row) order"
        return req

    mod.make_request = make_request


class OracleClient:
    """A long-lived oracle worker process; ``submit`` then ``result`` lets our run overlap with the oracle's."""

    def __init__(self, oracle_py: str, oracle_dir: str, log_path: str) -> None:
        self.log = open(log_path, "a")
        env = dict(os.environ, PYTHONHASHSEED="0")
        self.proc = subprocess.Popen(
            [oracle_py, os.path.abspath(__file__), "--oracle-worker", "--oracle-dir", oracle_dir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1, env=env,
        )
        hello = self.proc.stdout.readline()
        if not hello:
            raise RuntimeError(f"oracle worker failed to start (see {log_path})")
        self.info = json.loads(hello)

    def submit(self, argv: list[str], output: str) -> None:
        self.proc.stdin.write(json.dumps({"argv": argv, "output": output}) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("oracle worker died")
        return json.loads(line)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        self.log.close()


# =====================================================================================================================
# Random cases
# =====================================================================================================================
def _coef(rng: random.Random, lo: float, hi: float, p_zero: float, decimals: int) -> str:
    if rng.random() < p_zero:
        return "0"
    v = round(rng.uniform(lo, hi), decimals)
    return repr(v) if decimals else str(int(v))


def gen_case(rng: random.Random, priority: bool = False) -> tuple[list[tuple], dict[str, str]]:
    """One random stress case: rows (arrival tick, prompt, output) in file order, and the engine flags.

    ``priority``: the case runs vLLM's priority policy (``--scheduler vllm-priority``); its rows get a fourth element,
    the request's priority, written as the trace's ``priority`` column, except in a quarter of the cases, which have
    no such column (every priority 0). The priorities are drawn after everything else, so that the FCFS cases of a
    seed stay the same: all equal (the victim rule still differs from FCFS), a few levels, or a wide range."""
    bs = rng.choice([1, 1, 2, 3, 4, 4, 5, 7, 8, 8, 16, 16] + list(range(1, 17)))
    vocab = rng.choice([2, 3, 5, 8, 20, 100])
    rand_toks = lambda n: [rng.randint(1, vocab) for _ in range(n)]  # noqa: E731
    max_prompt = rng.choice([6, 12, 24, 48, 80])
    families = [rand_toks(rng.randint(1, max_prompt)) for _ in range(rng.randint(1, 3))]
    nreq = rng.randint(2, rng.choice([4, 8, 12, 16]))
    max_out = rng.choice([1, 3, 6, 12, 24, 48])
    rows: list[tuple[int, list[int], list[int]]] = []
    t = rng.choice([0, 0, rng.randint(0, 5000)])
    burst = rng.random() < 0.3
    for i in range(nreq):
        if i:
            u = rng.random()
            if burst or u < 0.35:
                pass  # same tick as the previous row
            elif u < 0.7:
                t += rng.randint(1, 3000)
            elif u < 0.9:
                t += rng.randint(3000, 40000)
            else:
                t += rng.randint(40000, 300000)
        mode = rng.random()
        if rows and mode < 0.2:  # duplicate an earlier request (same prompt; maybe the same output too)
            _, p, o = rng.choice(rows)
            prompt = list(p)
            output = list(o) if rng.random() < 0.6 else rand_toks(rng.randint(1, max_out))
        elif rows and mode < 0.35:  # a follow-up turn: an earlier prompt, part of its output, new tokens
            _, p, o = rng.choice(rows)
            prompt = p + o[: rng.randint(0, len(o))] + rand_toks(rng.randint(0, max(1, max_prompt // 4)))
            output = rand_toks(rng.randint(1, max_out))
        elif mode < 0.8:  # shared prefix family, cut anywhere, plus a random suffix
            fam = rng.choice(families)
            cut = rng.randint(0, len(fam))
            prompt = fam[:cut] + rand_toks(rng.randint(0 if cut else 1, max(1, max_prompt // 3)))
            output = rand_toks(rng.randint(1, max_out))
        else:
            prompt = rand_toks(rng.randint(1, max_prompt))
            output = rand_toks(rng.randint(1, max_out))
        if not prompt:
            prompt = rand_toks(1)
        rows.append((t, prompt, output))
    if rng.random() < 0.1:
        rng.shuffle(rows)  # rows need not be sorted (§10.3)

    need_blocks = max(-(-(len(p) + len(o) - 1) // bs) for _, p, o in rows)
    u = rng.random()
    if u < 0.3:
        blocks = need_blocks
    elif u < 0.7:
        blocks = need_blocks + rng.randint(1, 4)
    elif u < 0.9:
        blocks = need_blocks + rng.randint(1, 3 * need_blocks + 4)
    else:
        blocks = need_blocks * rng.randint(4, 20)
    max_len = max(len(p) + len(o) for _, p, o in rows)
    mml = max_len + rng.choice([0, 0, rng.randint(1, 64), rng.randint(64, 4096)])
    mnr = rng.choice([1, 2, 2, 3, 4, 6, 8, 256])
    if mnr == 256:
        budget = rng.choice([256, 2048])
    else:
        budget = rng.choice([mnr, mnr + rng.randint(0, 8), rng.randint(mnr, 64), rng.randint(mnr, 256), 2048])
    thr = 0 if rng.random() < 0.35 else rng.randint(1, min(budget, max(1, max_len)))
    flags = {
        "--alpha-coeffs": ",".join([_coef(rng, 0, 400, 0.4, 2), _coef(rng, 0, 6, 0.4, 3), _coef(rng, 0, 30, 0.4, 2)]),
        "--beta-coeffs": ",".join([_coef(rng, 50, 6000, 0.0, 2), _coef(rng, 0, 40, 0.2, 3), _coef(rng, 0, 25, 0.2, 2)]),
        "--total-kv-blocks": str(blocks),
        "--block-size-in-tokens": str(bs),
        "--max-num-running-reqs": str(mnr),
        "--max-num-scheduled-tokens": str(budget),
        "--long-prefill-token-threshold": str(thr),
        "--max-model-len": str(mml),
    }
    if priority:
        flags["--scheduler"] = "vllm-priority"
        u = rng.random()
        if u < 0.25:
            return rows, flags  # no priority column: every request has priority 0
        if u < 0.45:
            level = rng.choice([0, 0, 1, -3, 7])
            prios = [level] * len(rows)
        elif u < 0.85:
            levels = rng.choice([[0, 1], [0, 1, 2], [-1, 0, 1], [0, 0, 0, 5]])
            prios = [rng.choice(levels) for _ in rows]
        else:
            prios = [rng.randint(-20, 20) for _ in rows]
        rows = [(t, p, o, q) for (t, p, o), q in zip(rows, prios)]
    return rows, flags


def write_trace(path: str, rows) -> None:
    """Rows (tick, prompt, output) or, with a priority column, (tick, prompt, output, priority)."""
    with_priority = bool(rows) and len(rows[0]) == 4
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["arrival_time", "request_id", "model", "prompt_tokens", "output_tokens"]
                   + (["priority"] if with_priority else []))
        for i, (tick, p, o, *rest) in enumerate(rows):
            w.writerow([f"{tick / 1e6:.6f}", f"req{i}", "x", json.dumps(p, separators=(",", ":")),
                        json.dumps(o, separators=(",", ":"))] + [str(q) for q in rest])


def oracle_argv(flags: dict[str, str]) -> list[str]:
    """The oracle's flags: ours, with ``--scheduler vllm-priority`` spelled ``--scheduling-policy priority``."""
    mapped = {k: v for k, v in flags.items() if k != "--scheduler"}
    if flags.get("--scheduler", "fcfs") != "fcfs":
        assert flags["--scheduler"] == "vllm-priority", flags["--scheduler"]
        mapped["--scheduling-policy"] = "priority"
    return flag_argv(mapped)


def flag_argv(flags: dict[str, str]) -> list[str]:
    out: list[str] = []
    for k in FLAG_ORDER:
        if k in flags:
            out += [k] if flags[k] is True else [k, str(flags[k])]
    for k, v in flags.items():
        if k not in FLAG_ORDER:
            out += [k] if v is True else [k, str(v)]
    return out


# =====================================================================================================================
# Our engine, in-process, with a step log
# =====================================================================================================================
class OurRun:
    """Runs ``blis run`` in-process while logging every step in the oracle's --steps-out shape."""

    def __init__(self) -> None:
        from blis_sim import cli, logging_setup
        from blis_sim.engine.instance import Instance
        from blis_sim.engine.scheduler import Scheduler
        from blis_sim.kv.block_pool import BlockPool

        self.cli, self.logging_setup = cli, logging_setup
        self.steps: list[dict] = []
        self.extra: list[dict] = []  # per step, not compared: admissions with hits, partial chunks, evictions
        self.instances: list = []
        self.evictions = 0
        self.empty_batches = 0  # formations that scheduled nothing but preempted (vllm-priority)
        self.carried: list[str] = []  # sync: victims of empty formations, logged with the next step (as the oracle)
        self.log_steps = False
        orig_step = Instance.step
        orig_form = Instance._form_async
        orig_evict = BlockPool._evict
        orig_schedule = Scheduler.schedule
        me = self

        def evict(pool, block, old):  # a cached free block is reused: its key leaves the GPU
            me.evictions += 1
            return orig_evict(pool, block, old)

        def schedule(sched, now, start=None):
            rec = orig_schedule(sched, now, start)
            if not rec.requests and rec.preempted:
                me.empty_batches += 1
                if me.log_steps and start is None:  # sync: Instance.step forms again at once
                    me.carried += [r.id for r in rec.preempted]
            return rec

        def step(inst, now, *args, **kw):
            if not any(i is inst for i in me.instances):
                me.instances.append(inst)
            if not me.log_steps:
                return orig_step(inst, now, *args, **kw)
            # the stepped run has --no-skip-ahead: each call forms one step (ENGINE.md §7.6)
            before = {id(r) for r in inst.scheduler.running}
            end = orig_step(inst, now, *args, **kw)
            if end is None or inst.asynchronous:  # async batches are logged by form_async
                return end
            me.log_batch(inst, inst.in_flight, now, end, before)
            return end

        def form_async(inst, now):
            """Async runs (§7.8): log each batch as it is formed (its start and duration)."""
            before = {id(r) for r in inst.scheduler.running}
            rec = orig_form(inst, now)
            if me.log_steps and (rec.requests or rec.preempted):  # the oracle logs preempting empty batches
                me.log_batch(inst, rec, rec.start, rec.end, before)
            return rec

        Instance.step = step
        Instance._form_async = form_async
        BlockPool._evict = evict
        Scheduler.schedule = schedule

    def log_batch(self, inst, rec, start: int, end: int, before: set[int]) -> None:
        """One step-log entry in the oracle's shape, for a batch just formed (sync or async: the known tokens
        before formation are P + g + placeholders, less the one this batch added to the requests it emits for)."""
        emitting = {id(r) for r in rec.emits}
        items, X, Y, hit_admits, partial = [], 0, 0, 0, 0
        for r, k in zip(rec.requests, rec.num_new_tokens):
            c_before = r.num_computed_tokens - k
            outputs = r.num_generated + r.num_placeholders - (id(r) in emitting)
            known = r.num_prompt_tokens + outputs
            dec = outputs >= 1 and c_before == known - 1
            if dec:
                Y += 1
            else:
                X += k
                if r.num_computed_tokens < known:
                    partial += 1
            if id(r) not in before and c_before > 0:
                hit_admits += 1
            items.append([r.id, k, int(dec), c_before])
        sched = inst.scheduler
        preempted = sorted(self.carried + [r.id for r in rec.preempted])
        self.carried = []
        self.steps.append({"t": start, "d": end - start, "X": X, "Y": Y, "items": items,
                           "preempted": preempted,
                           "free_blocks": inst.kv.pool.num_free, "waiting": len(sched.waiting),
                           "running": len(sched.running)})
        self.extra.append({"hit_admits": hit_admits, "partial": partial, "evictions": self.evictions})

    def run(self, argv: list[str], log_steps: bool) -> tuple[int, str, str]:
        """``blis run`` as the user gets it (``log_steps`` False), or one step at a time with the step log."""
        self.steps, self.extra, self.instances, self.evictions, self.empty_batches = [], [], [], 0, 0
        self.carried = []
        self.log_steps = log_steps
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = self.cli.run_cli(argv, prog_name="blis")
        self.logging_setup.reset()
        return rc, out.getvalue(), err.getvalue()

    def cache_counts(self) -> tuple[int, int]:
        return (sum(i.kv.query_tokens for i in self.instances), sum(i.kv.hit_tokens for i in self.instances))


def kv_hit_line(stdout: str) -> str:
    for line in stdout.splitlines():
        if line.startswith("Cache Hit Rate: "):
            return line.split(": ", 1)[1]
    return "%.4f" % 0.0  # the KV section is printed only when a rate is non-zero (§14.1)


# =====================================================================================================================
# Comparison
# =====================================================================================================================
def compare(ours: dict, our_stdout: str, counts: tuple[int, int], ref: dict) -> list[str]:
    """Every difference between our results file and the oracle's output (metrics first, then requests)."""
    diffs = []
    keys = list(PRIMARY) + [k for k in METRIC_KEYS if k not in PRIMARY]
    for k in keys:
        a = ours.get(k, 0 if k == "kv_allocation_failures" else None)
        b = ref.get(k, 0 if k == "kv_allocation_failures" else None)
        if a != b:
            diffs.append(f"metric {k}: ours {a!r} vs oracle {b!r}")
    o = ref["oracle"]
    if counts != (o["prefix_cache_queries_tokens"], o["prefix_cache_hits_tokens"]):
        diffs.append(f"prefix cache (queries, hits) tokens: ours {counts} vs oracle "
                     f"{(o['prefix_cache_queries_tokens'], o['prefix_cache_hits_tokens'])}")
    if kv_hit_line(our_stdout) != "%.4f" % o["cache_hit_rate"]:
        diffs.append(f"Cache Hit Rate: ours {kv_hit_line(our_stdout)} vs oracle {'%.4f' % o['cache_hit_rate']}")
    ours_r = {r["requestID"]: r for r in ours.get("requests", [])}
    ref_r = {r["requestID"]: r for r in ref["requests"]}
    if list(ours_r) != list(ref_r):
        diffs.append(f"request records: ours {list(ours_r)} vs oracle {list(ref_r)}")
    for rid, rr in ref_r.items():
        mine = ours_r.get(rid)
        if mine is None:
            continue
        for k in ("ttft_ms", "e2e_ms"):
            if mine[k] != rr[k]:
                diffs.append(f"{rid} {k}: ours {mine[k]!r} vs oracle {rr[k]!r}")
    return diffs


def first_step_diff(ours: list[dict], ref: list[dict]) -> tuple[int, str] | None:
    for i in range(max(len(ours), len(ref))):
        a = ours[i] if i < len(ours) else None
        b = ref[i] if i < len(ref) else None
        if a is None or b is None:
            return i, f"step {i}: ours {'missing' if a is None else 'present'}, oracle {'missing' if b is None else 'present'}"
        bad = [k for k in STEP_KEYS if a.get(k) != b.get(k)]
        if bad:
            return i, f"step {i} (t={b['t']}): differs in {', '.join(bad)}"
    return None


def step_context(ours: list[dict], ref: list[dict], i: int, before: int = 2) -> str:
    lines = []
    for j in range(max(0, i - before), i + 1):
        for name, log in (("ours  ", ours), ("oracle", ref)):
            if j < len(log):
                s = {k: log[j].get(k) for k in STEP_KEYS}
                lines.append(f"  [{j}] {name} {json.dumps(s, separators=(',', ':'))}")
    return "\n".join(lines)


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(x) for x in fh if x.strip()]


# =====================================================================================================================
# One case
# =====================================================================================================================
def check_case(d: str, flags: dict[str, str], ours_runner: OurRun, oracle: OracleClient) -> dict:
    """Run both engines on d/trace.csv with ``flags``; returns a verdict dict (written to d/verdict.json)."""
    trace = os.path.join(d, "trace.csv")
    fa = flag_argv(flags)
    oracle.submit(["--workload-traces-filepath", trace, *oracle_argv(flags),
                   "--steps-out", os.path.join(d, "oracle_steps.jsonl")], os.path.join(d, "oracle.json"))
    argv = ["run", "--model", "x", "--workload", "traces", "--workload-traces-filepath", trace, *fa,
            "--results-path", os.path.join(d, "ours.json")]
    # 1) the run as users get it (decode skip-ahead, if the engine has it, on): the metrics compared
    rc, out, err = ours_runner.run(argv, log_steps=False)
    counts = ours_runner.cache_counts()
    with open(os.path.join(d, "ours.stdout"), "w") as fh:
        fh.write(out + ("\n--- stderr ---\n" + err if err else ""))
    # 2) the same run stepped one boundary at a time with the reference scheduler (--no-skip-ahead), for the step
    # log; its results file and stdout must be identical
    argv_steps = argv[:-2] + ["--no-skip-ahead", "--results-path", os.path.join(d, "ours_stepped.json")]
    rc2, out2, err2 = ours_runner.run(argv_steps, log_steps=True)
    with open(os.path.join(d, "ours_steps.jsonl"), "w") as fh:
        for s in ours_runner.steps:
            fh.write(json.dumps(s) + "\n")
    extra = ours_runner.extra
    empty_batches = ours_runner.empty_batches
    oreply = oracle.result()
    verdict: dict = {"flags": flags, "ours_rc": rc, "oracle": oreply}
    if rc != 0:
        verdict["first"] = f"blis run exited {rc}: {err.strip()}"
    if not oreply.get("ok"):
        verdict.setdefault("first", f"oracle failed: {oreply.get('error')}")
    if "first" in verdict:
        verdict["match"] = False
        return verdict
    with open(os.path.join(d, "ours.json")) as fh:
        ours = json.load(fh)
    with open(os.path.join(d, "oracle.json")) as fh:
        ref = json.load(fh)
    diffs = compare(ours, out, counts, ref)
    if rc2 == 0:
        with open(os.path.join(d, "ours_stepped.json")) as fh:
            stepped = json.load(fh)
        if stepped != ours or out2 != out:
            diffs.append("our run stepped one boundary at a time differs from the normal run "
                         "(decode skip-ahead is not exact): compare ours.json with ours_stepped.json")
    else:
        diffs.append(f"our stepped run exited {rc2}: {err2.strip()}")
    our_steps = ours_runner.steps
    ref_steps = read_jsonl(os.path.join(d, "oracle_steps.jsonl"))
    sd = first_step_diff(our_steps, ref_steps)
    verdict["diffs"] = diffs
    verdict["match"] = not diffs and sd is None
    if diffs:
        verdict["first"] = diffs[0]
    if sd is not None:
        verdict["first_step"] = sd[1]
        verdict["step_context"] = step_context(our_steps, ref_steps, sd[0])
        verdict.setdefault("first", sd[1])
    # Features, for golden-case selection and the summary.
    P = {r["requestID"]: (r["num_prefill_tokens"], r["num_decode_tokens"]) for r in ref["requests"]}
    arrivals = [r["arrived_at"] for r in ref["requests"]]
    first_evict = next((i for i, e in enumerate(extra) if e["evictions"] > 0), None)
    verdict["features"] = {
        "n": len(P),
        "tokens": sum(p + n for p, n in P.values()),
        "steps": len(ref_steps),
        "preemptions": ref["preemption_count"],
        "self_preemptions": ref["oracle"]["self_preemptions"],
        "evictions": ref["oracle"]["cached_block_evictions"],
        "hits": ref["oracle"]["prefix_cache_hits_tokens"],
        "hit_admits_after_evict": 0 if first_evict is None else sum(e["hit_admits"] for e in extra[first_evict + 1:]),
        "partial_chunks": sum(e["partial"] for e in extra),
        "max_same_tick": max(arrivals.count(a) for a in set(arrivals)) if arrivals else 0,
        "bs": int(flags["--block-size-in-tokens"]),
        "thr": int(flags["--long-prefill-token-threshold"]),
        "async": bool(flags.get("--async-scheduling")),
        "priority": flags.get("--scheduler") == "vllm-priority",
        "priority_levels": len({r.get("priority", 0) for r in ref["requests"]}),
        "empty_batches": empty_batches,
    }
    for k in ("victims_already_scheduled", "victims_not_yet_scheduled", "victims_skipped_earlier", "victims_tied"):
        verdict["features"][k] = ref["oracle"].get(k, 0)
    return verdict


def report_text(name: str, d: str, verdict: dict) -> str:
    lines = [f"{name}: {'MATCH' if verdict.get('match') else 'MISMATCH'}",
             f"trace: {os.path.join(d, 'trace.csv')}",
             "flags: " + " ".join(flag_argv(verdict["flags"])),
             f"first mismatch: {verdict.get('first', '-')}"]
    for x in verdict.get("diffs", [])[1:12]:
        lines.append(f"  also: {x}")
    if verdict.get("first_step"):
        lines.append(f"first differing step: {verdict['first_step']}")
        lines.append(verdict["step_context"])
    if verdict.get("oracle", {}).get("traceback"):
        lines.append(verdict["oracle"]["traceback"])
    return "\n".join(lines) + "\n"


def read_rows(path: str) -> list[tuple]:
    with open(path, newline="") as fh:
        header, *rows = list(csv.reader(fh))
    prio = len(header) > 5 and header[5] == "priority"
    return [(round(float(r[0]) * 1e6), json.loads(r[3]), json.loads(r[4])) + ((int(r[5]),) if prio else ())
            for r in rows]


def reduce_case(src: str, ours_runner: OurRun, oracle: OracleClient, out_dir: str) -> dict:
    """Shrink a failing case (drop rows, then shorten outputs and prompts) while it still mismatches."""
    with open(os.path.join(src, "flags.json")) as fh:
        flags = json.load(fh)
    rows = read_rows(os.path.join(src, "trace.csv"))
    os.makedirs(out_dir, exist_ok=True)
    tries = [0]

    def fails(cand) -> dict | None:
        tries[0] += 1
        d = os.path.join(out_dir, "try")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        write_trace(os.path.join(d, "trace.csv"), cand)
        v = check_case(d, flags, ours_runner, oracle)
        return None if v.get("match") or not v.get("features") else v

    best = fails(rows)
    if best is None:
        raise SystemExit(f"{src}: the case matches now; nothing to reduce")
    changed = True
    while changed:
        changed = False
        i = 0
        while i < len(rows) and len(rows) > 1:  # drop one row
            cand = rows[:i] + rows[i + 1:]
            v = fails(cand)
            if v is not None:
                rows, best, changed = cand, v, True
            else:
                i += 1
        for i in range(len(rows)):  # shorten outputs (>= 1) and prompts (>= 1) from the end, halving first
            for which in (2, 1):
                while True:
                    t, p, o, *rest = rows[i]
                    seq = o if which == 2 else p
                    if len(seq) <= 1:
                        break
                    ok = False
                    for cut in sorted({max(1, len(seq) // 2), len(seq) - 1}):
                        new = (t, p, seq[:cut], *rest) if which == 2 else (t, seq[:cut], o, *rest)
                        cand = rows[:i] + [new] + rows[i + 1:]
                        v = fails(cand)
                        if v is not None:
                            rows, best, changed, ok = cand, v, True, True
                            break
                    if not ok:
                        break
    final = os.path.join(out_dir, "reduced")
    shutil.rmtree(final, ignore_errors=True)
    os.makedirs(final)
    write_trace(os.path.join(final, "trace.csv"), rows)
    with open(os.path.join(final, "flags.json"), "w") as fh:
        json.dump(flags, fh, indent=2)
    v = check_case(final, flags, ours_runner, oracle)
    with open(os.path.join(final, "report.txt"), "w") as fh:
        fh.write(report_text("reduced", final, v))
    shutil.rmtree(os.path.join(out_dir, "try"), ignore_errors=True)
    print(f"reduced to {len(rows)} rows in {tries[0]} tries: {final}")
    return v


# =====================================================================================================================
# Golden files
# =====================================================================================================================
GOLDEN_KINDS = (
    ("preempt_self", lambda f: f["self_preemptions"] >= 1 and f["preemptions"] >= 2, lambda f: f["preemptions"]),
    ("hits_after_eviction", lambda f: f["hit_admits_after_evict"] >= 2 and f["evictions"] >= 2,
     lambda f: f["hit_admits_after_evict"]),
    ("chunked_prefill", lambda f: f["thr"] > 1 and f["partial_chunks"] >= 8,
     lambda f: (f["hits"] > 0, f["preemptions"] > 0, f["partial_chunks"])),
    ("same_tick_burst", lambda f: f["max_same_tick"] >= 5 and f["max_same_tick"] == f["n"],
     lambda f: (f["preemptions"] > 0, f["hits"] > 0, f["max_same_tick"])),
    ("block_size_1", lambda f: f["bs"] == 1 and f["hits"] > 0 and f["preemptions"] > 0, lambda f: f["hits"]),
)
GOLDEN_METRICS = ("completed_requests", "injected_requests", "total_input_tokens", "total_output_tokens",
                  "vllm_estimated_duration_s", "e2e_mean_ms", "e2e_p90_ms", "e2e_p95_ms", "e2e_p99_ms",
                  "ttft_mean_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms", "itl_mean_ms", "itl_p90_ms",
                  "itl_p95_ms", "itl_p99_ms", "scheduling_delay_p99_ms", "kv_allocation_failures",
                  "preemption_count", "dropped_unservable")


# Cases of vLLM's priority policy (--priority), from a synchronous run and an --async-scheduling run.
PRIORITY_GOLDEN_KINDS = (
    ("priority_victim_scheduled", lambda f: not f["async"] and f["victims_already_scheduled"] >= 1
     and f["priority_levels"] >= 2, lambda f: (f["victims_already_scheduled"], f["preemptions"])),
    ("priority_equal", lambda f: not f["async"] and f["priority_levels"] == 1 and f["victims_already_scheduled"] >= 1,
     lambda f: (f["victims_already_scheduled"], f["preemptions"])),
    ("priority_empty_batch", lambda f: not f["async"] and f["empty_batches"] >= 1,
     lambda f: (f["priority_levels"] > 1, f["empty_batches"])),
    ("priority_async", lambda f: f["async"] and f["victims_already_scheduled"] >= 1 and f["priority_levels"] >= 2,
     lambda f: (f["victims_already_scheduled"], f["preemptions"])),
    # a victim before the request being scheduled that got no tokens in the pass: vLLM does not step its index back
    ("priority_async_skipped", lambda f: f["async"] and f["victims_skipped_earlier"] >= 1,
     lambda f: (f["victims_skipped_earlier"], f["priority_levels"])),
)


def write_golden(out_dir: str, matches: list[tuple[str, str, dict]], kinds=GOLDEN_KINDS) -> list[str]:
    """Pick one matching case per kind (small ones first, then the strongest feature) and write its files."""
    os.makedirs(out_dir, exist_ok=True)
    used: set[str] = set()
    written = []
    for kind, ok, strength in kinds:
        cands = [(name, d, v) for name, d, v in matches if name not in used and ok(v["features"])]
        small = [c for c in cands if c[2]["features"]["tokens"] <= 250 and c[2]["features"]["steps"] <= 80]
        pool = small or cands
        if not pool:
            print(f"golden: no matching case of kind {kind}", file=sys.stderr)
            continue
        name, d, v = max(pool, key=lambda c: (strength(c[2]["features"]), -c[2]["features"]["tokens"]))
        used.add(name)
        shutil.copyfile(os.path.join(d, "trace.csv"), os.path.join(out_dir, f"{kind}.csv"))
        with open(os.path.join(out_dir, f"{kind}.flags.json"), "w") as fh:
            json.dump(v["flags"], fh, indent=2)
            fh.write("\n")
        with open(os.path.join(d, "oracle.json")) as fh:
            ref = json.load(fh)
        g = {k: ref[k] for k in GOLDEN_METRICS if k in ref}
        g["cache_hit_rate"] = ref["oracle"]["cache_hit_rate"]
        g["prefix_cache_queries_tokens"] = ref["oracle"]["prefix_cache_queries_tokens"]
        g["prefix_cache_hits_tokens"] = ref["oracle"]["prefix_cache_hits_tokens"]
        g["source"] = {"vllm_version": ref["oracle"]["vllm_version"], "case": name, "features": v["features"]}
        g["requests"] = [{"requestID": r["requestID"], "ttft_ms": r["ttft_ms"], "e2e_ms": r["e2e_ms"]}
                         for r in ref["requests"]]
        with open(os.path.join(out_dir, f"{kind}.oracle.json"), "w") as fh:
            json.dump(g, fh, indent=2)
            fh.write("\n")
        written += [f"{kind}.csv", f"{kind}.flags.json", f"{kind}.oracle.json"]
        print(f"golden: {kind} <- {name} {v['features']}")
    return written


# =====================================================================================================================
# Main
# =====================================================================================================================
def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="number of random cases")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", default="/tmp/oracle_diff", help="scratch directory (cases of this run)")
    ap.add_argument("--fail-dir", default="/tmp/oracle_fail", help="where failing cases are kept")
    ap.add_argument("--keep-all", action="store_true", help="keep matching cases in --work-dir too")
    ap.add_argument("--golden-out", default="", help="write five golden cases here")
    ap.add_argument("--replay", default="", help="re-check one stored case directory (trace.csv + flags.json)")
    ap.add_argument("--reduce", default="", help="shrink a failing case directory; writes <DIR>/reduced/")
    ap.add_argument("--oracle-python", default=DEFAULT_ORACLE_PY)
    ap.add_argument("--oracle-dir", default=ORACLE_DIR)
    ap.add_argument("--oracle-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-fail", type=int, default=50, help="stop after this many mismatches")
    ap.add_argument("--priority", action="store_true",
                    help="vLLM's priority policy: --scheduler vllm-priority, traces with random priorities")
    ap.add_argument("--async-scheduling", action="store_true",
                    help="run both engines with asynchronous scheduling (ENGINE.md §7.8)")
    a = ap.parse_args(argv)
    if a.oracle_worker:
        return oracle_worker(a.oracle_dir)

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    os.makedirs(a.work_dir, exist_ok=True)
    t0 = time.time()
    oracle = OracleClient(a.oracle_python, a.oracle_dir, os.path.join(a.work_dir, "oracle_worker.log"))
    ours = OurRun()
    print(f"oracle worker ready (vllm {oracle.info.get('vllm')}) in {time.time() - t0:.1f} s", flush=True)
    try:
        if a.reduce:
            v = reduce_case(a.reduce, ours, oracle, a.reduce)
            print(report_text("reduced", os.path.join(a.reduce, "reduced"), v), end="")
            print(open(os.path.join(a.reduce, "reduced", "trace.csv")).read(), end="")
            return 0
        if a.replay:
            with open(os.path.join(a.replay, "flags.json")) as fh:
                flags = json.load(fh)
            v = check_case(a.replay, flags, ours, oracle)
            print(report_text(os.path.basename(a.replay.rstrip("/")), a.replay, v), end="")
            return 0 if v.get("match") else 1

        rng = random.Random(a.seed)
        n_match, fails, matches = 0, [], []
        stats = {"preempt": 0, "self_preempt": 0, "hits": 0, "evict": 0, "bs1": 0, "chunked": 0}
        if a.priority:
            stats.update(victim_scheduled=0, victim_skipped_earlier=0, equal_priorities=0, empty_batch=0)
        for i in range(a.n):
            name = f"case_s{a.seed}_{i:05d}"
            d = os.path.join(a.work_dir, name)
            os.makedirs(d, exist_ok=True)
            rows, flags = gen_case(rng, a.priority)
            if a.async_scheduling:
                flags["--async-scheduling"] = True
            write_trace(os.path.join(d, "trace.csv"), rows)
            with open(os.path.join(d, "flags.json"), "w") as fh:
                json.dump(flags, fh, indent=2)
            v = check_case(d, flags, ours, oracle)
            with open(os.path.join(d, "verdict.json"), "w") as fh:
                json.dump(v, fh, indent=2)
            f = v.get("features")
            if f:
                stats["preempt"] += f["preemptions"] > 0
                stats["self_preempt"] += f["self_preemptions"] > 0
                stats["hits"] += f["hits"] > 0
                stats["evict"] += f["evictions"] > 0
                stats["bs1"] += f["bs"] == 1
                stats["chunked"] += f["partial_chunks"] > 0
                if a.priority:
                    stats["victim_scheduled"] += f["victims_already_scheduled"] > 0
                    stats["victim_skipped_earlier"] += f["victims_skipped_earlier"] > 0
                    stats["equal_priorities"] += f["priority_levels"] == 1
                    stats["empty_batch"] += f["empty_batches"] > 0
            if v.get("match"):
                n_match += 1
                matches.append((name, d, v))
            else:
                fd = os.path.join(a.fail_dir, name)
                shutil.rmtree(fd, ignore_errors=True)
                shutil.copytree(d, fd)
                text = report_text(name, fd, v)
                with open(os.path.join(fd, "report.txt"), "w") as fh:
                    fh.write(text)
                fails.append(name)
                print(text, flush=True)
                if len(fails) >= a.max_fail:
                    print(f"stopping after {len(fails)} mismatches")
                    break
            if (i + 1) % 100 == 0:
                print(f"... {i + 1} cases, {n_match} match, {len(fails)} mismatch ({time.time() - t0:.0f} s)",
                      flush=True)
        total = n_match + len(fails)
        print(f"compared {total} configurations: {n_match} match exactly, {len(fails)} mismatch "
              f"({time.time() - t0:.0f} s)")
        print("cases with " + ", ".join(f"{k}: {v}" for k, v in stats.items()))
        if fails:
            print(f"failing cases kept under {a.fail_dir}: {', '.join(fails)}")
        if a.golden_out:
            write_golden(a.golden_out, matches, PRIORITY_GOLDEN_KINDS if a.priority else GOLDEN_KINDS)
        if not a.keep_all:
            for _, d, _ in matches:
                shutil.rmtree(d, ignore_errors=True)
        return 0 if not fails else 1
    finally:
        oracle.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

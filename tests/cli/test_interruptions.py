"""Signals and a failing standard output, through real processes: one line on stderr, the documented exit status,
no traceback, no worker left behind, and --keep-partial keeping the finished points of evaluate and sweep.

Each run is ``python -c`` calling the console entry (``blis_sim._entry.main``, which installs the SIGTERM handler)
after a hook that sends the signal to the process itself once the first points are done; the signal then arrives
while the command waits for the next point, as a user's Ctrl-C or ``kill`` would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TREE = ROOT / "tests" / "evaluate" / "fixtures" / "tree"
MODEL = "meta-llama/llama-3.1-8b-instruct"
SWEEP_BASE = {"model": MODEL, "model_config_folder": str(ROOT / "model_configs" / "llama-3.1-8b-instruct"),
              "hardware_config": str(ROOT / "hardware_config.json"), "hardware": "H100", "workload": "chatbot",
              "num_requests": 40}


def _blis(args: list[str], hook: str = "", stdout=subprocess.PIPE, timeout: float = 300):
    code = textwrap.dedent(hook) + "\nimport sys\nfrom blis_sim._entry import main\nsys.argv = ['blis', *ARGS]\nmain()\n"
    code = f"ARGS = {args!r}\n" + code
    return subprocess.run([sys.executable, "-c", code], stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=timeout, cwd=ROOT)


def _after_points(module: str, name: str, n: int, sig: str) -> str:
    """A hook: after ``n`` calls of ``module.name`` (a point's run, in this process), the next one sends ``sig``
    before it starts."""
    return f"""
    import os, signal
    import {module} as _m
    _real = _m.{name}
    _calls = [0]
    def _wrapped(*a, **k):
        _calls[0] += 1
        if _calls[0] == {n} + 1:
            os.kill(os.getpid(), signal.{sig})
        return _real(*a, **k)
    _m.{name} = _wrapped
    """


def _sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"base": SWEEP_BASE, "axes": {"rate": [5, 10, 20, 40]}}))
    return path


@pytest.mark.parametrize("sig,status,word", [("SIGTERM", 143, "terminated"), ("SIGINT", 130, "interrupted")])
def test_sweep_keep_partial_on_a_signal(tmp_path, sig, status, word):
    sweep = _sweep_file(tmp_path)
    hook = _after_points("blis_sim.capacity.backends", "run_task", 2, sig)
    out = tmp_path / "out"
    proc = _blis(["sweep", "--config", str(sweep), "--output", str(out), "--backend", "serial", "--keep-partial"],
                 hook)
    assert proc.returncode == status, proc.stderr
    results = out / "results.json"
    assert proc.stderr == f'blis: {word}: 2 of 4 points finished; their rows are in {results} ("complete": false)\n'
    assert proc.stdout == ""
    doc = json.loads(results.read_text())
    assert doc["complete"] is False and doc["interrupted_by"] == sig and doc["finished"] == 2
    assert [r["rate"] for r in doc["rows"]] == [5, 10]
    assert [m["rate"] for m in doc["missing_points"]] == [20, 40]
    # without the flag: no file at all
    out2 = tmp_path / "out2"
    proc = _blis(["sweep", "--config", str(sweep), "--output", str(out2), "--backend", "serial"], hook)
    assert proc.returncode == status
    assert proc.stderr == f"blis: {word}: 2 of 4 points finished; nothing written (--keep-partial keeps them)\n"
    assert not out2.exists()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the worker processes")
def test_evaluate_keep_partial_on_sigterm_with_workers(tmp_path):
    """A process pool: the first finished run triggers SIGTERM; the report keeps it, every worker ends with the
    command."""
    pids = tmp_path / "pids"
    hook = f"""
    import os, signal, multiprocessing
    import blis_sim.evaluate.runner as _m
    _real = _m.as_completed
    def _wrapped(fs):
        for i, f in enumerate(_real(fs)):
            yield f
            if i == 0:
                open({str(pids)!r}, "w").write(" ".join(str(p.pid) for p in multiprocessing.active_children()))
                os.kill(os.getpid(), signal.SIGTERM)
    _m.as_completed = _wrapped
    """
    report = tmp_path / "report.json"
    proc = _blis(["evaluate", "--ground-truth", str(TREE), "--jobs", "2", "--requests-per-point", "6", "--quiet",
                  "--output", str(report), "--keep-partial"], hook)
    assert proc.returncode == 143, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("blis: terminated: ") and "not run" in lines[0], proc.stderr
    doc = json.loads(report.read_text())
    assert doc["complete"] is False and doc["interrupted_by"] == "SIGTERM" and doc["missing_points"]
    evaluated = sum(len(e["point_results"]) for e in doc["experiments"])
    assert evaluated >= 1 and f"{evaluated} points evaluated, {len(doc['missing_points'])} not run" in lines[0]
    workers = [int(p) for p in pids.read_text().split()]
    assert workers
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers)


def test_evaluate_without_keep_partial_writes_nothing(tmp_path):
    hook = _after_points("blis_sim.evaluate.runner", "run_plan", 1, "SIGINT")
    report = tmp_path / "report.json"
    proc = _blis(["evaluate", "--ground-truth", str(TREE), "--jobs", "1", "--requests-per-point", "6", "--quiet",
                  "--output", str(report)], hook)
    assert (proc.returncode, proc.stdout, proc.stderr) == (130, "", "blis: interrupted\n")
    assert not report.exists()
    proc = _blis(["evaluate", "--ground-truth", str(TREE), "--jobs", "1", "--requests-per-point", "6", "--quiet",
                  "--output", str(report), "--keep-partial"], hook)
    assert proc.returncode == 130 and proc.stdout == ""
    doc = json.loads(report.read_text())
    assert doc["complete"] is False and doc["interrupted_by"] == "SIGINT"
    assert sum(len(e["point_results"]) for e in doc["experiments"]) >= 1


RUN = ["run", "--model", MODEL, "--num-requests", "5", "--quiet"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_stdout_on_a_full_device():
    with open("/dev/full", "w") as full:
        proc = _blis(RUN, stdout=full)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if not line.startswith("blis: warning:")]
    assert errors == ["blis: error: writing standard output: No space left on device"]


def test_stdout_a_closed_pipe_exits_quietly_with_141():
    """``blis ... | head`` after head has gone: no message, status 128 + SIGPIPE (as cat or yes would give)."""
    code = "import sys\nfrom blis_sim._entry import main\nsys.argv = ['blis', *%r]\nmain()\n" % (RUN,)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert [line for line in err.splitlines() if not line.startswith("blis: warning:")] == []


def test_evaluate_into_a_closed_pipe(tmp_path):
    code = ("import sys\nfrom blis_sim._entry import main\nsys.argv = ['blis', 'evaluate', '--ground-truth', %r, "
            "'--jobs', '1', '--requests-per-point', '4', '--quiet']\nmain()\n" % str(TREE / "combined.json"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141
    assert "Traceback" not in err and "Exception ignored" not in err
    assert signal.SIGPIPE == 13  # 141 = 128 + SIGPIPE

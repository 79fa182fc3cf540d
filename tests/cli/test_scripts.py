"""The installed programs, run as real processes: both names, --help/--version, errors without tracebacks."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from blis_sim import __version__

NAMES = ("blis", "simulation_worker")


def _command(name: str) -> list[str]:
    path = shutil.which(name)
    if path is not None:
        return [path]
    # Not installed as a script (e.g. a bare checkout): the same entry point under that name.
    return [sys.executable, "-c", f"from blis_sim.cli import main; main(prog_name={name!r})"]


def _run(name: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*_command(name), *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", NAMES)
def test_version(name):
    proc = _run(name, "--version")
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout.strip() == f"{name} {__version__}"


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(name, flag):
    top = _run(name, flag)
    assert top.returncode == 0 and top.stderr == ""
    assert f"Usage: {name} " in top.stdout and "run" in top.stdout
    sub = _run(name, "run", flag)
    assert sub.returncode == 0 and sub.stderr == ""
    assert f"Usage: {name} run [OPTIONS]" in sub.stdout
    assert "--total-kv-blocks" in sub.stdout and "--summarize-trace" in sub.stdout


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(
    "args, expected",
    [
        (("run", "--foo"), "blis: error: unknown option --foo (see {name} run --help)"),
        (("run", "--model", "m", "--rate", "-3"), "blis: error: --rate must be a finite number > 0, got -3"),
        (("run", "--num-requests", "abc"), "blis: error: --num-requests must be an integer >= 0, got 'abc'"),
        (("run", "--model", "m", "--rate"), "blis: error: --rate requires a value (a finite number > 0)"),
        (
            ("run", "--model", "m", "--alpha-coeffs", "nan,0,0"),
            "blis: error: --alpha-coeffs must be exactly 3 finite numbers >= 0, got nan,0,0",
        ),
        (
            ("run", "--model", "m", "--workload", "nonsense"),
            "blis: error: --workload must be one of chatbot, contentgen, distribution, multidoc, summarization, "
            "traces; got 'nonsense'",
        ),
        (
            ("run", "--model", "m", "--fitness-weights", "speed:1"),
            "blis: error: --fitness-weights: unknown key 'speed' (accepted: mean_e2e, mean_ttft, p50_e2e, p50_ttft, "
            "p99_e2e, p99_ttft, throughput, tokens_per_sec)",
        ),
    ],
)
def test_errors_are_one_line_without_traceback(name, args, expected):
    proc = _run(name, *args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == expected.format(name=name) + "\n"


def test_results_directory_checked_in_a_real_process(tmp_path):
    target = tmp_path / "nope" / "r.json"
    proc = _run("blis", "run", "--model", "m", "--beta-coeffs", "1,1,1", "--results-path", str(target))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == f"blis: error: --results-path {target}: directory '{tmp_path / 'nope'}' does not exist\n"
    assert not target.parent.exists()


def test_input_files_are_checked_before_the_results_directory(tmp_path):
    """ENGINE.md §15.2: files and coefficients come before the results path."""
    proc = _run("blis", "run", "--model", "m", "--results-path", str(tmp_path / "nope" / "r.json"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("blis: error: no coefficients for model m")


def test_python_dash_m_exits_with_the_status():
    proc = subprocess.run([sys.executable, "-m", "blis_sim.cli", "run", "--rate", "x"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "blis: error: --rate must be a finite number > 0, got 'x'\n"


def test_main_raises_system_exit():
    from blis_sim.cli import main

    with pytest.raises(SystemExit) as info:
        main(["--version"], prog_name="blis")
    assert info.value.code == 0

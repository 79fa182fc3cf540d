"""The issue's list of bad inputs: each gives exit 2, exactly one stderr line, nothing on stdout, no results file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HW = ROOT / "hardware_config.json"
MODEL_DIR = ROOT / "model_configs" / "llama-3.1-8b-instruct"


def _blis(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    exe = shutil.which("blis")
    if exe is None:
        pytest.skip("console script blis is not installed (pip install -e .)")
    return subprocess.run([exe, "run", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def _roofline(hw: Path = HW, model_dir: Path = MODEL_DIR, gpu: str = "H100") -> list[str]:
    return ["--model", "m", "--model-config-folder", str(model_dir), "--hardware-config", str(hw),
            "--hardware", gpu, "--tp", "1"]


def _assert_one_line(p: subprocess.CompletedProcess, *fragments: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == ""
    lines = p.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("blis: error: "), p.stderr
    assert "Traceback" not in p.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


def test_missing_model_config_folder(tmp_path):
    _assert_one_line(_blis(*_roofline(model_dir=tmp_path / "nope")), "--model-config-folder", "nope")


def test_model_config_folder_without_config_json(tmp_path):
    _assert_one_line(_blis(*_roofline(model_dir=tmp_path)), "config.json")


def test_hardware_not_in_the_config():
    _assert_one_line(_blis(*_roofline(gpu="H999")), "H999", "H100")


@pytest.mark.parametrize("value", [0, -1.5, "NaN"])
@pytest.mark.parametrize("field", ["BwEffConstant", "mfuDecode", "TFlopsPeak", "vectorPeakFraction"])
def test_bad_calibration_field(tmp_path, field, value):
    entry = json.loads(HW.read_text())["H100"]
    entry[field] = value
    bad = tmp_path / "hw.json"
    bad.write_text(json.dumps({"H100": entry}).replace('"NaN"', "NaN"))
    _assert_one_line(_blis(*_roofline(hw=bad)), "hardware config H100", field, "got")


def test_negative_rate_and_no_results_file(tmp_path):
    out = tmp_path / "r.json"
    _assert_one_line(_blis("--model", "x", "--beta-coeffs", "1,1,1", "--rate", "-3", "--results-path", str(out)),
                     "--rate must be a finite number > 0, got -3")
    assert not out.exists()


@pytest.mark.parametrize(
    "row, fragment",
    [
        ('abc,0,x,"[1,2]","[3]"', "line 2: arrival_time must be a number of seconds, got 'abc'"),
        ('0.0,0,x,"[1,2"', "line 2"),
        ('0.0,0,x,"[]","[3]"', "line 2"),
        ('0.0,0,x,"[1,2]","[x]"', "line 2"),
    ],
)
def test_malformed_trace_csv(tmp_path, row, fragment):
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_time,request_id,model,prefill_tokens,decode_tokens\n" + row + "\n")
    _assert_one_line(
        _blis("--model", "x", "--beta-coeffs", "1,1,1", "--workload", "traces", "--workload-traces-filepath",
              str(trace)),
        "--workload-traces-filepath", fragment,
    )


def test_unknown_workload_name():
    _assert_one_line(_blis("--model", "x", "--workload", "nonsense"),
                     "--workload must be one of chatbot, contentgen, distribution, multidoc, summarization, traces; "
                     "got 'nonsense'")


# Inputs vLLM refuses (or that would make an empty run), accepted by earlier versions.
def _with_tp(tp: str) -> list[str]:
    return ["--model", "meta-llama/llama-3.1-8b-instruct", "--model-config-folder", str(MODEL_DIR),
            "--hardware-config", str(HW), "--hardware", "H100", "--tp", tp]


@pytest.mark.parametrize("tp", ["3", "5", "64"])
def test_tp_not_dividing_the_attention_heads(tp, tmp_path):
    results = tmp_path / "r.json"
    p = _blis(*_with_tp(tp), "--results-path", str(results))
    _assert_one_line(p, f"--tp {tp} does not divide the 32 attention heads", "accepted: 1, 2, 4, 8, 16, 32")
    assert not results.exists()


def test_tp_not_fitting_the_kv_heads(tmp_path):
    # 24 heads and 8 KV heads: TP 12 divides the heads but neither divides nor is a multiple of the KV heads.
    raw = json.loads((MODEL_DIR / "config.json").read_text())
    raw.update(num_attention_heads=24, num_key_value_heads=8, hidden_size=3072)
    (tmp_path / "config.json").write_text(json.dumps(raw))
    args = _with_tp("12")
    args[args.index(str(MODEL_DIR))] = str(tmp_path)
    _assert_one_line(_blis(*args), "--tp 12 neither divides nor is a multiple of the 8 KV heads",
                     "accepted: 1, 2, 4, 8, 24")


def test_tp_dividing_heads_runs():
    p = _blis(*_with_tp("16"), "--num-requests", "2")
    assert p.returncode == 0, p.stderr
    assert '"completed_requests": 2' in p.stdout


def test_explicit_tp_zero():
    p = _blis("--model", "meta-llama/llama-3.1-8b-instruct", "--tp", "0")
    _assert_one_line(p, "--tp must be an integer >= 1, got 0")


def test_tp_left_out_still_comes_from_the_defaults_file():
    p = _blis("--model", "meta-llama/llama-3.1-8b-instruct", "--num-requests", "3")
    assert p.returncode == 0, p.stderr
    assert "--tp not given: using 2 from the defaults file" in p.stderr


@pytest.mark.parametrize("text", ["", "arrival_time,request_id,model,prompt_tokens,output_tokens\n", "\n\n"])
def test_trace_without_data_rows(tmp_path, text):
    trace = tmp_path / "t.csv"
    trace.write_text(text)
    results = tmp_path / "r.json"
    p = _blis("--model", "meta-llama/llama-3.1-8b-instruct", "--workload", "traces", "--workload-traces-filepath",
              str(trace), "--results-path", str(results))
    _assert_one_line(p, "--workload-traces-filepath", "a CSV trace needs a header line and at least one data row")
    assert not results.exists()


@pytest.mark.parametrize("workload", ["distribution", "chatbot"])
def test_workload_of_zero_requests(workload):
    p = _blis("--model", "meta-llama/llama-3.1-8b-instruct", "--workload", workload, "--num-requests", "0")
    _assert_one_line(p, f"--num-requests 0 with --workload {workload}: the run would have no request")


# The results file never replaces what is not a regular file, and never lands where a directory was meant.
QUICK = ["--model", "meta-llama/llama-3.1-8b-instruct", "--num-requests", "3"]


def test_results_path_refuses_devices_and_pipes(tmp_path):
    p = _blis(*QUICK, "--results-path", "/dev/null")
    _assert_one_line(p, "--results-path /dev/null: is a character device, not a regular file")
    assert Path("/dev/null").is_char_device()  # still the device
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    _assert_one_line(_blis(*QUICK, "--results-path", str(fifo)), "is a named pipe, not a regular file")
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_results_path_with_a_trailing_separator_is_refused(tmp_path):
    target = f"{tmp_path}/newdir/"
    _assert_one_line(_blis(*QUICK, "--results-path", target), "--results-path must be a file path, not a directory")
    assert not (tmp_path / "newdir").exists()


def test_results_path_through_a_symlink_writes_the_target(tmp_path):
    real = tmp_path / "real.json"
    link = tmp_path / "link.json"
    link.symlink_to(real)
    p = _blis(*QUICK, "--results-path", str(link))
    assert p.returncode == 0, p.stderr
    assert link.is_symlink() and json.loads(real.read_text())["requests"]
    assert stat.S_IMODE(real.stat().st_mode) & 0o044  # readable as a new file would be (not mkstemp's 0600)


def test_results_path_with_an_overlong_name_is_refused_before_the_run(tmp_path):
    p = _blis(*QUICK, "--results-path", str(tmp_path / ("a" * 250 + ".json")))
    _assert_one_line(p, "the file name is too long")


def test_sigterm_ends_the_run_with_one_line_and_no_results_file(tmp_path):
    """SIGTERM unwinds like Ctrl-C: exit 143, one line, no results file (a long run, stopped after it started)."""
    import signal
    import time

    exe = shutil.which("blis")
    if exe is None:
        pytest.skip("console script blis is not installed (pip install -e .)")
    results = tmp_path / "r.json"
    proc = subprocess.Popen([exe, "run", "--model", "meta-llama/llama-3.1-8b-instruct", "--num-requests", "2000000",
                             "--rate", "1000", "--quiet", "--results-path", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert out == "" and err.splitlines()[-1] == "blis: terminated" and "Traceback" not in err
    assert not results.exists() and not list(tmp_path.iterdir())


def test_a_missing_defaults_file_is_refused_in_roofline_mode_too(tmp_path):
    p = _blis(*_roofline(), "--defaults-filepath", str(tmp_path / "nope.yaml"))
    _assert_one_line(p, "--defaults-filepath", "nope.yaml: no such file")


@pytest.mark.parametrize("flag", ["--admission-latency", "--routing-latency"])
def test_control_plane_latencies_are_bounded(flag):
    p = _blis("--model", "meta-llama/llama-3.1-8b-instruct", flag, "9300000000000000000")
    _assert_one_line(p, f"{flag} must be an integer from 0 to 1,000,000,000,000 (microseconds)")

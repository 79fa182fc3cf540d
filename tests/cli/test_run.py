"""A run that gets to ``api.run``: explicit flags, stdout, results file, logging and the other exit statuses."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from blis_sim import cli
from blis_sim.errors import InputError

M = ("run", "--model", "m")


# ----- explicitness ---------------------------------------------------------------------------------------------------


def test_defaults_are_not_marked_explicit(invoke, fake_api):
    outcome = invoke(*M)
    assert outcome.rc == 0, outcome.err
    cfg = fake_api.cfg
    assert cfg.seed == 42 and not cfg.is_set("seed")
    assert not cfg.is_set("horizon")
    assert not cfg.engine.is_set("total_kv_blocks")
    assert cfg.engine.total_kv_blocks == 1_000_000
    assert not cfg.workload.is_set("num_requests") and not cfg.workload.is_set("workload")
    assert cfg.latency.model == "m" and cfg.latency.is_set("model")
    # Sections without any flag are the models' own defaults, not "given".
    for section in ("engine", "workload", "cluster", "output"):
        assert not cfg.is_set(section)
        assert getattr(cfg, section).model_fields_set == set()


def test_given_flags_are_marked_explicit(invoke, fake_api):
    outcome = invoke(*M, "--total-kv-blocks", "5000", "--seed=42", "--num-requests", "100", "--workload", "distribution")
    assert outcome.rc == 0, outcome.err
    cfg = fake_api.cfg
    assert cfg.engine.is_set("total_kv_blocks") and cfg.engine.total_kv_blocks == 5000
    assert cfg.is_set("seed") and cfg.seed == 42  # explicit even though it equals the default
    assert cfg.workload.is_set("num_requests") and cfg.workload.is_set("workload")
    assert not cfg.engine.is_set("block_size_in_tokens")


def test_every_kind_of_value_reaches_the_config(invoke, fake_api, tmp_path):
    traces = tmp_path / "t.csv"
    outcome = invoke(
        *M,
        "--hardware", "H100", "--tp=2", "--vllm-version", "vllm/vllm-openai:v0.8.4",
        "--alpha-coeffs", "1601.35,3.5125,1805.54", "--beta-coeffs=6910.42, 17.6706, 2.8377",
        "--max-model-len", "4096", "--block-size-in-tokens", "32",
        "--bench-data-path", str(tmp_path),
        "--workload", "traces", "--workload-traces-filepath", str(traces), "--arrival-process", "poisson",
        "--rate", "2.5", "--horizon", "1000000", "--seed", "-7",
        "--num-instances", "4", "--admission-latency", "10", "--routing-latency", "20",
        "--token-bucket-capacity", "5", "--token-bucket-refill-rate", "1e3",
        "--kv-offload-threshold", "0.5", "--kv-transfer-bandwidth", "50", "--kv-transfer-base-latency", "3",
        "--log", "error",
    )
    assert outcome.rc == 0, outcome.err
    cfg = fake_api.cfg
    assert cfg.latency.hardware == "H100" and cfg.latency.tp == 2
    assert cfg.latency.vllm_version == "vllm/vllm-openai:v0.8.4"
    assert cfg.latency.alpha_coeffs == (1601.35, 3.5125, 1805.54)
    assert cfg.latency.beta_coeffs == (6910.42, 17.6706, 2.8377)
    assert cfg.latency.bench_data_path == tmp_path
    assert cfg.engine.max_model_len == 4096 and cfg.engine.block_size_in_tokens == 32
    assert cfg.workload.workload == "traces" and cfg.workload.workload_traces_filepath == traces
    assert cfg.workload.arrival_process == "poisson" and cfg.workload.rate == 2.5
    assert cfg.horizon == 1_000_000 and cfg.seed == -7
    assert cfg.cluster.num_instances == 4 and cfg.cluster.admission_latency == 10 and cfg.cluster.routing_latency == 20
    assert cfg.cluster.token_bucket_capacity == 5.0 and cfg.cluster.token_bucket_refill_rate == 1000.0
    assert cfg.engine.kv_offload_threshold == 0.5 and cfg.engine.kv_transfer_bandwidth == 50.0
    assert cfg.engine.kv_transfer_base_latency == 3
    assert cfg.output.log == "error"


def test_switch_absent_is_not_set(invoke, fake_api):
    assert invoke(*M).rc == 0
    assert fake_api.cfg.engine.async_scheduling is False
    assert not fake_api.cfg.engine.is_set("async_scheduling")


def test_empty_path_means_none(invoke, fake_api):
    assert invoke(*M, "--defaults-filepath", "").rc == 0
    assert fake_api.cfg.latency.defaults_filepath is None


# ----- output ----------------------------------------------------------------------------------------------------------


def test_stdout_is_exactly_the_results_text(invoke, fake_api):
    fake_api.results.text = "=== Simulation Metrics ===\n{}\n=== KV Cache Metrics ===\nPreemption Rate: 0.0000\n"
    outcome = invoke(*M)
    assert outcome.rc == 0
    assert outcome.out == fake_api.results.text
    assert outcome.err == ""
    assert fake_api.written == []


def test_results_file_written_when_asked(invoke, fake_api, tmp_path):
    target = tmp_path / "r.json"
    outcome = invoke(*M, "--results-path", str(target))
    assert outcome.rc == 0, outcome.err
    assert fake_api.written == [(fake_api.results, target)]
    assert target.exists()
    assert outcome.out == fake_api.results.text


def test_results_file_in_current_directory(invoke, fake_api, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert invoke(*M, "--results-path", "r.json").rc == 0
    assert (tmp_path / "r.json").exists()


def test_input_error_from_the_run(invoke, fake_api, tmp_path):
    def bad(cfg):
        raise InputError("--workload-traces-filepath t.csv: line 3: arrival_time must be a number of seconds, got 'abc'")

    fake_api.behaviour = bad
    target = tmp_path / "r.json"
    outcome = invoke(*M, "--results-path", str(target))
    assert outcome.rc == 2 and outcome.out == ""
    assert outcome.err_lines == [
        "blis: error: --workload-traces-filepath t.csv: line 3: arrival_time must be a number of seconds, got 'abc'"
    ]
    assert not target.exists() and fake_api.written == []


def test_multi_line_input_error_is_one_line(invoke, fake_api):
    def bad(cfg):
        raise InputError("no coefficients for model m\nknown combinations: a, b")

    fake_api.behaviour = bad
    outcome = invoke(*M)
    assert outcome.rc == 2 and len(outcome.err_lines) == 1


INTERNAL = ("blis: internal error: RuntimeError: boom (a bug in blis-sim 0.1.0: please report it with the command "
            "line; --log debug shows the traceback)")


def test_internal_error_is_one_line_without_traceback(invoke, fake_api):
    def boom(cfg):
        raise RuntimeError("boom")

    fake_api.behaviour = boom
    outcome = invoke(*M)
    assert outcome.rc == 1 and outcome.out == ""
    assert outcome.err_lines == [INTERNAL]


def test_internal_error_traceback_at_debug_level(invoke, fake_api):
    def boom(cfg):
        raise RuntimeError("boom")

    fake_api.behaviour = boom
    for level in ("debug", "trace"):
        outcome = invoke(*M, "--log", level)
        assert outcome.rc == 1 and outcome.out == ""
        assert "Traceback (most recent call last)" in outcome.err
        assert outcome.err_lines[0].startswith("blis: debug: ")
        assert outcome.err_lines[-1] == INTERNAL


def test_no_traceback_after_a_debug_run_when_not_debugging(invoke, fake_api):
    def boom(cfg):
        raise RuntimeError("boom")

    fake_api.behaviour = boom
    invoke(*M, "--log", "debug")
    outcome = invoke("run", "--model", "m")
    assert "Traceback" not in outcome.err and len(outcome.err_lines) == 1


def test_interrupt_exits_130_with_one_line(invoke, fake_api, tmp_path):
    def interrupted(cfg):
        raise KeyboardInterrupt

    fake_api.behaviour = interrupted
    target = tmp_path / "r.json"
    outcome = invoke(*M, "--results-path", str(target))
    assert outcome.rc == 130 and outcome.out == ""
    assert outcome.err_lines == ["blis: interrupted"]
    assert not target.exists()


# ----- logging ---------------------------------------------------------------------------------------------------------


def _logging_run(fake_api, records):
    results = fake_api.results

    def behaviour(cfg):
        log = logging.getLogger("blis_sim.api")
        for level, message in records:
            log.log(level, message)
        return results

    fake_api.behaviour = behaviour


RECORDS = [
    (logging.DEBUG, "a debug detail"),
    (logging.INFO, "latency model blackbox"),
    (logging.WARNING, "filled --hardware from the defaults file"),
    (logging.ERROR, "an error record"),
    (logging.CRITICAL, "a critical record"),
]


@pytest.mark.parametrize(
    "level, shown",
    [
        (None, ["warning", "error", "critical"]),
        ("warn", ["warning", "error", "critical"]),
        ("warning", ["warning", "error", "critical"]),
        ("info", ["info", "warning", "error", "critical"]),
        ("debug", ["debug", "info", "warning", "error", "critical"]),
        ("trace", ["debug", "info", "warning", "error", "critical"]),
        ("error", ["error", "critical"]),
        ("fatal", ["critical"]),
        ("panic", ["critical"]),
    ],
)
def test_log_levels_and_format(invoke, fake_api, level, shown):
    _logging_run(fake_api, RECORDS)
    args = M if level is None else (*M, "--log", level)
    outcome = invoke(*args)
    assert outcome.rc == 0
    messages = dict(zip(["debug", "info", "warning", "error", "critical"], [m for _, m in RECORDS]))
    lines = [line for line in outcome.err_lines if "wall-clock" not in line]
    assert lines == [f"blis: {name}: {messages[name]}" for name in shown]
    assert outcome.out == fake_api.results.text  # logging never touches stdout


def test_info_logs_the_wall_clock_time(invoke, fake_api):
    outcome = invoke(*M, "--log", "info")
    assert outcome.rc == 0
    assert len(outcome.err_lines) == 1
    assert outcome.err_lines[0].startswith("blis: info: wall-clock time of the run: ")
    assert outcome.err_lines[0].endswith(" s")
    assert "wall-clock" not in invoke(*M).err


def test_repeated_runs_do_not_duplicate_log_lines(invoke, fake_api):
    _logging_run(fake_api, [(logging.WARNING, "once")])
    invoke(*M)
    outcome = invoke(*M)
    assert outcome.err_lines == ["blis: warning: once"]


def test_progress_callback_is_passed_and_harmless(invoke, fake_api, monkeypatch):
    import importlib

    api = importlib.import_module("blis_sim.api")  # the stub or the real module, patched by fake_api

    def execute(prepared, progress=None, collect_requests=True):
        progress = progress or (lambda tick, arrived: None)  # None when stderr is not a terminal
        logging.getLogger("blis_sim").warning("before the simulation")
        progress(0, 0)
        logging.getLogger("blis_sim").warning("during the simulation")
        progress(1_000_000, 5)
        return fake_api.results

    monkeypatch.setattr(api, "execute", execute)
    outcome = invoke(*M)
    assert outcome.rc == 0
    assert outcome.err_lines == ["blis: warning: before the simulation", "blis: warning: during the simulation"]
    assert outcome.out == fake_api.results.text


def test_warnings_before_an_input_error_are_dropped(invoke, fake_api):
    def bad(cfg):
        logging.getLogger("blis_sim").warning("--hardware not given; using H100 from the defaults file")
        raise InputError("no coefficients for model m on H100")

    fake_api.behaviour = bad
    outcome = invoke(*M)
    assert outcome.rc == 2 and outcome.err_lines == ["blis: error: no coefficients for model m on H100"]
    outcome = invoke(*M, "--log", "debug")  # at debug level everything is shown
    assert outcome.rc == 2 and outcome.err_lines == [
        "blis: warning: --hardware not given; using H100 from the defaults file",
        "blis: error: no coefficients for model m on H100",
    ]


def test_warnings_of_a_run_without_progress_calls_are_printed(invoke, fake_api):
    _logging_run(fake_api, [(logging.WARNING, "dropped 3 requests")])
    outcome = invoke(*M, "--log", "info")
    assert outcome.err_lines[0] == "blis: warning: dropped 3 requests"
    assert outcome.err_lines[1].startswith("blis: info: wall-clock time")


def test_check_results_path_accepts_relative_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from blis_sim.report.results_file import check_writable

    check_writable(Path("r.json"))


def test_progress_bar_is_off_when_quiet_or_not_a_terminal(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with cli._progress_display(100, quiet=True) as display:
        assert display is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    with cli._progress_display(100, quiet=False) as display:
        assert display is None
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    with cli._progress_display(100, quiet=False) as display:
        display(0, 0)  # within the first second: nothing shown, nothing raised
        assert display is not None


def test_python_warnings_are_one_line_without_source(invoke, fake_api):
    """A numpy RuntimeWarning during a run prints as one blis: warning: line (no file, line number or source)."""
    import warnings

    import numpy as np

    def noisy(cfg):
        with np.errstate(divide="warn"):
            np.log(np.zeros(1))
        warnings.warn("something odd", RuntimeWarning, stacklevel=1)
        return fake_api.results

    fake_api.behaviour = noisy
    outcome = invoke(*M)
    lines = [line for line in outcome.err_lines if "RuntimeWarning" in line]
    assert lines == ["blis: warning: RuntimeWarning: divide by zero encountered in log",
                     "blis: warning: RuntimeWarning: something odd"]
    assert ".py" not in outcome.err

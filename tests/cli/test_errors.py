"""Bad input: exit 2, exactly one stderr line ``blis: error: ...``, nothing on stdout (ENGINE.md §14.5, §15.2)."""

from __future__ import annotations

import pytest

M = ("run", "--model", "m")


def assert_input_error(outcome, expected: str | None = None, contains: str | None = None) -> str:
    assert outcome.rc == 2, outcome
    assert outcome.out == ""
    assert len(outcome.err_lines) == 1, outcome.err
    line = outcome.err_lines[0]
    assert line.startswith("blis: error: ")
    assert "Traceback" not in outcome.err
    if expected is not None:
        assert line == f"blis: error: {expected}"
    if contains is not None:
        assert contains in line
    return line


EXACT = [
    # (1) syntax
    (("run", "--foo"), "unknown option --foo (see blis run --help)"),
    (("run", "--foo=3"), "unknown option --foo (see blis run --help)"),
    (("run", "--rat", "3"), "unknown option --rat; did you mean --rate? (see blis run --help)"),
    (("run", "--model", "m", "--rate"), "--rate requires a value (a finite number > 0)"),
    (("run", "--rate", "--seed", "3"), "--rate requires a value (a finite number > 0)"),
    (("run", "--model"), "--model requires a value (a non-empty string)"),
    (("run", "--num-requests", "abc"), "--num-requests must be an integer >= 0, got 'abc'"),
    (("run", "--num-requests=abc"), "--num-requests must be an integer >= 0, got 'abc'"),
    (("run", "--total-kv-blocks", "2.5"), "--total-kv-blocks must be an integer >= 1, got '2.5'"),
    (("run", "--rate", "fast"), "--rate must be a finite number > 0, got 'fast'"),
    (("run", "--alpha-coeffs", "1,x,3"), "--alpha-coeffs must be exactly 3 finite numbers >= 0, got '1,x,3'"),
    (("run", "--summarize-trace=yes"), "--summarize-trace is a switch and takes no value (see blis run --help)"),
    (("nope",), "unknown command 'nope' (see blis --help)"),
    (("--foo",), "unknown option --foo (see blis --help)"),
    ((), "missing command: expected one of bench-mfu, calibrate, capacity, evaluate, plot, run, sweep, timeline "
         "(see blis --help)"),
    # (2) ranges
    ((*M, "--rate", "-3"), "--rate must be a finite number > 0, got -3"),
    ((*M, "--rate=-3"), "--rate must be a finite number > 0, got -3"),
    ((*M, "--rate", "nan"), "--rate must be a finite number > 0, got nan"),
    ((*M, "--alpha-coeffs", "nan,0,0"), "--alpha-coeffs must be exactly 3 finite numbers >= 0, got nan,0,0"),
    ((*M, "--beta-coeffs", "1,2"), "--beta-coeffs must be exactly 3 finite numbers >= 0, got 1,2"),
    ((*M, "--beta-coeffs", "1,2,3,4"), "--beta-coeffs must be exactly 3 finite numbers >= 0, got 1,2,3,4"),
    ((*M, "--alpha-coeffs", "-1,0,0"), "--alpha-coeffs must be exactly 3 finite numbers >= 0, got -1,0,0"),
    (
        (*M, "--workload", "nonsense"),
        "--workload must be one of chatbot, contentgen, distribution, multidoc, summarization, traces; got 'nonsense'",
    ),
    ((*M, "--total-kv-blocks", "0"), "--total-kv-blocks must be an integer >= 1, got 0"),
    ((*M, "--horizon", "-1"), "--horizon must be an integer >= 0, got -1"),
    ((*M, "--kv-offload-threshold", "1.5"), "--kv-offload-threshold must be a finite number in [0, 1], got 1.5"),
    (("run",), "--model is required"),
    (("run", "--model", ""), "--model must be a non-empty string, got ''"),
    # (3) cross-flag rules
    ((*M, "--workload", "traces"), "--workload traces needs --workload-traces-filepath"),
    (
        (*M, "--model-config-folder", "cfg"),
        "--model-config-folder and --hardware-config must be given together (roofline mode)",
    ),
    (
        (*M, "--hardware-config", "h100.json"),
        "--model-config-folder and --hardware-config must be given together (roofline mode)",
    ),
]


@pytest.mark.parametrize("args, expected", EXACT, ids=[" ".join(a) or "<none>" for a, _ in EXACT])
def test_input_errors_are_one_line(invoke, fake_api, args, expected):
    assert_input_error(invoke(*args), expected)
    assert fake_api.calls == []


def test_log_level_must_be_known(invoke, fake_api):
    line = assert_input_error(invoke(*M, "--log", "loud"))
    assert line.startswith("blis: error: --log must be one of debug, ")
    assert line.endswith("; got 'loud'")


def test_extra_positional_argument(invoke, fake_api):
    assert_input_error(invoke(*M, "extra"), contains="unexpected argument 'extra'")


def test_prompt_min_and_mean_bounds(invoke, fake_api):
    assert_input_error(invoke(*M, "--prompt-tokens-min", "0"), "--prompt-tokens-min must be an integer >= 1, got 0")
    assert_input_error(invoke(*M, "--output-tokens", "9000"), contains="--output-tokens must lie between")


# ----- features not built yet: refused, never silently ignored ---------------------------------------------------------

def test_a_feature_not_built_yet_is_refused_not_ignored(invoke, fake_api, monkeypatch):
    """Every flag's feature is built now; the mechanism stays for the next one (an entry in api.UNAVAILABLE)."""
    from blis_sim import api

    monkeypatch.setitem(api.UNAVAILABLE, ("engine", "kv_cpu_blocks"), 0)
    monkeypatch.setitem(api.UNAVAILABLE, ("output", "summarize_trace"), False)
    assert_input_error(invoke(*M, "--kv-cpu-blocks", "64"),
                       "--kv-cpu-blocks 64 is not available in this version yet (only 0)")
    assert_input_error(invoke(*M, "--summarize-trace"), "--summarize-trace is not available in this version yet")
    assert fake_api.calls == []
    assert invoke(*M, "--kv-cpu-blocks", "0").rc == 0  # its one accepted value


# ----- the results path -------------------------------------------------------------------------------------------------


def test_results_directory_must_exist(invoke, fake_api, tmp_path):
    target = tmp_path / "missing" / "r.json"
    assert_input_error(
        invoke(*M, "--results-path", str(target)),
        f"--results-path {target}: directory '{tmp_path / 'missing'}' does not exist",
    )
    assert fake_api.written == []


def test_results_path_must_not_be_a_directory(invoke, fake_api, tmp_path):
    assert_input_error(invoke(*M, "--results-path", str(tmp_path)), contains="is a directory")


def test_results_parent_must_be_a_directory(invoke, fake_api, tmp_path):
    (tmp_path / "file").write_text("x")
    assert_input_error(invoke(*M, "--results-path", str(tmp_path / "file" / "r.json")), contains="not a directory")


# ----- order of the checks (§15.2): the first failing one wins ----------------------------------------------------------


def test_syntax_before_range(invoke, fake_api):
    assert_input_error(invoke(*M, "--rate", "-3", "--num-requests", "abc"), contains="--num-requests")


def test_syntax_before_unknown_flag_later_on_the_line(invoke, fake_api):
    assert_input_error(invoke(*M, "--rate", "-3", "--foo"), contains="unknown option --foo")


def test_ranges_in_table_order_not_command_line_order(invoke, fake_api):
    # --num-instances (cluster table) comes after --rate (workload table), which comes after --tp (model table).
    assert_input_error(invoke(*M, "--num-instances", "0", "--rate", "-3"), contains="--rate ")
    assert_input_error(invoke(*M, "--num-instances", "0", "--rate", "-3", "--tp", "-1"), contains="--tp ")
    assert_input_error(invoke(*M, "--log", "loud", "--kv-cpu-blocks", "-1"), contains="--kv-cpu-blocks ")
    assert_input_error(invoke(*M, "--kv-cpu-blocks", "-1", "--num-instances", "0"), contains="--num-instances ")


def test_range_before_cross_flag(invoke, fake_api):
    assert_input_error(invoke(*M, "--workload", "traces", "--num-instances", "0"), contains="--num-instances")
    assert_input_error(invoke(*M, "--hardware-config", "h.json", "--rate", "0"), contains="--rate")


def test_cross_flag_before_unavailable_and_results(invoke, fake_api, tmp_path):
    line = assert_input_error(
        invoke(*M, "--workload", "traces", "--trace-level", "decisions", "--results-path",
               str(tmp_path / "no" / "r.json"))
    )
    assert "--workload traces needs" in line


def test_feature_settings_checked_before_results_directory(invoke, fake_api, tmp_path):
    line = assert_input_error(invoke(*M, "--fitness-weights", "speed:1", "--results-path",
                                     str(tmp_path / "no" / "r.json")))
    assert "--fitness-weights" in line

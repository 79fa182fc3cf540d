"""CSV traces (ENGINE.md §10.3)."""

import re

import numpy as np
import pytest

from blis_sim.errors import InputError
from blis_sim.workload.traces import read_csv_trace

UNLIMITED = 2**63 - 1
PROMPT_MSG = "line 3: prompt_tokens must be a JSON array of integer token IDs >= 0 with at least one element, got "
HEADER = "arrival_time,request_id,model,prompt_tokens,output_tokens\n"


def write(tmp_path, body, header=HEADER, name="t.csv"):
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def row(seconds, prompt, output, rid="x", model="m"):
    return f'{seconds},{rid},{model},"{prompt}","{output}"\n'


def test_good_file(tmp_path):
    path = write(tmp_path, row("0.0", [1, 2, 3], [4, 5]) + row("0.5", [7], []) + row("1.25", [8, 9], [10]))
    reqs = read_csv_trace(path, UNLIMITED, None)
    assert [(r.index, r.id, r.arrival, r.num_prompt_tokens, r.num_output_tokens) for r in reqs] == [
        (0, "request_0", 0, 3, 2),
        (1, "request_1", 500_000, 1, 0),
        (2, "request_2", 1_250_000, 2, 1),
    ]
    assert reqs[0].tokens.tolist() == [1, 2, 3, 4, 5]
    assert all(r.tokens.dtype == np.int64 for r in reqs)


def test_unsorted_rows_are_sorted_stably(tmp_path):
    path = write(tmp_path, row("2", [1], [1]) + row("1", [2], [1]) + row("2", [3], [1]) + row("1", [4], [1]))
    reqs = read_csv_trace(path, UNLIMITED, None)
    assert [r.id for r in reqs] == ["request_1", "request_3", "request_0", "request_2"]
    assert [r.index for r in reqs] == [0, 1, 2, 3]
    assert [r.tokens[0] for r in reqs] == [2, 4, 1, 3]


def test_arrival_rounds_to_nearest_tick_ties_to_even(tmp_path):
    # 0.000003 s was truncated to 2 us by the reference; round() gives 3. 2.5e-6 s is a tie: ties to even -> 2.
    path = write(tmp_path, row("0.000003", [1], [1]) + row("2.5e-6", [1], [1]) + row("3.5e-6", [1], [1]))
    assert sorted(r.arrival for r in read_csv_trace(path, UNLIMITED, None)) == [2, 3, 4]


def test_exported_arrivals_round_trip(tmp_path):
    ticks = [0, 1, 3, 999_999, 123_456_789, 10**12 + 7]
    path = write(tmp_path, "".join(row(repr(t / 1e6), [1], [2]) for t in ticks))
    assert [r.arrival for r in read_csv_trace(path, UNLIMITED, None)] == ticks


@pytest.mark.parametrize(
    "line, message",
    [
        ('0.1,x,m,"[1]"\n', "line 3: expected at least 5 fields"),
        ('0.1,x,m,"[1]","[2]",extra\n', r"line 3: expected 5 fields \(as many as the header\), got 6"),
        (row("abc", [1], [1]), "line 3: arrival_time must be a number of seconds, got 'abc'"),
        (row("", [1], [1]), "line 3: arrival_time must be a number of seconds, got ''"),
        (row("nan", [1], [1]), "line 3: arrival_time must be a number of seconds, got 'nan'"),
        (row("1e400", [1], [1]), "line 3: arrival_time must be a number of seconds from 0 to 1e\\+09, got '1e400'"),
        (row("-1", [1], [1]), "line 3: arrival_time must be a number of seconds from 0 to 1e\\+09, got '-1'"),
        ('0.1,x,m,[1,[2]\n', "line 3: prompt_tokens must be a JSON array"),
        (row("0.1", "hello", [1]), PROMPT_MSG + "'hello'"),
        (row("0.1", "{}", [1]), "line 3: prompt_tokens must be a JSON array"),
        (row("0.1", [], [1]), PROMPT_MSG + "an empty array"),
        (row("0.1", [1, 2.5], [1]), PROMPT_MSG + "2.5 at position 1"),
        (row("0.1", [1, -2], [1]), "line 3: prompt_tokens must be .* got -2 at position 1"),
        ('0.1,x,m,"[1, ""2""]","[1]"\n', "line 3: prompt_tokens must be .* got '2' at position 1"),
        (row("0.1", "[true]", [1]), "line 3: prompt_tokens must be .* got True at position 0"),
        (row("0.1", [2**63], [1]), f"line 3: prompt_tokens must be .* got {2**63} at position 0"),
        (row("0.1", [1], "x"), "line 3: output_tokens must be a JSON array of integer token IDs >= 0, got 'x'"),
        (row("0.1", [1], "[1, null]"), "line 3: output_tokens must be .* got None at position 1"),
    ],
)
def test_malformed_rows_name_file_line_and_column(tmp_path, line, message):
    path = write(tmp_path, row("0", [1], [1]) + line + row("0", [1], [1]))
    with pytest.raises(InputError) as exc:
        read_csv_trace(path, UNLIMITED, None)
    text = str(exc.value)
    assert text.startswith(f"--workload-traces-filepath {path}: ")
    assert "\n" not in text
    assert re.search(message, text.split(": ", 1)[1]), text


def test_exact_error_text_of_the_spec_example(tmp_path):
    path = write(tmp_path, row("0", [1], [1]) + row("abc", [1], [1]))
    with pytest.raises(InputError) as exc:
        read_csv_trace(path, UNLIMITED, None)
    expected = f"--workload-traces-filepath {path}: line 3: arrival_time must be a number of seconds, got 'abc'"
    assert str(exc.value) == expected


def test_line_numbers_count_physical_lines(tmp_path):
    # a quoted field spanning two lines, then a blank line: the bad row starts on physical line 6
    body = row("0", [1], [1]) + '0,"multi\nline",m,"[1]","[2]"\n' + "\n" + row("bad", [1], [1])
    path = write(tmp_path, body)
    with pytest.raises(InputError, match=r": line 6: arrival_time"):
        read_csv_trace(path, UNLIMITED, None)


def test_rows_past_the_horizon_are_skipped_individually(tmp_path):
    path = write(tmp_path, row("0.1", [1], [1]) + row("5", [2], [1]) + row("0.2", [3], [1]) + row("1", [4], [1]))
    reqs = read_csv_trace(path, 1_000_000, None)
    assert [(r.id, r.arrival) for r in reqs] == [
        ("request_0", 100_000),
        ("request_2", 200_000),
        ("request_3", 1_000_000),
    ]


def test_num_requests_keeps_the_first_data_rows(tmp_path):
    path = write(tmp_path, row("3", [1], [1]) + row("1", [2], [1]) + row("2", [3], [1]) + row("bad", [1], [1]))
    reqs = read_csv_trace(path, UNLIMITED, 3)  # the bad fourth row is never read
    assert [r.id for r in reqs] == ["request_1", "request_2", "request_0"]
    with pytest.raises(InputError, match=r"^--num-requests 0 with --workload-traces-filepath .*: the run would have no"):
        read_csv_trace(path, UNLIMITED, 0)
    with pytest.raises(InputError, match="line 5"):
        read_csv_trace(path, UNLIMITED, None)


def test_empty_and_header_only_files_are_input_errors(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InputError, match=r"^--workload-traces-filepath .*empty\.csv: the file is empty \(a CSV trace "
                       r"needs a header line and at least one data row\)$"):
        read_csv_trace(empty, UNLIMITED, None)
    with pytest.raises(InputError, match=r": the file has a header but no data rows \(a CSV trace needs"):
        read_csv_trace(write(tmp_path, ""), UNLIMITED, None)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match=r"^--workload-traces-filepath .*nope\.csv: no such file"):
        read_csv_trace(tmp_path / "nope.csv", UNLIMITED, None)
    with pytest.raises(InputError, match=r"^--workload-traces-filepath .*: is a directory"):
        read_csv_trace(tmp_path, UNLIMITED, None)


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.csv"
    good = b'0,x,m,"[1]","[2]"\n'
    path.write_bytes(HEADER.encode() + good * 5000 + b"0,\xff\xfe,m,[1],[1]\n")
    with pytest.raises(InputError, match="line 5002: not UTF-8"):
        read_csv_trace(path, UNLIMITED, None)


def test_trace_v2_header_is_recognised_and_refused(tmp_path):
    path = write(tmp_path, "1,c,t,,,0,,false,5,5,5,0,0,0,0,0,0,0,0,0,ok,\n", header="request_id,client_id,tenant_id\n")
    with pytest.raises(InputError, match=r"^--workload-traces-filepath .*: trace v2 files are not supported yet"):
        read_csv_trace(path, UNLIMITED, None)


def test_bom_and_crlf_are_accepted(tmp_path):
    path = tmp_path / "win.csv"
    path.write_bytes(b"\xef\xbb\xbf" + HEADER.replace("\n", "\r\n").encode() + b'0.5,a,m,"[1, 2]","[3]"\r\n')
    [req] = read_csv_trace(path, UNLIMITED, None)
    assert (req.arrival, req.tokens.tolist(), req.num_prompt_tokens) == (500_000, [1, 2, 3], 2)


def test_long_token_fields_are_read(tmp_path):
    prompt = list(range(60_000))  # ~400 KB of JSON, past the csv module's default field limit
    path = write(tmp_path, row("0", prompt, [1]))
    [req] = read_csv_trace(path, UNLIMITED, None)
    assert req.num_prompt_tokens == 60_000 and req.tokens[-2] == 59_999


# ----- the optional priority column (read by --scheduler vllm-priority) ------------------------------------------
PRIORITY_HEADER = "arrival_time,request_id,model,prompt_tokens,output_tokens,priority\n"


def prow(seconds, priority, prompt=(1,), output=(2,)):
    return row(seconds, list(prompt), list(output)).rstrip("\n") + f",{priority}\n"


def test_priority_column(tmp_path):
    path = write(tmp_path, prow("2", 3) + prow("1", "-7") + prow("1", " +4 ") + prow("0", 0), header=PRIORITY_HEADER)
    reqs = read_csv_trace(path, UNLIMITED, None)
    # sorted by arrival, each priority stays with its row
    assert [(r.id, r.priority) for r in reqs] == [("request_3", 0.0), ("request_1", -7.0), ("request_2", 4.0),
                                                  ("request_0", 3.0)]
    extreme = write(tmp_path, prow("0", 2**53) + prow("0", -(2**53)), header=PRIORITY_HEADER, name="x.csv")
    assert [r.priority for r in read_csv_trace(extreme, UNLIMITED, None)] == [2.0**53, -(2.0**53)]


def test_without_a_priority_column_every_priority_is_zero(tmp_path):
    assert [r.priority for r in read_csv_trace(write(tmp_path, row("0", [1], [2])), UNLIMITED, None)] == [0.0]
    # a sixth column with another name is not a priority (it is ignored like columns 1 and 2)
    other = write(tmp_path, prow("0", "abc"), header=PRIORITY_HEADER.replace("priority", "note"), name="o.csv")
    assert [r.priority for r in read_csv_trace(other, UNLIMITED, None)] == [0.0]


@pytest.mark.parametrize("value", ["abc", "1.5", "", "1e3", "1_000", "٣", str(2**53 + 1), str(-(2**53) - 1)])
def test_a_priority_that_is_not_an_integer_names_file_line_and_column(tmp_path, value):
    path = write(tmp_path, prow("0", 1) + prow("0", value), header=PRIORITY_HEADER)
    with pytest.raises(InputError) as exc:
        read_csv_trace(path, UNLIMITED, None)
    expected = (f"--workload-traces-filepath {path}: line 3: priority must be an integer between -2**53 and 2**53, "
                f"got {value!r}")
    assert str(exc.value) == expected


def test_a_bad_arrival_is_reported_before_a_bad_priority(tmp_path):
    path = write(tmp_path, prow("x", "y"), header=PRIORITY_HEADER)
    with pytest.raises(InputError, match="line 2: arrival_time must be a number of seconds, got 'x'"):
        read_csv_trace(path, UNLIMITED, None)


def test_a_trace_without_a_header_line_is_refused(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('0.5,request_0,m,"[1, 2, 3]","[4, 5]"\n1.0,request_1,m,"[1, 2]","[7]"\n')
    with pytest.raises(InputError, match=r"line 1: the first line is a data row, not a header \(a CSV trace starts"):
        read_csv_trace(path, UNLIMITED, None)


def test_arrivals_beyond_the_simulated_time_bound_are_refused(tmp_path):
    """1e13 s would overflow the tick arithmetic and make the request vanish from every counter."""
    path = write(tmp_path, row("1e13", [1], [1]))
    with pytest.raises(InputError, match=r"arrival_time must be a number of seconds from 0 to 1e\+09, got '1e13'"):
        read_csv_trace(path, UNLIMITED, None)

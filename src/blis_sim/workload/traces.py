"""CSV request traces for ``--workload traces`` (ENGINE.md §10.3).

One header row, then one request per data row: arrival time in seconds (column 0), two ignored columns (request id,
model), the prompt token IDs and the output token IDs as JSON arrays (columns 3 and 4), and, when the header names
its sixth column ``priority``, the request's integer priority there (``Request.priority``, 0 without the column;
lower is served first by ``--scheduler vllm-priority``, the only scheduler that reads it: docs/scheduling.md). Every
problem is an ``InputError`` naming the flag, the file, the 1-based physical line and the column.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
import sys
from pathlib import Path

import numpy as np

from ..config.validators import MAX_ARRIVAL_SECONDS
from ..errors import InputError
from ..request import Request

log = logging.getLogger("blis_sim")

FLAG = "--workload-traces-filepath"
MIN_FIELDS = 5
PRIORITY_COLUMN = 5  # arrival_time,request_id,model,prompt_tokens,output_tokens,priority (the vLLM oracle's layout)
PRIORITY_LIMIT = 2**53  # priorities are kept as floats: every integer up to this size is exact, so they order exactly
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
# A plain decimal number: digits with an optional fraction and exponent. Rejects nan, inf and "1_000".
_SECONDS = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# Token arrays of long prompts easily exceed the csv module's default field limit of 128 KiB.
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


def read_csv_trace(path: Path, horizon: int | float, num_requests: int | None) -> list[Request]:
    """The requests of a CSV trace, sorted stably by arrival; ``num_requests`` (when given) keeps the first data rows.

    ``request_<k>`` names the k-th data row (0-based, file order); rows arriving after ``horizon`` are skipped.
    """
    path = Path(path)
    where = f"{FLAG} {path}"
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    try:
        handle = open(path, encoding="utf-8-sig", newline="")
    except FileNotFoundError:
        raise InputError(f"{where}: no such file (an existing CSV trace file is required)") from None
    except IsADirectoryError:
        raise InputError(f"{where}: is a directory (an existing CSV trace file is required)") from None
    except OSError as exc:
        raise InputError(f"{where}: cannot be read ({exc.strerror or exc})") from None

    # (arrival, data-row index, tokens, num_prompt_tokens, priority)
    rows: list[tuple[int, int, np.ndarray, int, int]] = []
    with handle:
        reader = csv.reader(handle, strict=True)
        header: list[str] | None = None
        has_priority = False
        num_data_rows = 0
        last_line = 0  # physical lines consumed so far; a row starts on the line after
        try:
            for row in reader:
                line = last_line + 1
                last_line = reader.line_num
                if not row:  # a blank line
                    continue
                if header is None:
                    header = row
                    if [f.strip() for f in row[:2]] == ["request_id", "client_id"]:
                        raise InputError(
                            f"{where}: trace v2 files are not supported yet (this is a trace v2 data file: its header "
                            "starts with request_id,client_id); use a CSV trace with the columns arrival_time, "
                            "request_id, model, prompt_tokens, output_tokens"
                        )
                    if _is_number(row[0]):
                        raise InputError(
                            f"{where}: line {line}: the first line is a data row, not a header (a CSV trace starts "
                            "with a header line: arrival_time,request_id,model,prompt_tokens,output_tokens)"
                        )
                    _check_header(row, f"{where}: line {line}")
                    has_priority = len(row) > PRIORITY_COLUMN and row[PRIORITY_COLUMN].strip() == "priority"
                    continue
                if num_requests is not None and num_data_rows >= num_requests:
                    break
                k = num_data_rows
                num_data_rows += 1
                at = f"{where}: line {line}"
                arrival, tokens, num_prompt = _parse_row(row, len(header), at)
                priority = _priority(row[PRIORITY_COLUMN], at) if has_priority else 0
                if arrival > horizon:
                    continue
                rows.append((arrival, k, tokens, num_prompt, priority))
        except csv.Error as exc:
            raise InputError(f"{where}: line {reader.line_num}: not valid CSV ({exc})") from None
        except UnicodeDecodeError:
            raise InputError(f"{where}: line {_first_non_utf8_line(path)}: not UTF-8 text") from None

    accepted = "a CSV trace needs a header line and at least one data row"
    if header is None:
        raise InputError(f"{where}: the file is empty ({accepted})")
    if num_data_rows == 0:
        if num_requests == 0:
            raise InputError(f"--num-requests 0 with {where}: the run would have no request (an integer >= 1)")
        raise InputError(f"{where}: the file has a header but no data rows ({accepted})")

    rows.sort(key=lambda r: r[0])  # stable: same-tick arrivals keep file order
    requests = []
    for index, (arrival, k, tokens, num_prompt, priority) in enumerate(rows):
        req = Request(index, arrival, tokens, num_prompt, request_id=f"request_{k}")
        if priority:
            req.priority = float(priority)
        requests.append(req)
    return requests


# The names of the first five header columns (ENGINE.md §10.3), compared case-insensitively; a name of the right
# column under another spelling (prefill/decode for prompt/output) is accepted. Further columns are free, a sixth
# named ``priority`` is read. Checked so that a file that is not a trace (or columns in another order) is refused
# instead of read by position.
HEADER = ("arrival_time", "request_id", "model", "prompt_tokens", "output_tokens")
HEADER_ALIASES = (("arrival_time",), ("request_id", "id"), ("model",),
                  ("prompt_tokens", "prefill_tokens", "input_tokens"), ("output_tokens", "decode_tokens"))


def _check_header(row: list[str], at: str) -> None:
    expected = ",".join(HEADER)
    if len(row) < MIN_FIELDS:
        raise InputError(f"{at}: the header has {len(row)} column(s), expected at least {MIN_FIELDS} ({expected})")
    for pos, (name, accepted) in enumerate(zip(row, HEADER_ALIASES)):
        if name.strip().lower() not in accepted:
            raise InputError(f"{at}: header column {pos + 1} is {_clip(name.strip())!r}, expected "
                             f"{' or '.join(accepted)} (the header of a CSV trace: {expected}[,priority])")


def _priority(text: str, where: str) -> int:
    """The integer in a row's ``priority`` column (the row has as many fields as the header, so it exists)."""
    value = text.strip()
    if _INTEGER.fullmatch(value):
        priority = int(value)
        if -PRIORITY_LIMIT <= priority <= PRIORITY_LIMIT:
            return priority
    raise InputError(f"{where}: priority must be an integer between -2**53 and 2**53, got {_clip(text)!r}")


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _parse_row(row: list[str], num_header_fields: int, where: str) -> tuple[int, np.ndarray, int]:
    """(arrival tick, prompt + output token IDs, prompt length) of one data row."""
    if len(row) < MIN_FIELDS:
        raise InputError(
            f"{where}: expected at least {MIN_FIELDS} fields (arrival_time, request_id, model, prompt_tokens, "
            f"output_tokens), got {len(row)}"
        )
    if len(row) != num_header_fields:
        raise InputError(f"{where}: expected {num_header_fields} fields (as many as the header), got {len(row)}")
    text = row[0].strip()
    if not _SECONDS.fullmatch(text):
        raise InputError(f"{where}: arrival_time must be a number of seconds, got {_clip(row[0])!r}")
    seconds = float(text)
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_ARRIVAL_SECONDS:
        raise InputError(f"{where}: arrival_time must be a number of seconds from 0 to {MAX_ARRIVAL_SECONDS:g}, got "
                         f"{_clip(row[0])!r}")
    arrival = round(seconds * 1e6)  # nearest tick, ties to even (exported traces round-trip exactly)
    prompt = _token_array(row[3], "prompt_tokens", where, allow_empty=False)
    output = _token_array(row[4], "output_tokens", where, allow_empty=True)
    return arrival, np.concatenate((prompt, output)), len(prompt)


def _token_array(text: str, column: str, where: str, *, allow_empty: bool) -> np.ndarray:
    accepted = "a JSON array of integer token IDs >= 0" + ("" if allow_empty else " with at least one element")
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or an integer of more than 4300 digits
        raise InputError(f"{where}: {column} must be {accepted}, got {_clip(text)!r}") from None
    if not isinstance(values, list):
        raise InputError(f"{where}: {column} must be {accepted}, got {_clip(text)!r}")
    if not values and not allow_empty:
        raise InputError(f"{where}: {column} must be {accepted}, got an empty array")
    if not values:
        return np.empty(0, dtype=np.int64)
    # Fast path: numpy infers int64 only when every element is an int (or a bool, which JSON spells true/false).
    if "true" not in text and "false" not in text:
        try:
            array = np.array(values)
        except (OverflowError, ValueError):
            array = None
        if array is not None and array.dtype == np.int64 and array.ndim == 1 and array.min() >= 0:
            return array
    for pos, value in enumerate(values):
        if type(value) is not int or not 0 <= value <= _INT64_MAX:
            raise InputError(f"{where}: {column} must be {accepted}, got {_clip(repr(value))} at position {pos}")
    return np.array(values, dtype=np.int64)


def _first_non_utf8_line(path: Path) -> int:
    """1-based number of the first line that is not valid UTF-8 (text is decoded in chunks, so the reader's own
    position at the failure is not the line)."""
    number = 1
    with open(path, "rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return number


def _clip(text: str, limit: int = 40) -> str:
    """``text``, cut to ``limit`` characters so that an error stays one short line."""
    return text if len(text) <= limit else text[:limit] + "..."

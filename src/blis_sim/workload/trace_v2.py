"""Trace v2 (ENGINE.md §10.7): a data CSV of 22 columns (header ``request_id,client_id,...``) and an optional YAML
header beside it (same name, extension ``.yaml``).

Replay builds one request per record (every status), in file order: first, for each prefix group in order of first
appearance, 50 prefix token ids from ``trace/prefix/<group>``; then per record its ``input_tokens`` ids and its
``output_tokens`` ids from ``trace/token``. The input is the group prefix followed by its own ids. Arrival is
``arrival_time_us``, the ID ``request_<request_id>``; tenant, SLO class, session and round are carried. Records past
the horizon are skipped; ``num_requests`` (when given) keeps the first records. Errors name the file and line.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import yaml

from ..errors import InputError
from ..request import Request
from .distribution import TOKEN_ID_BOUND
from .rng import stream

FLAG = "--workload-traces-filepath"
COLUMNS = ("request_id", "client_id", "tenant_id", "slo_class", "session_id", "round_index", "prefix_group",
           "streaming", "input_tokens", "output_tokens", "text_tokens", "image_tokens", "audio_tokens",
           "video_tokens", "reason_ratio", "arrival_time_us", "send_time_us", "first_chunk_time_us",
           "last_chunk_time_us", "num_chunks", "status", "error_message")
PREFIX_TOKENS = 50
_INT = re.compile(r"[+-]?[0-9]+")


def is_trace_v2(path: Path) -> bool:
    """Whether ``path`` is a trace v2 data file (its header row starts with ``request_id,client_id``)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            first = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error, StopIteration):
        return False
    return [f.strip() for f in first[:2]] == ["request_id", "client_id"]


def _check_header(path: Path) -> None:
    header = path.with_suffix(".yaml")
    if not header.is_file():
        return
    where = f"{FLAG} {path}: header {header}"
    try:
        data = yaml.safe_load(header.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{where}: not a readable YAML file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict) or data.get("trace_version") != 2:
        got = data.get("trace_version") if isinstance(data, dict) else data
        raise InputError(f"{where}: trace_version must be 2, got {got!r}")
    if "time_unit" in data and data["time_unit"] != "us":
        raise InputError(f"{where}: time_unit must be 'us', got {data['time_unit']!r}")


def _int(text: str, column: str, at: str, minimum: int | None = 0) -> int:
    value = text.strip()
    if not _INT.fullmatch(value) or (minimum is not None and int(value) < minimum):
        what = "an integer" + (f" >= {minimum}" if minimum is not None else "")
        raise InputError(f"{at}: {column} must be {what}, got {text[:40]!r}")
    return int(value)


def read_trace_v2(path: Path, seed: int, horizon: int | float, num_requests: int | None) -> list[Request]:
    path = Path(path)
    _check_header(path)
    where = f"{FLAG} {path}"
    records = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        header = [f.strip() for f in next(reader)]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InputError(f"{where}: line 1: the trace v2 header lacks the column {missing[0]!r} "
                             f"(expected: {','.join(COLUMNS)})")
        col = {name: header.index(name) for name in COLUMNS}
        seen: set[int] = set()
        last = reader.line_num
        try:
            for row in reader:
                line = last + 1
                last = reader.line_num
                if not row:
                    continue
                if num_requests is not None and len(records) >= num_requests:
                    break
                at = f"{where}: line {line}"
                if len(row) != len(header):
                    raise InputError(f"{at}: expected {len(header)} fields (as many as the header), got {len(row)}")
                rid = _int(row[col["request_id"]], "request_id", at, None)
                if rid in seen:
                    raise InputError(f"{at}: request_id {rid} appears twice (request ids must be unique)")
                seen.add(rid)
                n_in = _int(row[col["input_tokens"]], "input_tokens", at)
                n_out = _int(row[col["output_tokens"]], "output_tokens", at)
                arrival = _int(row[col["arrival_time_us"]], "arrival_time_us", at)
                group = row[col["prefix_group"]].strip()
                if n_in == 0 and not group:
                    raise InputError(f"{at}: input_tokens must give a non-empty prompt (>= 1 without a prefix "
                                     "group), got 0")
                rnd = row[col["round_index"]].strip()
                records.append((rid, arrival, n_in, n_out, group, row[col["tenant_id"]].strip(),
                                row[col["slo_class"]].strip(), row[col["session_id"]].strip(),
                                _int(rnd, "round_index", at) if rnd else -1))
        except csv.Error as exc:
            raise InputError(f"{where}: line {reader.line_num}: not valid CSV ({exc})") from None
    if not records:
        raise InputError(f"{where}: the trace v2 file has a header but no records")
    prefixes: dict[str, np.ndarray] = {}
    for rec in records:
        if rec[4] and rec[4] not in prefixes:
            prefixes[rec[4]] = stream(seed, f"trace/prefix/{rec[4]}").integers(0, TOKEN_ID_BOUND, PREFIX_TOKENS,
                                                                              dtype=np.int64)
    rng = stream(seed, "trace/token")
    kept = []
    for rid, arrival, n_in, n_out, group, tenant, slo, session, rnd in records:
        own = rng.integers(0, TOKEN_ID_BOUND, n_in, dtype=np.int64)
        out = rng.integers(0, TOKEN_ID_BOUND, n_out, dtype=np.int64)
        if arrival > horizon:
            continue
        prompt = np.concatenate((prefixes[group], own)) if group else own
        kept.append((arrival, rid, prompt, out, tenant, slo, session, rnd))
    kept.sort(key=lambda r: r[0])
    requests = []
    for index, (arrival, rid, prompt, out, tenant, slo, session, rnd) in enumerate(kept):
        req = Request(index, arrival, np.concatenate((prompt, out)), len(prompt), f"request_{rid}", slo, tenant)
        if session:
            req.session_id, req.round_index = session, rnd
        requests.append(req)
    return requests

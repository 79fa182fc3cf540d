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
import logging
import math
import re
from pathlib import Path

import numpy as np
import yaml

from ..config.validators import MAX_ARRIVAL_SECONDS, MAX_TOKEN_LENGTH
from ..errors import InputError
from ..request import Request
from .distribution import TOKEN_ID_BOUND
from .rng import stream

log = logging.getLogger("blis_sim")

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
    except (OSError, UnicodeDecodeError, yaml.YAMLError, RecursionError, ValueError) as exc:
        raise InputError(f"{where}: not a readable YAML file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{where}: must be a YAML mapping with trace_version: 2, got {_short(data)}")
    if data.get("trace_version") != 2 or isinstance(data.get("trace_version"), bool):
        raise InputError(f"{where}: trace_version must be 2, got {_short(data.get('trace_version'))}")
    if "time_unit" in data and data["time_unit"] != "us":
        raise InputError(f"{where}: time_unit must be 'us', got {_short(data['time_unit'])}")
    if "mode" in data and data["mode"] not in ("real", "generated"):
        raise InputError(f"{where}: mode must be real or generated, got {_short(data['mode'])}")
    for key in ("server", "network"):
        if data.get(key) is not None and not isinstance(data[key], dict):
            raise InputError(f"{where}: {key} must be a mapping, got {_short(data[key])}")


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


# Carried to the per-request records: client_id and prefix_group when set, streaming when true, the modality token
# counts and reason_ratio when not 0. ``priority`` (an extension written by --export-trace) is optional.
OPTIONAL_COLUMNS = ("priority",)
_META_INTS = ("text_tokens", "image_tokens", "audio_tokens", "video_tokens")


def _extra(row: list[str], col: dict[str, int], extra_cols: dict[str, int], at: str) -> tuple[dict | None, float]:
    """A record's metadata for its results-file record and its priority."""
    meta: dict = {}
    for name in ("client_id", "prefix_group"):
        if row[col[name]].strip():
            meta[name] = row[col[name]].strip()
    streaming = row[col["streaming"]].strip().lower()
    if streaming not in ("", "true", "false", "1", "0"):
        raise InputError(f"{at}: streaming must be true or false, got {row[col['streaming']][:40]!r}")
    if streaming in ("true", "1"):
        meta["streaming"] = True
    for name in _META_INTS:
        text = row[col[name]].strip()
        value = _int(text, name, at, maximum=MAX_TOKEN_LENGTH) if text else 0
        if value:
            meta[name] = value
    text = row[col["reason_ratio"]].strip()
    try:
        ratio = float(text) if text else 0.0
    except ValueError:
        ratio = math.nan
    if not (0.0 <= ratio <= 1.0):
        raise InputError(f"{at}: reason_ratio must be a number in [0, 1], got {text[:40]!r}")
    if ratio:
        meta["reason_ratio"] = ratio
    priority = 0.0
    if "priority" in extra_cols:
        text = row[extra_cols["priority"]].strip()
        priority = float(_int(text, "priority", at, None)) if text else 0.0
    return meta or None, priority


_INT64_MAX = 2**63 - 1
MAX_ARRIVAL_US = int(MAX_ARRIVAL_SECONDS * 1e6)


def _int(text: str, column: str, at: str, minimum: int | None = 0, maximum: int = _INT64_MAX) -> int:
    value = text.strip()
    # at most 20 characters: a 64-bit integer (and never a conversion of a number with thousands of digits)
    if len(value) <= 20 and _INT.fullmatch(value):
        number = int(value)
        if (minimum is None or number >= minimum) and -_INT64_MAX <= number <= maximum:
            return number
    low = f"{minimum:,}" if minimum is not None else f"{-_INT64_MAX:,}"
    raise InputError(f"{at}: {column} must be an integer from {low} to {maximum:,}, got "
                     f"{text[:40] + ('...' if len(text) > 40 else '')!r}")


def read_trace_v2(path: Path, seed: int, horizon: int | float, num_requests: int | None) -> list[Request]:
    path = Path(path)
    _check_header(path)
    where = f"{FLAG} {path}"
    records = []
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = [f.strip() for f in next(reader, [])]
        except csv.Error as exc:  # e.g. a quote opened in the header and never closed
            raise InputError(f"{where}: line {reader.line_num}: not valid CSV ({exc})") from None
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise InputError(f"{where}: line 1: the trace v2 header lacks the column {missing[0]!r} "
                             f"(expected: {','.join(COLUMNS)})")
        twice = sorted({c for c in COLUMNS if header.count(c) > 1})
        if twice:
            raise InputError(f"{where}: line 1: the trace v2 header names the column {twice[0]!r} twice "
                             f"(expected: {','.join(COLUMNS)})")
        col = {name: header.index(name) for name in COLUMNS}
        extra_cols = {name: header.index(name) for name in OPTIONAL_COLUMNS if name in header}
        seen: set[int] = set()
        clamped = False
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
                arrival = _int(row[col["arrival_time_us"]], "arrival_time_us", at, maximum=MAX_ARRIVAL_US)
                if max(n_in, n_out) > MAX_TOKEN_LENGTH:  # clamped, one warning per run (ENGINE.md §2)
                    if not clamped:
                        log.warning("%s: a token count above %d was clamped to it (such requests are dropped as "
                                    "unservable)", at, MAX_TOKEN_LENGTH)
                    clamped = True
                    n_in, n_out = min(n_in, MAX_TOKEN_LENGTH), min(n_out, MAX_TOKEN_LENGTH)
                group = row[col["prefix_group"]].strip()
                if n_in == 0 and not group:
                    raise InputError(f"{at}: input_tokens must give a non-empty prompt (>= 1 without a prefix "
                                     "group), got 0")
                rnd = row[col["round_index"]].strip()
                records.append((rid, arrival, n_in, n_out, group, row[col["tenant_id"]].strip(),
                                row[col["slo_class"]].strip(), row[col["session_id"]].strip(),
                                _int(rnd, "round_index", at) if rnd else -1, _extra(row, col, extra_cols, at)))
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
    for rid, arrival, n_in, n_out, group, tenant, slo, session, rnd, extra in records:
        own = rng.integers(0, TOKEN_ID_BOUND, n_in, dtype=np.int64)
        out = rng.integers(0, TOKEN_ID_BOUND, n_out, dtype=np.int64)
        if arrival > horizon:
            continue
        prompt = np.concatenate((prefixes[group], own)) if group else own
        kept.append((arrival, rid, prompt, out, tenant, slo, session, rnd, extra))
    kept.sort(key=lambda r: r[0])
    requests = []
    for index, (arrival, rid, prompt, out, tenant, slo, session, rnd, extra) in enumerate(kept):
        req = Request(index, arrival, np.concatenate((prompt, out)), len(prompt), f"request_{rid}", slo, tenant)
        if session:
            req.session_id, req.round_index = session, rnd
        req.meta, req.priority = extra
        requests.append(req)
    return requests

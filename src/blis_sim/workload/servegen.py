"""The ``servegen_data`` expansion (ENGINE.md §10.8): ServeGen-style per-client data files become spec clients.

``servegen_data: {path, span_start, span_end}`` names a folder (relative to the spec file) of chunks, one client each:

* ``chunk-<id>-trace.csv``: rows ``start_s, rate, cv, pattern[, ...]`` (a first row that does not start with a
  number is a header; further columns are ignored). The rows whose ``start_s`` lies in ``[span_start, span_end)``
  are considered; the one with the highest rate (the first on ties) gives the client's ``rate_fraction`` (its rate)
  and its arrival process: ``gamma`` or ``weibull`` (the pattern, case-insensitive) with that row's cv, any other
  pattern ``poisson``. A chunk whose rows in the span all have rate 0 is inactive: it gives no client.
* ``chunk-<id>-dataset.json``: an object ``{window start (s): {"input_tokens": PDF, "output_tokens": PDF}}``; a PDF is
  a JSON object or a Python-dict string ``"{tokens: probability, ...}"``. The first window (by start) inside the span
  with both PDFs non-empty gives the client's empirical input and output distributions.

Clients are ``chunk-<id>`` (tenant ``chunk-<id>``), in chunk-id order (numeric ids numerically). ``aggregate_rate``,
when the spec does not give it, is the sum of the clients' rates. Every problem names the spec, the YAML path and the
data file (with its line or window).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import re
from pathlib import Path
from typing import Any

from ..errors import InputError
from .samplers import WEIBULL_CV_RANGE

log = logging.getLogger("blis_sim")

KEYS = ("path", "span_start", "span_end")
_CHUNK = re.compile(r"chunk-(.+)-trace\.csv")


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def servegen_clients(block: Any, where: str, base_dir: Path | None) -> tuple[list[dict[str, Any]], float]:
    """The clients of a ``servegen_data`` block and the sum of their rates."""
    at = f"{where}: servegen_data"
    if not isinstance(block, dict):
        raise InputError(f"{at}: must be a mapping {{path, span_start, span_end}}, got {type(block).__name__}")
    for key in block:
        if key not in KEYS:
            raise InputError(f"{at}: unknown key {key!r} (accepted: {', '.join(KEYS)})")
    raw_path = block.get("path")
    if not isinstance(raw_path, str) or not raw_path:
        raise InputError(f"{at}.path: is required (a folder of chunk-<id>-trace.csv and chunk-<id>-dataset.json "
                         "files)")
    start = _number(block.get("span_start", 0))
    if start is None or start < 0:
        raise InputError(f"{at}.span_start: must be a finite number >= 0 (seconds), got {block.get('span_start')!r}")
    end = _number(block["span_end"]) if "span_end" in block else math.inf
    if end is None or end <= start:
        raise InputError(f"{at}.span_end: must be a finite number > span_start ({start:g} s), got "
                         f"{block.get('span_end')!r}")
    folder = Path(raw_path)
    if not folder.is_absolute() and base_dir is not None:
        folder = base_dir / folder
    if not folder.is_dir():
        raise InputError(f"{at}.path: {folder} is not a folder (a folder of chunk-<id>-trace.csv files, relative "
                         "to the spec file)")
    chunks = []
    for trace in folder.iterdir():
        m = _CHUNK.fullmatch(trace.name)
        if m and trace.is_file():
            cid = m.group(1)
            chunks.append(((0, int(cid), "") if cid.isdigit() else (1, 0, cid), cid, trace))
    if not chunks:
        raise InputError(f"{at}.path: {folder} holds no chunk-<id>-trace.csv file")
    clients: list[dict[str, Any]] = []
    total = 0.0
    for _, cid, trace in sorted(chunks):
        row = _busiest_row(trace, start, end, at)
        if row is None:
            log.info("%s: chunk %s has no request in the span [%g, %g) s: no client", at, cid, start, end)
            continue
        rate, cv, pattern, line = row
        arrival: dict[str, Any] = {"process": "poisson"}
        if pattern in ("gamma", "weibull"):
            lo, hi = WEIBULL_CV_RANGE if pattern == "weibull" else (0.0, math.inf)
            if not (cv > 0 and lo <= cv <= hi):
                accepted = f"in [{lo:g}, {hi:g}]" if pattern == "weibull" else "> 0"
                raise InputError(f"{at}.path: {trace}: line {line}: cv must be a finite number {accepted} for "
                                 f"{pattern} arrivals, got {cv:g}")
            arrival = {"process": pattern, "cv": cv}
        dataset = trace.with_name(f"chunk-{cid}-dataset.json")
        pdf_in, pdf_out = _first_window(dataset, start, end, at)
        clients.append({
            "id": f"chunk-{cid}",
            "tenant_id": f"chunk-{cid}",
            "rate_fraction": rate,
            "arrival": arrival,
            "input_distribution": {"type": "empirical", "params": pdf_in},
            "output_distribution": {"type": "empirical", "params": pdf_out},
        })
        total += rate
    if not clients:
        raise InputError(f"{at}: no chunk of {folder} has a row with rate > 0 in the span [{start:g}, {end:g}) s")
    return clients, total


def _busiest_row(trace: Path, start: float, end: float, at: str) -> tuple[float, float, str, int] | None:
    """(rate, cv, pattern, line) of the highest-rate row of ``trace`` in the span (None: no rate > 0 there)."""
    best: tuple[float, float, str, int] | None = None
    try:
        with open(trace, encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            for row in reader:
                line = reader.line_num
                if not row or all(not f.strip() for f in row):
                    continue
                if line == 1 and _number(row[0].strip()) is None:
                    continue  # a header
                here = f"{at}.path: {trace}: line {line}"
                if len(row) < 4:
                    raise InputError(f"{here}: expected at least 4 fields (start_s, rate, cv, pattern), got "
                                     f"{len(row)}")
                t, rate, cv = (_number(f.strip()) for f in row[:3])
                if t is None or t < 0:
                    raise InputError(f"{here}: start_s must be a finite number >= 0, got {row[0].strip()[:40]!r}")
                if rate is None or rate < 0:
                    raise InputError(f"{here}: rate must be a finite number >= 0, got {row[1].strip()[:40]!r}")
                if not (start <= t < end) or rate == 0:
                    continue
                if cv is None:
                    raise InputError(f"{here}: cv must be a finite number, got {row[2].strip()[:40]!r}")
                if best is None or rate > best[0]:
                    best = (rate, cv, row[3].strip().lower(), line)
    except OSError as exc:
        raise InputError(f"{at}.path: {trace}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{at}.path: {trace}: not a readable CSV file ({exc.__class__.__name__})") from None
    return best


def _first_window(dataset: Path, start: float, end: float, at: str) -> tuple[dict[int, float], dict[int, float]]:
    here = f"{at}.path: {dataset}"
    try:
        data = json.loads(dataset.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{here}: is missing (every chunk-<id>-trace.csv needs its chunk-<id>-dataset.json)") \
            from None
    except OSError as exc:
        raise InputError(f"{here}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{here}: not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{here}: must be a JSON object {{window start (s): {{input_tokens, output_tokens}}}}")
    windows = []
    for key, value in data.items():
        t = _number(key)
        if t is None:
            raise InputError(f"{here}: window {key!r}: the key must be a window start in seconds")
        windows.append((t, key, value))
    for t, key, value in sorted(windows, key=lambda w: w[0]):
        if not (start <= t < end):
            continue
        if not isinstance(value, dict):
            raise InputError(f"{here}: window {key!r}: must be an object {{input_tokens, output_tokens}}")
        pdfs = [_pdf(value.get(name), f"{here}: window {key!r}: {name}") for name in ("input_tokens", "output_tokens")]
        if pdfs[0] and pdfs[1]:
            return pdfs[0], pdfs[1]
    raise InputError(f"{here}: no window in the span [{start:g}, {end:g}) s has both input_tokens and "
                     "output_tokens")


def _pdf(value: Any, here: str) -> dict[int, float]:
    """A PDF {token count >= 1: probability >= 0} (empty when absent or empty)."""
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if not (text.startswith("{") and text.endswith("}")):
            raise InputError(f"{here}: must be a mapping or a string '{{tokens: probability, ...}}', got "
                             f"{text[:40]!r}")
        pairs = []
        for item in text[1:-1].split(","):
            if not item.strip():
                continue
            k, sep, v = item.partition(":")
            if not sep:
                raise InputError(f"{here}: {item.strip()[:40]!r} is not a 'tokens: probability' pair")
            pairs.append((k.strip().strip("'\""), v.strip()))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise InputError(f"{here}: must be a mapping or a string '{{tokens: probability, ...}}', got "
                         f"{type(value).__name__}")
    out: dict[int, float] = {}
    for k, v in pairs:
        count, p = _number(k), _number(v)
        if count is None or count != int(count) or count < 1:
            raise InputError(f"{here}: token count {k!r} must be an integer >= 1")
        if p is None or p < 0:
            raise InputError(f"{here}: probability of {k!r} must be a finite number >= 0, got {v!r}")
        out[int(count)] = out.get(int(count), 0.0) + p
    if out and not any(p > 0 for p in out.values()):
        raise InputError(f"{here}: needs at least one probability > 0")
    return out

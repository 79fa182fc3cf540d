"""Trace export (ENGINE.md §10.9): ``--export-trace PATH`` writes every request whose arrival was processed.

``ArrivalLog`` wraps the run's request stream (and hears of closed-loop rounds from the session driver): it keeps
each request's arrival, ID, token ids and priority as the cluster takes it, so that nothing depends on the engine
freeing token ids later. ``write_trace`` writes them in the order their arrivals were processed ((arrival, index)
order, the cluster's) as a CSV trace (§10.3) with a ``priority`` column: ``arrival_us / 1e6`` printed with ``repr``
(it reads back to the same tick), the original request ID, an empty model, the prompt and output token ids as JSON
arrays. The file is written to a temporary name beside it and renamed (atomic). Replaying it with
``--workload traces`` and the same engine flags reproduces an open-loop run's cluster metrics; a closed-loop
(multi-turn) run replays as open loop, every round at the time it was sent.

A path ending in ``.yaml`` or ``.yml`` selects trace v2 (§10.7) instead: the YAML header at that path and the data
CSV beside it (same name, extension ``.csv``), the file ``--workload traces`` reads with that header. A record per
request, in the same order: ``request_id`` (k of ``request_<k>``, else the request's index), client, tenant, SLO
class, session, round, prefix group, streaming, ``input_tokens`` (the prompt less its group prefix),
``output_tokens``, the modality token counts and reason ratio (0 when none), the arrival (also the send time), the
first and last token times (empty when not reached), the tokens generated, the status (``ok``, ``rejected``,
``dropped``, ``incomplete``), an empty error message and a ``priority`` column. Trace v2 holds no token ids: the
replay draws them (50 tokens per prefix group), so it reproduces the cluster metrics when the run's token sharing
is what the replay rebuilds: no prefix groups, or groups of the default 50 tokens, and no accumulated sessions.
"""

from __future__ import annotations

import csv
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..errors import InputError
from ..request import Request, RequestStatus
from .trace_v2 import COLUMNS as V2_COLUMNS
from .trace_v2 import PREFIX_TOKENS as V2_PREFIX_TOKENS

HEADER = ["arrival_time", "request_id", "model", "prompt_tokens", "output_tokens", "priority"]


def is_v2(path: Path) -> bool:
    """Whether ``--export-trace path`` writes trace v2 (a ``.yaml``/``.yml`` header path) rather than a CSV trace."""
    return Path(path).suffix.lower() in (".yaml", ".yml")


class ArrivalLog:
    """The requests of a stream as they are taken (only those arriving by the horizon are ever processed).
    ``cfg`` (the run's ``SimulationConfig``) selects the format by its export path and fills a v2 header."""

    def __init__(self, requests: Iterable[Request], horizon: int, cfg: Any = None) -> None:
        self._requests = requests
        self.horizon = horizon
        self.cfg = cfg
        self.v2 = cfg is not None and cfg.workload.export_trace is not None and is_v2(cfg.workload.export_trace)
        self.rows: list[tuple] = []

    def record(self, req: Request) -> None:
        if req.arrival <= self.horizon:
            if self.v2:  # read after the run: its status and times; no token ids
                self.rows.append((req.arrival, req.index, req))
            else:
                self.rows.append((req.arrival, req.index, req.id, np.asarray(req.tokens), req.num_prompt_tokens,
                                  int(req.priority)))

    def __iter__(self) -> Iterator[Request]:
        for req in self._requests:
            self.record(req)
            yield req

    def processed(self) -> list[tuple[int, int, str, np.ndarray, int, int]]:
        return sorted(self.rows, key=lambda r: (r[0], r[1]))


def check_writable(path: Path) -> None:
    """Refuse an export path that cannot be written, before the run."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"--export-trace {path}: is a directory (a file path is required)")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"--export-trace {path}: the directory {parent} does not exist")


def write_trace(path: Path, rows: list[tuple], cfg: Any = None) -> None:
    """Write the processed ``rows`` of an ``ArrivalLog`` to ``path`` (trace v2 when ``is_v2(path)``)."""
    path = Path(path)
    if is_v2(path):
        data = path.with_suffix(".csv")
        _atomic(data, lambda handle: _write_v2_rows(handle, rows))
        _atomic(path, lambda handle: handle.write(yaml.safe_dump(_v2_header(cfg, data), sort_keys=False)))
        return
    _atomic(path, lambda handle: _write_v1_rows(handle, rows))


def _write_v1_rows(handle: Any, rows: list[tuple]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(HEADER)
    for arrival, _, rid, tokens, num_prompt, priority in rows:
        ids = tokens.tolist()
        writer.writerow([repr(arrival / 1e6), rid, "", _json(ids[:num_prompt]), _json(ids[num_prompt:]), priority])


_STATUS = {RequestStatus.FINISHED: "ok", RequestStatus.REJECTED: "rejected", RequestStatus.DROPPED: "dropped"}
_ID = re.compile(r"request_([0-9]+)")


def _write_v2_rows(handle: Any, rows: list[tuple]) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow([*V2_COLUMNS, "priority"])
    for arrival, index, req in rows:
        meta = req.meta or {}
        group = meta.get("prefix_group", "")
        prefix = getattr(meta, "prefix_len", V2_PREFIX_TOKENS if group else 0)
        m = _ID.fullmatch(req.id)
        writer.writerow([
            int(m.group(1)) if m else index, meta.get("client_id", ""), req.tenant_id, req.slo_class, req.session_id,
            req.round_index if req.session_id else "", group, "true" if meta.get("streaming") else "false",
            max(0, req.num_prompt_tokens - prefix), req.num_output_tokens,
            *(meta.get(f"{m_}_tokens", 0) for m_ in ("text", "image", "audio", "video")),
            repr(float(meta.get("reason_ratio", 0.0))), arrival, arrival,
            req.first_token if req.first_token >= 0 else "", req.last_token if req.last_token >= 0 else "",
            req.num_generated, _STATUS.get(req.status, "incomplete"), "", int(req.priority),
        ])


def _v2_header(cfg: Any, data: Path) -> dict:
    header: dict[str, Any] = {"trace_version": 2, "time_unit": "us", "created_at": "", "mode": "generated",
                              "warm_up_requests": 0, "data_file": data.name}
    if cfg is not None:
        spec = cfg.workload.workload_spec
        header["workload_spec"] = str(spec) if spec is not None else ""
        header["server"] = {"type": "blis-sim", "model": cfg.latency.model, "tensor_parallel": cfg.latency.tp,
                            "max_num_seqs": cfg.engine.max_num_running_reqs,
                            "block_size": cfg.engine.block_size_in_tokens,
                            "max_model_len": cfg.engine.max_model_len}
    return header


def _atomic(path: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            write(handle)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json(ids: list[int]) -> str:
    return "[" + ",".join(map(str, ids)) + "]"

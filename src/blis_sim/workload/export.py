"""Trace export (ENGINE.md §10.9): ``--export-trace PATH`` writes every request whose arrival was processed.

``ArrivalLog`` wraps the run's request stream (and hears of closed-loop rounds from the session driver): it keeps
each request's arrival, ID, token ids and priority as the cluster takes it, so that nothing depends on the engine
freeing token ids later. ``write_trace`` writes them in the order their arrivals were processed ((arrival, index)
order, the cluster's) as a CSV trace (§10.3) with a ``priority`` column: ``arrival_us / 1e6`` printed with ``repr``
(it reads back to the same tick), the original request ID, an empty model, the prompt and output token ids as JSON
arrays. The file is written to a temporary name beside it and renamed (atomic). Replaying it with
``--workload traces`` and the same engine flags reproduces an open-loop run's cluster metrics; a closed-loop
(multi-turn) run replays as open loop, every round at the time it was sent.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..request import Request

HEADER = ["arrival_time", "request_id", "model", "prompt_tokens", "output_tokens", "priority"]


class ArrivalLog:
    """The requests of a stream as they are taken (only those arriving by the horizon are ever processed)."""

    def __init__(self, requests: Iterable[Request], horizon: int) -> None:
        self._requests = requests
        self.horizon = horizon
        self.rows: list[tuple[int, int, str, np.ndarray, int, int]] = []

    def record(self, req: Request) -> None:
        if req.arrival <= self.horizon:
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


def write_trace(path: Path, rows: list[tuple[int, int, str, np.ndarray, int, int]]) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent if str(path.parent) else ".")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADER)
            for arrival, _, rid, tokens, num_prompt, priority in rows:
                ids = tokens.tolist()
                writer.writerow([repr(arrival / 1e6), rid, "", _json(ids[:num_prompt]), _json(ids[num_prompt:]),
                                 priority])
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json(ids: list[int]) -> str:
    return "[" + ",".join(map(str, ids)) + "]"

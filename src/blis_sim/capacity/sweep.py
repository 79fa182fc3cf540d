"""Sweeps: a base run configuration and axes of values, every combination run once.

A sweep file (YAML)::

    base:                      # run fields by their Python API names (blis run's flags with underscores)
      model: meta-llama/llama-3.1-8b-instruct
      model_config_folder: ../../model_configs/llama-3.1-8b-instruct   # relative to this file's folder
      hardware_config: ../../hardware_config.json
      hardware: H100
      workload: chatbot
      num_requests: 2000
    axes:                      # lists over any run field; the points are their cartesian product
      tp: [1, 2]
      rate: [5, 10, 20, 40]
    slo: ttft_p90_ms<=200      # optional: the report's capacity table uses it

``run_sweep`` runs every point on a backend and returns one row per point (its axis values, ``rate``, every summary
metric, or the error that stopped it); ``write_outputs`` writes results.json, results.csv, results.parquet (when
pyarrow is installed) and report.html.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import SimulationConfig
from ..config.files import read_input_file
from ..errors import InputError, Terminated
from . import fields as F
from .backends import make_backend
from .metrics import DERIVED_METRICS, EXTRA_METRICS, RESOLVED, RUN_METRICS
from .runner import Outcome, Task
from .slo import SLO, parse_slos

KEYS = ("base", "axes", "slo", "title")
Progress = Callable[[int, int, int], None]  # (points done, points in all, points failed)


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: ``points[i]`` is the configuration of point i, ``values[i]`` its axis values."""

    base: dict[str, Any]
    axes: dict[str, tuple[Any, ...]]
    points: tuple[SimulationConfig, ...]
    values: tuple[dict[str, Any], ...]
    slos: tuple[SLO, ...] = ()
    title: str = ""
    source: str = ""  # the file it was read from ("" for one built in Python)

    @property
    def config_axes(self) -> list[str]:
        """The axes that tell configurations apart (every axis but the rate, the x of the curves)."""
        return [a for a in self.axes if a != "rate"]


def label(values: Mapping[str, Any], axes: list[str]) -> str:
    """A configuration's name from its axis values, e.g. ``tp=2 hardware=H100`` ("all" with no such axis)."""
    return " ".join(f"{a}={_fmt(values[a])}" for a in axes) or "all"


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def load_sweep(path: Path | str) -> SweepSpec:
    """Read and validate a sweep file; every error is an ``InputError`` naming the file and the YAML path."""
    import yaml

    path = Path(path)
    where = f"--config {path}"
    text = read_input_file(path, "--config", "a sweep YAML file")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" (line {mark.line + 1} column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"{where}: not valid YAML{at}: {' '.join(str(problem).split())}") from None
    try:
        return make_sweep(raw, root=path.resolve().parent, source=str(path))
    except ValueError as exc:
        raise InputError(f"{where}: {exc}") from None


def make_sweep(raw: Any, root: Path | None = None, source: str = "") -> SweepSpec:
    """A sweep from a mapping (a YAML document or a Python dict): ``base``, ``axes`` and optional ``slo`` and
    ``title``. Relative paths are relative to ``root`` (the file's folder; None: the working directory). Raises
    ``ValueError`` naming the YAML path of the first bad value."""
    if not isinstance(raw, Mapping):
        raise ValueError("must be a mapping with base and axes (and optionally slo, title)")
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise ValueError(f"unknown key {unknown[0]!r} (keys: {', '.join(KEYS)})")
    base_raw = raw.get("base") or {}
    if not isinstance(base_raw, Mapping):
        raise ValueError("base: must be a mapping of run fields to values")
    axes_raw = raw.get("axes")
    if axes_raw is None or not isinstance(axes_raw, Mapping) or not axes_raw:
        raise ValueError("axes: must be a mapping of run fields to lists of values (at least one axis)")
    base: dict[str, Any] = {}
    for name, value in base_raw.items():
        F.check_field(name, f"base.{name}")
        base[name] = F.resolve_path(value, root) if name in F.PATH_FIELDS else value
    axes: dict[str, tuple[Any, ...]] = {}
    for name, values in axes_raw.items():
        F.check_field(name, f"axes.{name}")
        if not isinstance(values, list) or not values:
            raise ValueError(f"axes.{name}: must be a non-empty list of values, got {values!r}")
        for i, v in enumerate(values):
            if isinstance(v, (list, dict)):
                raise ValueError(f"axes.{name}[{i}]: must be a single value, got {v!r}")
        seen: dict[str, int] = {}
        for i, v in enumerate(values):
            if repr(v) in seen:
                raise ValueError(f"axes.{name}[{i}]: {v!r} repeats axes.{name}[{seen[repr(v)]}]")
            seen[repr(v)] = i
        axes[name] = tuple(F.resolve_path(v, root) if name in F.PATH_FIELDS else v for v in values)
    slos: tuple[SLO, ...] = ()
    if raw.get("slo") is not None:
        slos = parse_slos(str(raw["slo"]), "slo")
    title = raw.get("title") or ""
    if not isinstance(title, str):
        raise ValueError(f"title: must be a string, got {title!r}")
    if "latency_model" not in base and "latency_model" not in axes:
        base["latency_model"] = "best"  # capacity planning defaults to the most accurate model (docs/gpu-transfer.md)
    return _expand(base, axes, slos, title, source)


def _expand(base: dict[str, Any], axes: dict[str, tuple[Any, ...]], slos: tuple[SLO, ...], title: str,
            source: str) -> SweepSpec:
    names = list(axes)
    points, values = [], []
    for idx in itertools.product(*(range(len(axes[a])) for a in names)):
        vals = {a: axes[a][i] for a, i in zip(names, idx)}
        try:
            cfg = F.build({**base, **vals})
        except F.BuildError as exc:
            raise ValueError(_where(exc, base, dict(zip(names, idx)), vals, names)) from None
        points.append(cfg)
        values.append(vals)
    return SweepSpec(base, axes, tuple(points), tuple(values), slos, title, source)


def _where(exc: F.BuildError, base: dict[str, Any], index: dict[str, int], vals: dict[str, Any],
           names: list[str]) -> str:
    """Where the first failing point's error comes from: an axis value, a base field, or the combination."""
    if exc.field is not None:
        if exc.field in index:
            return f"axes.{exc.field}[{index[exc.field]}]: {exc.text}"
        return f"base.{exc.field}: {exc.text}"
    if exc.mentions and not any(m in index for m in exc.mentions):
        return f"base: {exc.text}"
    return f"axes: the point {label(vals, names)}: {exc.text}"


# ------------------------------------------------------------------------------------------------------ running
@dataclass
class SweepResult:
    spec: SweepSpec
    rows: list[dict]  # one per finished point, in point order
    backend: str
    workers: int
    wall_s: float
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    stopped_by: str = ""  # "SIGINT" or "SIGTERM" when interrupted by a signal
    busy_s: float = 0.0  # the points' own wall time, summed (over all workers)
    prepare_s: float = 0.0

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] != "ok"]


def point_row(spec: SweepSpec, index: int, outcome: Outcome) -> dict:
    values = spec.values[index]
    cfg = spec.points[index]
    row: dict[str, Any] = {"point": index}
    row.update({a: _plain(v) for a, v in values.items()})
    if "rate" not in row:
        row["rate"] = cfg.workload.rate
    row["configuration"] = label(values, spec.config_axes)
    row["status"] = "ok" if outcome.row is not None else "failed"
    row["error"] = outcome.error
    metrics = outcome.row or {}
    for name in (*RESOLVED, *RUN_METRICS, *EXTRA_METRICS, *DERIVED_METRICS):
        row[name] = metrics.get(name)
    if spec.slos and outcome.row is not None:
        from .slo import violations

        missed = violations(spec.slos, metrics)
        row["meets_slo"] = not missed and not metrics.get("saturated")
    elif spec.slos:
        row["meets_slo"] = None
    return row


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def run_sweep(spec: SweepSpec, backend: str = "local", jobs: int | None = None, ray_address: str | None = None,
              progress: Progress | None = None) -> SweepResult:
    """Run every point of ``spec``. A failing point becomes a row with its error and the sweep goes on; Ctrl-C
    (KeyboardInterrupt) stops it and returns the rows finished so far with ``interrupted`` set."""
    started = time.perf_counter()
    total = len(spec.points)
    outcomes: dict[int, Outcome] = {}
    warnings: list[str] = []
    interrupted = False
    failed = 0
    runner = make_backend(backend, jobs, ray_address)
    try:
        for i, cfg in enumerate(spec.points):
            runner.submit(Task(("point", i), cfg))
        if progress is not None:
            progress(0, total, 0)
        while runner.pending:
            outcome = runner.next_done()
            outcomes[outcome.key[1]] = outcome
            failed += outcome.row is None
            warnings.extend(w for w in outcome.warnings if w not in warnings)
            if progress is not None:
                progress(len(outcomes), total, failed)
    except (KeyboardInterrupt, Terminated) as exc:
        interrupted = True
        stopped_by = "SIGTERM" if isinstance(exc, Terminated) else "SIGINT"
        close_quietly(runner, cancel=True)
    else:
        interrupted = not close_quietly(runner, cancel=False)
        stopped_by = "SIGINT" if interrupted else ""
    rows = [point_row(spec, i, outcomes[i]) for i in sorted(outcomes)]
    return SweepResult(spec, rows, runner.name, runner.workers, time.perf_counter() - started, interrupted, warnings,
                       stopped_by=stopped_by, busy_s=sum(o.wall_s for o in outcomes.values()),
                       prepare_s=sum(o.prepare_s for o in outcomes.values()))


def close_quietly(runner: Any, cancel: bool) -> bool:
    """Close the backend (stopping a Ray instance takes a second or two); False when Ctrl-C came meanwhile (then
    once more with cancel, the finished rows kept)."""
    try:
        runner.close(cancel=cancel)
        return True
    except (KeyboardInterrupt, Terminated):
        try:
            runner.close(cancel=True)
        except (KeyboardInterrupt, Terminated):
            pass
        return False


# ------------------------------------------------------------------------------------------------------ writing
def columns(rows: list[dict]) -> list[str]:
    out: dict[str, None] = {}
    for row in rows:
        out.update(dict.fromkeys(row))
    return list(out)


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file: a reader never sees half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; a results file is as readable as any other
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def rows_json(rows: list[dict]) -> str:
    return json.dumps([{k: _finite(v) for k, v in r.items()} for r in rows], indent=2, allow_nan=False) + "\n"


def rows_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = columns(rows)
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(cols)
    for r in rows:
        writer.writerow(["" if _finite(r.get(c)) is None else r.get(c) for c in cols])
    return buf.getvalue()


def parquet_available() -> bool:
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def write_parquet(rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = columns(rows)
    data: dict[str, list] = {}
    for c in cols:
        values = [_finite(r.get(c)) for r in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present) \
                and any(isinstance(v, float) for v in present):
            values = [None if v is None else float(v) for v in values]
        elif present and not all(type(v) is type(present[0]) for v in present):
            values = [None if v is None else str(v) for v in values]
        data[c] = values
    table = pa.table(data)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def prepare_output_dir(folder: Path, flag: str = "--output") -> None:
    """Create ``folder`` (and its parents) before any simulation, so that a bad path fails first."""
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{flag} {folder}: exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{flag} {folder}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {folder}: folder is not writable")


def write_outputs(result: SweepResult, folder: Path, report: bool = True) -> list[Path]:
    """results.json, results.csv, results.parquet (with pyarrow) and report.html in ``folder``."""
    written = []
    rows = result.rows
    for name, text in (("results.json", rows_json(rows)), ("results.csv", rows_csv(rows))):
        path = folder / name
        write_atomic(path, text.encode("utf-8"))
        written.append(path)
    if parquet_available() and rows:
        path = folder / "results.parquet"
        write_parquet(rows, path)
        written.append(path)
    if report:
        written.append(write_report(result, folder))
    return written


def partial_document(result: SweepResult) -> dict:
    """results.json of an interrupted sweep kept with --keep-partial: the finished rows under ``rows``, marked
    ``"complete": false`` with the points not run (a complete sweep's results.json is the list of rows alone, so a
    reader expecting that list cannot take a partial file for a whole one)."""
    spec = result.spec
    done = {r["point"] for r in result.rows}
    missing = []
    for i, cfg in enumerate(spec.points):
        if i not in done:
            values = spec.values[i]
            missing.append({"point": i, **{a: _plain(v) for a, v in values.items()},
                            "rate": values.get("rate", cfg.workload.rate),
                            "configuration": label(values, spec.config_axes)})
    return {"complete": False, "interrupted_by": result.stopped_by or "SIGINT", "points": len(spec.points),
            "finished": len(result.rows), "missing_points": missing,
            "rows": [{k: _finite(v) for k, v in r.items()} for r in result.rows]}


def write_partial(result: SweepResult, folder: Path) -> Path:
    path = folder / "results.json"
    write_atomic(path, (json.dumps(partial_document(result), indent=2, allow_nan=False) + "\n").encode("utf-8"))
    return path


def write_report(result: SweepResult, folder: Path) -> Path:
    from .report import sweep_report

    path = folder / "report.html"
    write_atomic(path, sweep_report(result).encode("utf-8"))
    return path

"""Finding the experiments under ``--ground-truth PATH``: one file, one experiment folder, or a tree of both.

Formats are recognised by content, never by name: a JSON object with ``experiments`` (the combined file), a guidellm
report (``args`` + ``benchmarks``), a CSV whose header has ``experiment`` and ``gt_*`` columns (the synchronous means
table), a folder with guidellm files or with inference-perf results. Other files are ignored. An ``INDEX.json`` with
``datasets`` (name, gpu, vllm_version, total_kv_blocks) fills in what an experiment's own files leave unsaid.

When PATH itself is one experiment (a file or an experiment folder), a problem with it is an error; inside a tree, a
broken experiment is recorded as failed and the others still run. The same experiment name read twice (a folder and
the combined file both holding it) is kept once, from the richer source.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .experiment import Experiment, Failure
from .fields import GroundTruthError, as_int, read_json
from .load_combined import is_combined, load_combined
from .load_guidellm import is_guidellm_folder, is_guidellm_report, load_guidellm_folder, load_guidellm_report
from .load_inference_perf import is_inference_perf_folder, load_inference_perf_folder
from .load_sync_table import is_sync_table, load_sync_table, read_header

log = logging.getLogger("blis_sim")

INDEX_NAMES = ("INDEX.json", "index.json")
_MAX_DEPTH = 6
_RANK = {"inference-perf": 0, "guidellm": 0, "sync-table": 1, "combined": 2}  # lower wins a duplicate name
_VERSION = re.compile(r"\d+\.\d+(?:\.\d+)?")


@dataclass
class GroundTruth:
    experiments: list[Experiment] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # "<name> from <source> (also read from <kept source>)"


def load_ground_truth(path: Path | str) -> GroundTruth:
    """Every experiment under ``path``, each read by the loader its content calls for."""
    path = Path(path)
    out = GroundTruth()
    index: dict[str, dict] = {}
    if path.is_file():
        _load_file(path, out, strict=True)
    elif path.is_dir():
        if _experiment_folder(path):
            _load_folder(path, out, strict=True)
            index = _read_index(path.parent)
        else:
            _walk(path, out, index, 0)
    else:
        raise InputError(f"--ground-truth {path}: no such file or folder")
    if not out.experiments and not out.failed:
        raise InputError(
            f"--ground-truth {path}: no ground-truth experiment found (expected a combined JSON with experiments[], "
            "a guidellm report or sweep folder, an inference-perf result folder, or a synchronous means CSV)"
        )
    out.experiments = [_apply_index(e, index) for e in out.experiments]
    _dedupe(out)
    return out


def _experiment_folder(folder: Path) -> bool:
    return is_inference_perf_folder(folder) or is_guidellm_folder(folder)


def _load_folder(folder: Path, out: GroundTruth, strict: bool) -> None:
    loader = load_inference_perf_folder if is_inference_perf_folder(folder) else load_guidellm_folder
    try:
        exp, failed = loader(folder)
    except GroundTruthError as exc:
        if strict:
            raise
        out.failed.append(Failure(folder.name, "", str(folder), str(exc)))
        return
    out.experiments.append(exp)
    out.failed.extend(failed)


def _load_file(path: Path, out: GroundTruth, strict: bool) -> None:
    try:
        if path.suffix.lower() == ".csv":
            if not is_sync_table(read_header(path)):
                if strict:
                    raise GroundTruthError(path, "", "not a recognised ground-truth table (the synchronous means "
                                                     "table needs experiment and gt_* columns)")
                return
            exps, failed = load_sync_table(path)
        elif path.suffix.lower() == ".json":
            raw = read_json(path)
            if is_combined(raw):
                exps, failed = load_combined(raw, path)
            elif is_guidellm_report(raw):
                exp, failed = load_guidellm_report(raw, path)
                exps = [exp]
            else:
                if strict:
                    raise GroundTruthError(path, "", "not a recognised ground-truth file (expected experiments[] "
                                                     "or a guidellm report with args and benchmarks)")
                return
        else:
            if strict:
                raise GroundTruthError(path, "", "not a recognised ground-truth file (.json or .csv expected)")
            return
    except GroundTruthError as exc:
        if strict:
            raise
        out.failed.append(Failure(path.stem, "", str(path), str(exc)))
        return
    out.experiments.extend(exps)
    out.failed.extend(failed)


def _walk(folder: Path, out: GroundTruth, index: dict[str, dict], depth: int) -> None:
    if depth > _MAX_DEPTH:
        return
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        out.failed.append(Failure(folder.name, "", str(folder), f"{folder}: cannot be listed ({exc})"))
        return
    index.update(_read_index(folder))
    for entry in entries:
        if entry.name.startswith(".") or entry.name in INDEX_NAMES:
            continue
        if entry.is_dir():
            if _experiment_folder(entry):
                _load_folder(entry, out, strict=False)
            else:
                _walk(entry, out, index, depth + 1)
        elif entry.is_file() and entry.suffix.lower() in (".json", ".csv"):
            _load_file(entry, out, strict=False)


def _read_index(folder: Path) -> dict[str, dict]:
    for name in INDEX_NAMES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            raw = read_json(path)
        except GroundTruthError as exc:
            log.warning("%s", exc)
            return {}
        if not isinstance(raw, dict) or not isinstance(raw.get("datasets"), list):
            return {}
        entries = {}
        for i, item in enumerate(raw["datasets"]):
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                entries[item["name"]] = {**item, "_where": f"{path}: datasets[{i}]"}
        return entries
    return {}


def _apply_index(exp: Experiment, index: dict[str, dict]) -> Experiment:
    entry = index.get(exp.name)
    if entry is None:
        return exp
    changes: dict = {}
    where = entry["_where"]
    if exp.gpu is None and isinstance(entry.get("gpu"), str) and entry["gpu"].strip():
        changes["gpu"] = entry["gpu"].strip()
    if exp.vllm_version is None and isinstance(entry.get("vllm_version"), str):
        m = _VERSION.search(entry["vllm_version"])
        if m:
            changes["vllm_version"], changes["version_source"] = m.group(0), f"{where}.vllm_version"
    blocks = as_int(entry.get("total_kv_blocks"))
    if exp.server.num_gpu_blocks is None and blocks is not None and blocks > 1:
        changes["server"] = dataclasses.replace(exp.server, num_gpu_blocks=blocks,
                                                num_gpu_blocks_source=f"{where}.total_kv_blocks")
    return dataclasses.replace(exp, **changes) if changes else exp


def _dedupe(out: GroundTruth) -> None:
    kept: dict[str, Experiment] = {}
    for exp in out.experiments:
        other = kept.get(exp.name)
        if other is None:
            kept[exp.name] = exp
            continue
        if _RANK.get(exp.format, 9) < _RANK.get(other.format, 9):
            kept[exp.name], exp, other = exp, other, exp
        out.duplicates.append(f"{exp.name} from {exp.source} (also read from {other.source})")
    out.experiments = list(kept.values())
    out.experiments.sort(key=lambda e: e.name)


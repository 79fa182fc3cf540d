"""inference-perf result folders: ``profile.yaml`` (or the resolved ``results/config.yaml``), per-stage
``results/stage_<i>_lifecycle_metrics.json``, ``results/summary_lifecycle_metrics.json``, plus the server's settings
from ``exp-config.yaml`` and/or ``vllm.log`` (``vllm_logging.json`` where it records anything).

Everything is read from the folder's own files: the data generator (``shared_prefix`` groups and lengths, or
``random``/``synthetic`` length distributions), the load (``constant`` or ``poisson``, timed as in
``workload.shared_prefix``, and its stages with rates and durations), the model, TP and scheduler limits. The resolved ``results/config.yaml`` wins over the
profile because it is what inference-perf actually ran (the profile's ``num_unique_system_prompts`` etc. may have been
ignored). Each stage is one point; all stages are simulated as one run, back to back.

Measurements are client side. TTFT and E2E come from the latency distributions (seconds). inference-perf's own ITL
counts streamed chunks as tokens, so ITL is (E2E mean - TTFT mean) / (output length - 1), with the requested output
length when ``ignore_eos`` fixes it, else the measured mean. Throughput is output tokens per second (requests per
second x the fixed output length under ``ignore_eos``, since the client's re-tokenised count is biased). A stage whose
failures exceed 1% of its requests, or whose completions fall 10% short of the requested rate, is overloaded: reported,
kept out of the averages. The counts, the completion rate and the median latencies of failed and successful requests
are also kept as the evidence of whether the server kept up (``Point.served``, judged in ``saturation``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from .experiment import (
    CONSTANT,
    ITL_POOLED,
    POISSON,
    Experiment,
    Failure,
    LengthDist,
    Load,
    Point,
    Served,
    SharedPrefixPool,
    SyntheticLengths,
)
from .fields import Fields, GroundTruthError, as_float, measured_metrics, read_json, read_profile, read_yaml
from .vllm_log import ServerLog, read_server_files, server_settings

FORMAT = "inference-perf"
_STAGE = re.compile(r"stage_(\d+)_lifecycle_metrics\.json$")
SUMMARY = "summary_lifecycle_metrics.json"


def is_inference_perf_folder(folder: Path) -> bool:
    results = folder / "results"
    if results.is_dir() and any(_STAGE.search(p.name) or p.name == SUMMARY for p in results.iterdir()):
        return True
    raw = read_profile(folder)
    return raw is not None and isinstance(raw.get("load"), dict) and isinstance(raw.get("data"), dict)


def load_inference_perf_folder(folder: Path, name: str | None = None) -> tuple[Experiment, list[Failure]]:
    name = name or folder.name
    resolved_path = folder / "results" / "config.yaml"
    cfg_path = resolved_path if resolved_path.is_file() else folder / "profile.yaml"
    cfg = Fields(read_yaml(cfg_path), cfg_path)
    exp_path = folder / "exp-config.yaml"
    exp_cfg = Fields(read_yaml(exp_path), exp_path) if exp_path.is_file() else None
    log = read_server_files(folder)

    server_cfg = cfg.sub("server", optional=True)
    ignore_eos = bool(server_cfg.raw("ignore_eos", False)) if server_cfg is not None else False
    lengths = _lengths(cfg.sub("data"))
    stages = _stages(cfg.sub("load"))
    pattern = CONSTANT if cfg.sub("load").str("type", "constant").lower() == "constant" else POISSON

    points: list[Point] = []
    failed: list[Failure] = []
    stage_files = {int(m.group(1)): p for p in sorted((folder / "results").glob("stage_*_lifecycle_metrics.json"))
                   if (m := _STAGE.search(p.name))} if (folder / "results").is_dir() else {}
    if not stage_files and (folder / "results" / SUMMARY).is_file() and len(stages) == 1:
        stage_files = {0: folder / "results" / SUMMARY}  # a one-stage run: the summary is that stage
    if not stage_files:
        raise GroundTruthError(folder / "results", "", "no stage_<i>_lifecycle_metrics.json (the measured metrics)")
    for index, path in sorted(stage_files.items()):
        label = f"stage {index}"
        if index >= len(stages):
            failed.append(Failure(name, label, str(path), f"{cfg_path}: load.stages has no stage {index}"))
            continue
        rate, duration = stages[index]
        label = f"stage {index} ({rate:g} rps)"
        try:
            points.append(_stage_point(path, label, index, rate, duration, pattern, lengths, ignore_eos))
        except GroundTruthError as exc:
            failed.append(Failure(name, label, str(path), str(exc)))

    model = _model(folder, exp_cfg, server_cfg, log)
    server, tp = server_settings(folder, exp_cfg, log)
    exp = Experiment(
        name=name, format=FORMAT, source=str(folder), model=model, gpu=None, tp=tp,
        vllm_version=log.version, version_source=log.source if log.version else "",
        server=server, workload=_workload_label(exp_cfg, name, cfg.sub("data")), lengths=lengths,
        points=tuple(points), metric_side="client",
    )
    return exp, failed


def _lengths(data: Fields) -> SharedPrefixPool | SyntheticLengths:
    kind = data.str("type").lower()
    if kind == "shared_prefix":
        sp = data.sub("shared_prefix")
        groups = sp.int("num_groups", None, minimum=1) or sp.int("num_unique_system_prompts", minimum=1)
        per_group = sp.int("num_prompts_per_group", None, minimum=1) or sp.int("num_users_per_system_prompt",
                                                                                 minimum=1)
        return SharedPrefixPool(groups, per_group, sp.tokens("system_prompt_len", minimum=0),
                                sp.tokens("question_len", minimum=1), sp.tokens("output_len", minimum=1))
    if kind in ("random", "synthetic"):
        return SyntheticLengths(0, _dist(data.sub("input_distribution")), _dist(data.sub("output_distribution")))
    raise data.error("type", f"{kind!r} data cannot be simulated (shared_prefix, random and synthetic can: a "
                             "dataset's lengths are not in the result files)")


def _dist(d: Fields) -> LengthDist:
    lo = d.tokens("min", 1, minimum=1)
    hi = d.tokens("max", minimum=lo)
    mean = d.float("mean", (lo + hi) / 2)
    std = d.float("std", None)
    std = d.float("stdev", 0.0) if std is None else std
    return LengthDist(round(mean), round(std), lo, hi)


def _stages(load: Fields) -> list[tuple[float, float]]:
    out = []
    for i, item in enumerate(load.list("stages")):
        s = Fields(item, load.path, f"{load.name('stages')}[{i}]")
        out.append((s.float("rate", positive=True), s.float("duration", positive=True)))
    if not out:
        raise load.error("stages", "is empty (at least one stage with rate and duration is needed)")
    return out


def _stage_point(path: Path, label: str, index: int, rate: float, duration: float, pattern: str,
                 lengths: SharedPrefixPool | SyntheticLengths, ignore_eos: bool) -> Point:
    top = Fields(read_json(path), path)
    ok = top.sub("successes")
    lat = ok.sub("latency")

    def dist(key: str, stat: str) -> tuple[Any, str]:
        d = lat.sub(key, optional=True)
        if d is None:
            return None, lat.name(key)
        value = as_float(d.raw(stat, None))
        return (value * 1000.0 if value is not None else d.raw(stat, None)), d.name(stat)

    values, names = {}, {}
    for metric, key, stat in (("ttft_mean_ms", "time_to_first_token", "mean"),
                              ("ttft_p90_ms", "time_to_first_token", "p90"),
                              ("e2e_mean_ms", "request_latency", "mean"),
                              ("e2e_p90_ms", "request_latency", "p90")):
        values[metric], names[metric] = dist(key, stat)
    fixed_len = lengths.output_len if isinstance(lengths, SharedPrefixPool) and ignore_eos else None
    out_len = ok.sub("output_len", optional=True)
    mean_len = fixed_len or (as_float(out_len.raw("mean", None)) if out_len is not None else None)
    ttft, e2e = as_float(values["ttft_mean_ms"]), as_float(values["e2e_mean_ms"])
    if ttft is not None and e2e is not None and mean_len and mean_len > 1:
        values["itl_mean_ms"] = (e2e - ttft) / (mean_len - 1)
        names["itl_mean_ms"] = f"({names['e2e_mean_ms']} - {names['ttft_mean_ms']}) / (output length - 1)"
    tput = ok.sub("throughput", optional=True)
    if tput is not None:
        rps = as_float(tput.raw("requests_per_sec", None))
        if fixed_len and rps:
            values["throughput_tokens_per_s"] = rps * fixed_len
            names["throughput_tokens_per_s"] = f"{tput.name('requests_per_sec')} x output_len"
        elif tput.has("output_tokens_per_sec"):
            values["throughput_tokens_per_s"] = tput.raw("output_tokens_per_sec")
            names["throughput_tokens_per_s"] = tput.name("output_tokens_per_sec")
    measured = measured_metrics(values, names, path)

    num_ok = ok.int("count", 0)
    fail = top.sub("failures", optional=True)
    num_fail = fail.int("count", 0) if fail is not None else 0
    sent = top.sub("load_summary", optional=True)
    num_sent = sent.int("count", num_ok + num_fail) if sent is not None else num_ok + num_fail
    excluded = ""
    achieved = as_float(tput.raw("requests_per_sec", None)) if tput is not None else None
    if num_sent and num_fail > 0.01 * num_sent:
        excluded = f"overloaded: {num_fail} of {num_sent} requests failed"
    elif achieved is not None and achieved < 0.9 * rate:
        excluded = f"overloaded: {achieved:.3g} completions/s at {rate:g} requests/s sent"
    count = num_sent or round(rate * duration)
    served = Served(str(path), sent=num_sent or None, failed=num_fail, completed_rps=achieved,
                    failed_latency_s=_median(fail, "request_latency"), served_latency_s=_median(ok, "latency"))
    return Point(label, Load(pattern, rate, count, duration), measured, ITL_POOLED, stage=index, excluded=excluded,
                 served=served)


def _median(f: Fields | None, key: str) -> float | None:
    """``f.<key>`` median (or ``request_latency`` median under it), seconds; None when not recorded or malformed
    (evidence of saturation only: it never fails the stage)."""
    try:
        sub = f.sub(key, optional=True) if f is not None else None
        if sub is not None and sub.has("request_latency"):
            sub = sub.sub("request_latency")
    except GroundTruthError:
        return None
    return as_float(sub.raw("median", None)) if sub is not None else None


def _model(folder: Path, exp_cfg: Fields | None, server_cfg: Fields | None, log: ServerLog) -> str:
    for value in (exp_cfg.raw("model", None) if exp_cfg is not None else None,
                  log.served_model(),
                  server_cfg.raw("model_name", None) if server_cfg is not None else None):
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise GroundTruthError(folder / "profile.yaml", "server.model_name",
                           "missing (and neither exp-config.yaml nor vllm.log names the model)")


def _workload_label(exp_cfg: Fields | None, name: str, data: Fields) -> str:
    """The workload type for grouping: exp-config's ``workload``, else the folder name's last word (the shared runs
    are named ``<date>-<time>-<model>-tp<N>-<workload>``), else the data type."""
    if exp_cfg is not None:
        value = exp_cfg.raw("workload", None)
        if isinstance(value, str) and value.strip():
            return value.strip()
    last = name.rsplit("-", 1)[-1]
    if last.isalpha() and len(last) > 2:
        return last.lower()
    return str(data.raw("type", "inference-perf"))

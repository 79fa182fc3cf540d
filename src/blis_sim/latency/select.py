"""Choosing the latency model and KV capacity once, before the run (ENGINE.md §9.3, ROOFLINE.md §7.2).

Order: roofline when both file flags are given; explicit blackbox when any α/β is non-zero; otherwise the defaults
file's first matching coefficient row. Settings filled in from the defaults file are logged as warnings so that a
run never silently uses a GPU or TP the user did not ask for. ``--vllm-version`` matches rows by release, so
``vllm/vllm-openai:v0.8.4``, ``v0.8.4`` and ``0.8.4`` select the same rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..config.defaults_file import DefaultsFile, load_defaults
from ..config.models import EngineConfig, LatencyConfig
from ..errors import InputError
from .base import LatencyModel
from .blackbox import BlackboxModel
from .hardware import load_hardware
from .hf_config import load_model_config
from .roofline_v1 import RooflineV1

log = logging.getLogger("blis_sim")


@dataclass(frozen=True)
class ResolvedLatency:
    """The outcome of resolution: the model to price steps with, and the settings it was resolved with."""

    model: LatencyModel
    total_kv_blocks: int
    hardware: str
    tp: int
    vllm_version: str
    kind: str  # "blackbox" | "roofline-v1"


def _coeffs(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def resolve_latency(lat: LatencyConfig, eng: EngineConfig) -> ResolvedLatency:
    """Pick the latency model for ``lat`` (flags of ENGINE.md §15.3); raise ``InputError`` when none applies."""
    if lat.model_config_folder is not None or lat.hardware_config is not None:
        return _roofline(lat, eng)
    if any(lat.alpha_coeffs) or any(lat.beta_coeffs):
        if not any(lat.beta_coeffs):
            raise InputError(
                f"--beta-coeffs must contain at least one non-zero value when --alpha-coeffs is given "
                f"(every step would take 0 µs), got {_coeffs(lat.beta_coeffs)}"
            )
        return ResolvedLatency(
            model=BlackboxModel(lat.alpha_coeffs, lat.beta_coeffs),
            total_kv_blocks=eng.total_kv_blocks,
            hardware=lat.hardware,
            tp=lat.tp,
            vllm_version=lat.vllm_version,
            kind="blackbox",
        )
    return _from_defaults(lat, eng)


def _fill(lat: LatencyConfig, defaults: DefaultsFile, fields: tuple[str, ...]) -> dict[str, object]:
    """Values of ``fields`` (hardware, tp, vllm_version), taken from ``defaults[model]`` where unset, with a warning."""
    model = lat.model.lower()
    entry = defaults.defaults.get(model)
    out: dict[str, object] = {}
    for name in fields:
        value = getattr(lat, name)
        if not value and entry is not None:
            value = {"hardware": entry.GPU, "tp": entry.tensor_parallelism, "vllm_version": entry.vllm_version}[name]
            log.warning(
                "--%s not given: using %s from the defaults file entry for model %s",
                name.replace("_", "-"), value, model,
            )
        out[name] = value
    return out


def _roofline(lat: LatencyConfig, eng: EngineConfig) -> ResolvedLatency:
    if lat.model_config_folder is None or lat.hardware_config is None:
        raise InputError("--model-config-folder and --hardware-config must be given together (roofline mode)")
    if lat.bench_data_path is not None:
        raise InputError("--bench-data-path: roofline v2 is not available in this version yet")
    hardware, tp = lat.hardware, lat.tp
    if not hardware or tp <= 0:
        filled = _fill(lat, load_defaults(lat.defaults_filepath), ("hardware", "tp"))
        hardware, tp = str(filled["hardware"]), int(filled["tp"])
    if not hardware:
        raise InputError(
            f"--hardware is required in roofline mode (the defaults file has no entry for model {lat.model.lower()})"
        )
    if tp <= 0:
        raise InputError(
            f"--tp must be an integer >= 1 in roofline mode (the defaults file has no entry for model "
            f"{lat.model.lower()}), got {tp}"
        )
    if any(lat.beta_coeffs):
        log.warning("--beta-coeffs %s ignored: roofline mode computes step times itself", _coeffs(lat.beta_coeffs))
    model_cfg = load_model_config(lat.model_config_folder)
    hw = load_hardware(lat.hardware_config, hardware)
    hw.check_v1()
    return ResolvedLatency(
        model=RooflineV1(model_cfg, hw, tp, lat.alpha_coeffs),
        total_kv_blocks=eng.total_kv_blocks,
        hardware=hw.name,
        tp=tp,
        vllm_version=lat.vllm_version,
        kind="roofline-v1",
    )


def _from_defaults(lat: LatencyConfig, eng: EngineConfig) -> ResolvedLatency:
    defaults = load_defaults(lat.defaults_filepath)
    model = lat.model.lower()
    filled = _fill(lat, defaults, ("hardware", "tp", "vllm_version"))
    hardware, tp, version = str(filled["hardware"]), int(filled["tp"]), str(filled["vllm_version"])
    row = defaults.find_row(model, hardware, tp, version) if hardware and tp > 0 and version else None
    if row is None:
        existing = defaults.rows_for(model)
        combos = "; ".join(
            dict.fromkeys(f"{r.GPU} TP{r.tensor_parallelism} {r.vllm_version}" for r in existing)
        ) or "none"
        raise InputError(
            f"no coefficients for model {model} on GPU {hardware or '(unset)'}, TP {tp or '(unset)'}, "
            f"vLLM version {version or '(unset)'} in the defaults file {defaults.source} "
            f"(combinations for this model: {combos}); pass --alpha-coeffs/--beta-coeffs, "
            f"or --model-config-folder with --hardware-config for the roofline model"
        )
    kv_blocks = eng.total_kv_blocks if eng.is_set("total_kv_blocks") else row.total_kv_blocks
    return ResolvedLatency(
        model=BlackboxModel(row.alpha_coeffs, row.beta_coeffs),
        total_kv_blocks=kv_blocks,
        hardware=hardware,
        tp=tp,
        vllm_version=version,
        kind="blackbox",
    )

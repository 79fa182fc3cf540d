"""Choosing the latency model and KV capacity once, before the run (ENGINE.md §9.3, ROOFLINE.md §7.2).

Order (``--latency-model auto``, the seed's rule): roofline when both file flags are given, v2 when
``--bench-data-path`` is given too (an error if its tables cannot be loaded for the GPU: no silent fall-back to v1),
v1 otherwise; explicit blackbox when any α/β is non-zero; otherwise the defaults file's first matching coefficient
row. ``--latency-model roofline-v2`` without bench data prices kernels with the shipped fitted efficiency model of
the GPU; ``roofline-v1`` and ``blackbox`` insist on their inputs. The choice is logged at info level. Settings
filled in from the defaults file are logged as warnings so that a run never silently uses a GPU or TP the user did
not ask for. In roofline mode without ``--total-kv-blocks`` the KV capacity is the block count vLLM would allocate
on the GPU (``kv_capacity``), not the reference's 1,000,000. ``--vllm-version`` matches rows by release, so
``vllm/vllm-openai:v0.8.4``, ``v0.8.4`` and ``0.8.4`` select the same rows.

``LatencyConfig.hardware_overrides`` (calibration keys in hardware_config.json spelling, e.g. a ``blis calibrate``
candidate) replace the loaded GPU entry's values before the roofline model is built: v1 reads the entry with them,
v2 the entry as v2 reads it (its ``rooflineV2`` keys applied) with them; v2 accepts them only with the shipped fitted
kernel model, and blackbox models not at all.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Hashable

from ..config.defaults_file import DefaultsFile, load_defaults
from ..config.models import EngineConfig, LatencyConfig
from ..errors import InputError
from .base import LatencyModel
from .blackbox import BlackboxModel
from .hardware import KEYS, HardwareCalib, load_hardware
from .hf_config import ModelConfig, check_tp, load_model_config
from .kv_capacity import DEFAULT_GPU_MEMORY_UTILIZATION, resolve_kv_blocks

# The roofline models and roofline v2's kernel tables are imported where a run uses them (``_roofline``): a blackbox
# run never loads them.

log = logging.getLogger("blis_sim")


@dataclass(frozen=True)
class ResolvedLatency:
    """The outcome of resolution: the model to price steps with, and the settings it was resolved with."""

    model: LatencyModel
    total_kv_blocks: int
    hardware: str
    tp: int
    vllm_version: str
    kind: str  # "blackbox" | "roofline-v1" | "roofline-v2"


class LatencyCache:
    """Resolved latency models kept between runs of one process (sweeps, capacity searches): a run with the same
    latency and engine settings (and the same fields given explicitly, since a stated --total-kv-blocks wins over a
    derived one) gets the same model back instead of reading config files and kernel tables again. A latency model
    is a pure function of its inputs, so a reused model prices every step exactly as a fresh one."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.entries: OrderedDict[Hashable, ResolvedLatency] = OrderedDict()
        self.resolved = 0  # models built
        self.reused = 0  # models handed out again

    def resolve(self, lat: LatencyConfig, eng: EngineConfig) -> ResolvedLatency:
        key = (lat, frozenset(lat.model_fields_set), eng, frozenset(eng.model_fields_set))
        hit = self.entries.get(key)
        if hit is not None:
            self.entries.move_to_end(key)
            self.reused += 1
            return hit
        hit = resolve_latency(lat, eng)
        self.resolved += 1
        self.entries[key] = hit
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return hit


def _coeffs(values) -> str:
    return ",".join(f"{v:g}" for v in values)


def resolve_latency(lat: LatencyConfig, eng: EngineConfig) -> ResolvedLatency:
    """Pick the latency model for ``lat`` (flags of ENGINE.md §15.3); raise ``InputError`` when none applies."""
    if lat.latency_model == "best":
        lat = best_inputs(lat)
    choice = lat.latency_model
    roofline_files = lat.model_config_folder is not None or lat.hardware_config is not None
    if choice == "blackbox" and (roofline_files or lat.bench_data_path is not None):
        raise InputError("--latency-model blackbox cannot be combined with --model-config-folder, --hardware-config "
                         "or --bench-data-path (they are the inputs of the roofline models)")
    if choice in ("roofline-v1", "roofline-v2") and not roofline_files:
        raise InputError(f"--latency-model {choice} needs --model-config-folder and --hardware-config")
    if roofline_files:
        if lat.defaults_filepath is not None:
            load_defaults(lat.defaults_filepath)  # given, so checked, even when roofline mode needs nothing from it
        return _roofline(lat, eng)
    if lat.bench_data_path is not None:
        raise InputError("--bench-data-path (roofline v2) needs --model-config-folder and --hardware-config")
    if lat.hardware_overrides:
        _refuse_overrides("blackbox")
    if any(lat.alpha_coeffs) or any(lat.beta_coeffs):
        if not any(lat.beta_coeffs):
            raise InputError(
                f"--beta-coeffs must contain at least one non-zero value when --alpha-coeffs is given "
                f"(every step would take 0 µs), got {_coeffs(lat.beta_coeffs)}"
            )
        log.info("latency model: blackbox with the given coefficients")
        return ResolvedLatency(
            model=BlackboxModel(lat.alpha_coeffs, lat.beta_coeffs),
            total_kv_blocks=eng.total_kv_blocks,
            hardware=lat.hardware,
            tp=lat.tp,
            vllm_version=lat.vllm_version,
            kind="blackbox",
        )
    return _from_defaults(lat, eng)


def packaged_model_config(model: str) -> Path | None:
    """The packaged ``model_configs/<name>`` folder of ``model`` (its last path component, case-insensitively)."""
    key = model.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    root = Path(str(resources.files("blis_sim") / "data" / "model_configs"))
    folder = root / key
    return folder if (folder / "config.json").is_file() else None


def packaged_hardware_config() -> Path:
    return Path(str(resources.files("blis_sim") / "data" / "hardware_config.json"))


def has_efficiency_model(hw: HardwareCalib) -> bool:
    from .mfu.fitted import packaged_efficiency_names

    return (hw.efficiency_model or hw.name).upper() in packaged_efficiency_names()


def best_inputs(lat: LatencyConfig) -> LatencyConfig:
    """``--latency-model best``: the most accurate model whose inputs exist (docs/gpu-transfer.md, "Choosing").

    Roofline v2 when its kernel inputs exist (``--bench-data-path``, or a shipped efficiency model for the GPU entry),
    else roofline v1. Without ``--model-config-folder``/``--hardware-config``, the packaged files stand in for them
    when the model has a packaged config and the GPU a packaged entry; otherwise the seed's blackbox rule applies."""
    model_folder, hw_file = lat.model_config_folder, lat.hardware_config
    if model_folder is None and hw_file is None:
        model_folder = packaged_model_config(lat.model)
        hw_file = packaged_hardware_config()
        if model_folder is None or not lat.hardware or lat.tp <= 0:
            log.info("latency model best: no packaged model config for %s (or no --hardware/--tp): the seed's rule",
                     lat.model)
            return lat.model_copy(update={"latency_model": "auto"})
        log.info("latency model best: packaged model config %s and hardware config", model_folder)
    elif model_folder is None or hw_file is None:
        return lat.model_copy(update={"latency_model": "auto"})  # resolve_latency names the missing flag
    kind = "roofline-v2"
    if lat.bench_data_path is None and lat.hardware:
        try:
            hw = load_hardware(hw_file, lat.hardware)
        except InputError:
            hw = None  # resolution below reports the problem with the entry
        if hw is not None and not has_efficiency_model(hw):
            kind = "roofline-v1"
    return lat.model_copy(update={"latency_model": kind, "model_config_folder": model_folder,
                                  "hardware_config": hw_file})


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
    version = lat.latency_model
    if version == "auto":
        version = "roofline-v2" if lat.bench_data_path is not None else "roofline-v1"
    if version == "roofline-v1" and lat.bench_data_path is not None:
        raise InputError("--bench-data-path is read only by roofline v2: drop it, or use --latency-model roofline-v2")
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
    from .mfu.fitted import load_packaged_efficiency
    from .mfu.tables import MFUDatabase
    from .roofline_v1 import RooflineV1
    from .roofline_v2 import RooflineV2

    model_cfg = load_model_config(lat.model_config_folder)
    check_tp(model_cfg, tp)
    hw = load_hardware(lat.hardware_config, hardware)
    model: LatencyModel
    if version == "roofline-v1":
        hw = _overridden(hw, lat.hardware_overrides)
        hw.check_v1()
        model = RooflineV1(model_cfg, hw, tp, lat.alpha_coeffs)
        log.info("latency model: roofline-v1 (%s on %s, TP %d)", model_cfg.source, hw.name, tp)
    elif lat.bench_data_path is not None:
        if lat.hardware_overrides:
            _refuse_overrides(version)
        hw = hw.for_v2()
        hw.check_v2()
        db = MFUDatabase.load(lat.bench_data_path, hardware, hw.tflops_peak, hw.bw_peak_tbs)
        model = RooflineV2.from_tables(model_cfg, hw, tp, db, lat.alpha_coeffs)
        log.info("latency model: roofline-v2 with the kernel tables of %s (GPU folder %s, GEMM table read as %s)",
                 db.root, db.gpu_folder, db.gemm.dtype.upper())
    else:
        hw = _overridden(hw.for_v2(), lat.hardware_overrides)
        hw.check_v2()
        if hw.efficiency_model and not has_efficiency_model(hw):
            from .mfu.fitted import packaged_efficiency_names

            raise InputError(f"hardware config entry {hw.name}: efficiencyModel {hw.efficiency_model!r} is not a "
                             f"shipped efficiency model (shipped: {', '.join(packaged_efficiency_names())})")
        eff = load_packaged_efficiency(hw.efficiency_model or hw.name)
        model = RooflineV2.fitted(model_cfg, hw, tp, eff, lat.alpha_coeffs)
        log.info("latency model: roofline-v2 with the shipped fitted efficiency model %s (no --bench-data-path)",
                 eff.source)
    return ResolvedLatency(
        model=model,
        total_kv_blocks=_roofline_kv_blocks(model_cfg, hw, tp, eng),
        hardware=hw.name,
        tp=tp,
        vllm_version=lat.vllm_version,
        kind=version,
    )


def uses_packaged_constants(lat: LatencyConfig, gpu: str) -> bool:
    """Whether a roofline run of ``lat`` on ``gpu`` prices its steps with the packaged calibrated constants and
    fitted kernels (the shipped prediction intervals were drawn from their residuals): the packaged entry of the GPU
    unchanged (a copy of the packaged file, such as the repository's ``hardware_config.json``, counts; the hand-set
    file or an edited entry does not), no overrides, no kernel tables. Read only when intervals are asked for."""
    if lat.hardware_overrides or lat.bench_data_path is not None:
        return False
    packaged = packaged_hardware_config()
    try:
        return load_hardware(packaged, gpu) == load_hardware(lat.hardware_config or packaged, gpu)
    except InputError:  # a GPU the packaged file does not have
        return False


def _overridden(hw: HardwareCalib, overrides: tuple[tuple[str, float], ...]) -> HardwareCalib:
    """``hw`` with the values of ``overrides``' keys (hardware_config.json spelling) replaced."""
    if not overrides:
        return hw
    return replace(hw, **{KEYS[key]: float(value) for key, value in overrides})


def _refuse_overrides(kind: str) -> None:
    raise InputError(f"a hardware-calibration override needs roofline v1 or v2 (fitted kernels), not {kind}")


def _roofline_kv_blocks(model_cfg: ModelConfig, hw: HardwareCalib, tp: int, eng: EngineConfig) -> int:
    """``--total-kv-blocks`` when given, else the blocks vLLM would allocate on this GPU (``kv_capacity``), with
    vLLM's default gpu_memory_utilization. A hardware entry without ``memoryGB`` keeps the 1,000,000-block default."""
    kv = resolve_kv_blocks(model_cfg, hw, tp, block_size=eng.block_size_in_tokens,
                           max_num_batched_tokens=eng.max_num_scheduled_tokens,
                           stated=eng.total_kv_blocks if eng.is_set("total_kv_blocks") else None,
                           without_memory=eng.total_kv_blocks)
    cap = kv.derived
    if cap is not None:
        log.info("KV capacity derived from GPU memory: %d blocks of %d tokens (%s: %.2f GiB x %.2f - weights %.2f GiB "
                 "- activations %.2f GiB = %.2f GiB of KV cache, TP %d; vLLM would log num_gpu_blocks %d)",
                 cap.usable_blocks, eng.block_size_in_tokens, hw.name, cap.visible_gib, DEFAULT_GPU_MEMORY_UTILIZATION,
                 cap.weights_gib, cap.activation_gib + cap.non_torch_gib, cap.kv_gib, tp, cap.num_gpu_blocks)
    elif not eng.is_set("total_kv_blocks"):
        # a warning, not an error: BLIS v0.6.1's own hardware configs have no memoryGB and run with this default
        log.warning("hardware config entry %s has no memoryGB: KV capacity is the default %d blocks, as in BLIS "
                    "v0.6.1, not what vLLM would allocate (add memoryGB or pass --total-kv-blocks)",
                    hw.name, eng.total_kv_blocks)
    return kv.usable


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
    log.info("latency model: blackbox with the defaults-file coefficients of %s on %s, TP %d, %s",
             model, hardware, tp, version)
    return ResolvedLatency(
        model=BlackboxModel(row.alpha_coeffs, row.beta_coeffs),
        total_kv_blocks=kv_blocks,
        hardware=hardware,
        tp=tp,
        vllm_version=version,
        kind="blackbox",
    )

"""Reading one GPU's calibration from a roofline ``hardware_config.json`` (ROOFLINE.md §1.2).

The file maps GPU names to objects of calibration keys. As in the reference (Go's JSON decoder), keys inside an
entry match case-insensitively, unknown keys are ignored and a missing key reads 0; later duplicates win. Validation
is per model (§9 D16): ``check_v1`` rejects every key v1 divides by unless it is finite and > 0, so no step time can
become infinite or NaN, and keeps the other keys finite (overheads >= 0).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from ..config.files import read_input_file
from ..config.validators import format_value
from ..errors import InputError

# File key (as the table writes it) -> dataclass field. Matching lower-cases both sides.
KEYS: dict[str, str] = {
    "TFlopsPeak": "tflops_peak",
    "BwPeakTBs": "bw_peak_tbs",
    "BwEffConstant": "bw_eff_constant",
    "mfuPrefill": "mfu_prefill",
    "mfuDecode": "mfu_decode",
    "mfuPrefillMultiplier": "mfu_prefill_multiplier",
    "mfuDecodeMultiplier": "mfu_decode_multiplier",
    "prefillBwFactor": "prefill_bw_factor",
    "decodeBwFactor": "decode_bw_factor",
    "vectorPeakFraction": "vector_peak_fraction",
    "tpScalingExponent": "tp_scaling_exponent",
    "decodeTpScalingExponent": "decode_tp_scaling_exponent",
    "TOverheadMicros": "t_overhead_micros",
    "prefillOverheadMicros": "prefill_overhead_micros",
    "mixedPrefillOverheadMicros": "mixed_prefill_overhead_micros",
    "allReduceLatency": "all_reduce_latency",
    "perLayerOverhead": "per_layer_overhead",
    # Terms added after error analysis against real vLLM measurements (README "Calibrating"). A missing key reads 0,
    # which switches the term off, so the reference's hand-set tables reproduce its numbers exactly.
    "requestOverheadMicros": "request_overhead_micros",
    "allReduceBwGBs": "all_reduce_bw_gbs",
    "decodeKvBwEff": "decode_kv_bw_eff",
    "moeExperts": "moe_experts",
    "gemmEta": "gemm_eta",
    "flatStepOverhead": "flat_step_overhead",
}
_BY_LOWER = {key.lower(): (key, name) for key, name in KEYS.items()}
_MEMORY_KEY = "memorygb"
_LINK_KEY = "linkbwgbs"  # interconnect bandwidth per GPU and direction (GB/s); used by roofline v2's all-reduce
_FP8_KEY = "fp8tflopspeak"  # dense FP8 tensor peak (TFLOP/s); 0: no FP8 tensor cores; missing: 2 x TFlopsPeak
_EFFICIENCY_KEY = "efficiencymodel"  # which shipped roofline v2 efficiency model the entry uses (default: its name)
# A nested object of keys that replace the entry's own for roofline v2 only (its calibrated overheads differ from
# v1's: v2 prices the kernels, v1 folds kernel inefficiency into its MFUs), e.g. "rooflineV2": {"TOverheadMicros": 900}.
_V2_KEY = "rooflinev2"
V2_OVERRIDABLE = ("TOverheadMicros", "prefillOverheadMicros", "mixedPrefillOverheadMicros", "allReduceLatency",
                  "requestOverheadMicros", "gemmEta")

# What v1 divides by (reference order first: the five keys the reference itself checks), then the keys that only
# need to be finite, with the overheads also >= 0 so that a step time can never be negative.
V1_POSITIVE = (
    "TFlopsPeak", "BwPeakTBs", "BwEffConstant", "mfuPrefill", "mfuDecode",
    "mfuPrefillMultiplier", "mfuDecodeMultiplier", "prefillBwFactor", "decodeBwFactor", "vectorPeakFraction",
)
V1_FINITE = ("tpScalingExponent", "decodeTpScalingExponent")
V1_NON_NEGATIVE = ("TOverheadMicros", "prefillOverheadMicros", "mixedPrefillOverheadMicros", "allReduceLatency",
                   "requestOverheadMicros", "allReduceBwGBs")
V1_FRACTION_OR_OFF = ("decodeKvBwEff",)  # 0 (off) or in (0, 1]
V2_POSITIVE = ("TFlopsPeak", "BwPeakTBs")

# What each key can physically be, checked after the rules above: (smallest, largest, what it is). A model priced
# with values outside these is not a GPU (a peak of 1e-300 TFLOP/s, an MFU of 1.5, an overhead of years).
PHYSICAL: dict[str, tuple[float, float, str]] = {
    "TFlopsPeak": (1.0, 1e5, "TFLOP/s"),
    "BwPeakTBs": (0.01, 1e3, "TB/s"),
    "BwEffConstant": (1e-3, 1.0, "a fraction of the peak"),
    "mfuPrefill": (1e-3, 1.0, "a fraction of the peak"),
    "mfuDecode": (1e-3, 1.0, "a fraction of the peak"),
    "vectorPeakFraction": (1e-3, 1.0, "a fraction of the peak"),
    "mfuPrefillMultiplier": (1e-3, 1e3, "a factor"),
    "mfuDecodeMultiplier": (1e-3, 1e3, "a factor"),
    "prefillBwFactor": (1e-3, 1e3, "a factor"),
    "decodeBwFactor": (1e-3, 1e3, "a factor"),
    "tpScalingExponent": (-10.0, 10.0, "an exponent"),
    "decodeTpScalingExponent": (-10.0, 10.0, "an exponent"),
    "TOverheadMicros": (0.0, 1e7, "microseconds"),
    "prefillOverheadMicros": (0.0, 1e7, "microseconds"),
    "mixedPrefillOverheadMicros": (0.0, 1e7, "microseconds"),
    "allReduceLatency": (0.0, 1e7, "microseconds"),
    "requestOverheadMicros": (0.0, 1e7, "microseconds"),
    "allReduceBwGBs": (0.0, 1e5, "GB/s"),
    "gemmEta": (0.0, 1.0, "a fraction of the peak"),
}
MEMORY_GB = (1.0, 1e5)  # memoryGB: what a GPU can hold
GEMM_ETA_MIN = 1e-3  # gemmEta, when not 0 (off): the share of the bandwidth a GEMM streams at, like the MFUs


@dataclass(frozen=True, slots=True)
class HardwareCalib:
    """One GPU entry. Units: TFLOP/s, TB/s, microseconds; the rest are dimensionless factors."""

    name: str
    tflops_peak: float = 0.0
    bw_peak_tbs: float = 0.0
    bw_eff_constant: float = 0.0
    mfu_prefill: float = 0.0
    mfu_decode: float = 0.0
    mfu_prefill_multiplier: float = 0.0
    mfu_decode_multiplier: float = 0.0
    prefill_bw_factor: float = 0.0
    decode_bw_factor: float = 0.0
    vector_peak_fraction: float = 0.0
    tp_scaling_exponent: float = 0.0
    decode_tp_scaling_exponent: float = 0.0
    t_overhead_micros: float = 0.0
    prefill_overhead_micros: float = 0.0
    mixed_prefill_overhead_micros: float = 0.0
    all_reduce_latency: float = 0.0
    per_layer_overhead: float = 0.0  # accepted, unused by v1 (§9 D17)
    # Added terms (0 = off, the reference's behaviour). See the README section "Calibrating" for the evidence.
    request_overhead_micros: float = 0.0  # per request, API server (HTTP, tokenizing, first-token streaming): v1, v2
    all_reduce_bw_gbs: float = 0.0  # v1: TP all-reduce traffic at this bus bandwidth (GB/s); 0: latency only
    decode_kv_bw_eff: float = 0.0  # v1: share of BwPeakTBs the decode attention reads the KV cache at; 0: BwEffConstant
    moe_experts: float = 0.0  # v1: 1 prices an MoE model's experts (weights touched, k experts' FLOPs); 0: dense
    gemm_eta: float = 0.0  # v2 (fitted kernels): share of BwPeakTBs a GEMM streams its operands at; 0: the model's
    flat_step_overhead: float = 0.0  # v1: 1 keeps TOverheadMicros flat in the batch size; 0: ROOFLINE.md §6's growth
    v2_overrides: tuple[tuple[str, float], ...] = ()  # ``rooflineV2`` keys (file spelling, value)
    memory_gb: float | None = None  # GPU memory; not validated (for a later KV-capacity derivation)
    link_bw_gbs: float | None = None  # ``linkBwGBs``: NVLink/PCIe bandwidth per direction, GB/s (roofline v2 only)
    fp8_tflops_peak: float | None = None  # ``fp8TFlopsPeak``: dense FP8 peak; 0: none (W8A16); None: 2 x TFlopsPeak
    efficiency_model: str = ""  # ``efficiencyModel``: the shipped efficiency model to use ("" : the entry's name)

    @property
    def fp8_peak_factor(self) -> float:
        """FP8 tensor peak / BF16 peak: 0 when the GPU has no FP8 tensor cores (FP8 weights run as W8A16)."""
        if self.fp8_tflops_peak is None:
            return 2.0
        return self.fp8_tflops_peak / self.tflops_peak if self.tflops_peak > 0 else 0.0

    def value(self, key: str) -> float:
        """The value of a file key, e.g. ``value("BwEffConstant")``."""
        return getattr(self, KEYS[key])

    def check_v1(self) -> None:
        """Raise ``InputError`` for the first key that would make a v1 step time infinite, NaN or negative."""
        self._require(V1_POSITIVE, _positive, "a positive number")
        self._require(V1_FINITE, math.isfinite, "a finite number")
        self._require(V1_NON_NEGATIVE, _non_negative, "a finite number >= 0")
        self.check_added_terms()
        self.check_physical((*V1_POSITIVE, *V1_FINITE, *V1_NON_NEGATIVE))

    def check_physical(self, keys: tuple[str, ...]) -> None:
        """Each of ``keys`` within ``PHYSICAL``; ``memoryGB`` within ``MEMORY_GB`` when given."""
        for key in keys:
            lo, hi, what = PHYSICAL[key]
            v = self.value(key)
            if not lo <= v <= hi:
                raise InputError(f"hardware config {self.name}: {key} must be between {lo:g} and {hi:g} ({what}), "
                                 f"got {format_value(v)}")
        if self.memory_gb is not None and not MEMORY_GB[0] <= self.memory_gb <= MEMORY_GB[1]:
            raise InputError(f"hardware config {self.name}: memoryGB must be between {MEMORY_GB[0]:g} and "
                             f"{MEMORY_GB[1]:g}, got {format_value(self.memory_gb)}")

    def _require(self, keys, ok, what: str) -> None:
        for key in keys:
            v = self.value(key)
            if not ok(v):
                raise InputError(f"hardware config {self.name}: {key} must be {what}, got {format_value(v)}")

    def check_added_terms(self) -> None:
        """The added terms: finite and >= 0; ``decodeKvBwEff`` at most 1; ``moeExperts`` 0 or 1."""
        self._require(("requestOverheadMicros", "allReduceBwGBs", "decodeKvBwEff", "moeExperts",
                       "flatStepOverhead"), _non_negative, "a finite number >= 0")
        if self.decode_kv_bw_eff > 1:
            raise InputError(f"hardware config {self.name}: decodeKvBwEff must be in (0, 1] (0: off), got "
                             f"{format_value(self.decode_kv_bw_eff)}")
        if self.moe_experts not in (0.0, 1.0):
            raise InputError(f"hardware config {self.name}: moeExperts must be 0 or 1, got "
                             f"{format_value(self.moe_experts)}")
        if self.flat_step_overhead not in (0.0, 1.0):
            raise InputError(f"hardware config {self.name}: flatStepOverhead must be 0 or 1, got "
                             f"{format_value(self.flat_step_overhead)}")

    def for_v2(self) -> "HardwareCalib":
        """This entry as roofline v2 reads it: the ``rooflineV2`` keys replace the entry's own."""
        if not self.v2_overrides:
            return self
        from dataclasses import replace

        return replace(self, v2_overrides=(), **{KEYS[k]: v for k, v in self.v2_overrides})

    def check_v2(self) -> None:
        """v2 divides only by the two peaks (ROOFLINE.md §1.2, last paragraph)."""
        self._require(V2_POSITIVE, _positive, "a positive number")
        self._require(V2_OVERRIDABLE, _non_negative, "a finite number >= 0")
        self.check_physical((*V2_POSITIVE, *V2_OVERRIDABLE))
        if self.gemm_eta > 1 or 0 < self.gemm_eta < GEMM_ETA_MIN:  # a share of 1e-300 is no GPU's
            raise InputError(f"hardware config {self.name}: gemmEta must be 0 (the efficiency model's) or from "
                             f"{GEMM_ETA_MIN:g} to 1, got {format_value(self.gemm_eta)}")

    def describe(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _positive(v: float) -> bool:
    return math.isfinite(v) and v > 0


def _non_negative(v: float) -> bool:
    return math.isfinite(v) and v >= 0


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def parse_entry(name: str, entry: Any, where: str) -> HardwareCalib:
    """Build a ``HardwareCalib`` from one decoded entry (not yet validated: call ``check_v1``/``check_v2``)."""
    if not isinstance(entry, dict):
        raise InputError(f"{where}: entry {name!r} must be a JSON object of calibration keys")
    values: dict[str, Any] = {}
    for key, raw in entry.items():  # later keys win, as with Go's decoder
        lower = key.lower()
        if lower == _MEMORY_KEY:
            values["memory_gb"] = _number(raw)
            if values["memory_gb"] is None and raw is not None:  # "eighty" is not a missing memoryGB
                raise InputError(f"{where}: {name}.memoryGB must be a number of GB, got {json.dumps(raw)[:60]}")
            continue
        if lower == _V2_KEY:
            values["v2_overrides"] = _v2_overrides(name, raw, where)
            continue
        if lower == _LINK_KEY:
            number = _number(raw)
            if number is None or not math.isfinite(number) or number < 0:
                raise InputError(f"{where}: {name}.linkBwGBs must be a finite number >= 0, got {json.dumps(raw)}")
            values["link_bw_gbs"] = number
            continue
        if lower == _FP8_KEY:
            number = _number(raw)
            if number is None or not math.isfinite(number) or not (number == 0 or 1.0 <= number <= 1e5):
                raise InputError(f"{where}: {name}.fp8TFlopsPeak must be 0 (no FP8 tensor cores) or a number of "
                                 f"TFLOP/s from 1 to 100,000, got {json.dumps(raw)[:60]}")
            values["fp8_tflops_peak"] = number
            continue
        if lower == _EFFICIENCY_KEY:
            if not isinstance(raw, str) or not raw.strip() or len(raw) > 64:
                raise InputError(f"{where}: {name}.efficiencyModel must name a shipped efficiency model (a GPU name "
                                 f"such as \"H100\"), got {json.dumps(raw)[:60]}")
            values["efficiency_model"] = raw.strip()
            continue
        known = _BY_LOWER.get(lower)
        if known is None:
            continue
        number = _number(raw)
        if number is None:
            raise InputError(f"{where}: {name}.{known[0]} must be a number, got {json.dumps(raw)}")
        values[known[1]] = number
    return HardwareCalib(name=name, **values)


def _v2_overrides(name: str, raw: Any, where: str) -> tuple[tuple[str, float], ...]:
    if not isinstance(raw, dict):
        raise InputError(f"{where}: {name}.rooflineV2 must be a JSON object of calibration keys")
    allowed = {k.lower(): k for k in V2_OVERRIDABLE}
    out: dict[str, float] = {}
    for key, value in raw.items():
        known = allowed.get(key.lower())
        if known is None:
            raise InputError(f"{where}: {name}.rooflineV2.{key} cannot be set for roofline v2 only (keys: "
                             f"{', '.join(V2_OVERRIDABLE)})")
        number = _number(value)
        if number is None or not math.isfinite(number) or number < 0:
            raise InputError(
                f"{where}: {name}.rooflineV2.{known} must be a finite number >= 0, got {json.dumps(value)}")
        out[known] = number
    return tuple(out.items())


def _parse_constant(token: str) -> float:
    # Python's json accepts NaN/Infinity; keep them so that validation names the key instead of a parse error.
    return float(token)


def load_hardware(path: Path | str, gpu: str) -> HardwareCalib:
    """The entry ``gpu`` of the ``--hardware-config`` file: exact name first, else a unique case-insensitive match."""
    path = Path(path)
    where = f"--hardware-config {path}"
    text = read_input_file(path, "--hardware-config", "a JSON file of GPU calibrations")
    try:
        raw = json.loads(text, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except (RecursionError, ValueError) as exc:  # nesting too deep; an integer of thousands of digits
        raise InputError(f"{where}: not a JSON file of GPU calibrations ({type(exc).__name__}: "
                         f"{'nesting too deep' if isinstance(exc, RecursionError) else str(exc)[:80]})") from None
    if not isinstance(raw, dict):
        raise InputError(f"{where}: must hold a JSON object mapping GPU names to calibrations")
    name = gpu if gpu in raw else None
    if name is None:
        folded = [k for k in raw if k.lower() == gpu.lower()]
        name = folded[0] if len(folded) == 1 else None
    if name is None:
        available = ", ".join(sorted(raw)) or "none"
        raise InputError(f"--hardware {gpu!r} is not in {where} (available: {available})")
    return parse_entry(name, raw[name], where)

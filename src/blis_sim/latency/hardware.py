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
}
_BY_LOWER = {key.lower(): (key, name) for key, name in KEYS.items()}
_MEMORY_KEY = "memorygb"
_LINK_KEY = "linkbwgbs"  # interconnect bandwidth per GPU and direction (GB/s); used by roofline v2's all-reduce

# What v1 divides by (reference order first: the five keys the reference itself checks), then the keys that only
# need to be finite, with the overheads also >= 0 so that a step time can never be negative.
V1_POSITIVE = (
    "TFlopsPeak", "BwPeakTBs", "BwEffConstant", "mfuPrefill", "mfuDecode",
    "mfuPrefillMultiplier", "mfuDecodeMultiplier", "prefillBwFactor", "decodeBwFactor", "vectorPeakFraction",
)
V1_FINITE = ("tpScalingExponent", "decodeTpScalingExponent")
V1_NON_NEGATIVE = ("TOverheadMicros", "prefillOverheadMicros", "mixedPrefillOverheadMicros", "allReduceLatency")
V2_POSITIVE = ("TFlopsPeak", "BwPeakTBs")


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
    memory_gb: float | None = None  # GPU memory; not validated (for a later KV-capacity derivation)
    link_bw_gbs: float | None = None  # ``linkBwGBs``: NVLink/PCIe bandwidth per direction, GB/s (roofline v2 only)

    def value(self, key: str) -> float:
        """The value of a file key, e.g. ``value("BwEffConstant")``."""
        return getattr(self, KEYS[key])

    def check_v1(self) -> None:
        """Raise ``InputError`` for the first key that would make a v1 step time infinite, NaN or negative."""
        for key in V1_POSITIVE:
            v = self.value(key)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"hardware config {self.name}: {key} must be a positive number, got {format_value(v)}")
        for key in V1_FINITE:
            v = self.value(key)
            if not math.isfinite(v):
                raise InputError(f"hardware config {self.name}: {key} must be a finite number, got {format_value(v)}")
        for key in V1_NON_NEGATIVE:
            v = self.value(key)
            if not (math.isfinite(v) and v >= 0):
                raise InputError(
                    f"hardware config {self.name}: {key} must be a finite number >= 0, got {format_value(v)}"
                )

    def check_v2(self) -> None:
        """v2 divides only by the two peaks (ROOFLINE.md §1.2, last paragraph)."""
        for key in V2_POSITIVE:
            v = self.value(key)
            if not (math.isfinite(v) and v > 0):
                raise InputError(f"hardware config {self.name}: {key} must be a positive number, got {format_value(v)}")

    def describe(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


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
            continue
        if lower == _LINK_KEY:
            number = _number(raw)
            if number is None or not math.isfinite(number) or number < 0:
                raise InputError(f"{where}: {name}.linkBwGBs must be a finite number >= 0, got {json.dumps(raw)}")
            values["link_bw_gbs"] = number
            continue
        known = _BY_LOWER.get(lower)
        if known is None:
            continue
        number = _number(raw)
        if number is None:
            raise InputError(f"{where}: {name}.{known[0]} must be a number, got {json.dumps(raw)}")
        values[known[1]] = number
    return HardwareCalib(name=name, **values)


def _parse_constant(token: str) -> float:
    # Python's json accepts NaN/Infinity; keep them so that validation names the key instead of a parse error.
    return float(token)


def load_hardware(path: Path | str, gpu: str) -> HardwareCalib:
    """The entry ``gpu`` of the ``--hardware-config`` file: exact name first, else a unique case-insensitive match."""
    path = Path(path)
    where = f"--hardware-config {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{where}: no such file (a JSON file of GPU calibrations is required)") from None
    except IsADirectoryError:
        raise InputError(f"{where}: is a directory (a JSON file of GPU calibrations is required)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: cannot be read ({exc})") from None
    try:
        raw = json.loads(text, parse_constant=_parse_constant)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
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

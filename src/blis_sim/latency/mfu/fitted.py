"""The shipped efficiency model: a few fitted parameters per kernel class that stand in for the measured tables.

``src/blis_sim/data/efficiency_<gpu>.json`` is written by ``scripts/fit_efficiency.py`` from the H100 tables; it
holds only the parameters below, their fit errors, and how far step times move against the full tables. Times are
per GPU and per layer; P is the GPU's dense BF16 peak (``TFlopsPeak``) times the dtype's peak factor, B its HBM peak
(``BwPeakTBs``), so the same efficiencies apply to any model dtype (bytes and FLOPs are the model's):

* GEMM (m x k x n):  t = t0 + (C^p + M^p)^(1/p),  C = 2mkn / (P·mu),  M = (mk·b_x + kn·b_W + mn·b_y) / (B·eta)
  (a smooth roofline: compute- and memory-bound ends plus a launch cost; fitted on the FP8 table)
* decode attention:  t = t0 + KV bytes read / (B·eta)   (bandwidth-bound, one launch per layer)
* prefill attention: t = t0 + F / (P·mu·S/(S + s_half)),  F = 2·H·dh·S² causal FLOPs of a sequence of S tokens
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from importlib import resources
from typing import Any

from ...errors import InputError
from .tables import GemmDtype

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class GemmParams:
    t0_us: float
    mu: float  # compute efficiency at the dtype's tensor peak
    eta: float  # bandwidth efficiency
    p: float  # smoothness of the roofline corner

    def seconds(self, m: float, k: float, n: float, dtype: GemmDtype, peak_flops: float, peak_bw: float) -> float:
        compute = 2.0 * m * k * n / (peak_flops * dtype.peak_factor * self.mu)
        memory = dtype.memory_bytes(m, k, n) / (peak_bw * self.eta)
        p = self.p
        return self.t0_us * 1e-6 + (compute ** p + memory ** p) ** (1.0 / p)


@dataclass(frozen=True)
class DecodeParams:
    t0_us: float
    eta: float


@dataclass(frozen=True)
class PrefillParams:
    t0_us: float
    mu: float
    s_half: float

    def mfu(self, seq_len: float) -> float:
        return self.mu * seq_len / (seq_len + self.s_half)


@dataclass(frozen=True)
class EfficiencyModel:
    gpu: str
    gemm: GemmParams
    decode: DecodeParams
    prefill: PrefillParams
    source: str  # file name, for describe()
    fit: dict  # the fit errors and step-level comparison, as written by the fit script
    transferred_from: str = ""  # the GPU whose fit this model was transferred from ("" = fitted on ``gpu`` itself)


def _params(raw: Any, section: str, cls, where: str):
    block = raw.get(section) if isinstance(raw, dict) else None
    if not isinstance(block, dict):
        raise InputError(f"{where}: section {section!r} is missing")
    values = {}
    for name in cls.__dataclass_fields__:
        v = block.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise InputError(f"{where}: {section}.{name} must be a finite number >= 0, got {v!r}")
        values[name] = float(v)
    for name in ("mu", "eta"):
        if name in values and not 0.0 < values[name] <= 1.0:
            raise InputError(f"{where}: {section}.{name} must lie in (0, 1], got {values[name]}")
    if "p" in values and values["p"] < 1.0:
        raise InputError(f"{where}: {section}.p must be >= 1, got {values['p']}")
    return cls(**values)


def parse_efficiency(raw: Any, where: str) -> EfficiencyModel:
    if not isinstance(raw, dict) or raw.get("schema_version") != SCHEMA_VERSION:
        raise InputError(f"{where}: not an efficiency model of schema_version {SCHEMA_VERSION}")
    return EfficiencyModel(
        gpu=str(raw.get("gpu", "")),
        gemm=_params(raw, "gemm", GemmParams, where),
        decode=_params(raw, "decode_attention", DecodeParams, where),
        prefill=_params(raw, "prefill_attention", PrefillParams, where),
        source=where,
        fit={k: raw[k] for k in ("fit_errors", "vs_tables") if k in raw},
        transferred_from=str((raw.get("transferred_from") or {}).get("gpu", ""))
        if isinstance(raw.get("transferred_from"), dict) else "",
    )


def packaged_efficiency_names() -> list[str]:
    """GPU names with a shipped efficiency model (from the file names ``efficiency_<gpu>.json``)."""
    data = resources.files("blis_sim") / "data"
    return sorted(p.name[len("efficiency_"):-len(".json")].upper()
                  for p in data.iterdir() if p.name.startswith("efficiency_") and p.name.endswith(".json"))


def load_packaged_efficiency(gpu: str) -> EfficiencyModel:
    """The shipped efficiency model of ``gpu`` (case-insensitive), or an ``InputError`` naming the ones there are."""
    name = f"efficiency_{gpu.lower()}.json"
    path = resources.files("blis_sim") / "data" / name
    if not path.is_file():
        available = ", ".join(packaged_efficiency_names()) or "none"
        raise InputError(
            f"--latency-model roofline-v2: no fitted efficiency model for GPU {gpu!r} (shipped: {available}); "
            f"measure tables with 'blis bench-mfu' and pass them with --bench-data-path"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"packaged {name}: not valid JSON ({exc.msg})") from None
    return parse_efficiency(raw, name)

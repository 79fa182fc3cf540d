"""Roofline v2: step time from per-kernel times, measured (``--bench-data-path``) or from the shipped fitted model.

This is the model ROOFLINE.md §9 recommends, not the reference's v2 (whose defects D1-D8 it fixes):

* one forward pass per step (D8): every GEMM of every layer runs once over all m = prefill + decode tokens of the
  step, with vLLM's fused shapes per GPU at TP t: QKV (D -> (H + 2·Hkv)·dh / t), O (H·dh / t -> D), gate/up
  (D -> 2F / t), down (F / t -> D), and lm_head (D -> V / t) over one row per scheduled request (vLLM V1 computes
  logits for the last token of every request). MoE layers (D11; ``moe_layers`` of them, the rest dense) run a router
  GEMM and one grouped expert GEMM per projection (vLLM's fused MoE kernel): with uniform routing of m·k assignments
  over E experts, E' = E·(1 − (1 − k/E)^m) experts are touched with m·k/E' rows each, priced as one GEMM of m·k/E'
  rows over the E' experts' weights side by side; a shared expert is a dense MLP. Weights are read at the stored
  precision (``quantization_config``), and FP8 weights run on the FP8 tensor peak;
* each GEMM is timed by the kernel source (a table lookup transferred to the model's dtype, or the fitted smooth
  roofline), so it is never faster than its bytes at peak bandwidth nor its FLOPs at peak compute;
* attention per layer: the decode part from the decode table at (number of decodes, mean context) — it depends on
  the decodes only through their count and their context sum (D3), so ``decode_step_time`` is exact — plus, per
  prefill chunk with p cached and n new tokens, its causal FLOPs 2·(H/t)·dh·n·(2p + n + 1) at the prefill MFU of
  the sequence length with the same FLOPs, sqrt(n·(2p + n + 1)) (D2; the real length for a whole prompt); one
  attention launch cost per layer and step (the decode part's, or the fitted prefill t0 when there are no decodes);
* elementwise traffic per token and layer (two fused residual+RMSNorm, rotary, KV-cache write, SiLU·mul) at
  82% of the HBM peak (D6);
* TP: two all-reduces per layer of m·D activations, each ``allReduceLatency`` plus its ring traffic
  2(t−1)/t·m·D·2 B over ``linkBwGBs`` (D9; latency only when the hardware entry has no link bandwidth);
* overheads as v1 (ROOFLINE.md §6: per step, per prefill request), except that the per-step term does not grow
  with the batch (``_overhead_s``), plus v1's per-request API-server time ``requestOverheadMicros`` (added to the
  queueing time); a hardware entry's
  ``rooflineV2`` object holds the overheads calibrated for v2 (``HardwareCalib.for_v2``), and its ``gemmEta`` (0 or
  missing: off) replaces the fitted GEMM model's bandwidth efficiency: the micro-benchmarks time each GEMM alone,
  while a served model streams its weights through CUDA-graphed kernels back to back;
  rounding half up to whole microseconds (D19).

An attention shape without a table is priced with the roofline v1 attention formula (one warning at construction).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from ..errors import InputError
from ..step import StepRecord
from .base import AlphaOverheads
from .hardware import HardwareCalib
from .hf_config import PARTS, ModelConfig
from .mfu.fitted import EfficiencyModel
from .mfu.lookup import DecodeLookup, GemmLookup, PiecewiseLinear, PrefillLookup
from .mfu.tables import GemmDtype, MFUDatabase, shape_key
from .roofline_v1 import KV_READ_DECODE, KV_READ_PREFILL

log = logging.getLogger("blis_sim")

ELEMENTWISE_BW_FRACTION = 0.82  # sustained share of the HBM peak for streaming kernels (ROOFLINE.md §9 D6)
ACT_BYTES = 2.0  # activations and all-reduce payloads stay BF16
GemmSeconds = Callable[[float, float, float, GemmDtype], float]  # (m, k, n, element sizes) -> seconds


# ---------------------------------------------------------------------------------------------------------------------
# Attention sources: per GPU and per layer, in seconds
# ---------------------------------------------------------------------------------------------------------------------


class _TableDecode:
    def __init__(self, lookup: DecodeLookup, scale: float, label: str) -> None:
        self.lookup, self.scale, self.label = lookup, scale * 1e-6, label

    def row(self, batch: int) -> PiecewiseLinear:
        return self.lookup.row(batch).scaled(self.scale)


class _TablePrefill:
    fixed_s = 0.0  # the table's MFU already includes the kernel's launch cost

    def __init__(self, lookup: PrefillLookup, heads_per_gpu: float, head_dim: int, peak_flops: float, label: str):
        self.lookup, self.label = lookup, label
        self.flops_per_s2 = 2.0 * heads_per_gpu * head_dim
        self.peak_flops = peak_flops

    def seconds(self, p: int, n: int) -> float:
        s2 = n * (2 * p + n + 1)
        return self.flops_per_s2 * s2 / (self.peak_flops * self.lookup.mfu_value(math.sqrt(s2)))


class _FittedDecode:
    def __init__(self, t0_s: float, seconds_per_context: float, label: str) -> None:
        self.t0_s, self.per_ctx, self.label = t0_s, seconds_per_context, label

    def row(self, batch: int) -> PiecewiseLinear:
        return PiecewiseLinear((0.0,), (self.t0_s,), (self.per_ctx * batch,), self.t0_s)


class _FittedPrefill:
    def __init__(self, eff: EfficiencyModel, heads_per_gpu: float, head_dim: int, peak_flops: float) -> None:
        self.params = eff.prefill
        self.fixed_s = eff.prefill.t0_us * 1e-6
        self.flops_per_s2 = 2.0 * heads_per_gpu * head_dim
        self.peak_flops = peak_flops
        self.label = f"fitted ({eff.source})"

    def seconds(self, p: int, n: int) -> float:
        s2 = n * (2 * p + n + 1)
        return self.flops_per_s2 * s2 / (self.peak_flops * self.params.mfu(math.sqrt(s2)))


class _V1Decode:
    """ROOFLINE.md §3 for the attention part only: max(FLOPs at the vector rate, KV read at the v1 bandwidth)."""

    def __init__(self, flops_per_ctx: float, bytes_per_ctx: float, vec_flops: float, bw: float) -> None:
        self.per_ctx = max(flops_per_ctx / vec_flops, bytes_per_ctx * KV_READ_DECODE / bw)
        self.label = "roofline-v1 formula (no table)"

    def row(self, batch: int) -> PiecewiseLinear:
        return PiecewiseLinear((0.0,), (0.0,), (self.per_ctx * batch,), 0.0)


class _V1Prefill:
    fixed_s = 0.0

    def __init__(self, flops_per_nc: float, bytes_per_ctx: float, vec_flops: float, bw: float) -> None:
        self.flops_per_nc, self.bytes_per_ctx, self.vec_flops, self.bw = flops_per_nc, bytes_per_ctx, vec_flops, bw
        self.label = "roofline-v1 formula (no table)"

    def seconds(self, p: int, n: int) -> float:
        compute = self.flops_per_nc * (n * p + n * (n - 1) / 2) / self.vec_flops
        memory = self.bytes_per_ctx * p * KV_READ_PREFILL / self.bw
        return compute if compute > memory else memory


# ---------------------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------------------


class RooflineV2(AlphaOverheads):
    """Roofline v2 for one (model, GPU, tp) and one kernel source; build it with ``from_tables`` or ``fitted``."""

    name = "roofline-v2"

    def __init__(self, model_cfg: ModelConfig, hw: HardwareCalib, tp: int, gemm_seconds: GemmSeconds,
                 prefill, decode, kernels: dict, alpha: Sequence[float] = (0.0, 0.0, 0.0)) -> None:
        self.model_cfg, self.hw, self.tp = model_cfg, hw, tp
        self.kernels = kernels  # describe() of the kernel source
        self._set_alpha(alpha, hw.request_overhead_micros)  # requestOverheadMicros: per-request API-server time
        self._gemm = gemm_seconds
        self.prefill_attention, self.decode_attention = prefill, decode
        s = _Shapes(model_cfg, tp, hw.fp8_peak_factor)
        self.shapes = s
        self._layers = s.layers
        bw = hw.bw_peak_tbs * 1e12
        self._elem_s_per_token = s.layers * s.elementwise_bytes / (bw * ELEMENTWISE_BW_FRACTION)
        self._ar_latency_s = 2 * s.layers * hw.all_reduce_latency * 1e-6 if tp > 1 else 0.0
        link = (hw.link_bw_gbs or 0.0) * 1e9
        self._ar_s_per_token = (2 * s.layers * s.hidden * ACT_BYTES * 2 * (tp - 1) / tp / link
                                if tp > 1 and link > 0 else 0.0)
        self._o_step, self._o_pre, self._o_mix = hw.t_overhead_micros, hw.prefill_overhead_micros, \
            hw.mixed_prefill_overhead_micros
        # Memo tables of quantities that depend on one integer only (a cache: results never depend on it).
        self._tokens_memo: dict[int, float] = {}
        self._logits_memo: dict[int, float] = {}
        self._decode_memo: dict[int, tuple[float, PiecewiseLinear]] = {}

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_tables(cls, model_cfg: ModelConfig, hw: HardwareCalib, tp: int, db: MFUDatabase,
                    alpha: Sequence[float] = (0.0, 0.0, 0.0)) -> "RooflineV2":
        s = _Shapes(model_cfg, tp, hw.fp8_peak_factor)
        if s.mla:
            raise InputError(f"--bench-data-path: the kernel tables have no multi-head latent attention of "
                             f"{model_cfg.source or 'the model'}; drop --bench-data-path to price it with the shipped "
                             "fitted kernel model")
        peak, bw = hw.tflops_peak * 1e12, hw.bw_peak_tbs * 1e12
        gemm = GemmLookup(db.gemm, peak, bw, monotone=True)
        gemm_seconds = gemm.seconds

        key = shape_key(s.heads, s.kv_heads, s.head_dim)
        where = f"--bench-data-path {db.root}"
        prefill = decode = None
        if key in db.prefill:
            prefill = _TablePrefill(PrefillLookup(db.prefill[key], peak), s.heads_per_gpu, s.head_dim, peak,
                                    f"table {db.prefill[key].source}")
            table = db.decode_table(key, tp, s.kv_bytes)
            scale = 1.0
            if table is None and tp > 1:
                table = db.decode_table(key, 1, s.kv_bytes)
                if table is not None:
                    scale = s.kv_heads_per_gpu / s.kv_heads
                    log.warning("roofline-v2: %s has no decode table %s-tp%d; using %s scaled by the KV heads per GPU "
                                "(x%g)", where, key, tp, table.source, scale)
            if table is not None:
                scale *= s.kv_bytes / table.kv_bytes
                decode = _TableDecode(DecodeLookup(table, monotone=True), scale, f"table {table.source}")
            else:
                log.warning("roofline-v2: %s has no decode table for shape %s; decode attention uses the roofline v1 "
                            "formula", where, key)
        else:
            nearest, dist = db.nearest_shape(s.heads, s.kv_heads, s.head_dim)
            log.warning(
                "roofline-v2: %s has no attention tables for shape %s (heads-kv_heads-head_dim) of %s (shapes: %s); "
                "attention is priced with the roofline v1 formula instead (the reference would silently borrow %s, "
                "distance %.1f)", where, key, model_cfg.source or "the model", ", ".join(db.shapes()), nearest, dist)
        if prefill is None or decode is None:
            v1p, v1d = _v1_attention(s, hw, key)
            prefill = prefill or v1p
            decode = decode or v1d
        _report_gemm_coverage(s, gemm, db)
        kernels = {"kernels": "tables", **db.describe()}
        return cls(model_cfg, hw, tp, gemm_seconds, prefill, decode, kernels, alpha)

    @classmethod
    def fitted(cls, model_cfg: ModelConfig, hw: HardwareCalib, tp: int, eff: EfficiencyModel,
               alpha: Sequence[float] = (0.0, 0.0, 0.0)) -> "RooflineV2":
        s = _Shapes(model_cfg, tp, hw.fp8_peak_factor)
        peak, bw = hw.tflops_peak * 1e12, hw.bw_peak_tbs * 1e12
        g = eff.gemm
        if hw.gemm_eta > 0:  # calibrated on served models (README "Calibrating"): replaces the micro-benchmark's eta
            g = replace(g, eta=hw.gemm_eta)

        def gemm_seconds(m: float, k: float, n: float, dtype: GemmDtype) -> float:
            return g.seconds(m, k, n, dtype, peak, bw)

        prefill = _FittedPrefill(eff, s.heads_per_gpu, s.head_dim, peak)
        per_ctx = s.decode_kv_bytes_per_ctx / (bw * eff.decode.eta)  # one layer, one token of context
        if s.decode_flops_per_ctx:  # MLA: compute-heavy decode, at the attention kernels' fitted compute efficiency
            per_ctx = max(per_ctx, s.decode_flops_per_ctx / (peak * eff.prefill.mu))
        decode = _FittedDecode(eff.decode.t0_us * 1e-6, per_ctx, f"fitted ({eff.source})")
        kernels = {"kernels": "fitted", "efficiency_model": eff.source, "fitted_on": eff.transferred_from or eff.gpu}
        if eff.transferred_from:  # a transferred model (docs/gpu-transfer.md): fitted on another GPU, moved by physics
            kernels["transferred_to"] = eff.gpu
        return cls(model_cfg, hw, tp, gemm_seconds, prefill, decode, kernels, alpha)

    # ---------------------------------------------------------------- the parts of a step, in seconds
    def tokens_time(self, m: int) -> float:
        """Everything that scales with the m tokens of the step: GEMMs of all layers, elementwise, TP all-reduce."""
        t = self._tokens_memo.get(m)
        if t is None:
            s = self.shapes
            gemm = self._gemm
            dt = s.dtypes
            attention = 0.0
            for _label, k, n in s.attn_gemms:
                attention += gemm(m, k, n, dt["attn"])
            t = self._layers * attention
            if s.layers > s.moe_layers:
                t += (s.layers - s.moe_layers) * sum(gemm(m, k, n, dt["dense_mlp"]) for _label, k, n in s.dense_mlp)
            if s.moe_layers:
                # vLLM's fused MoE runs the touched experts as one grouped kernel: priced as one GEMM over their
                # weights side by side, with the tokens routed to each expert as its rows.
                touched, rows = s.routing(m)
                f, de = s.expert_ffn_per_gpu, dt["experts"]
                moe = (gemm(m, s.hidden, s.num_experts, dt["router"]) + gemm(rows, s.hidden, 2 * f * touched, de)
                       + gemm(rows, f, s.hidden * touched, de))
                for _label, k, n in s.shared_mlp:
                    moe += gemm(m, k, n, dt["shared_expert"])
                t += s.moe_layers * moe
            t += self._elem_s_per_token * m + self._ar_latency_s + self._ar_s_per_token * m
            self._tokens_memo[m] = t
        return t

    def logits_time(self, num_requests: int) -> float:
        t = self._logits_memo.get(num_requests)
        if t is None:
            s = self.shapes
            t = self._gemm(num_requests, s.hidden, s.vocab_per_gpu, s.dtypes["lm_head"]) if s.vocab_per_gpu else 0.0
            self._logits_memo[num_requests] = t
        return t

    def _overhead_s(self, num_prefills: int, num_decodes: int) -> float:
        """Per-step overhead, plus per prefill request (ROOFLINE.md §6's terms). Unlike v1, the per-step term does not
        grow with the batch: vLLM V1 keeps a persistent batch (a step's input preparation touches only the requests
        that changed) and replays CUDA graphs, and with asynchronous scheduling the host work of the next step
        overlaps the current forward pass. §6's log2 growth (x2.7 at 64 decodes) made loaded decode steps 10-15%
        too slow against the shared measurements (docs/roofline-v2.md, "Per-step overhead")."""
        o_step = self._o_step
        o_req = 0.0
        if num_prefills:
            o_req = num_prefills * (self._o_mix if num_decodes else self._o_pre)
        return o_step / 1e6 + o_req / 1e6

    def _decode_parts(self, num_decodes: int) -> tuple[float, PiecewiseLinear]:
        """(time that depends on the decode count only, attention per layer as a function of mean context)."""
        parts = self._decode_memo.get(num_decodes)
        if parts is None:
            base = self.tokens_time(num_decodes) + self.logits_time(num_decodes) + self._overhead_s(0, num_decodes)
            parts = (base, self.decode_attention.row(num_decodes))
            self._decode_memo[num_decodes] = parts
        return parts

    # ---------------------------------------------------------------- LatencyModel
    def step_time(self, step: StepRecord) -> int:
        items = step.prefill_items
        num_decodes = step.num_decodes
        if not items:
            return self.decode_step_time(num_decodes, step.decode_context_sum)
        prefill = self.prefill_attention
        attn = 0.0
        for p, n in items:
            attn += prefill.seconds(p, n)
        if num_decodes:
            attn += self._decode_parts(num_decodes)[1](step.decode_context_sum / num_decodes)
        else:  # one varlen attention kernel per layer serves the whole step: its launch cost counts once
            attn += prefill.fixed_s
        m = step.num_prefill_tokens + num_decodes
        total = (self.tokens_time(m) + self.logits_time(len(items) + num_decodes) + self._layers * attn
                 + self._overhead_s(len(items), num_decodes))
        return math.floor(total * 1e6 + 0.5)

    def decode_step_time(self, num_decodes: int, context_sum: int) -> int:
        """``step_time`` of a decode-only step; a function of the decode count and the context sum only."""
        if not num_decodes:
            return math.floor(self._overhead_s(0, 0) * 1e6 + 0.5)  # an empty batch: round(Ostep), §6
        base, attention = self._decode_parts(num_decodes)
        return math.floor((base + self._layers * attention(context_sum / num_decodes)) * 1e6 + 0.5)

    def decode_step_times(self, num_decodes: int, context_sums: np.ndarray) -> np.ndarray:
        """``decode_step_time`` for an int64 array of context sums, with the same float64 operations in the same
        order, element by element, so every value is bit-identical to the scalar path (decode skip-ahead)."""
        if not num_decodes:
            return np.full(len(context_sums), self.decode_step_time(0, 0), dtype=np.int64)
        base, attention = self._decode_parts(num_decodes)
        total = base + self._layers * attention.many(context_sums / num_decodes)
        return np.floor(total * 1e6 + 0.5).astype(np.int64)

    def breakdown(self, step: StepRecord) -> list[tuple[str, float, str]]:
        """The step's time per kernel class, in microseconds, as ``step_time`` adds it up (not the hot path):
        (kernel, microseconds, what it is). The parts sum to ``step_time(step)`` before rounding."""
        s, gemm, dt = self.shapes, self._gemm, self.shapes.dtypes
        items, d = step.prefill_items, step.num_decodes
        m = step.num_prefill_tokens + d
        rows: list[tuple[str, float, str]] = []

        def add(name: str, seconds: float, what: str) -> None:
            rows.append((name, seconds * 1e6, what))

        def dtype_text(x: GemmDtype) -> str:
            return f"weights {x.weight_bytes:g} B, {'FP8' if x.peak_factor > 1 else 'BF16'} peak"

        for label, k, n in s.attn_gemms:
            add(f"attn.{label}", s.layers * gemm(m, k, n, dt["attn"]),
                f"{s.layers} layers x {m}x{k}x{n}, {dtype_text(dt['attn'])}")
        dense = s.layers - s.moe_layers
        if dense:
            for label, k, n in s.dense_mlp:
                add(f"mlp.{label}", dense * gemm(m, k, n, dt["dense_mlp"]),
                    f"{dense} dense layers x {m}x{k}x{n}, {dtype_text(dt['dense_mlp'])}")
        if s.moe_layers:
            touched, per = s.routing(m)
            f = s.expert_ffn_per_gpu
            add("moe.router", s.moe_layers * gemm(m, s.hidden, s.num_experts, dt["router"]),
                f"{s.moe_layers} layers x {m}x{s.hidden}x{s.num_experts}, {dtype_text(dt['router'])}")
            add("moe.experts_gate_up", s.moe_layers * gemm(per, s.hidden, 2 * f * touched, dt["experts"]),
                f"{s.moe_layers} layers; {touched:.2f} of {s.num_experts} experts touched by {m} tokens x top-"
                f"{s.top_k}, {per:.2f} rows each; {dtype_text(dt['experts'])}")
            add("moe.experts_down", s.moe_layers * gemm(per, f, s.hidden * touched, dt["experts"]),
                f"{s.moe_layers} layers, {dtype_text(dt['experts'])}")
            for label, k, n in s.shared_mlp:
                add(f"moe.{label}", s.moe_layers * gemm(m, k, n, dt["shared_expert"]),
                    f"{s.moe_layers} layers x {m}x{k}x{n}, {dtype_text(dt['shared_expert'])}")
        add("elementwise", self._elem_s_per_token * m, f"norms, rotary, KV write, SiLU: {m} tokens at "
            f"{ELEMENTWISE_BW_FRACTION:.0%} of the HBM peak")
        if self.tp > 1:
            add("tp.all_reduce", self._ar_latency_s + self._ar_s_per_token * m,
                f"2 per layer: latency + ring traffic of {m} tokens")
        add("lm_head", self.logits_time(len(items) + d), f"{len(items) + d} rows, {dtype_text(dt['lm_head'])}")
        attn = 0.0
        for p, n in items:
            attn += self.prefill_attention.seconds(p, n)
        if d:
            attn += self._decode_parts(d)[1](step.decode_context_sum / d)
        else:
            attn += self.prefill_attention.fixed_s
        add("attention", self._layers * attn, f"{len(items)} prefill chunk(s), {d} decodes (mean context "
            f"{step.decode_context_sum / d if d else 0:.0f})")
        add("overhead", self._overhead_s(len(items), d), "per step and per prefill request (host)")
        return rows

    def describe(self) -> dict:
        return {
            "kind": self.name,
            **self.kernels,
            "model_config": self.model_cfg.source,
            "hardware": self.hw.name,
            "tp": self.tp,
            "attention": {"prefill": self.prefill_attention.label, "decode": self.decode_attention.label},
            "alpha_coeffs": list(self.alpha),
        }


# ---------------------------------------------------------------------------------------------------------------------
# Shapes of one model at one TP degree
# ---------------------------------------------------------------------------------------------------------------------


class _Shapes:
    """Per-GPU GEMM shapes and per-token byte counts of a model at TP ``tp`` (vLLM's fused layers)."""

    def __init__(self, m: ModelConfig, tp: int, fp8_peak_factor: float = 2.0) -> None:
        if tp < 1:
            raise InputError(f"--tp must be an integer >= 1 in roofline mode, got {tp}")
        H, Hkv, D = m.num_heads, m.num_kv_heads, m.hidden_size
        where = m.source or "the model"
        if H % tp or (Hkv % tp and tp % Hkv):
            raise InputError(f"--tp {tp}: vLLM shards the {H} attention heads and {Hkv} KV heads of {where} evenly "
                             f"over the GPUs, so tp must divide {H} and divide or be a multiple of {Hkv}")
        self.layers = m.num_layers
        self.hidden = D
        self.heads, self.kv_heads = H, Hkv
        self.head_dim = m.head_dim or D // H  # ROOFLINE.md §9 D12
        self.heads_per_gpu = H // tp
        self.kv_heads_per_gpu = max(1, Hkv // tp)  # fewer KV heads than GPUs: each GPU holds a replica
        self.kv_bytes = m.bytes_per_param
        dh = self.head_dim
        # Element sizes per part of the model (ModelConfig.precision, from quantization_config and its ignore
        # lists): activations and KV in the model dtype (BF16 at least for outputs), weights as stored. A W8A8 FP8
        # part runs on the GPU's FP8 tensor peak with 1-byte activations; on a GPU without FP8 tensor cores
        # (fp8TFlopsPeak 0: Ampere) vLLM runs FP8 checkpoints weight-only (W8A16), so such a part reads 1-byte weights
        # and multiplies at the BF16 peak.
        act = m.bytes_per_param
        out_bytes = max(act, ACT_BYTES)
        fp8_model = "fp8" in m.dtype or "float8" in m.dtype  # an FP8 dtype checkpoint: everything FP8
        self.dtypes: dict[str, GemmDtype] = {}
        for part in PARTS:
            prec = m.precision(part)
            w8a8 = prec.fp8_compute or fp8_model
            if w8a8 and fp8_peak_factor > 0:
                self.dtypes[part] = GemmDtype(1.0, prec.weight_bytes, out_bytes, fp8_peak_factor)
            else:
                self.dtypes[part] = GemmDtype(act, prec.weight_bytes, out_bytes, 1.0)
        self.gemm_dtype = self.dtypes["attn"]
        qkv = (self.heads_per_gpu + 2 * self.kv_heads_per_gpu) * dh
        self.attn_gemms: list[tuple[str, int, int]] = [("qkv", D, qkv), ("o", self.heads_per_gpu * dh, D)]
        # decode attention per layer and token of context: KV bytes read, and FLOPs (0: bandwidth-bound, as the
        # fitted decode model measures ordinary heads)
        self.decode_kv_bytes_per_ctx = 2 * self.kv_heads_per_gpu * dh * self.kv_bytes
        self.decode_flops_per_ctx = 0.0
        self.mla = m.is_mla
        rope_dims = (self.heads_per_gpu + self.kv_heads_per_gpu) * dh  # rotary applies to q and k
        norm_extra = 0
        if m.is_mla:
            # DeepSeek's multi-head latent attention as vLLM runs it: the latent projections are replicated (one
            # fused q_a + kv_a GEMM when queries are compressed), the up-projections column-parallel, o_proj
            # row-parallel. Decode absorbs kv_b into the query and the output, so every head attends over the
            # shared latent of c + r values per token: the KV read is one latent per token (not per head), and the
            # FLOPs are 2·H/t·(c + r) for the scores plus 2·H/t·c for the values per token of context, which at 128
            # heads is close to the GPU's ridge point: priced as the larger of bytes and FLOPs. Prefill decompresses
            # the latents (kv_b over the step's tokens) and runs ordinary attention with q/k heads of n + r and
            # value heads of v, priced with the mean head width (n + r + v) / 2.
            c, r, nope, v, ql = m.kv_lora_rank, m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim, m.q_lora_rank
            hg = self.heads_per_gpu
            qk = nope + r
            if ql:
                gemms = [("q_kv_a", D, ql + c + r), ("q_b", ql, hg * qk)]
            else:
                gemms = [("q", D, hg * qk), ("kv_a", D, c + r)]
            self.attn_gemms = gemms + [("kv_b", c, hg * (nope + v)), ("o", hg * v, D)]
            self.head_dim = dh = (qk + v + 1) // 2
            self.kv_heads_per_gpu = 1
            self.decode_kv_bytes_per_ctx = (c + r) * self.kv_bytes
            self.decode_flops_per_ctx = 2.0 * hg * (c + r) + 2.0 * hg * c
            rope_dims = hg * r + r
            norm_extra = 2 * (ql + c)  # the q_a and kv_a RMSNorms (read + write)
        ffn_gpu = -(-m.dense_ffn_size // tp)
        self.dense_mlp: list[tuple[str, int, int]] = [("gate_up", D, 2 * ffn_gpu), ("down", ffn_gpu, D)]
        self.num_experts = m.num_experts
        self.moe_layers = getattr(m, "moe_layers", m.num_layers) if m.num_experts else 0
        self.top_k = max(1, min(m.num_experts_per_tok or 1, max(1, m.num_experts)))
        self.expert_ffn_per_gpu = -(-m.expert_ffn_size // tp) if m.num_experts else 0
        shared = -(-m.shared_expert_intermediate_size // tp) if m.num_experts else 0
        self.shared_mlp: list[tuple[str, int, int]] = (
            [("shared_gate_up", D, 2 * shared), ("shared_down", shared, D)] if shared else [])
        self.vocab_per_gpu = -(-m.vocab_size // tp) if m.vocab_size > 0 else 0
        # Elementwise traffic per token and layer, averaged over dense and MoE layers: 2 x fused residual-add +
        # RMSNorm (read x and residual, write both), rotary on q and k (read + write), KV-cache write, SiLU·mul
        # (read 2F, write F) of the dense MLP or of the k experts a token visits (+ the shared expert).
        b = max(act, ACT_BYTES)
        dense_layers = self.layers - self.moe_layers
        mlp = (dense_layers * 3 * ffn_gpu + self.moe_layers * 3 * (self.top_k * self.expert_ffn_per_gpu + shared)) \
            / self.layers
        kv_write = self.decode_kv_bytes_per_ctx  # one token's KV (or latent) in one layer
        self.elementwise_bytes = (8 * D + norm_extra + 2 * rope_dims + mlp) * b + kv_write

    def routing(self, m: float) -> tuple[float, float]:
        """(experts touched, tokens per touched expert) for m tokens under uniform top-k routing."""
        e, k = self.num_experts, self.top_k
        touched = e * (1.0 - (1.0 - k / e) ** m)
        return touched, m * k / touched

    def gemm_list(self) -> list[tuple[str, int, int]]:
        """Every distinct GEMM shape (the grouped expert GEMMs with all experts touched), for coverage reports."""
        out = list(self.attn_gemms)
        if self.layers > self.moe_layers:
            out += self.dense_mlp
        if self.moe_layers:
            e, f = self.num_experts, self.expert_ffn_per_gpu
            out += [("router", self.hidden, e), ("experts_gate_up", self.hidden, 2 * f * e),
                    ("experts_down", f, self.hidden * e), *self.shared_mlp]
        if self.vocab_per_gpu:
            out.append(("lm_head", self.hidden, self.vocab_per_gpu))
        return out


def _v1_attention(s: _Shapes, hw: HardwareCalib, key: str) -> tuple[_V1Prefill, _V1Decode]:
    for file_key, value in (("vectorPeakFraction", hw.vector_peak_fraction), ("BwEffConstant", hw.bw_eff_constant)):
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"hardware config {hw.name}: {file_key} must be a positive number (roofline v2 prices "
                             f"attention of shape {key}, which has no table, with the roofline v1 formula), "
                             f"got {value:g}")
    Hg, dh = s.heads_per_gpu, s.head_dim
    vec = hw.tflops_peak * 1e12 * hw.vector_peak_fraction
    bw = hw.bw_peak_tbs * 1e12 * hw.bw_eff_constant
    flops_per_nc = 2 * Hg * dh + 4 * Hg + 2 * Hg * dh  # QK^T, softmax, AV per (new token x context token)
    bytes_per_ctx = 2 * s.kv_heads_per_gpu * dh * s.kv_bytes
    return _V1Prefill(flops_per_nc, bytes_per_ctx, vec, bw), _V1Decode(flops_per_nc, bytes_per_ctx, vec, bw)


def _report_gemm_coverage(s: _Shapes, gemm: GemmLookup, db: MFUDatabase) -> None:
    """Say once which of the model's GEMM shapes the table does not cover (ROOFLINE.md §9 D4: flag, never silent)."""
    t = db.gemm
    outside = [(label, k, n, gemm.shape_outside(k, n)) for label, k, n in s.gemm_list()]
    outside = [o for o in outside if o[3] > 1.0]
    if not outside:
        return
    text = ", ".join(f"{label} {k}x{n} ({f:.1f}x)" for label, k, n, f in outside)
    level = logging.WARNING if any(f > 2.0 for *_, f in outside) else logging.INFO
    log.log(level, "roofline-v2: GEMM shapes outside %s (k %g-%g, n %g-%g): %s; their times are the nearest "
            "measured shape's, scaled by the ratio of roofline times", t.source, t.ks[0], t.ks[-1], t.ns[0], t.ns[-1],
            text)

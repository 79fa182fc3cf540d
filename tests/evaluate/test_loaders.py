"""Each ground-truth format read into the format-independent Experiment, from the small fixtures next to this file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from blis_sim.errors import InputError
from blis_sim.evaluate.discover import load_ground_truth
from blis_sim.evaluate.experiment import (
    BURST,
    CONSTANT,
    ITL_BLIS,
    ITL_DECODE,
    ITL_POOLED,
    POISSON,
    SEQUENTIAL,
    SharedPrefixPool,
    SyntheticLengths,
)
from blis_sim.evaluate.fields import GroundTruthError
from blis_sim.evaluate.vllm_log import read_server_files

FIXTURES = Path(__file__).parent / "fixtures"
TREE = FIXTURES / "tree"


def _one(path: Path):
    gt = load_ground_truth(path)
    assert len(gt.experiments) == 1, gt
    return gt.experiments[0], gt.failed


def test_combined_json():
    exp, failed = _one(TREE / "combined.json")
    assert failed == []
    assert (exp.name, exp.format, exp.model, exp.tp, exp.gpu, exp.vllm_version) == (
        "tiny-combined", "combined", "meta-llama/Llama-2-7b-hf", 1, None, None)
    s = exp.server
    assert (s.max_model_len, s.max_num_batched_tokens, s.max_num_seqs, s.num_gpu_blocks) == (1024, 512, 32, 2001)
    assert s.num_gpu_blocks_source.endswith("experiments[0].total_kv_blocks")
    assert isinstance(exp.lengths, SyntheticLengths) and exp.lengths.prefix_tokens == 16
    assert exp.lengths.output.max == 32 and exp.workload == "chat"
    assert [(p.load.pattern, p.load.rate, p.load.num_requests, p.itl_definition) for p in exp.points] == [
        (CONSTANT, 2.0, 12, ITL_BLIS), (CONSTANT, 6.0, 12, ITL_BLIS)]
    assert exp.points[0].measured["e2e_p90_ms"] == 230.0


def test_guidellm_sweep_folder():
    exp, failed = _one(TREE / "guidellm-sweep")
    assert failed == []
    assert (exp.format, exp.model, exp.tp, exp.vllm_version, exp.metric_side) == (
        "guidellm", "meta-llama/Llama-2-7b-hf", 1, "0.11.0", "server")
    assert exp.server.num_gpu_blocks == 1001 and exp.server.num_gpu_blocks_source.endswith("vllm.log: num_gpu_blocks")
    assert exp.workload == "summarize" and exp.lengths.prefix_tokens == 32
    sync, burst, const = exp.points
    assert (sync.load.pattern, sync.load.num_requests, sync.excluded) == (SEQUENTIAL, 10, "")
    assert burst.load.pattern == BURST and "saturation" in burst.excluded
    assert (const.load.pattern, const.load.rate) == (CONSTANT, 5.0)
    assert const.itl_definition == ITL_DECODE and const.measured["itl_mean_ms"] == 8.0  # the decode-only ITL
    assert any("heuristic" in n for n in const.notes)


def test_guidellm_report_with_server_log():
    exp, failed = _one(TREE / "guidellm-report-run")
    assert (exp.model, exp.vllm_version, exp.metric_side) == ("meta-llama/Llama-2-7b-hf", "0.12.0", "client")
    assert (exp.server.max_num_batched_tokens, exp.server.max_num_seqs, exp.server.max_model_len) == (2048, 32, 1024)
    assert exp.server.num_gpu_blocks is None  # not logged: derived later
    assert exp.lengths.prompt.mean == 256 and exp.lengths.output.max == 48
    sync, poisson = exp.points
    assert sync.load.pattern == SEQUENTIAL and poisson.load == poisson.load.__class__(POISSON, 3.0, 8)
    assert poisson.measured["e2e_mean_ms"] == pytest.approx(270.0)  # seconds in the report
    assert poisson.measured["throughput_tokens_per_s"] == 95.0
    assert len(failed) == 1 and failed[0].point == "2 concurrent"
    assert "benchmarks.json: benchmarks[2].config.strategy.type_: 'concurrent'" in failed[0].reason


def test_inference_perf_folder_read_from_its_own_files():
    """A run that is not one of the shipped ones: Poisson load, no exp-config.yaml (settings from vllm.log), TP 2."""
    exp, failed = _one(TREE / "ip-poisson-chat")
    assert failed == []
    assert (exp.format, exp.model, exp.tp, exp.vllm_version, exp.metric_side) == (
        "inference-perf", "Qwen/Qwen2.5-7B-Instruct", 2, "0.15.1", "client")
    s = exp.server
    assert (s.max_num_batched_tokens, s.max_num_seqs, s.max_model_len) == (1024, 64, 2048)
    assert s.gpu_memory_utilization == 0.85
    assert s.num_gpu_blocks == 1_000_000 // 16  # from "GPU KV cache size: N tokens"
    assert exp.lengths == SharedPrefixPool(4, 3, 64, 96, 24)
    assert exp.workload == "chat"
    s0, s1 = exp.points
    assert (s0.stage, s0.load.pattern, s0.load.rate, s0.load.num_requests) == (0, POISSON, 4.0, 20)
    assert s0.load.duration_s == 5.0
    assert s0.itl_definition == ITL_POOLED
    assert s0.measured["ttft_mean_ms"] == pytest.approx(30.0)
    assert s0.measured["itl_mean_ms"] == pytest.approx((190.0 - 30.0) / (24 - 1))  # fixed output_len (ignore_eos)
    assert s0.measured["throughput_tokens_per_s"] == pytest.approx(4.0 * 24)
    assert s1.excluded.startswith("overloaded: 24 of 80")


def test_sync_table_rows_and_zero_measurement():
    gt = load_ground_truth(TREE / "sync-means.csv")
    (exp,) = gt.experiments
    assert (exp.name, exp.model, exp.tp, exp.gpu) == ("sync-llama7b-chat", "llama-2-7b-hf", 1, "H100")
    assert exp.workload == "chat"
    (p,) = exp.points
    assert (p.load.pattern, p.load.num_requests, p.itl_definition) == (SEQUENTIAL, 8, ITL_DECODE)
    assert p.measured == {"ttft_mean_ms": 14.0, "itl_mean_ms": 6.5, "e2e_mean_ms": 150.0}
    assert exp.server.max_model_len == 32 + 128 + 40  # the longest request the workload can make
    (bad,) = gt.failed
    assert bad.experiment == "sync-zero-ttft"
    assert bad.reason.endswith('sync-means.csv: line 3: gt_ttft_mean_ms: must be a finite number > 0 to compare '
                               'against, got "0"')


def test_tree_reads_every_format_and_keeps_failures():
    gt = load_ground_truth(TREE)
    assert [e.name for e in gt.experiments] == [
        "guidellm-report-run", "guidellm-sweep", "ip-poisson-chat", "sync-llama7b-chat", "tiny-combined"]
    assert sorted(f.experiment for f in gt.failed) == ["guidellm-report-run", "sync-zero-ttft"]


def test_duplicates_and_index(tmp_path):
    """The same experiment in a folder and in a combined file is read once (from the folder); INDEX.json fills in
    the GPU and vLLM version a folder does not state."""
    shutil.copytree(TREE / "ip-poisson-chat", tmp_path / "ip-poisson-chat")
    (tmp_path / "ip-poisson-chat" / "vllm.log").write_text(
        "x INFO vllm.entrypoints.utils: non-default args: {'tensor_parallel_size': 2, 'max_model_len': 2048, "
        "'max_num_batched_tokens': 1024, 'max_num_seqs': 64}\n")
    combined = json.loads((TREE / "combined.json").read_text())
    combined["experiments"][0]["experiment_name"] = "ip-poisson-chat"
    (tmp_path / "all.json").write_text(json.dumps(combined))
    (tmp_path / "INDEX.json").write_text(json.dumps({"datasets": [
        {"name": "ip-poisson-chat", "gpu": "NVIDIA H200 141GB", "vllm_version": "0.11.2 (V1)",
         "total_kv_blocks": 999}]}))
    gt = load_ground_truth(tmp_path)
    (exp,) = gt.experiments
    assert exp.format == "inference-perf"
    assert (exp.gpu, exp.vllm_version, exp.server.num_gpu_blocks) == ("NVIDIA H200 141GB", "0.11.2", 999)
    assert exp.version_source.endswith("INDEX.json: datasets[0].vllm_version")
    assert len(gt.duplicates) == 1 and "all.json" in gt.duplicates[0]


def test_malformed_experiment_is_a_failure_naming_file_and_field():
    gt = load_ground_truth(FIXTURES / "bad" / "missing-model.json")
    assert gt.experiments == []
    assert gt.failed[0].reason.endswith("missing-model.json: experiments[0].model: missing")


def test_unreadable_file_is_an_error_naming_the_file():
    with pytest.raises(GroundTruthError, match=r"truncated.json: not valid JSON \(line 1 column 29"):
        load_ground_truth(FIXTURES / "bad" / "truncated.json")


def test_missing_path_and_unrecognised_file(tmp_path):
    with pytest.raises(InputError, match="no such file or folder"):
        load_ground_truth(tmp_path / "nope")
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(GroundTruthError, match=r"x.json: not a recognised ground-truth file"):
        load_ground_truth(tmp_path / "x.json")
    with pytest.raises(InputError, match="no ground-truth experiment found"):
        load_ground_truth(tmp_path)


def test_inference_perf_missing_setting_names_the_field(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(TREE / "ip-poisson-chat", folder)
    (folder / "vllm.log").unlink()
    with pytest.raises(GroundTruthError, match=r"run/exp-config.yaml: max_model_len: missing"):
        load_ground_truth(folder)


def test_vllm_log_last_start_wins(tmp_path):
    (tmp_path / "vllm.log").write_text(
        "a INFO x: vLLM API server version 0.10.1\n"
        "a INFO x: non-default args: {'max_model_len': 8192, 'max_num_seqs': 16}\n"
        "a INFO x: vllm cache_config_info with initialization after num_gpu_blocks is: 100\n"
        "b INFO x: vLLM API server version 0.11.0\n"
        "b INFO x: non-default args: {'max_model_len': 4096, 'max_num_seqs': 8, 'gpu_memory_utilization': 0.8}\n"
        "b INFO x: Initializing a V1 LLM engine (v0.11.0) with config: dtype=torch.bfloat16, max_seq_len=4096, "
        "tensor_parallel_size=4\n"
        "b INFO x: vllm cache_config_info with initialization after num_gpu_blocks is: 7438\n")
    log = read_server_files(tmp_path)
    assert (log.version, log.arg_int("max_model_len"), log.arg_int("max_num_seqs")) == ("0.11.0", 4096, 8)
    assert (log.tensor_parallel_size, log.dtype, log.max_model_len) == (4, "bfloat16", 4096)
    assert (log.num_gpu_blocks, log.gpu_memory_utilization) == (7438, 0.8)


def test_inference_perf_random_data_and_constant_load(tmp_path):
    from blis_sim.evaluate.runner import Options, evaluate

    folder = tmp_path / "ip-random-code"
    shutil.copytree(TREE / "ip-poisson-chat", folder)
    profile = (folder / "profile.yaml").read_text()
    profile = profile.replace("""  type: shared_prefix
  shared_prefix:
    num_groups: 4
    num_prompts_per_group: 3
    system_prompt_len: 64
    question_len: 96
    output_len: 24
""", """  type: random
  input_distribution: {min: 32, max: 256, mean: 128, std: 40}
  output_distribution: {min: 8, max: 32, mean: 16.4, std: 4}
""").replace("type: poisson", "type: constant")
    (folder / "profile.yaml").write_text(profile)
    exp, failed = _one(folder)
    assert failed == [] and exp.workload == "code"
    assert exp.lengths == SyntheticLengths(0, exp.lengths.prompt, exp.lengths.output)
    assert (exp.lengths.prompt.mean, exp.lengths.prompt.stdev, exp.lengths.output.mean) == (128, 40, 16)
    assert [p.load.pattern for p in exp.points] == [CONSTANT, CONSTANT]
    ev = evaluate(folder, Options(jobs=1, requests_per_point=5))
    assert [p.simulated_requests for p in ev.points] == [5, 5] and ev.report["overall"]["points"] == 1

"""Skip-ahead prints byte-identical output to single stepping on small versions of the benchmark scenarios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from blis_sim import SimulationConfig, run

ROOT = Path(__file__).resolve().parents[2]
ROOFLINE = {
    "model": "meta-llama/llama-3.1-8b-instruct",
    "model_config_folder": str(ROOT / "model_configs" / "llama-3.1-8b-instruct"),
    "hardware_config": str(ROOT / "hardware_config.json"),
    "hardware": "H100",
    "tp": 1,
}

SCENARIOS = {
    "a-chatbot-8rps": {"latency": ROOFLINE, "workload": {"workload": "chatbot", "rate": 8, "num_requests": 300}},
    "b-overloaded-120rps": {"latency": ROOFLINE, "workload": {"workload": "chatbot", "rate": 120, "num_requests": 300}},
    "c-4-instances": {"latency": ROOFLINE, "workload": {"workload": "chatbot", "rate": 32, "num_requests": 400},
                      "cluster": {"num_instances": 4}},
    "e-blackbox-default": {"latency": {"model": "meta-llama/llama-3.1-8b-instruct"}},
    "kv-pressure-preemption": {
        "latency": ROOFLINE,
        "workload": {"workload": "chatbot", "rate": 20, "num_requests": 200, "arrival_process": "poisson"},
        "engine": {"total_kv_blocks": 300, "max_num_scheduled_tokens": 512, "long_prefill_token_threshold": 128},
    },
    "shared-prefix-horizon": {
        "latency": ROOFLINE,
        "workload": {"prefix_tokens": 200, "prompt_tokens": 100, "prompt_tokens_stdev": 30, "prompt_tokens_min": 10,
                     "prompt_tokens_max": 300, "output_tokens": 150, "output_tokens_stdev": 50,
                     "output_tokens_min": 1, "output_tokens_max": 400, "rate": 12, "num_requests": 300},
        "engine": {"total_kv_blocks": 400, "block_size_in_tokens": 8},
        "cluster": {"num_instances": 2, "admission_latency": 300, "routing_latency": 200},
        "horizon": 15_000_000,
    },
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_skip_ahead_is_byte_identical(name):
    spec = SCENARIOS[name]
    fast = run(SimulationConfig(**spec, skip_ahead=True))
    single = run(SimulationConfig(**spec, skip_ahead=False))
    assert fast.stdout_text() == single.stdout_text()
    assert json.dumps(fast.to_file_dict()) == json.dumps(single.to_file_dict())
    assert fast.cluster["completed_requests"] > 0

"""Source selection (ENGINE.md §10.1) and the one-line description."""

import logging

import pytest

from blis_sim.config.models import WorkloadConfig
from blis_sim.errors import InputError
from blis_sim.workload import build_requests, describe_workload, generate, preset_params

UNLIMITED = 2**63 - 1
PRESETS = {
    "chatbot": {
        "prefix_tokens": 0,
        "prompt_tokens": 256, "prompt_tokens_stdev": 100, "prompt_tokens_min": 2, "prompt_tokens_max": 800,
        "output_tokens": 256, "output_tokens_stdev": 100, "output_tokens_min": 1, "output_tokens_max": 1024,
    },
}  # fmt: skip


def shape(reqs):
    return [(r.id, r.arrival, r.num_prompt_tokens, r.num_output_tokens, r.tokens.tolist()) for r in reqs]


def test_distribution_is_the_default():
    cfg = WorkloadConfig(num_requests=5, prompt_tokens=10, prompt_tokens_min=1, prompt_tokens_max=20,
                         output_tokens=3, output_tokens_min=1, output_tokens_max=5)  # fmt: skip
    reqs = list(build_requests(cfg, 1, UNLIMITED, {}))
    assert len(reqs) == 5
    assert all(1 <= r.num_prompt_tokens <= 20 and 1 <= r.num_output_tokens <= 5 for r in reqs)


def test_preset_ignores_length_flags_but_uses_rate_count_and_process():
    cfg = WorkloadConfig(workload="chatbot", num_requests=6, rate=4.0, arrival_process="poisson", prompt_tokens=3,
                         prompt_tokens_min=3, prompt_tokens_max=3, prefix_tokens=9)  # fmt: skip
    expected = generate(preset_params("chatbot", PRESETS["chatbot"], 4.0, 6, "poisson"), 3, UNLIMITED)
    assert shape(build_requests(cfg, 3, UNLIMITED, PRESETS)) == shape(expected)


def test_missing_preset_is_an_input_error():
    with pytest.raises(InputError, match="--workload multidoc: the defaults file has no 'multidoc'"):
        build_requests(WorkloadConfig(workload="multidoc"), 1, UNLIMITED, PRESETS)


def test_workload_spec_is_read_by_spec_workload(tmp_path):
    cfg = WorkloadConfig(workload_spec=tmp_path / "w.yaml")
    with pytest.raises(InputError, match="^--workload-spec: a workload spec is read by workload.spec_workload"):
        build_requests(cfg, 1, UNLIMITED, PRESETS)


def test_traces_num_requests_only_when_explicit(tmp_path, caplog):
    path = tmp_path / "t.csv"
    path.write_text("arrival_time,request_id,model,prompt_tokens,output_tokens\n" + "".join(f'{i},x,m,"[{i}]","[1]"\n' for i in range(150)))
    cfg = WorkloadConfig(workload="traces", workload_traces_filepath=path)
    assert len(list(build_requests(cfg, 1, UNLIMITED, {}))) == 150
    cfg = WorkloadConfig(workload="traces", workload_traces_filepath=path, num_requests=100)
    assert len(list(build_requests(cfg, 1, UNLIMITED, {}))) == 100
    cfg = WorkloadConfig(workload="traces", workload_traces_filepath=path, arrival_process="poisson")
    with caplog.at_level(logging.WARNING, logger="blis_sim"):
        assert len(list(build_requests(cfg, 1, 10_000_000, {}))) == 11
    assert any("--arrival-process is ignored" in r.getMessage() for r in caplog.records)


def test_describe_workload_is_one_line(tmp_path):
    for cfg in (
        WorkloadConfig(),
        WorkloadConfig(workload="chatbot"),
        WorkloadConfig(workload="traces", workload_traces_filepath=tmp_path / "t.csv", num_requests=3),
        WorkloadConfig(workload_spec=tmp_path / "w.yaml"),
    ):
        text = describe_workload(cfg)
        assert text.startswith("workload: ") and "\n" not in text

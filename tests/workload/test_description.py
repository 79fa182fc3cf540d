"""Workload descriptions -> requests: every arrival pattern, stages, the shared-prefix pool, and the
``--workload distribution`` flags, which go through the same description and builder."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from blis_sim.config.models import WorkloadConfig
from blis_sim.errors import InputError
from blis_sim.workload import (
    ClampedNormal,
    CsvTrace,
    GaussianLengths,
    PromptPool,
    Segment,
    Stage,
    WorkloadDescription,
    build,
    build_requests,
    generate,
    params_from_config,
    preset_params,
    workload_description,
)
from blis_sim.workload.description import SEQUENTIAL_GAP_US

UNLIMITED = 2**63 - 1
L0 = GaussianLengths(0, ClampedNormal(40, 20, 2, 120), ClampedNormal(12, 6, 1, 40))  # independent tokens
L8 = GaussianLengths(8, ClampedNormal(32, 8, 16, 48), ClampedNormal(6, 2, 2, 10))  # a shared prefix
CHATBOT = {
    "prefix_tokens": 0,
    "prompt_tokens": 256, "prompt_tokens_stdev": 100, "prompt_tokens_min": 2, "prompt_tokens_max": 800,
    "output_tokens": 256, "output_tokens_stdev": 100, "output_tokens_min": 1, "output_tokens_max": 1024,
}  # fmt: skip


def shape(reqs):
    return [(r.id, r.index, r.arrival, r.num_prompt_tokens, r.num_output_tokens, r.tokens.tolist()) for r in reqs]


def built(description, seed=7, horizon=UNLIMITED):
    requests, segments = build(description, seed, horizon)
    return list(requests), segments


def one_stage(lengths, arrival, n=30, rate=None):
    return WorkloadDescription(lengths, (Stage(arrival, n, rate),))


def digest(reqs):
    h = hashlib.sha256()
    for r in reqs:
        h.update(f"{r.id}|{r.index}|{r.arrival}|{r.num_prompt_tokens}|{r.num_output_tokens}|".encode())
        h.update(np.ascontiguousarray(r.tokens, dtype=np.int64).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("cfg", [
    WorkloadConfig(num_requests=40, rate=5.0),
    WorkloadConfig(num_requests=40, rate=5.0, arrival_process="poisson", prefix_tokens=12),
    WorkloadConfig(num_requests=700, rate=50.0, arrival_process="poisson", prompt_tokens=30, prompt_tokens_min=1,
                   prompt_tokens_max=60, output_tokens=4, output_tokens_stdev=0, output_tokens_min=4,
                   output_tokens_max=4),
])  # fmt: skip
@pytest.mark.parametrize("horizon", [UNLIMITED, 3_000_000])
def test_distribution_flags_through_the_description_equal_the_generator(cfg, horizon):
    """``--workload distribution`` goes flags -> description -> builder: the same requests as the generator run on
    the flags' parameters (ids, arrivals, lengths, token ids, deferred keys), and one segment."""
    via_description = list(build_requests(cfg, 3, horizon, {}))
    direct = list(generate(params_from_config(cfg), 3, horizon))
    assert shape(via_description) == shape(direct)
    assert [r.keys_deferred for r in via_description] == [r.keys_deferred for r in direct]
    desc = workload_description(cfg, {})
    assert desc.stages == (Stage(cfg.arrival_process, cfg.num_requests, cfg.rate),)
    assert desc.segments() == (Segment(0, cfg.num_requests),)


def test_preset_through_the_description_equals_the_generator():
    cfg = WorkloadConfig(workload="chatbot", num_requests=12, rate=4.0, arrival_process="poisson")
    expected = generate(preset_params("chatbot", CHATBOT, 4.0, 12, "poisson"), 5, UNLIMITED)
    assert shape(build_requests(cfg, 5, UNLIMITED, {"chatbot": CHATBOT})) == shape(expected)


def test_sequential_requests_are_a_gap_apart_and_draw_nothing():
    const, _ = built(one_stage(L8, "constant", rate=4.0))
    seq, segments = built(one_stage(L8, "sequential"))
    assert [r.arrival for r in seq] == [i * SEQUENTIAL_GAP_US for i in range(30)]
    assert segments == (Segment(0, 30),)
    # no arrival draw: the lengths and tokens are those of the same workload at any other draw-free pattern
    assert [(r.num_prompt_tokens, r.tokens.tolist()) for r in seq] == \
           [(r.num_prompt_tokens, r.tokens.tolist()) for r in const]


def test_burst_requests_all_arrive_at_zero():
    const, _ = built(one_stage(L0, "constant", rate=4.0))
    burst, _ = built(one_stage(L0, "burst"))
    assert {r.arrival for r in burst} == {0}
    assert [r.id for r in burst] == [f"request_{i}" for i in range(30)]
    assert [r.tokens.tolist() for r in burst] == [r.tokens.tolist() for r in const]


def test_stages_run_back_to_back_with_their_own_seeds():
    stages = (Stage("constant", 3, 2.0, seed_offset=0), Stage("constant", 2, 4.0, seed_offset=1),
              Stage("burst", 2, None, seed_offset=2), Stage("sequential", 2, None, seed_offset=3))
    reqs, segments = built(WorkloadDescription(L8, stages), seed=5)
    assert segments == (Segment(0, 3), Segment(3, 5), Segment(5, 7), Segment(7, 9))
    # stage 1 starts after 3 requests at 2 rps, stage 2 (a burst) after 2 more at 4 rps, and takes no time
    assert [r.arrival for r in reqs] == [0, 500000, 1000000, 1500000, 1750000, 2000000, 2000000, 2000000,
                                         2000000 + SEQUENTIAL_GAP_US]
    assert [r.index for r in reqs] == list(range(9))
    # each stage is the generator's output for seed + its offset, shifted to its start
    alone, _ = built(WorkloadDescription(L8, (Stage("constant", 2, 4.0),)), seed=6)
    assert [r.tokens.tolist() for r in reqs[3:5]] == [r.tokens.tolist() for r in alone]
    assert not np.array_equal(reqs[0].tokens[:8], reqs[3].tokens[:8])  # every stage has its own prefix


def test_a_horizon_cuts_every_stage_and_keeps_the_indices():
    stages = (Stage("constant", 4, 2.0), Stage("constant", 4, 2.0, seed_offset=1))
    reqs, segments = built(WorkloadDescription(L0, stages), horizon=2_500_000)
    assert [(r.index, r.arrival) for r in reqs] == [(0, 0), (1, 500000), (2, 1000000), (3, 1500000),
                                                    (4, 2000000), (5, 2500000)]
    assert segments == (Segment(0, 4), Segment(4, 8))


def test_shared_prefix_pool():
    pool = PromptPool(num_groups=2, prompts_per_group=3, system_prompt_len=10, question_len=5, output_len=4)
    stages = (Stage("constant", 8, 10.0), Stage("constant", 4, 20.0))
    reqs, segments = built(WorkloadDescription(pool, stages), seed=3)
    assert segments == (Segment(0, 8), Segment(8, 12))
    assert [r.arrival for r in reqs[6:10]] == [600000, 700000, 800000, 850000]  # stage 1 starts after 8 / 10 rps
    assert all(r.num_prompt_tokens == 15 and r.num_output_tokens == 4 for r in reqs)
    assert np.array_equal(reqs[0].tokens[:15], reqs[6].tokens[:15])  # request k reuses prompt k mod 6
    prompts = {tuple(r.tokens[:15]) for r in reqs[:6]}
    assert len(prompts) == 6 and len({p[:10] for p in prompts}) == 2  # two system prompts, six questions
    poisson, _ = built(WorkloadDescription(pool, (Stage("poisson", 8, 10.0), Stage("poisson", 4, 20.0))), seed=3)
    assert [r.tokens.tolist() for r in poisson] == [r.tokens.tolist() for r in reqs]  # arrivals draw apart
    assert poisson[0].arrival == 0 and poisson[8].arrival >= 800000


# Digests of (id, index, arrival, lengths, token ids) of each workload as ``blis evaluate`` built it before the
# builders moved into ``workload`` (evaluate/workloads.py). A change here means generated workloads changed.
GOLDEN = {
    "single/L0/constant": "08d1aba227590d55", "single/L0/poisson": "428922caa67cfda7",
    "single/L0/sequential": "8e91326056522e3b", "single/L0/burst": "3c8d6365622e825f",
    "single/L8/constant": "00061f019f6a2894", "single/L8/poisson": "734872edcb29ab94",
    "single/L8/sequential": "3cbc68a716964940", "single/L8/burst": "bcf0e648f58b8809",
    "staged/L0": "1bf26fc8902300d3", "staged/L8": "3eb05377f33ff1ba",
    "pool/constant": "ab4c0c64f6dc9b42", "pool/poisson": "513b073b0393497c",
}  # fmt: skip


def test_workloads_are_those_evaluate_built_before():
    got = {}
    for name, lengths in (("L0", L0), ("L8", L8)):
        for arrival, rate in (("constant", 4.0), ("poisson", 4.0), ("sequential", None), ("burst", None)):
            got[f"single/{name}/{arrival}"] = digest(built(one_stage(lengths, arrival, 30, rate))[0])
        stages = (Stage("constant", 25, 2.0, 0), Stage("poisson", 30, 5.0, 1), Stage("constant", 10, 3.0, 2))
        got[f"staged/{name}"] = digest(built(WorkloadDescription(lengths, stages), seed=11)[0])
    pool = PromptPool(3, 4, 20, 7, 5)
    for arrival in ("constant", "poisson"):
        stages = (Stage(arrival, 30, 10.0), Stage(arrival, 20, 25.0))
        got[f"pool/{arrival}"] = digest(built(WorkloadDescription(pool, stages), seed=3)[0])
    assert got == GOLDEN


def test_trace_source(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("arrival_time,request_id,model,prompt_tokens,output_tokens\n" + "".join(f'{i},x,m,"[{i}]","[1]"\n' for i in range(5)))
    reqs, segments = built(WorkloadDescription(CsvTrace(path, 3)))
    assert len(reqs) == 3 and segments == (Segment(0, 3),)
    assert workload_description(WorkloadConfig(workload="traces", workload_traces_filepath=path), {}) == \
           WorkloadDescription(CsvTrace(path, None))


@pytest.mark.parametrize("description, message", [
    (WorkloadDescription(L0), "at least one stage"),
    (one_stage(L0, "constant"), r"stage 0: constant arrivals need a rate"),
    (one_stage(L0, "gamma", rate=1.0), r"stage 0: arrival must be one of constant, poisson, sequential, burst"),
    (WorkloadDescription(L0, (Stage("burst", 1), Stage("burst", -1))), "stage 1: num_requests must be"),
    (WorkloadDescription(PromptPool(0, 3, 1, 1, 1), (Stage("burst", 1),)), "at least one group"),
    (WorkloadDescription(PromptPool(1, 1, 1, 1, 1), (Stage("burst", 1, seed_offset=1),)), "seed_offset must be 0"),
    (WorkloadDescription(CsvTrace("t.csv"), (Stage("burst", 1),)), "takes no stages"),
])  # fmt: skip
def test_bad_descriptions_raise_input_errors_before_any_request(description, message):
    with pytest.raises(InputError, match=message):
        build(description, 1, UNLIMITED)


def test_descriptions_are_picklable():
    """Descriptions travel to worker processes inside evaluation plans."""
    for desc in (WorkloadDescription(L8, (Stage("poisson", 3, 2.0), Stage("sequential", 2, seed_offset=1))),
                 WorkloadDescription(PromptPool(1, 2, 3, 4, 5), (Stage("constant", 3, 1.0),))):
        assert pickle.loads(pickle.dumps(desc)) == desc


def test_a_description_says_itself_in_one_line():
    from blis_sim.workload.description import PromptPool, Stage, WorkloadDescription

    w = WorkloadDescription(PromptPool(2, 3, 100, 20, 10), (Stage("poisson", 50, 4.0), Stage("burst", 30)))
    text = w.describe()
    assert "\n" not in text and "num_groups=2" in text
    assert text.endswith("stages: 50 poisson at 4 req/s, 30 burst")

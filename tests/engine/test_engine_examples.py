"""ENGINE.md §18.3 at the engine level: preemption with a tiny KV cache, step by step."""

import pytest
from harness import LinearLatency, make_request, simulate

from blis_sim.config import EngineConfig


@pytest.mark.parametrize("skip_ahead", [False, True])
def test_preemption_example_18_3(skip_ahead):
    a = make_request(0, 0, [1, 2, 3, 4], range(11, 17))
    b = make_request(1, 0, [5, 6, 7, 8], range(21, 27))
    engine = EngineConfig(block_size_in_tokens=4, total_kv_blocks=4)
    sim = simulate([a, b], engine, LinearLatency(b0=1000, b1=10, b2=1), skip_ahead=skip_ahead)
    inst = sim.instances[0]
    boundaries = [(0, 1080), (1080, 2082), (2082, 3084), (3084, 4086), (4086, 5088), (5088, 6089), (6089, 7139)]
    if skip_ahead:  # nothing arrives after t=0: the fast path takes every boundary inside the first call
        boundaries = []
    assert [(s, e) for s, e, _ in inst.steps] == boundaries
    assert inst.stats.num_steps == 7
    assert a.ttft == 1080 and b.ttft == 1080
    assert a.e2e == 6089 and b.e2e == 7139
    assert inst.scheduler.num_preemptions == 1
    assert inst.scheduler.num_self_preemptions == 0
    assert inst.stats.total_output_tokens == 12
    assert sorted(inst.stats.itl.counts.items()) == [(1001, 1), (1002, 8), (2051, 1)]
    # cache hit: B's prompt block survived as a cached free block -> 4 hit tokens of 17 queried
    assert (inst.kv.hit_tokens, inst.kv.query_tokens) == (4, 17)
    assert inst.kv.num_used == 0
    # free queue order at the end, as the worked example states: [0, 2, 3, 1]
    assert inst.kv.pool.free_queue() == [0, 2, 3, 1]

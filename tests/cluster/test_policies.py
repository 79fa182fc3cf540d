"""Admission and routing decisions on hand-built snapshots (ENGINE.md §11.1, §11.2): arithmetic, ties, state."""

from __future__ import annotations

import numpy as np
import pytest

from blis_sim.cluster.policies import (
    ADMISSION_POLICIES,
    ROUTING_POLICIES,
    AlwaysBusiest,
    LeastLoaded,
    PrefixAffinity,
    RejectAll,
    RoundRobin,
    RouterPrefixIndex,
    TokenBucket,
    Weighted,
    prompt_block_keys,
)
from blis_sim.config import SimulationConfig
from blis_sim.config.names import ADMISSION_POLICIES as ADMISSION_NAMES
from blis_sim.config.names import DEFAULT_SCORERS
from blis_sim.config.names import ROUTING_POLICIES as ROUTING_NAMES
from blis_sim.engine.snapshot import Snapshot
from blis_sim.request import Request


def snap(queue=0, batch=0, pending=0, kv=0.0, free=100):
    return Snapshot(queue_depth=queue, batch_size=batch, pending_requests=pending, kv_utilization=kv,
                    free_kv_blocks=free)


def req(prompt, index=0, output=(1,)):
    tokens = np.asarray(list(prompt) + list(output), dtype=np.int64)
    return Request(index, 0, tokens, len(prompt))


def test_every_name_has_a_policy():
    assert set(ADMISSION_POLICIES) == set(ADMISSION_NAMES)
    assert set(ROUTING_POLICIES) == set(ROUTING_NAMES)
    cfg = SimulationConfig(latency={"model": "m"}, cluster={"num_instances": 3})
    for make in (*ADMISSION_POLICIES.values(), *ROUTING_POLICIES.values()):
        assert make(cfg.cluster, cfg.engine) is not None


# ---------------------------------------------------------------------------------------------- admission
def test_reject_all():
    assert RejectAll().admit(req([1]), None, 0) == (False, "reject-all")


def test_token_bucket_arithmetic():
    bucket = TokenBucket(capacity=100.0, refill_rate=1000.0)  # 1000 tokens per second = 1 per 1000 ticks
    assert bucket.admit(req(range(60)), None, 0) == (True, "")  # full at t=0: 100 -> 40
    assert bucket.admit(req(range(50)), None, 0) == (False, "insufficient tokens")  # 40 < 50, nothing refilled
    assert bucket.tokens == 40.0
    assert bucket.admit(req(range(50)), None, 10_000) == (True, "")  # +10 tokens after 10 ms: exactly 50 >= 50
    assert bucket.tokens == 0.0 and bucket.last == 10_000
    assert bucket.admit(req(range(1)), None, 10_500) == (False, "insufficient tokens")  # 0.5 < 1
    assert bucket.tokens == 0.5
    assert bucket.admit(req(range(1)), None, 10_000_000) == (True, "")  # refill capped at the capacity
    assert bucket.tokens == 99.0


def test_token_bucket_never_moves_its_clock_back():
    bucket = TokenBucket(capacity=10.0, refill_rate=1e6)
    bucket.admit(req(range(10)), None, 50)
    assert bucket.admit(req(range(1)), None, 50) == (False, "insufficient tokens")  # same tick: no refill
    assert bucket.last == 50


# ---------------------------------------------------------------------------------------------- routing
def test_round_robin_split_and_prediction():
    rr = RoundRobin(4)
    targets = [rr.choose(req([1]), None) for _ in range(10)]
    assert targets == [0, 1, 2, 3, 0, 1, 2, 3, 0, 1]
    assert [rr.upcoming_index(i) for i in range(4)] == [2, 3, 0, 1]  # the next request goes to instance 2


def test_least_loaded_and_always_busiest_first_wins_ties():
    snaps = [snap(queue=2, batch=1), snap(batch=2, pending=1), snap(queue=1), snap(pending=1)]  # loads 3, 3, 1, 1
    assert LeastLoaded().choose(req([1]), snaps) == 2
    assert AlwaysBusiest().choose(req([1]), snaps) == 0
    assert LeastLoaded().choose(req([1]), [snap(), snap()]) == 0


def test_prefix_affinity_sticks_to_the_first_target_of_a_prefix():
    router = PrefixAffinity(block_size=4)
    a = req(list(range(8)) + [50])  # two full blocks and a partial one
    same_blocks = req(list(range(8)) + [60, 61])  # the same full blocks, another tail: the same key
    other = req(list(range(100, 108)))
    short = req([1, 2, 3])  # shorter than a block: keyed by the whole prompt
    assert router.choose(a, [snap(batch=5), snap(batch=1), snap(batch=3)]) == 1  # new key: least loaded
    assert router.choose(same_blocks, [snap(batch=5), snap(batch=9), snap(batch=0)]) == 1  # stays
    assert router.choose(other, [snap(batch=5), snap(batch=9), snap(batch=0)]) == 2
    assert router.choose(short, [snap(), snap(), snap()]) == 0
    assert router.choose(req([1, 2, 3]), [snap(batch=1), snap(), snap()]) == 0
    assert router.choose(req([1, 2, 4]), [snap(batch=1), snap(), snap()]) == 1  # another short prompt


def test_router_prefix_index_is_an_lru_of_block_keys():
    index = RouterPrefixIndex(capacity=3)
    index.record([1, 2, 3])
    assert index.matched([1, 2, 3, 4]) == 3 and index.matched([2, 3]) == 2 and index.matched([9, 1]) == 0
    index.record([1])  # 1 becomes the most recent: 2 is now the least recent
    index.record([4])  # full: evicts 2
    assert list(index.keys) == [3, 1, 4]
    assert index.matched([1, 2]) == 1


def test_weighted_queue_depth_scorer():
    w = Weighted((("queue-depth", 1.0),), 3, 4)
    # loads 4, 0, 2: scores (4-4)/4 = 0, 1, 0.5
    assert w.choose(req([1]), [snap(queue=4), snap(), snap(batch=2)]) == 1
    assert w.scores() == [0.0, 1.0, 0.5]
    assert w.choose(req([1]), [snap(batch=3)] * 3) == 0  # all equal: every score 1.0, first wins
    assert w.scores() == [1.0, 1.0, 1.0]


def test_weighted_kv_utilization_and_load_balance_scorers_and_normalised_weights():
    w = Weighted((("kv-utilization", 3.0), ("load-balance", 1.0)), 2, 4)
    snaps = [snap(kv=0.2, batch=1), snap(kv=0.6, batch=0)]
    target = w.choose(req([1]), snaps)
    assert w.scores() == pytest.approx([0.75 * 0.8 + 0.25 * 0.5, 0.75 * 0.4 + 0.25 * 1.0])
    assert target == 0


def test_weighted_scores_are_clamped():
    w = Weighted((("kv-utilization", 1.0),), 2, 4)
    w.choose(req([1]), [snap(kv=1.5), snap(kv=-0.5)])  # out-of-range signals: clamped to [0, 1]
    assert w.scores() == [0.0, 1.0]


def test_weighted_prefix_affinity_scorer_uses_and_updates_the_router_index():
    w = Weighted((("prefix-affinity", 1.0),), 2, 4)
    first = req(list(range(12)))  # three full blocks
    assert w.choose(first, [snap(), snap()]) == 0  # nothing indexed: all scores 0, first wins
    assert w.indexes[0].matched(prompt_block_keys(first, 4)) == 3  # recorded on the chosen instance
    follow = req(list(range(8)) + [99, 98, 97, 96])  # shares two of its three full blocks
    assert w.choose(follow, [snap(), snap()]) == 0
    assert w.scores() == pytest.approx([2 / 3, 0.0])
    assert w.choose(req([5, 6]), [snap(), snap()]) == 0  # no full block: score 0 everywhere
    assert w.scores() == [0.0, 0.0]


def test_weighted_default_profile():
    cfg = SimulationConfig(latency={"model": "m"}, cluster={"num_instances": 2, "routing_policy": "weighted"})
    w = ROUTING_POLICIES["weighted"](cfg.cluster, cfg.engine)
    assert w.names == [n for n, _ in DEFAULT_SCORERS] == ["prefix-affinity", "queue-depth", "kv-utilization"]
    assert w.weights == pytest.approx([3 / 7, 2 / 7, 2 / 7])
    cfg = SimulationConfig(latency={"model": "m"}, cluster={"routing_policy": "weighted",
                                                            "routing_scorers": "load-balance:1,queue-depth:3"})
    w = ROUTING_POLICIES["weighted"](cfg.cluster, cfg.engine)
    assert w.names == ["load-balance", "queue-depth"] and w.weights == [0.25, 0.75]

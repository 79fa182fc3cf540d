"""Stage timing of inference-perf's shared-prefix workloads (``shared_prefix.pool_requests``): arrivals in time order,
stages timed as inference-perf's load generator times them (load_timer.py, load_generator.run_stage)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from blis_sim.evaluate.experiment import Load, SharedPrefixPool, to_workload_description
from blis_sim.workload.builder import build
from blis_sim.workload.description import PromptPool, Stage
from blis_sim.workload.shared_prefix import STAGE_GAP_US, pool_requests, stage_times

POOL = PromptPool(2, 3, 8, 4, 2)


def _arrivals(stages, seed=7, horizon=2**62):
    return [r.arrival for r in pool_requests(POOL, stages, seed, horizon)]


def _sorted(times) -> bool:
    return all(a <= b for a, b in itertools.pairwise(times))


def test_constant_stage_spreads_int_rate_x_duration_gaps_over_the_duration():
    # 5 rps x 2 s: int(10) gaps rescaled to sum to 2 s; the last request at exactly the stage's end
    times, nxt = stage_times(Stage("constant", 10, 5.0, duration=2.0), 0.0, np.random.default_rng(1))
    assert len(times) == 10 and _sorted(list(times))
    assert times[0] > 0.0
    assert times[-1] == pytest.approx(2e6)
    assert nxt == pytest.approx(2e6 + STAGE_GAP_US)
    gaps = np.diff(np.concatenate(([0.0], times)))
    assert gaps.std() > 0.1 * gaps.mean()  # randomly spaced, not every 200 ms


def test_capped_constant_stage_is_shortened_in_proportion():
    # 5 rps x 600 s sends 3000; 40 simulated: spread over 40 / 3000 of 600 s = 8 s, the last at exactly 8 s
    capped, nxt = stage_times(Stage("constant", 40, 5.0, duration=600.0), 1e6, np.random.default_rng(3))
    assert len(capped) == 40 and _sorted(list(capped))
    assert capped[-1] == pytest.approx(1e6 + 8e6)
    assert nxt == capped[-1] + STAGE_GAP_US


def test_poisson_stage_fills_one_second_windows():
    rate, n = 10.0, 200
    times, nxt = stage_times(Stage("poisson", n, rate, duration=20.0), 1e6, np.random.default_rng(5))
    assert len(times) == n and _sorted(list(times)) and times[0] > 1e6
    # every window that has requests ends with one at its end (the rescaled gaps sum to one second)
    offsets_s = (times - 1e6) / 1e6
    ends = [t for t in offsets_s if abs(t - round(t)) < 1e-9]
    windows = {math.ceil(t - 1e-9) for t in offsets_s}
    assert len(ends) >= len(windows) - 1  # all but possibly the last (cut) window
    # about rate requests a second: 200 requests take about 20 s
    assert 15.0 < offsets_s[-1] < 25.0
    assert nxt == times[-1] + STAGE_GAP_US


def test_poisson_stages_are_in_time_order_and_each_sends_all_its_requests():
    # the colleague's case: 100 poisson requests at 10 rps, then 200 at 20 rps
    stages = (Stage("poisson", 100, 10.0, duration=10.0), Stage("poisson", 200, 20.0, duration=10.0))
    for seed in range(20):
        reqs = pool_requests(POOL, stages, seed, 2**62)
        assert [r.index for r in reqs] == list(range(300))
        t = [r.arrival for r in reqs]
        assert _sorted(t)
        # stage 1 starts STAGE_GAP_US (2 s) after stage 0's last send, its first send later still
        assert t[100] > t[99] + STAGE_GAP_US - 1


def test_stages_without_duration_stay_in_time_order():
    # the simple timing (no duration): a poisson stage that runs over pushes the next stage back
    stages = (Stage("poisson", 100, 10.0), Stage("poisson", 200, 20.0))
    for seed in range(20):
        t = _arrivals(stages, seed)
        assert _sorted(t)
    # and the constant stages keep their even spacing and start times exactly
    assert _arrivals((Stage("constant", 3, 4.0), Stage("constant", 2, 2.0))) == [0, 250_000, 500_000, 750_000,
                                                                                   1_250_000]


def test_deterministic_and_horizon_keeps_the_others():
    stages = (Stage("constant", 50, 5.0, duration=10.0), Stage("poisson", 50, 10.0, duration=5.0))
    a, b = _arrivals(stages), _arrivals(stages)
    assert a == b
    cut = _arrivals(stages, horizon=a[60])
    assert cut == a[:len(cut)] and len(cut) >= 61


def test_evaluate_inference_perf_stages_carry_their_duration_and_come_sorted():
    lengths = SharedPrefixPool(2, 3, 8, 4, 2)
    loads = ((Load("constant", 5.0, 3000, 600.0), 40), (Load("poisson", 10.0, 6000, 600.0), 40))
    wd = to_workload_description(lengths, loads, staged=True)
    assert [s.duration for s in wd.stages] == [600.0, 600.0]
    reqs = list(build(wd, 0, 2**62)[0])
    assert len(reqs) == 80 and _sorted([r.arrival for r in reqs])
    # stage 0: 40 of its 3000 sends, spread over 40 / 3000 of 600 s = 8 s; then the gap, then stage 1
    assert reqs[39].arrival == 8_000_000 or reqs[39].arrival == 7_999_999
    assert reqs[40].arrival > reqs[39].arrival + STAGE_GAP_US - 1

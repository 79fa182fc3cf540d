"""The kept-up test of a simulated server (metrics/saturation.py): synthetic delays, the request sample of
``blis run``, and real simulations below, near and above the server's capacity."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from blis_sim import api
from blis_sim.config import SimulationConfig
from blis_sim.metrics.saturation import (
    GROWTH_RATE,
    MIN_REQUESTS,
    RequestSample,
    duration,
    growth_from_records,
    queue_growth,
    run_warning,
)
from blis_sim.workload.description import Segment

NAN = math.nan
ROOT = Path(__file__).resolve().parents[2]


def _stage(n: int, rate: float, delay, ttft_extra: float = 0.02):
    """``n`` arrivals at ``rate`` per second; ``delay(t)`` the queueing delay of an arrival at ``t``."""
    arrival = [i / rate for i in range(n)]
    queue = [delay(t) for t in arrival]
    ttft = [q + ttft_extra for q in queue]
    finish = [a + q + 1.0 for a, q in zip(arrival, queue)]
    return arrival, queue, ttft, finish


def test_a_flat_queue_kept_up_whatever_its_level():
    for level in (0.0, 0.005, 2.0):  # a stable queue may be long: it is its growth that says the server fell behind
        v = queue_growth(*_stage(300, 10.0, lambda t, lv=level: lv + 0.003 * math.sin(t)))
        assert v.kept_up is True, v
        assert v.reason.startswith("no queue growth")


def test_a_growing_queue_did_not_keep_up():
    # offered 1.5x what is completed: the delay grows at 0.5 s per s
    v = queue_growth(*_stage(300, 10.0, lambda t: 0.5 * t))
    assert v.kept_up is False
    assert v.growth_rate == pytest.approx(0.5, rel=0.05)
    assert "queueing delay grew from" in v.reason and "(first third of arrivals)" in v.reason
    assert v.offered_rps == pytest.approx(10.0)


def test_growth_below_the_rate_or_the_floor_is_noise():
    # a slope under GROWTH_RATE over a long stage: a stable queue near capacity wanders that much
    slow = queue_growth(*_stage(600, 10.0, lambda t: 0.5 * GROWTH_RATE * t))
    assert slow.kept_up is True
    # a steep slope over a stage of a few milliseconds: less than one prefill, within a step's noise
    short = queue_growth(*_stage(30, 3000.0, lambda t: 2.0 * t, ttft_extra=0.03))
    assert short.growth_rate > GROWTH_RATE and short.kept_up is True


def test_too_few_requests_or_no_span_cannot_be_judged():
    few = queue_growth(*_stage(MIN_REQUESTS - 1, 10.0, lambda t: t))
    assert few.kept_up is None and "too few" in few.reason
    burst = queue_growth([0.0] * 20, [0.1 * i for i in range(20)], [0.2] * 20, [1.0] * 20)
    assert burst.kept_up is None and "same instant" in burst.reason


def test_requests_never_scheduled_wait_longer_than_any_that_was():
    arrival, queue, ttft, finish = _stage(60, 10.0, lambda t: 0.01)
    for i in range(40, 60):  # the last third never scheduled before the run stopped (a horizon)
        queue[i] = ttft[i] = finish[i] = NAN
    v = queue_growth(arrival, queue, ttft, finish)
    assert v.kept_up is False and v.delay_last_s == math.inf and v.waiting_at_last_arrival == 20
    assert v.to_dict()["delay_last_s"] is None  # infinite: no JSON value
    assert "(first third of arrivals) until most of the last third were still unscheduled when the run ended" in v.reason
    for i in range(40, 58):  # a server that keeps up leaves only its last arrivals waiting at a cut
        queue[i], ttft[i], finish[i] = 0.01, 0.03, arrival[i] + 1.0
    assert queue_growth(arrival, queue, ttft, finish).kept_up is True


def test_records_out_of_order_are_sorted_and_unscheduled_ones_recognised():
    arrival, queue, ttft, finish = _stage(90, 10.0, lambda t: 0.4 * t)
    records = [{"arrived_at": a, "scheduling_delay_ms": q * 1000, "ttft_ms": t * 1000, "e2e_ms": (f - a) * 1000}
               for a, q, t, f in zip(arrival, queue, ttft, finish)]
    shuffled, ordered = growth_from_records(reversed(records)), queue_growth(arrival, queue, ttft, finish)
    assert shuffled.kept_up is ordered.kept_up is False
    for key in ("delay_first_s", "delay_last_s", "span_s", "floor_s", "offered_rps", "achieved_rps"):
        assert getattr(shuffled, key) == pytest.approx(getattr(ordered, key)), key
    records[-1] = {"arrived_at": arrival[-1], "scheduling_delay_ms": 0.0, "ttft_ms": 0.0, "e2e_ms": 0.0}
    assert growth_from_records(records).waiting_at_last_arrival >= 1


def test_durations_read_well():
    assert [duration(x) for x in (0.0, 3.1e-6, 0.0118, 2.39, 558.2, 1234.5, math.inf)] == [
        "0 ms", "3.1 µs", "11.8 ms", "2.39 s", "558 s", "1,234 s", "unscheduled at the end"]


class _Req:
    __slots__ = ("index",)

    def __init__(self, i: int) -> None:
        self.index = i


@pytest.mark.parametrize("n", [0, 5, 100, 101, 1000, 12345])
def test_the_sample_passes_every_request_and_keeps_a_systematic_share(n):
    reqs = [_Req(i) for i in range(n)]
    sample = RequestSample(reqs, cap=100)
    assert list(sample) == reqs
    positions = [p for p, _ in sample.kept]
    assert positions == list(range(0, n, sample.step))  # every step-th, the first included
    assert len(positions) <= 100 and (n <= 100 or len(positions) > 50)
    assert [r.index for r in sample.requests(10, 40)] == [p for p in positions if 10 <= p < 40]


# ----- real simulations -----------------------------------------------------------------------------------------

def _cfg(rate: float, n: int, seed: int = 1, arrival: str = "constant") -> SimulationConfig:
    return SimulationConfig(
        latency={"model": "meta-llama/llama-3.1-8b-instruct", "hardware": "H100", "tp": 1,
                 "model_config_folder": ROOT / "model_configs" / "llama-3.1-8b-instruct",
                 "hardware_config": ROOT / "hardware_config.json"},
        workload={"workload": "chatbot", "rate": rate, "num_requests": n, "arrival_process": arrival},
        seed=seed,
    )


def _simulate(cfg: SimulationConfig):
    prepared = api.prepare(cfg)
    sample = RequestSample(prepared.requests)
    results = api.execute(replace(prepared, requests=sample), collect_requests=True)
    end_tick = round(results.cluster["vllm_estimated_duration_s"] * 1e6)
    return results, sample, end_tick


@pytest.fixture(scope="module")
def capacity() -> float:
    """The simulated server's capacity in requests per second: its completion rate under a backlog it never clears
    (slightly low: the backlog drains at the end of the run with a shrinking batch)."""
    results, _, _ = _simulate(_cfg(1000.0, 1500))
    return results.cluster["responses_per_sec"]


def test_light_load_kept_up(capacity):
    results, sample, end = _simulate(_cfg(0.2 * capacity, 400))
    verdict = growth_from_records(results.requests)
    assert verdict.kept_up is True, verdict
    assert sample.growth(end).kept_up is True
    assert run_warning(sample, (Segment(0, 400),), end) is None


def test_far_above_capacity_did_not_keep_up(capacity):
    results, sample, end = _simulate(_cfg(3 * capacity, 800))
    verdict = growth_from_records(results.requests)
    assert verdict.kept_up is False, verdict
    assert verdict.growth_rate > 0.3 and verdict.achieved_rps < 0.7 * verdict.offered_rps
    from_sample = sample.growth(end)
    assert from_sample.kept_up is False
    assert from_sample.delay_last_s == pytest.approx(verdict.delay_last_s, rel=0.05)
    text = run_warning(sample, (Segment(0, 800),), end)
    assert text.startswith("the simulated server did not keep up with the offered load: queueing delay grew from ")


@pytest.mark.parametrize("arrival", ["constant", "poisson"])
@pytest.mark.parametrize("share", [0.7, 0.8])
def test_noisy_but_stable_near_capacity_is_not_flagged(capacity, arrival, share):
    """The false-saturation guard: at 70-80 % of capacity, over several seeds and both arrival processes, nothing is
    flagged, however the queueing delays wander."""
    for seed in range(1, 5):
        results, sample, end = _simulate(_cfg(share * capacity, 1000, seed, arrival))
        verdict = growth_from_records(results.requests)
        assert verdict.kept_up is True, (seed, verdict)
        assert abs(verdict.growth_rate) < GROWTH_RATE / 5, (seed, verdict)
        assert sample.growth(end).kept_up is True


def test_stages_are_judged_apart(capacity):
    results, sample, end = _simulate(_cfg(2.5 * capacity, 1500))
    # the same requests cut in two stages: the first that did not keep up is named, the others counted; the second
    # starts with the first one's backlog, and its queue still grows
    text = run_warning(sample, (Segment(0, 750), Segment(750, 1500)), end)
    assert text.startswith("the simulated server did not keep up with the offered load in stage 1 of 2 (and in 1 "
                           "later stage): queueing delay grew from ")


# ----- blis run -------------------------------------------------------------------------------------------------------

def _run_args(rate: float, n: int) -> list[str]:
    return ["run", "--model", "meta-llama/llama-3.1-8b-instruct",
            "--model-config-folder", str(ROOT / "model_configs" / "llama-3.1-8b-instruct"),
            "--hardware-config", str(ROOT / "hardware_config.json"), "--hardware", "H100", "--tp", "1",
            "--workload", "chatbot", "--rate", f"{rate:g}", "--num-requests", str(n), "--seed", "1"]


def test_blis_run_warns_when_the_server_did_not_keep_up(invoke, capacity):
    rate = round(3 * capacity)
    r = invoke(*_run_args(rate, 800))
    assert r.rc == 0, r.err
    lines = [line for line in r.err_lines if "keep up" in line]
    assert len(lines) == 1
    assert lines[0].startswith("blis: warning: the simulated server did not keep up with the offered load: queueing "
                               "delay grew from ")
    assert "(first third of arrivals) to " in lines[0] and "(last third); " in lines[0]
    assert f"req/s of the {rate} req/s offered" in lines[0]
    # stdout is what the same run prints without the check: the sample changes nothing
    assert r.out == api.run(_cfg(rate, 800), collect_requests=False).stdout_text()


def test_blis_run_is_silent_when_the_server_kept_up(invoke, capacity):
    r = invoke(*_run_args(round(0.3 * capacity), 300))
    assert r.rc == 0, r.err
    assert "keep up" not in r.err

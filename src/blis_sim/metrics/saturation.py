"""Whether a server kept up with the load offered to it, judged from its requests' queueing delays.

A server keeps up when it completes requests as fast as they arrive. When it cannot, the surplus waits: in a fluid
picture of a server that completes ``mu`` requests per second while ``lam`` arrive, a request arriving ``t`` seconds
into the stage waits about ``(lam / mu - 1) t`` before it is first scheduled. So the queueing delay (arrival to first
scheduled) grows through the stage at ``lam / mu - 1`` seconds per second, while under a load the server sustains it
fluctuates around a constant, whatever its level. ``queue_growth`` measures that growth robustly, in O(n):

* the requests, in arrival order, are split into thirds; the growth is the median queueing delay of the last third
  less that of the first third (medians: a few requests stuck behind a long prefill move neither);
* the server did **not** keep up when the growth is at least ``GROWTH_RATE`` (0.05) seconds per second between the
  two thirds' median arrivals, i.e. the offered load exceeded what the server completed by 5 % or more, **and** at
  least ``floor`` = the first third's median time from first scheduled to first token (its prefill, without the
  wait; at least ``MIN_GROWTH_S``, 10 ms): requests came to wait in the queue longer than their prefill takes. The
  floor keeps the noise of short stages out (a request arriving during a step waits for its end: some milliseconds,
  more as the batch fills), and does not grow with a backlog the stage inherits from an earlier one;
* fewer than ``MIN_REQUESTS`` (12) requests, or all of them arriving at the same instant, cannot be judged (None).

A request never scheduled before the run ended (a ``--horizon`` cut) counts as waiting longer than any that was:
its delay is unknown but ranks above every measured one, and medians need no more than its rank. In a server that
keeps up only the requests of the last step are still waiting at a cut, too few to move the last third's median.
Also reported, as evidence: the rate offered (requests over the arrival span), the rate completed (completions over
first arrival to last completion, which trails the offered rate by about one request latency even when the server
keeps up) and how many requests were still waiting when the last one arrived.

A stage too short for a queue to form (every request admitted into the running batch at once) counts as kept up:
the test judges queueing, not latency. ``RequestSample`` gives ``blis run`` the same test at no cost in the loop: it
keeps a systematic sample of the requests the run consumes and judges them after the run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import chain, islice

import numpy as np

from ..request import UNSET, Request, RequestStatus

GROWTH_RATE = 0.05  # seconds of queueing gained per second of arrivals: offered load >= 1.05 x what was completed
MIN_GROWTH_S = 0.010  # the growth must exceed about one GPU step before it can mean anything
MIN_REQUESTS = 12  # four per third: the least a median can be taken of
SAMPLE_CAP = 3000  # requests RequestSample holds at most (between half this and this many once it thins)


@dataclass(frozen=True, slots=True)
class QueueGrowth:
    """The verdict on one stage's requests and the evidence behind it (times in seconds, rates per second)."""

    kept_up: bool | None  # None: too few requests, or no arrival span, to judge
    reason: str
    requests: int  # requests judged (arrived before the end of the run; with a sample, what they stand for)
    delay_first_s: float | None = None  # median queueing delay of the first third of arrivals
    delay_last_s: float | None = None  # ... of the last third (inf: most of them never scheduled)
    span_s: float | None = None  # between the two thirds' median arrivals
    floor_s: float | None = None  # the least growth that counts (the first third's median prefill time)
    offered_rps: float | None = None  # arrival rate over the stage
    achieved_rps: float | None = None  # completions / (last completion - first arrival); None: none completed
    waiting_at_last_arrival: int | None = None  # requests arrived but not yet scheduled when the last one arrived

    @property
    def growth_rate(self) -> float | None:
        """Seconds of queueing delay gained per second of arrivals (about offered / completed - 1 when positive)."""
        if self.delay_first_s is None or self.delay_last_s is None or not self.span_s:
            return None
        return (self.delay_last_s - self.delay_first_s) / self.span_s

    def to_dict(self) -> dict:
        out = asdict(self)
        out["growth_rate"] = self.growth_rate
        for key, value in out.items():
            if isinstance(value, float) and not math.isfinite(value):
                out[key] = None  # JSON has no infinity
        return out

    def evidence(self) -> str:
        """The numbers behind the verdict, one clause each (for messages)."""
        if self.delay_first_s is None or self.delay_last_s is None:
            return self.reason
        if math.isinf(self.delay_first_s):
            parts = ["most requests were still unscheduled when the run ended"]
        elif math.isinf(self.delay_last_s):
            parts = [f"queueing delay grew from {duration(self.delay_first_s)} (first third of arrivals) until most of "
                     "the last third were still unscheduled when the run ended"]
        else:
            parts = [f"queueing delay {'grew' if self.kept_up is False else 'went'} from "
                     f"{duration(self.delay_first_s)} (first third of arrivals) to {duration(self.delay_last_s)} "
                     "(last third)"]
        if self.waiting_at_last_arrival:
            parts.append(f"{self.waiting_at_last_arrival} request(s) still waiting when the last one arrived")
        if self.offered_rps is not None and self.achieved_rps is not None:
            parts.append(f"completed {rate(self.achieved_rps)} req/s of the {rate(self.offered_rps)} req/s offered")
        return "; ".join(parts)


def duration(seconds: float) -> str:
    """``3.1 µs`` / ``12 ms`` / ``6.81 s`` / ``unscheduled at the end``: three significant digits, no exponent."""
    if not math.isfinite(seconds):
        return "unscheduled at the end"
    size = abs(seconds)
    if size >= 1:
        return f"{seconds:,.0f} s" if size >= 1000 else f"{seconds:.3g} s"
    if size >= 1e-3 or size == 0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def rate(per_s: float) -> str:
    """``0.488`` / ``55.4`` / ``1,000``: three significant digits without an exponent."""
    return f"{per_s:,.0f}" if per_s >= 1000 else f"{per_s:.3g}"


def queue_growth(arrival_s: Sequence[float], queue_s: Sequence[float], ttft_s: Sequence[float],
                 finish_s: Sequence[float], weight: int = 1) -> QueueGrowth:
    """Judge one stage: per request its arrival, queueing delay (NaN: never scheduled, counted as infinite), TTFT
    (NaN: no first token) and completion time (NaN: unfinished), all in seconds on one clock; ``weight``: requests
    each one stands for (a sample)."""
    arrival = np.asarray(arrival_s, dtype=float)
    n = len(arrival)
    counted = n * weight
    if n < MIN_REQUESTS:
        return QueueGrowth(None, f"too few requests to judge ({counted} < {MIN_REQUESTS})", counted)
    queue = np.asarray(queue_s, dtype=float)
    ttft = np.asarray(ttft_s, dtype=float)
    finish = np.asarray(finish_s, dtype=float)
    if np.any(arrival[1:] < arrival[:-1]):  # records come in arrival order; others are put in it
        order = np.argsort(arrival, kind="stable")
        arrival, queue, ttft, finish = arrival[order], queue[order], ttft[order], finish[order]
    unscheduled = np.isnan(queue)
    if unscheduled.any():
        queue = np.where(unscheduled, math.inf, queue)
    third = n // 3
    first, last = slice(0, third), slice(n - third, n)
    span = float(np.median(arrival[last]) - np.median(arrival[first]))
    offered = (n - 1) * weight / float(arrival[-1] - arrival[0]) if arrival[-1] > arrival[0] else None
    done = finish[~np.isnan(finish)]
    achieved = len(done) * weight / float(done.max() - arrival[0]) if len(done) and done.max() > arrival[0] else None
    last_arrival = arrival[-1]
    started = arrival + queue  # when each was first scheduled (inf: never)
    waiting = int(np.count_nonzero(started > last_arrival)) * weight
    if span <= 0:
        return QueueGrowth(None, "every request arrived at the same instant: no rate to keep up with", counted,
                           offered_rps=offered, achieved_rps=achieved, waiting_at_last_arrival=waiting)
    first_delay = float(np.median(queue[first]))
    last_delay = float(np.median(queue[last]))
    service = (ttft - queue)[first]  # scheduled to first token: the prefill, without the wait before it
    service = service[~np.isnan(service)]
    floor = max(MIN_GROWTH_S, float(np.median(service)) if len(service) else 0.0)
    growth = last_delay - first_delay
    if math.isnan(growth):  # both thirds mostly never scheduled: the server served almost nothing
        growth = math.inf
    grew = growth >= floor and growth >= GROWTH_RATE * span
    evidence = QueueGrowth(not grew, "", counted, first_delay, last_delay, span, floor, offered, achieved, waiting)
    if grew:
        reason = f"queue grew: {evidence.evidence()}"
    else:
        reason = (f"no queue growth: median queueing delay {duration(first_delay)} (first third of arrivals), "
                  f"{duration(last_delay)} (last third)")
    return QueueGrowth(not grew, reason, counted, first_delay, last_delay, span, floor, offered, achieved, waiting)


def growth_from_records(records: Iterable[dict]) -> QueueGrowth:
    """``queue_growth`` over results-file records (``arrived_at`` s, ``scheduling_delay_ms``, ``ttft_ms``,
    ``e2e_ms``; ENGINE.md §14.3). A record with neither a first token nor a scheduling delay was never scheduled."""
    arrival, queue, ttft, finish = [], [], [], []
    nan = math.nan
    for r in records:
        a = r["arrived_at"]
        t = r["ttft_ms"]
        d = r["scheduling_delay_ms"]
        e = r["e2e_ms"]
        arrival.append(a)
        queue.append(nan if t <= 0 and d <= 0 else d / 1000.0)
        ttft.append(t / 1000.0 if t > 0 else nan)
        finish.append(a + e / 1000.0 if e > 0 else nan)
    return queue_growth(arrival, queue, ttft, finish)


def growth_from_requests(requests: Sequence[Request], end_tick: int, weight: int = 1) -> QueueGrowth:
    """``queue_growth`` over simulated requests after their run (``end_tick``: its last event). Rejected, dropped and
    never-arrived requests are left out."""
    arrival, queue, ttft, finish = [], [], [], []
    nan = math.nan
    for r in requests:
        if r.status >= RequestStatus.DROPPED or r.arrival > end_tick:
            continue
        arrival.append(r.arrival / 1e6)
        queue.append((r.first_scheduled - r.arrival) / 1e6 if r.first_scheduled != UNSET else nan)
        ttft.append(r.ttft / 1e6 if r.ttft != UNSET else nan)
        finish.append(r.finish_time / 1e6 if r.status == RequestStatus.FINISHED else nan)
    return queue_growth(arrival, queue, ttft, finish, weight)


class RequestSample:
    """Passes a run's requests through unchanged and keeps every ``step``-th of them (the first included), doubling
    ``step`` and thinning what it holds whenever more than ``cap`` are held: after the run, a systematic sample of
    between ``cap / 2`` and ``cap`` requests spread evenly over the arrivals, whatever the run's length, at the cost
    of some nanoseconds per request. The simulation mutates the requests, so the sample holds their outcome."""

    def __init__(self, requests: Iterable[Request], cap: int = SAMPLE_CAP) -> None:
        self.source = requests
        self.cap = max(cap, 2 * MIN_REQUESTS)
        self.step = 1
        self.kept: list[tuple[int, Request]] = []  # (position in the stream, request)

    def __iter__(self) -> Iterator[Request]:
        # the requests between two kept ones pass through islice and chain in C: Python runs once per kept request
        return chain.from_iterable(self._runs())

    def _runs(self) -> Iterator[Iterable[Request]]:
        """The stream as runs of requests, each starting with a kept one."""
        source = iter(self.source)
        kept = self.kept
        position = 0
        for req in source:
            kept.append((position, req))
            if len(kept) > self.cap:
                self.step *= 2
                kept[:] = [(p, r) for p, r in kept if p % self.step == 0]
            following = (position // self.step + 1) * self.step  # the next position to keep
            yield (req,)
            yield islice(source, following - position - 1)
            position = following

    def requests(self, start: int = 0, stop: int | None = None) -> list[Request]:
        """The sampled requests whose index lies in [start, stop)."""
        return [r for _, r in self.kept if r.index >= start and (stop is None or r.index < stop)]

    def growth(self, end_tick: int, start: int = 0, stop: int | None = None) -> QueueGrowth:
        """``queue_growth`` of the sampled requests of indices [start, stop) (one stage)."""
        return growth_from_requests(self.requests(start, stop), end_tick, self.step)


def run_warning(sample: RequestSample, segments: Sequence, end_tick: int) -> str | None:
    """``blis run``'s one line when the simulated server did not keep up (None when it did, or cannot be judged):
    the run as a whole, or with several stages (``Segment``s of request indices) the first stage that did not keep
    up, naming how many did not."""
    if len(segments) <= 1:
        verdict = sample.growth(end_tick)
        if verdict.kept_up is not False:
            return None
        return f"the simulated server did not keep up with the offered load: {verdict.evidence()}"
    failed = [(i, v) for i, seg in enumerate(segments)
              if (v := sample.growth(end_tick, seg.start, seg.stop)).kept_up is False]
    if not failed:
        return None
    i, verdict = failed[0]
    more = f" (and in {len(failed) - 1} later stage{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""
    return (f"the simulated server did not keep up with the offered load in stage {i + 1} of {len(segments)}{more}: "
            f"{verdict.evidence()}")

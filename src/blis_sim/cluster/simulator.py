"""The cluster loop: one event queue with a total order over every instance and the control plane (ENGINE.md §5, §6).

Heap entries are ``(time, class, seq, payload)``; the class ranks same-tick events (arrival < admission < routing <
enqueue < step) and the rising ``seq`` breaks remaining ties first-in first-out, so the order never depends on the
heap's layout. Arrivals are merged lazily from the sorted workload stream instead of being pushed up front, which
gives the same order (class 0 wins ties) without holding every request in memory.
"""

from __future__ import annotations

import heapq
from itertools import count
from typing import Callable, Iterable, Iterator

from ..engine.instance import Instance
from ..request import Request, RequestStatus
from .policies import Snapshot

ADMISSION, ROUTING, ENQUEUE, STEP = 1, 2, 3, 4


class ClusterSimulator:
    def __init__(
        self,
        instances: list[Instance],
        admission,
        routing,
        admission_latency: int,
        routing_latency: int,
        horizon: int,
        keep_routed: bool = False,
    ) -> None:
        self.instances = instances
        self.admission = admission
        self.routing = routing
        self.admission_latency = admission_latency
        self.routing_latency = routing_latency
        self.horizon = horizon
        self.clock = 0
        self.num_arrived = 0
        self.num_rejected = 0
        self.num_routed = 0
        self.keep_routed = keep_routed
        self.routed: list[Request] = []  # every routed request, for the per-request results file

    def snapshots(self) -> list[Snapshot]:
        return [
            Snapshot(
                queue_depth=len(inst.scheduler.waiting),
                batch_size=len(inst.scheduler.running),
                pending_requests=inst.num_pending,
                kv_utilization=inst.kv.usage(),
                free_kv_blocks=inst.kv.num_blocks - inst.kv.num_used,
            )
            for inst in self.instances
        ]

    def run(self, requests: Iterable[Request], on_progress: Callable[[int, int], None] | None = None) -> None:
        """Process events in order until none is left or the next one lies past the horizon."""
        heap: list[tuple] = []
        push = heapq.heappush
        pop = heapq.heappop
        seq = count()
        horizon = self.horizon
        instances = self.instances
        adm_lat = self.admission_latency
        route_lat = self.routing_latency
        arrivals: Iterator[Request] = iter(requests)
        nxt = next(arrivals, None)
        events = 0
        while True:
            if nxt is not None and (not heap or nxt.arrival <= heap[0][0]):
                now = nxt.arrival
                if now > horizon:
                    break
                # ARRIVAL (class 0)
                self.clock = now
                self.num_arrived += 1
                push(heap, (now + adm_lat, ADMISSION, next(seq), nxt))
                nxt = next(arrivals, None)
                continue
            if not heap:
                break
            now, kind, _, payload = pop(heap)
            if now > horizon:
                break
            assert now >= self.clock, "clock went backwards"
            self.clock = now
            if kind == STEP:
                end = payload.step(now)
                if end is not None:
                    push(heap, (end, STEP, next(seq), payload))
                events += 1
                if on_progress is not None and not events & 0x3FFF:
                    on_progress(now, self.num_arrived)
            elif kind == ENQUEUE:
                req, inst = payload
                if inst.enqueue(req, now):
                    push(heap, (now, STEP, next(seq), inst))
            elif kind == ROUTING:
                self._route(payload, now, push, heap, seq)
            else:  # ADMISSION
                snaps = self.snapshots() if self.admission.needs_snapshots else None
                admitted, _reason = self.admission.admit(payload, snaps, now)
                if admitted:
                    push(heap, (now + route_lat, ROUTING, next(seq), payload))
                else:
                    payload.status = RequestStatus.REJECTED
                    self.num_rejected += 1
        if on_progress is not None:
            on_progress(self.clock, self.num_arrived)

    def _route(self, req: Request, now: int, push, heap, seq) -> None:
        snaps = self.snapshots() if self.routing.needs_snapshots else None
        target = self.routing.choose(req, snaps)
        inst = self.instances[target]
        req.instance = target
        inst.num_pending += 1
        inst.stats.injected += 1
        self.num_routed += 1
        if self.keep_routed:
            self.routed.append(req)
        push(heap, (now + inst.latency.queueing_time(req.num_prompt_tokens), ENQUEUE, next(seq), (req, inst)))

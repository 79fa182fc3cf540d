"""The cluster loop: one event queue with a total order over every instance and the control plane (ENGINE.md §5, §6).

Heap entries are ``(time, class, seq, payload)``; the class ranks same-tick events (arrival < admission < routing <
enqueue < step) and the rising ``seq`` breaks remaining ties first-in first-out, so the order never depends on the
heap's layout. Arrivals are merged lazily from the sorted workload stream instead of being pushed up front, which
gives the same order (class 0 wins ties) without holding every request in memory.
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count, islice
from typing import Callable, Final, Iterable, Iterator

from ..engine.instance import Instance
from ..request import Request, RequestStatus
from .policies import AdmissionPolicy, RoutingPolicy, Snapshot

ADMISSION: Final = 1  # event classes: same-tick events run in this order
ROUTING: Final = 2
ENQUEUE: Final = 3
STEP: Final = 4
NEVER: Final = 2**63  # later than any tick


class ClusterSimulator:
    def __init__(
        self,
        instances: list[Instance],
        admission: AdmissionPolicy,
        routing: RoutingPolicy,
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
                batch_size=inst.num_running,
                pending_requests=inst.num_pending,
                kv_utilization=inst.kv.usage(),
                free_kv_blocks=inst.kv.num_blocks - inst.kv.num_used,
            )
            for inst in self.instances
        ]

    def run(self, requests: Iterable[Request], on_progress: Callable[[int, int], None] | None = None) -> None:
        """Process events in order until none is left or the next one lies past the horizon.

        Control-plane events (admission, routing, enqueue) and step boundaries live in two heaps; popping the
        smaller head of the two gives exactly the order of one heap (the class field decides same-tick ties), and
        the head of the control heap tells each instance how far it may advance on its own: nothing outside an
        instance can act on it before the next arrival or control-plane event.
        """
        ctrl: list[tuple] = []  # (time, class, seq, payload), classes ADMISSION..ENQUEUE
        steps: list[tuple] = []  # (time, STEP, seq, instance)
        push = heapq.heappush
        pop = heapq.heappop
        seq = count()
        horizon = self.horizon
        past_horizon = horizon + 1
        adm_lat = self.admission_latency
        route_lat = self.routing_latency
        arrivals: Iterator[Request] = iter(requests)
        # Upcoming arrivals, looked ahead far enough to know the next one of every instance when routing is
        # predictable (round-robin after always-admit): an instance may then advance past arrivals that go
        # elsewhere. Otherwise one is enough.
        predictable = self.admission.admits_everything and self.routing.predictable
        lookahead = len(self.instances) if predictable else 1
        # Without latencies, an arrival's admission and routing happen at its own tick, before anything else of
        # that tick but other arrivals. Deciding them at once gives the same order of effects, unless the
        # admission policy reads snapshots (it would see requests routed at the same tick): the heap is skipped.
        inline = adm_lat == 0 and route_lat == 0 and not self.admission.needs_snapshots
        upcoming: deque[Request] = deque(islice(arrivals, lookahead))
        events = 0
        while True:
            nxt = upcoming[0] if upcoming else None
            next_arrival = nxt.arrival if nxt is not None else NEVER
            heap = ctrl if ctrl and (not steps or ctrl[0] < steps[0]) else steps
            head = heap[0] if heap else None
            if next_arrival < NEVER and (head is None or next_arrival <= head[0]):
                # ARRIVAL (class 0: first among same-tick events)
                if next_arrival > horizon:
                    break
                self.clock = next_arrival
                self.num_arrived += 1
                arrived = upcoming.popleft()
                if not inline:
                    push(ctrl, (next_arrival + adm_lat, ADMISSION, next(seq), arrived))
                elif self.admission.admit(arrived, None, next_arrival)[0]:
                    self._route(arrived, next_arrival, push, ctrl, seq)
                else:
                    self._reject(arrived)
                upcoming.extend(islice(arrivals, lookahead - len(upcoming)))
                events += 1
                if on_progress is not None and not events & 0xFFF:
                    on_progress(next_arrival, self.num_arrived)
                continue
            if head is None:
                break
            now, kind, _, payload = pop(heap)
            if now > horizon:
                break
            assert now >= self.clock, "clock went backwards"
            self.clock = now
            if kind == STEP:
                if ctrl:
                    bound = ctrl[0][0]
                    if next_arrival < bound:
                        bound = next_arrival
                elif predictable:
                    k = self.routing.upcoming_index(payload.index)
                    bound = upcoming[k].arrival if k < len(upcoming) else NEVER
                else:
                    bound = next_arrival
                if past_horizon < bound:
                    bound = past_horizon
                end = payload.step(now, bound)
                if end is not None:
                    push(steps, (end, STEP, next(seq), payload))
                events += 1
                if on_progress is not None and not events & 0xFFF:
                    on_progress(now, self.num_arrived)
            elif kind == ENQUEUE:
                req, inst = payload
                if inst.enqueue(req, now):
                    push(steps, (now, STEP, next(seq), inst))
            elif kind == ROUTING:
                self._route(payload, now, push, ctrl, seq)
            else:  # ADMISSION
                snaps = self.snapshots() if self.admission.needs_snapshots else None
                admitted, _reason = self.admission.admit(payload, snaps, now)
                if admitted:
                    push(ctrl, (now + route_lat, ROUTING, next(seq), payload))
                else:
                    self._reject(payload)
        for inst in self.instances:
            inst.finalize()
        if on_progress is not None:
            on_progress(self.clock, self.num_arrived)

    def _reject(self, req: Request) -> None:
        req.status = RequestStatus.REJECTED
        self.num_rejected += 1

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

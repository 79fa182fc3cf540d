"""The cluster loop: one event queue with a total order over every instance and the control plane (ENGINE.md §5, §6).

Heap entries are ``(time, class, seq, payload)``; the class ranks same-tick events (arrival < admission < routing <
enqueue < step) and the rising ``seq`` breaks remaining ties first-in first-out, so the order never depends on the
heap's layout. Arrivals are merged lazily from the sorted workload stream instead of being pushed up front, which
gives the same order (class 0 wins ties) without holding every request in memory.

A closed-loop workload (a chat session whose next turn is sent some time after the previous answer arrived) adds
requests during the run with ``add_arrival``; such a run is built with ``closed_loop=True``, which makes every
instance hand control back after each step boundary, since any completion may create an arrival.

The loop sees each instance only through its narrow face (``Instance.assign``, ``enqueue``, ``step``, ``snapshot``,
``finalize``); an optional observer (engine/observer.py) hears of every admission and routing decision and is
handed on to the instances for steps and completions.
"""

from __future__ import annotations

import heapq
from collections import deque
from itertools import count, islice
from typing import Callable, Final, Iterable, Iterator

from ..engine.instance import Instance
from ..engine.observer import Observer
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
        observer: Observer | None = None,
        closed_loop: bool = False,
        snapshots_always: bool = False,
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
        self.observer = observer  # the instances were built with the same one
        self.closed_loop = closed_loop
        # build snapshots at every admission and routing, whether or not the policies read them: with a snapshot
        # refresh interval, building them is what advances the instances' refresh timers (§6.2)
        self.snapshots_always = snapshots_always
        self.new_arrivals: list[tuple[int, int, Request]] = []  # heap of (arrival, index, request) added in the run

    def add_arrival(self, req: Request) -> None:
        """A request created during the run (closed loop): it arrives at ``req.arrival`` (not before the current
        clock), merged with the workload stream in (arrival, index) order."""
        if not self.closed_loop:
            raise RuntimeError("add_arrival needs a ClusterSimulator built with closed_loop=True")
        if req.arrival < self.clock:
            raise ValueError(f"{req.id} would arrive at {req.arrival}, before the clock ({self.clock})")
        heapq.heappush(self.new_arrivals, (req.arrival, req.index, req))

    def snapshots(self, now: int) -> list[Snapshot]:
        return [inst.snapshot(now) for inst in self.instances]

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
        closed_loop = self.closed_loop
        predictable = self.admission.admits_everything and self.routing.predictable and not closed_loop
        lookahead = len(self.instances) if predictable else 1
        # Routing that reads instance state needs every instance's state at every arrival: instances whose step in
        # flight is a stable decode batch park instead of stepping to each arrival (Instance._park). A STEP event
        # carries a token; a parked instance woken early by an ENQUEUE gets a new one and its old event is skipped.
        lazy = not predictable and not closed_loop
        for inst in self.instances:
            inst.lazy = lazy
        # Without latencies, an arrival's admission and routing happen at its own tick, before anything else of
        # that tick but other arrivals. Deciding them at once gives the same order of effects, unless the
        # admission policy reads snapshots (it would see requests routed at the same tick): the heap is skipped.
        inline = adm_lat == 0 and route_lat == 0 and not self.admission.needs_snapshots
        snapshots_always = self.snapshots_always
        upcoming: deque[Request] = deque(islice(arrivals, lookahead))
        observer = self.observer
        new_arrivals = self.new_arrivals
        events = 0
        while True:
            nxt = upcoming[0] if upcoming else None
            next_arrival = nxt.arrival if nxt is not None else NEVER
            from_run = False  # the next arrival is one added during the run
            if new_arrivals:
                first = new_arrivals[0]
                if first[0] < next_arrival or (nxt is not None and first[0] == next_arrival and first[1] < nxt.index):
                    next_arrival = first[0]
                    from_run = True
            heap = ctrl if ctrl and (not steps or ctrl[0] < steps[0]) else steps
            head = heap[0] if heap else None
            if next_arrival < NEVER and (head is None or next_arrival <= head[0]):
                # ARRIVAL (class 0: first among same-tick events)
                if next_arrival > horizon:
                    break
                self.clock = next_arrival
                self.num_arrived += 1
                arrived = heapq.heappop(new_arrivals)[2] if from_run else upcoming.popleft()
                if not inline:
                    push(ctrl, (next_arrival + adm_lat, ADMISSION, next(seq), arrived))
                else:
                    snaps = self.snapshots(next_arrival) if snapshots_always else None
                    admitted, reason = self.admission.admit(arrived, snaps, next_arrival)
                    if observer is not None:
                        observer.on_admission(arrived, next_arrival, admitted, reason)
                    if admitted:
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
            now, kind, token, payload = pop(heap)
            if kind == STEP and token != payload.wake_token:
                continue  # replaced by a later STEP of the same instance
            if now > horizon:
                break
            assert now >= self.clock, "clock went backwards"
            self.clock = now
            if kind == STEP:
                if closed_loop:
                    bound = now + 1  # one boundary: a completion may add an arrival at any later tick
                elif ctrl:
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
                    token = next(seq)
                    push(steps, (end, STEP, token, payload))
                    payload.wake_token = token
                events += 1
                if on_progress is not None and not events & 0xFFF:
                    on_progress(now, self.num_arrived)
            elif kind == ENQUEUE:
                req, inst = payload
                wake = inst.enqueue(req, now)
                if wake >= 0:
                    token = next(seq)
                    push(steps, (wake, STEP, token, inst))
                    inst.wake_token = token
            elif kind == ROUTING:
                self._route(payload, now, push, ctrl, seq)
            else:  # ADMISSION
                snaps = self.snapshots(now) if self.admission.needs_snapshots or snapshots_always else None
                admitted, reason = self.admission.admit(payload, snaps, now)
                if observer is not None:
                    observer.on_admission(payload, now, admitted, reason)
                if admitted:
                    push(ctrl, (now + route_lat, ROUTING, next(seq), payload))
                else:
                    self._reject(payload)
        for inst in self.instances:
            inst.settle(past_horizon)  # a parked instance takes its planned boundaries up to the horizon
            inst.finalize()
        if on_progress is not None:
            on_progress(self.clock, self.num_arrived)

    def _reject(self, req: Request) -> None:
        req.status = RequestStatus.REJECTED
        self.num_rejected += 1

    def _route(self, req: Request, now: int, push, heap, seq) -> None:
        observer = self.observer
        snaps = (self.snapshots(now) if self.routing.needs_snapshots or observer is not None or self.snapshots_always
                 else None)
        target = self.routing.choose(req, snaps)
        inst = self.instances[target]
        req.instance = target
        delay = inst.assign(req)
        self.num_routed += 1
        if self.keep_routed:
            self.routed.append(req)
        if observer is not None:
            observer.on_routing(req, now, target, snaps, self.routing.scores())  # type: ignore[arg-type]
        push(heap, (now + delay, ENQUEUE, next(seq), (req, inst)))

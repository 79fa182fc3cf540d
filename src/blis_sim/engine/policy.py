"""Scheduling policies: the order of an instance's waiting queue and the choice of preemption victim.

The scheduler (engine/scheduler.py) never orders requests itself. It asks its policy, which owns the waiting queue:

* ``add(req)``: a routed request reaches the queue; ``add_preempted(req)``: a preempted request goes back to it;
* ``before_formation(now)``: called at each step start before the batch is formed, for policies whose order changes
  with time (``reorders``);
* ``head()`` / ``pop_head()``: the next request Phase B tries to admit, and its removal once admitted;
* ``victim(running)``: removes and returns the running request to preempt when a running request cannot get a block.
  Unless ``any_victim`` is set, the victim is the request being scheduled or one after it in ``running`` (never one
  scheduled earlier in the same pass). With ``any_victim`` it may be any running request, and the scheduler takes back
  the share of the step being formed of a victim it had already scheduled (vLLM's ``--scheduling-policy priority``).
* ``retain_waiting()``: drop requests that left the waiting state while queued.

A policy is built from the run's ``EngineConfig`` (``SCHEDULING_POLICIES[cfg.scheduler](cfg)``): the reference's
priority schedulers read ``cfg.priority_policy`` there (``PRIORITY_POLICIES``).

``fast_path`` says whether the synchronous fast path (the decode cohort and skip-ahead, engine/fast_path.py) is exact
under the policy. The fast path forms a step without calling ``before_formation``, and a skip-ahead stretch assumes
that the waiting head changes only through arrivals, preemptions and new prefix keys; it never preempts (it hands
any step that might to the reference scheduler), so the victim rule does not matter to it. Every policy here whose
queue is a heap by a fixed key meets that: fcfs, vllm-priority and the reference schedulers with the built-in
priority policies (docs/scheduling.md has the argument; tests/engine/test_schedulers.py checks it).

The policies (docs/scheduling.md):

* ``fcfs`` (the defaults of the base class): vLLM's default ``--scheduling-policy fcfs`` and the reference's ``fcfs``:
  arrival order, preempted requests at the front, the most recently admitted running request preempted first.
* ``priority-fcfs``, ``sjf``, ``reverse-priority`` (ENGINE.md §11.4): the reference's schedulers, a stable sort of the
  whole waiting queue at each step start by (priority at that tick, arrival, index), (P, arrival, index), and so on.
* ``vllm-priority``: vLLM 0.15.1's ``--scheduling-policy priority`` (``PriorityRequestQueue`` in
  vllm/v1/core/sched/request_queue.py, the victim rule of ``Scheduler.schedule`` in vllm/v1/core/sched/scheduler.py).
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Callable, Iterator

from mypy_extensions import mypyc_attr

from ..config import EngineConfig
from ..request import Request, RequestStatus


# ---------------------------------------------------------------------------------------------- priority policies
@mypyc_attr(allow_interpreted_subclasses=True)
class PriorityPolicy:
    """Request priorities for the reference's priority schedulers (ENGINE.md §11.3), recomputed for every waiting
    request at each step start. ``constant``: every request 0.

    ``time_invariant``: the order that the priorities induce among the requests waiting at a tick t (with ties) is
    the same at every t, and ``rank(req)`` orders requests exactly as ``priority(req, t)`` does at any such t (equal
    ranks exactly where the priorities are equal). The schedulers then keep their queue sorted by rank instead of
    recomputing priorities and re-sorting at every step start (the same order; docs/scheduling.md). A policy whose
    order changes with t sets it False and gets the literal recompute-and-sort."""

    name = "constant"

    def __init__(self) -> None:
        self.time_invariant = True

    def priority(self, req: Request, now: int) -> float:
        return 0.0

    def rank(self, req: Request) -> int:
        return 0


class SLOBased(PriorityPolicy):
    """``slo-based``: the request's age in seconds, 1e-6 * (t - arrival); older requests have higher priority. The
    age orders waiting requests like their arrival ticks, reversed, at every t."""

    name = "slo-based"

    def priority(self, req: Request, now: int) -> float:
        return 1e-6 * (now - req.arrival)

    def rank(self, req: Request) -> int:
        return -req.arrival


class InvertedSLO(PriorityPolicy):
    """``inverted-slo``: minus the age in seconds, -1e-6 * (t - arrival); younger requests have higher priority."""

    name = "inverted-slo"

    def priority(self, req: Request, now: int) -> float:
        return -1e-6 * (now - req.arrival)

    def rank(self, req: Request) -> int:
        return req.arrival


# ---------------------------------------------------------------------------------------------- scheduling policies
@mypyc_attr(allow_interpreted_subclasses=True)
class SchedulingPolicy:
    """Base class of the scheduling policies: the waiting queue (a deque, in the policy's order) and the victim
    choice. Subclasses override what differs; the defaults are FCFS."""

    name = "fcfs"

    def __init__(self, cfg: EngineConfig | None = None) -> None:
        self.queue: deque[Request] = deque()
        self.fast_path = True  # the cohort and skip-ahead are exact under this policy (module docstring)
        self.reorders = False  # before_formation changes the order: call it at every step start
        self.any_victim = False  # victim() may pick a request already scheduled in the pass (module docstring)

    def __len__(self) -> int:
        return len(self.queue)

    def __iter__(self) -> Iterator[Request]:
        return iter(self.queue)

    def add(self, req: Request) -> None:
        self.queue.append(req)

    def add_preempted(self, req: Request) -> None:
        self.queue.appendleft(req)

    def head(self) -> Request:
        return self.queue[0]

    def pop_head(self) -> Request:
        return self.queue.popleft()

    def before_formation(self, now: int) -> None:
        """Reorder the queue for the step starting at ``now`` (only called when ``reorders``)."""

    def victim(self, running: list[Request]) -> Request:
        """Remove and return the running request to preempt (``running`` is in admission order)."""
        return running.pop()

    def retain_waiting(self) -> None:
        """Drop requests that left the waiting state while queued (finished after a late preemption)."""
        self.queue = deque(r for r in self.queue if r.status == RequestStatus.WAITING)


class FCFS(SchedulingPolicy):
    """First come, first served (the defaults of the base class)."""


class KeyedQueue(SchedulingPolicy):
    """A waiting queue kept as a heap by ``key(req)``; a preempted request goes back by its key, not to the front.

    Entries are ``(key, n, req)`` with ``n`` the number of the insertion, so that two equal keys never compare the
    requests (and keep insertion order). ``__iter__`` yields the queue in order (for views and tests; not used by
    the engine)."""

    def __init__(self, cfg: EngineConfig | None = None) -> None:
        super().__init__(cfg)
        self.heap: list[tuple[object, int, Request]] = []
        self.num_added = 0

    def key(self, req: Request) -> object:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.heap)

    def __iter__(self) -> Iterator[Request]:
        return iter([entry[2] for entry in sorted(self.heap)])

    def add(self, req: Request) -> None:
        self.num_added += 1
        heapq.heappush(self.heap, (self.key(req), self.num_added, req))

    def add_preempted(self, req: Request) -> None:
        self.add(req)

    def head(self) -> Request:
        return self.heap[0][2]

    def pop_head(self) -> Request:
        return heapq.heappop(self.heap)[2]

    def retain_waiting(self) -> None:
        heap = [entry for entry in self.heap if entry[2].status == RequestStatus.WAITING]
        heapq.heapify(heap)
        self.heap = heap


class ReferenceScheduler(KeyedQueue):
    """The reference's priority schedulers (ENGINE.md §11.3-§11.4): at each step start t, every waiting request gets
    ``priority = priority_policy(request, t)``, then the whole waiting queue is stably sorted by the scheduler's key.

    Every key ends with the request index, so it is a total order and the sort's stability never decides anything:
    the queue's order at a step start is simply its requests sorted by key. With a time-invariant priority policy
    (all the built-in ones) the key computed from ``rank`` gives that order at every t, so the queue is a heap by it
    and nothing happens at step starts (``Request.priority`` is then left as it was: only the order is observable).
    ``literal`` (or a priority policy that is not time-invariant) recomputes the priorities and re-keys the whole
    queue at every step start, as the specification words it; the fast path is then off."""

    def __init__(self, cfg: EngineConfig | None = None, literal: bool = False) -> None:
        super().__init__(cfg)
        self.priorities = PRIORITY_POLICIES["constant" if cfg is None else cfg.priority_policy]()
        self.literal = literal or not self.priorities.time_invariant
        self.reorders = self.literal
        self.fast_path = not self.literal

    def before_formation(self, now: int) -> None:
        heap = self.heap
        if not heap:
            return
        priorities = self.priorities
        for entry in heap:
            req = entry[2]
            req.priority = priorities.priority(req, now)
        keyed = [(self.key(entry[2]), entry[1], entry[2]) for entry in heap]
        heapq.heapify(keyed)
        self.heap = keyed


class PriorityFCFS(ReferenceScheduler):
    """``priority-fcfs``: priority descending, then arrival ascending, then request index ascending."""

    name = "priority-fcfs"

    def key(self, req: Request) -> object:
        if self.literal:
            return (-req.priority, req.arrival, req.index)
        return (-self.priorities.rank(req), req.arrival, req.index)


class ReversePriority(ReferenceScheduler):
    """``reverse-priority``: priority ascending, then arrival ascending, then request index ascending."""

    name = "reverse-priority"

    def key(self, req: Request) -> object:
        if self.literal:
            return (req.priority, req.arrival, req.index)
        return (self.priorities.rank(req), req.arrival, req.index)


class SJF(ReferenceScheduler):
    """``sjf``: prompt length ascending, then arrival ascending, then request index ascending (priorities are
    computed in the literal mode but never read)."""

    name = "sjf"

    def key(self, req: Request) -> object:
        return (req.num_prompt_tokens, req.arrival, req.index)


class VLLMPriority(KeyedQueue):
    """``vllm-priority``: vLLM 0.15.1's ``--scheduling-policy priority``.

    * The waiting queue is a heap ordered like ``vllm.v1.request.Request.__lt__``: (priority, arrival time); lower
      values first. ``Request.priority`` is the request's own fixed priority (the CSV trace's ``priority`` column,
      0 without one); no priority policy recomputes it. A preempted request goes back into the heap by that key
      (``PriorityRequestQueue.prepend_request`` is ``add_request``).
    * Admission from the queue is the scheduler's Phase B unchanged: it stops at the first request that cannot get
      its blocks, and waiting requests never preempt running ones.
    * The victim, when a running request cannot get a block, is ``max(running, key=(priority, arrival time))``. It
      may be the request being scheduled, one after it, or one scheduled earlier in the same pass, whose share of
      the step the scheduler takes back (``any_victim``).

    Arrival times are unique, as vLLM's are: vLLM stamps each request with the wall clock when it receives it, so two
    requests never share an arrival time, and requests received one after the other are stamped in that order.
    blis-sim's arrival ticks do tie (same-tick arrivals), so the arrival time here is (arrival tick, request index):
    same-tick requests in the order they arrived. vLLM's rules for exactly equal stamps (the request ids compared as
    strings in the heap, the first in running order among the victims) are therefore never reached. Taken literally
    with tied ticks they can livelock: two same-tick running requests with equal priorities may preempt each other
    at every step, each losing its progress (docs/scheduling.md has an example; vLLM itself loops the same way when
    given equal stamps)."""

    name = "vllm-priority"

    def __init__(self, cfg: EngineConfig | None = None) -> None:
        super().__init__(cfg)
        self.any_victim = True

    def key(self, req: Request) -> object:
        return (req.priority, req.arrival, req.index)

    def victim(self, running: list[Request]) -> Request:
        best = 0
        v = running[0]
        for j in range(1, len(running)):
            r = running[j]
            if r.priority > v.priority or (r.priority == v.priority and (
                    r.arrival > v.arrival or (r.arrival == v.arrival and r.index > v.index))):
                best = j
                v = r
        return running.pop(best)


# Name (--scheduler, --priority-policy) -> factory; a scheduling policy's factory takes the run's EngineConfig. Names
# the CLI accepts but a table lacks are refused as not built yet (api.check_available).
SCHEDULING_POLICIES: dict[str, Callable[[EngineConfig], SchedulingPolicy]] = {
    "fcfs": FCFS,
    "priority-fcfs": PriorityFCFS,
    "sjf": SJF,
    "reverse-priority": ReversePriority,
    "vllm-priority": VLLMPriority,
}
PRIORITY_POLICIES: dict[str, Callable[[], PriorityPolicy]] = {
    "constant": PriorityPolicy,
    "slo-based": SLOBased,
    "inverted-slo": InvertedSLO,
}

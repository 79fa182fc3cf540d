"""Scheduling policies: the order of an instance's waiting queue and the choice of preemption victim.

The scheduler (engine/scheduler.py) never orders requests itself. It asks its policy, which owns the waiting queue:

* ``add(req)``: a routed request reaches the queue; ``add_preempted(req)``: a preempted request goes back to it;
* ``before_formation(now)``: called at each step start before the batch is formed, for policies whose order changes
  with time (``reorders``; the reference's priority schedulers re-sort the queue there, ENGINE.md §11.3-§11.4);
* ``head()`` / ``pop_head()``: the next request Phase B tries to admit, and its removal once admitted;
* ``victim(running)``: removes and returns the running request to preempt when a running request cannot get a block.
  The victim must not have been scheduled earlier in the same pass (it is the request itself, or one after it in
  ``running``): a policy that may choose an earlier one (vLLM's ``--scheduling-policy priority``) must also take back
  that request's share of the step being formed.

``fast_path`` says whether the synchronous fast path (the decode cohort and skip-ahead, engine/fast_path.py) is exact
under the policy: it assumes that the queue's order does not change between step starts except through arrivals
and preemptions, and that victims come from the tail of the admission-ordered running list. Instances whose policy
says False form every batch with the reference scheduler.

FCFS is vLLM's default (``--scheduling-policy fcfs``) and the reference's ``fcfs``: arrival order, preempted requests
at the front, the most recently admitted running request preempted first.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterator

from mypy_extensions import mypyc_attr

from ..request import Request, RequestStatus


@mypyc_attr(allow_interpreted_subclasses=True)
class SchedulingPolicy:
    """Base class of the scheduling policies: the waiting queue (a deque, in the policy's order) and the victim
    choice. Subclasses override what differs; the defaults are FCFS."""

    name = "fcfs"

    def __init__(self) -> None:
        self.queue: deque[Request] = deque()
        self.fast_path = True  # the cohort and skip-ahead are exact under this policy (module docstring)
        self.reorders = False  # before_formation changes the order: call it at every step start

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


class PriorityPolicy:
    """Request priorities for the schedulers that read them (ENGINE.md §11.3). ``constant``: every request 0, the
    value ``Request.priority`` starts with, so nothing is computed."""

    name = "constant"

    def priority(self, req: Request, now: int) -> float:
        return 0.0


# Name (--scheduler, --priority-policy) -> factory. Names the CLI accepts but a table lacks are refused as not built
# yet (api.check_available).
SCHEDULING_POLICIES: dict[str, Callable[[], SchedulingPolicy]] = {"fcfs": FCFS}
PRIORITY_POLICIES: dict[str, Callable[[], PriorityPolicy]] = {"constant": PriorityPolicy}

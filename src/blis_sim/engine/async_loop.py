"""vLLM's asynchronous scheduling loop (ENGINE.md §7.8): the next batch is formed while the current one runs.

Functions of an ``Instance`` (engine/instance.py), which uses them when ``--async-scheduling`` is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .step import StepRecord

if TYPE_CHECKING:
    from .instance import Instance


def step_async(inst: Instance, now: int) -> int | None:
    """The loop of vLLM's asynchronous scheduler at tick ``now``: apply the batch that ends now, then form
    batches while the device is busy, so that at most two are in flight (a FIFO). Returns the tick of the
    next STEP (the end of the oldest batch in flight), or None when the instance goes idle."""
    fifo = inst.fifo
    if fifo and fifo[0].end <= now:
        inst.apply_step(fifo.popleft(), now)
    sched = inst.scheduler
    while True:
        if sched.waiting or sched.running:
            batch = form_async(inst, now)
            if not batch.requests:
                assert len(fifo) > 0, "internal error: empty batch with pending work"
            fifo.append(batch)
            if batch.requests and len(fifo) == 1 and batch.end > now:
                continue  # the device is busy with it: form the next batch at once
        elif not fifo:
            return None  # idle until the next ENQUEUE
        oldest = fifo[0]
        if oldest.end > now:
            inst.step_pending = True
            return oldest.end
        inst.apply_step(fifo.popleft(), now)

def form_async(inst: Instance, now: int) -> StepRecord:
    start = max(now, inst.device_free)
    sched = inst.scheduler
    step = sched.schedule(now, start)
    if step.requests:
        stats = inst.stats
        stats.hol_sum += len(sched.waiting)
        stats.hol_steps += 1
        stats.num_steps += 1
        step.end = start + inst.latency.step_time(step)
        inst.device_free = step.end
    else:
        step.end = start  # an empty batch: no device time, produces nothing
    return step

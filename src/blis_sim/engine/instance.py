"""One simulated vLLM server: waiting queue, running batch, KV cache and latency model (ENGINE.md §7).

The cluster loop calls two methods: ``enqueue`` when a routed request reaches the waiting queue, and ``step`` at
each step boundary. ``step`` applies the results of the step that just ended, then forms and prices the next one
and returns its end tick. Token outputs, completions and KV releases happen at step end; allocations and
preemptions at step start.
"""

from __future__ import annotations

import logging
from collections import deque

from mypy_extensions import mypyc_attr

from ..config import EngineConfig
from ..kv.cache import KVCacheManager
from ..latency.base import LatencyModel
from ..metrics.counters import InstanceStats
from ..metrics.histogram import add_count
from ..request import Request, RequestStatus
from .async_loop import step_async
from .cohort import DecodeCohort, by_seq
from .fast_path import apply_cohort, finish_cohort, form_fast, skip_ahead
from .scheduler import Scheduler
from .step import NEVER, StepRecord

log = logging.getLogger("blis_sim")


REASON_MODEL_LEN = "prompt + output tokens exceed --max-model-len"
REASON_KV = "KV blocks needed exceed --total-kv-blocks"


@mypyc_attr(allow_interpreted_subclasses=True)  # the tests' CheckedInstance checks invariants per step
class Instance:
    __slots__ = (
        "index",
        "name",
        "kv",
        "scheduler",
        "latency",
        "stats",
        "max_model_len",
        "block_size",
        "output_token_time",
        "skip_ahead",
        "asynchronous",
        "fifo",
        "device_free",
        "in_flight",
        "step_pending",
        "num_pending",
        "cohort",
        "decode_memo",
        "memo_stride",
        "price_each_decode",
    )

    def __init__(
        self,
        index: int,
        cfg: EngineConfig,
        total_kv_blocks: int,
        latency: LatencyModel,
        skip_ahead: bool = True,
        decode_memo: dict[int, int] | None = None,
    ) -> None:
        self.index = index
        self.name = f"instance_{index}"
        self.kv = KVCacheManager(total_kv_blocks, cfg.block_size_in_tokens)
        self.stats = InstanceStats()
        self.scheduler = Scheduler(cfg, self.kv, self.stats.scheduling_delay.counts)
        self.latency = latency
        self.max_model_len = cfg.max_model_len
        self.block_size = cfg.block_size_in_tokens
        self.output_token_time = latency.output_token_time()
        self.asynchronous = cfg.async_scheduling  # vLLM's async scheduler loop (§7.8)
        self.skip_ahead = skip_ahead and not self.asynchronous  # advance stable decode stretches at once (§7.6)
        self.fifo: deque[StepRecord] = deque()  # async: formed batches not applied yet, oldest first
        self.device_free = 0  # async: tick at which the last formed batch ends
        self.in_flight: StepRecord | None = None
        self.step_pending = False
        self.num_pending = 0  # routed here, not yet in the waiting queue
        self.cohort = DecodeCohort(self.block_size)  # steady decoders of the fast path (skip_ahead only)
        # decode-only step durations by context sum * stride + batch size; instances with the same latency model
        # and engine settings may share one (the model is a pure function)
        self.decode_memo: dict[int, int] = {} if decode_memo is None else decode_memo
        self.memo_stride = cfg.max_num_running_reqs + 1
        self.price_each_decode = latency.decode_is_cheap()  # a compiled model: cheaper to call than to look up

    # -- ENQUEUE ----------------------------------------------------------------------------------------------
    def enqueue(self, req: Request, now: int) -> bool:
        """Put a routed request in the waiting queue; True when the caller must schedule a STEP at ``now``."""
        self.num_pending -= 1
        self.stats.last_event_time = now
        req.enqueue_time = now
        P = req.num_prompt_tokens
        N = req.num_output_tokens
        if P + N > self.max_model_len:
            self._drop(req, REASON_MODEL_LEN)
            return False
        if -(-(P + max(N - 1, 0)) // self.block_size) > self.kv.num_blocks:
            self._drop(req, REASON_KV)
            return False
        req.status = RequestStatus.WAITING
        self.scheduler.waiting.append(req)
        self.stats.total_input_tokens += P
        if self.step_pending:
            return False
        self.step_pending = True
        return True

    def _drop(self, req: Request, reason: str) -> None:
        req.status = RequestStatus.DROPPED
        stats = self.stats
        stats.dropped_unservable += 1
        stats.dropped_by_reason[reason] = stats.dropped_by_reason.get(reason, 0) + 1
        req.drop_tokens()  # never needed again
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: dropped %s (P=%d, N=%d): %s",
                self.name, req.id, req.num_prompt_tokens, req.num_output_tokens, reason,
            )

    # -- STEP -------------------------------------------------------------------------------------------------
    def step(self, now: int, bound: int = NEVER) -> int | None:
        """Step boundary at ``now``: finish the in-flight step, start the next. Returns its end tick, or None.

        ``bound`` is the earliest tick at which anything outside this instance can act on it or look at it (the
        next arrival or control-plane event, or just past the horizon). On the fast path every boundary before
        it is taken here, without a round trip through the event queue, and stable decode stretches in one go
        (``fast_path.skip_ahead``); single stepping (``skip_ahead`` off) takes one boundary per call.
        """
        self.step_pending = False
        stats = self.stats
        if self.asynchronous:
            stats.last_event_time = now
            return step_async(self, now)
        sched = self.scheduler
        fast = self.skip_ahead
        while True:
            stats.last_event_time = now
            applied = self.in_flight
            if applied is not None:
                self.in_flight = None
                self.apply_step(applied, now)
            if not sched.waiting and not sched.running and not self.cohort.size:
                self.step_pending = False
                return None
            step = form_fast(self, now) if fast else sched.schedule(now)
            stats.hol_sum += len(sched.waiting)
            stats.hol_steps += 1
            stats.num_steps += 1
            self.step_pending = True
            assert step.requests or step.cohort_size, "internal error: empty batch with pending work"
            end = now + self.latency.step_time(step)
            if not fast or end >= bound:
                self.in_flight = step
                return end
            if not step.requests and not step.preempted:  # the cohort alone: stable until it changes
                end = skip_ahead(self, step, end, bound)
                if end >= bound:
                    return end
            else:
                self.in_flight = step
            now = end  # nothing outside this instance acts before ``bound``: take that boundary here

    def apply_step(self, step: StepRecord, now: int) -> None:
        """Results of the step that ends at ``now``: each request that caught up with its known tokens emits its
        next token; finished requests release their KV (§7.4–§7.5, and §7.8 for placeholders), in the order
        the step scheduled them."""
        a2 = self.output_token_time
        stats = self.stats
        itl = stats.itl.counts
        finishing = apply_cohort(self, step, now) if step.cohort_size else None
        finished_running = finished_waiting = False
        asynchronous = self.asynchronous
        for req in step.emits:
            if finishing and finishing[0].seq < req.seq:
                finishing = finish_cohort(self, finishing, req.seq, now)
            req.num_placeholders -= 1
            N = req.num_output_tokens
            if N == 0:  # prefill-only: finishes without a token
                req.first_token = now
                req.ttft = now - req.arrival + a2
                stats.ttft.add(req.ttft)
                finished_waiting |= req.status == RequestStatus.WAITING
                self.finish(req, now, req.ttft)
                finished_running = True
                continue
            g = req.num_generated + 1
            req.num_generated = g
            if g == 1:
                req.first_token = now
                req.ttft = now - req.arrival + a2
                stats.ttft.add(req.ttft)
            else:
                v = now - req.last_token + a2
                add_count(itl, v, 1)
            req.last_token = now
            stats.total_output_tokens += 1
            if asynchronous and req.status == RequestStatus.RUNNING:
                # the block holding the token that was in flight can be keyed now (vLLM's cache_blocks)
                self.kv.register_full_blocks(req, req.num_computed_tokens - req.num_placeholders)
            if g == N:
                finished_waiting |= req.status == RequestStatus.WAITING  # preempted after its last formation
                self.finish(req, now, now - req.arrival + N * a2)
                finished_running = True
        if finishing:
            finish_cohort(self, finishing, NEVER, now)
        if finished_running:
            sched = self.scheduler
            sched.running = [r for r in sched.running if r.status == RequestStatus.RUNNING]
            if finished_waiting:
                sched.waiting = deque(r for r in sched.waiting if r.status == RequestStatus.WAITING)

    # -- views for the world outside the hot loop -------------------------------------------------------------
    @property
    def num_running(self) -> int:
        return len(self.scheduler.running) + self.cohort.size

    def running_requests(self) -> list[Request]:
        """Every running request in admission order, with explicit counters (the cohort's written back)."""
        if not self.cohort.size:
            return list(self.scheduler.running)
        in_flight = self.in_flight
        members = self.cohort.materialize(1 if in_flight is not None and in_flight.cohort_size else 0)
        return sorted(self.scheduler.running + members, key=by_seq)

    def finalize(self) -> None:
        """End of the run: every request's counters explicit, ``running`` the whole running batch."""
        if self.cohort.size:
            self.scheduler.running = self.running_requests()

    def finish(self, req: Request, now: int, e2e: int) -> None:
        req.status = RequestStatus.FINISHED
        req.finish_time = now
        req.e2e = e2e
        self.kv.free(req)
        self.stats.completed += 1
        self.stats.e2e.add(e2e)
        req.drop_tokens()  # free the token memory of finished requests
        req.block_keys = []

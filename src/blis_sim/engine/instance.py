"""One simulated vLLM server: waiting queue, running batch, KV cache and latency model (ENGINE.md §7).

The face the cluster sees is narrow: ``assign`` when a request is routed here (it counts as pending until it
arrives), ``enqueue`` when it reaches the waiting queue, ``step`` at each step boundary, ``snapshot`` for what a
router may see, ``counters`` for the metrics, and ``finalize`` at the end. ``step`` applies the results of the step
that just ended, then forms and prices the next one and returns its end tick. Token outputs, completions and KV
releases happen at step end; allocations and preemptions at step start.

The pieces inside: the scheduler (engine/scheduler.py) with its scheduling policy (engine/policy.py), the KV manager
(kv/cache.py) with an optional tier below it, the synchronous fast path (engine/fast_path.py) and vLLM's asynchronous
loop (``_step_async`` below). An optional observer (engine/observer.py) hears of every formed step and completion.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import deque
from typing import Final

from mypy_extensions import mypyc_attr

from ..config import EngineConfig
from ..kv.cache import KVCacheManager
from ..kv.tier import KVTier
from ..latency.base import LatencyModel
from ..metrics.counters import InstanceCounters, InstanceStats
from ..metrics.histogram import add_count
from ..request import Request, RequestStatus
from ..step import NEVER, StepRecord
from .cohort import DecodeCohort, by_seq
from .fast_path import FastPath
from .observer import Observer
from .policy import SCHEDULING_POLICIES, SchedulingPolicy
from .scheduler import Scheduler
from .snapshot import KVSignals, Snapshot

log = logging.getLogger("blis_sim")


PLAN_CAP: Final = 256  # boundaries a parked instance plans ahead (it wakes to plan again after them)
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
        "fast",
        "stretches",
        "asynchronous",
        "fifo",
        "device_free",
        "in_flight",
        "step_pending",
        "num_pending",
        "cohort",
        "fast_path",
        "observer",
        "tier",
        "signals",
        "fresh_waiting",
        "lazy",
        "parked",
        "resume_at",
        "plan_times",
        "plan_takes",
        "plan_used",
        "wake_token",
    )

    def __init__(
        self,
        index: int,
        cfg: EngineConfig,
        total_kv_blocks: int,
        latency: LatencyModel,
        skip_ahead: bool = True,
        decode_memo: dict[int, int] | None = None,
        policy: SchedulingPolicy | None = None,
        observer: Observer | None = None,
        tier: KVTier | None = None,
        snapshot_refresh_interval: int = 0,
    ) -> None:
        self.index = index
        self.name = f"instance_{index}"
        self.kv = KVCacheManager(total_kv_blocks, cfg.block_size_in_tokens, tier)
        self.stats = InstanceStats()
        if policy is None:  # the run's --scheduler, built from the engine settings (its --priority-policy)
            policy = SCHEDULING_POLICIES[cfg.scheduler](cfg)
        self.scheduler = Scheduler(cfg, self.kv, self.stats.scheduling_delay.counts, policy)
        self.latency = latency
        self.max_model_len = cfg.max_model_len
        self.block_size = cfg.block_size_in_tokens
        self.output_token_time = latency.output_token_time()
        self.asynchronous = cfg.async_scheduling  # vLLM's async scheduler loop (§7.8)
        # the decode cohort (§7.6), where the scheduling policy allows it
        self.fast = skip_ahead and not self.asynchronous and policy.fast_path
        # stable decode stretches advanced in one go; not while an observer wants to hear of every step, nor with a
        # KV tier (it must see each eviction at the tick of its own batch formation)
        self.stretches = self.fast and observer is None and tier is None
        self.tier = tier
        self.fifo: deque[StepRecord] = deque()  # async: formed batches not applied yet, oldest first
        self.device_free = 0  # async: tick at which the last formed batch ends
        self.in_flight: StepRecord | None = None
        self.step_pending = False
        self.num_pending = 0  # routed here, not yet in the waiting queue
        self.cohort = DecodeCohort(self.block_size)  # steady decoders of the fast path
        self.fast_path = FastPath(
            self.scheduler, self.cohort, self.kv, latency, self.stats, self.block_size, cfg.max_num_running_reqs,
            {} if decode_memo is None else decode_memo,
        )
        self.observer = observer
        self.signals = KVSignals(snapshot_refresh_interval)
        self.fresh_waiting = False  # a request reached the waiting queue since the last batch formation
        # Parking (set up by the cluster when routing reads instance state, see ``_park``): a stable decode batch in
        # flight is left to run on its own until something looks at or acts on the instance.
        self.lazy = False
        self.parked = False
        self.resume_at = 0  # parked: the end of the step in flight, where the planned stretch starts
        self.plan_times: list[int] = []  # parked: ticks of the boundaries the stretch will take on its own
        self.plan_takes: list[int] = []  # parked: blocks taken by the formations after the first k of them
        self.plan_used = 0  # parked: blocks in use when it parked
        self.wake_token = -1  # the cluster's mark of this instance's one current STEP event

    # -- the cluster's face -----------------------------------------------------------------------------------
    def assign(self, req: Request) -> int:
        """A request routed here: it counts as pending and injected; returns the ticks until it reaches the
        waiting queue (the latency model's queueing time), when the cluster calls ``enqueue``."""
        self.num_pending += 1
        self.stats.injected += 1
        return self.latency.queueing_time(req.num_prompt_tokens)

    def enqueue(self, req: Request, now: int) -> int:
        """Put a routed request in the waiting queue. Returns the tick at which the caller must schedule this
        instance's next STEP (replacing any earlier one), or -1 when its current STEP stands."""
        wake = -1
        if self.parked:  # the planned stretch runs up to now; the request changes what follows
            wake = self._unpark(now)
        self.num_pending -= 1
        self.stats.last_event_time = now
        req.enqueue_time = now
        P = req.num_prompt_tokens
        N = req.num_output_tokens
        if P + N > self.max_model_len:
            self._drop(req, REASON_MODEL_LEN)
            return wake
        if -(-(P + max(N - 1, 0)) // self.block_size) > self.kv.num_blocks:
            self._drop(req, REASON_KV)
            return wake
        req.status = RequestStatus.WAITING
        self.scheduler.policy.add(req)
        self.fresh_waiting = True
        self.stats.total_input_tokens += P
        if self.step_pending:
            return wake
        self.step_pending = True
        return now

    def snapshot(self, now: int) -> Snapshot:
        """What a router may see of this instance at ``now`` (§6.2): queue depth, batch size and pending requests
        exact; the KV fields as of the last refresh (every call with the default interval 0)."""
        kv = self.kv
        signals = self.signals
        if signals.stale(now):
            used = kv.num_used
            if self.parked:  # the planned boundaries before now have taken their blocks (ticks at now: not yet)
                used = self.plan_used + self.plan_takes[bisect_left(self.plan_times, now)]
            signals.refresh(now, used / kv.num_blocks, kv.num_blocks - used,
                            kv.hit_tokens / kv.query_tokens if kv.query_tokens else 0.0)
        return Snapshot(
            queue_depth=len(self.scheduler.policy),
            batch_size=self.num_running,
            pending_requests=self.num_pending,
            kv_utilization=signals.kv_utilization,
            free_kv_blocks=signals.free_kv_blocks,
            cache_hit_rate=signals.cache_hit_rate,
        )

    @property
    def num_waiting(self) -> int:
        return len(self.scheduler.policy)

    @property
    def num_running(self) -> int:
        return len(self.scheduler.running) + self.cohort.size

    def counters(self) -> InstanceCounters:
        """Everything the metrics read of this instance (after ``finalize``)."""
        sched = self.scheduler
        return InstanceCounters(
            name=self.name,
            stats=self.stats,
            still_queued=len(sched.policy) + self.num_pending,
            still_running=len(sched.running),
            preemptions=sched.num_preemptions,
            self_preemptions=sched.num_self_preemptions,
            prefix_query_tokens=self.kv.query_tokens,
            prefix_hit_tokens=self.kv.hit_tokens,
            offloads=0 if self.tier is None else self.tier.offloads,
            thrash=0 if self.tier is None else self.tier.thrash,
        )

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
        (``FastPath.skip_ahead``); single stepping (the reference scheduler) takes one boundary per call.
        """
        self.step_pending = False
        stats = self.stats
        if self.asynchronous:
            stats.last_event_time = now
            return self._step_async(now)
        if self.parked:  # woken at the first boundary its plan does not cover: take the planned ones first
            self._unpark(now)
        sched = self.scheduler
        policy = sched.policy
        fast = self.fast
        observer = self.observer
        stretches = self.stretches
        while True:
            stats.last_event_time = now
            applied = self.in_flight
            if applied is not None:
                if (stretches and not applied.requests and not applied.preempted and not self.fresh_waiting
                        and now < bound):
                    # The cohort-only step in flight ends now and nothing reached this instance since it was
                    # formed: the stable batch goes on exactly as if its stretch had been given this bound then.
                    end = self.fast_path.skip_ahead(applied, now, bound)
                    if end > now:
                        self.step_pending = True
                        if end >= bound:
                            return self._park(end) if self.lazy else end
                        now = end
                        continue
                self.in_flight = None
                self.apply_step(applied, now)
            if not len(policy) and not sched.running and not self.cohort.size:
                self.step_pending = False
                return None
            if self.tier is not None:
                self.tier.now = now
            step = self.fast_path.form(now) if fast else sched.schedule(now)
            self.fresh_waiting = False
            if not step.requests and not step.cohort_size:
                if not step.preempted:  # every waiting request waits for its tier load: idle until the first ends
                    return self._wait_for_loads(now)
                # vllm-priority only: the pass preempted every request it had scheduled (engine/policy.py). vLLM runs
                # the empty batch, which takes no device time and is not a step, and schedules again at once.
                continue
            stats.hol_sum += len(policy)
            stats.hol_steps += 1
            stats.num_steps += 1
            self.step_pending = True
            assert step.requests or step.cohort_size, "internal error: empty batch with pending work"
            end = now + self.latency.step_time(step) + step.transfer_time
            step.end = end
            if observer is not None:
                observer.on_step(self.index, step, len(policy), self.kv.pool.num_used)
            if not fast or end >= bound:
                self.in_flight = step
                if self.lazy and stretches and not step.requests and not step.preempted:
                    return self._park(end)
                return end
            if stretches and not step.requests and not step.preempted:  # the cohort alone: stable until
                end = self.fast_path.skip_ahead(step, end, bound)  # it changes
                self.in_flight = step
                if end >= bound:
                    return self._park(end) if self.lazy else end
            else:
                self.in_flight = step
            now = end  # nothing outside this instance acts before ``bound``: take that boundary here

    def _wait_for_loads(self, now: int) -> int:
        """Nothing can run and every waiting request waits for its KV tier load (vLLM's connector model): the
        instance is idle, woken at the end of the first load (an ENQUEUE before then wakes it as usual)."""
        wake = self.kv.next_load_end() if self.kv.async_loads else -1
        assert wake > now, "internal error: empty batch with pending work"
        self.step_pending = False
        return wake

    # -- parking: a stable decode batch left to run on its own ---------------------------------------------------
    def _park(self, end: int) -> int:
        """The step in flight is the decode cohort alone and ends at ``end``, past the bound; nothing reached the
        instance since it was formed. When routing reads instance state, every instance would otherwise be woken
        at every arrival just to take one boundary. Instead the stretch ahead is planned (``FastPath.plan``):
        until its first unplanned boundary, returned as the tick of the next STEP, the instance's snapshot is
        computed from the plan, and an ENQUEUE (or the end of the run) first takes the planned boundaries before
        it (``_unpark``). Exact, because nothing outside the instance acts on it in between."""
        in_flight = self.in_flight
        assert in_flight is not None
        times, takes, wake = self.fast_path.plan(in_flight, end, PLAN_CAP)
        if not times:
            return end
        self.parked = True
        self.resume_at = end
        self.plan_times = times
        self.plan_takes = takes
        self.plan_used = self.kv.num_used
        return wake

    def _unpark(self, t: int) -> int:
        """Take the planned boundaries before ``t``; returns the end of the step then in flight (>= ``t``)."""
        self.parked = False
        step = self.in_flight
        assert step is not None
        end = self.fast_path.skip_ahead(step, self.resume_at, t)
        self.step_pending = True
        return end

    def settle(self, bound: int) -> None:
        """End of the run's event loop: a parked instance takes its planned boundaries before ``bound``."""
        if self.parked:
            self._unpark(bound)

    def apply_step(self, step: StepRecord, now: int) -> None:
        """Results of the step that ends at ``now``: each request that caught up with its known tokens emits its
        next token; finished requests release their KV (§7.4–§7.5, and §7.8 for placeholders), in the order
        the step scheduled them."""
        a2 = self.output_token_time
        stats = self.stats
        itl = stats.itl.counts
        finishing = self.fast_path.apply_cohort(step, now) if step.cohort_size else None
        finished_running = finished_waiting = False
        asynchronous = self.asynchronous
        for req in step.emits:
            if finishing and finishing[0].seq < req.seq:
                finishing = self._finish_members(finishing, req.seq, now)
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
            self._finish_members(finishing, NEVER, now)
        if finished_running:
            sched = self.scheduler
            sched.running = [r for r in sched.running if r.status == RequestStatus.RUNNING]
            if finished_waiting:
                sched.policy.retain_waiting()

    def _finish_members(self, finishing: list[Request], before_seq: int, now: int) -> list[Request]:
        """Finish the cohort members (out of the cohort already) admitted before ``before_seq``; returns the rest."""
        a2 = self.output_token_time
        i = 0
        while i < len(finishing) and finishing[i].seq < before_seq:
            r = finishing[i]
            self.finish(r, now, now - r.arrival + r.num_output_tokens * a2)
            i += 1
        return finishing[i:]

    # -- vLLM's asynchronous scheduling loop (§7.8): the next batch is formed while the current one runs ---------
    def _step_async(self, now: int) -> int | None:
        """Apply the batch that ends now, then form batches while the device is busy, so that at most two are in
        flight (a FIFO). Returns the tick of the next STEP (the end of the oldest batch in flight), or None when
        the instance goes idle."""
        fifo = self.fifo
        if fifo and fifo[0].end <= now:
            self.apply_step(fifo.popleft(), now)
        sched = self.scheduler
        policy = sched.policy
        while True:
            if len(policy) or sched.running:
                batch = self._form_async(now)
                if not batch.requests and not batch.preempted:
                    # every waiting request waits for its KV tier load: form again when the batch in flight ends
                    if not fifo:
                        return self._wait_for_loads(now)
                else:
                    # an empty batch with an empty FIFO only when it preempted (vllm-priority): applied at once
                    fifo.append(batch)
                    if batch.requests and len(fifo) == 1 and batch.end > now:
                        continue  # the device is busy with it: form the next batch at once
            elif not fifo:
                return None  # idle until the next ENQUEUE
            oldest = fifo[0]
            if oldest.end > now:
                self.step_pending = True
                return oldest.end
            self.apply_step(fifo.popleft(), now)

    def _form_async(self, now: int) -> StepRecord:
        start = max(now, self.device_free)
        sched = self.scheduler
        if self.tier is not None:
            self.tier.now = now
        step = sched.schedule(now, start)
        if step.requests:
            stats = self.stats
            stats.hol_sum += len(sched.policy)
            stats.hol_steps += 1
            stats.num_steps += 1
            step.end = start + self.latency.step_time(step) + step.transfer_time
            self.device_free = step.end
            if self.observer is not None:
                self.observer.on_step(self.index, step, len(sched.policy), self.kv.pool.num_used)
        else:
            step.end = start  # an empty batch: no device time, produces nothing
        return step

    # -- views for the world outside the hot loop -------------------------------------------------------------
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
        if self.observer is not None:
            self.observer.on_completion(self.index, req, now)
        req.drop_tokens()  # free the token memory of finished requests
        req.block_keys = []

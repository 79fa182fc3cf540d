"""One simulated vLLM server: waiting queue, running batch, KV cache and latency model (ENGINE.md §7).

The cluster loop calls two methods: ``enqueue`` when a routed request reaches the waiting queue, and ``step`` at
each step boundary. ``step`` applies the results of the step that just ended, then forms and prices the next one
and returns its end tick. Token outputs, completions and KV releases happen at step end; allocations and
preemptions at step start.
"""

from __future__ import annotations

import logging
from collections import deque
from bisect import bisect_left
from itertools import accumulate

import numpy as np

from ..config import EngineConfig
from ..kv.cache import KVCacheManager
from ..latency.base import LatencyModel
from ..metrics.counters import InstanceStats
from ..request import Request, RequestStatus
from .scheduler import Scheduler
from .step import StepRecord

log = logging.getLogger("blis_sim")

NEVER = 2**63  # a bound no tick reaches

REASON_MODEL_LEN = "prompt + output tokens exceed --max-model-len"
REASON_KV = "KV blocks needed exceed --total-kv-blocks"


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
    )

    def __init__(
        self,
        index: int,
        cfg: EngineConfig,
        total_kv_blocks: int,
        latency: LatencyModel,
        skip_ahead: bool = True,
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
        req.tokens = None  # type: ignore[assignment]  # never needed again
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s: dropped %s (P=%d, N=%d): %s",
                self.name, req.id, req.num_prompt_tokens, req.num_output_tokens, reason,
            )

    # -- STEP -------------------------------------------------------------------------------------------------
    def step(self, now: int, bound: int = NEVER) -> int | None:
        """Step boundary at ``now``: finish the in-flight step, start the next. Returns its end tick, or None.

        ``bound`` is the earliest tick at which anything outside this instance can act on it or look at it (the
        next arrival or control-plane event, or just past the horizon). Boundaries before it may be advanced
        here in one go when nothing inside the instance can change the batch either (``_skip_ahead``).
        """
        self.step_pending = False
        stats = self.stats
        stats.last_event_time = now
        if self.asynchronous:
            return self._step_async(now)
        if self.in_flight is not None:
            self._apply(self.in_flight, now)
            self.in_flight = None
        sched = self.scheduler
        if not sched.waiting and not sched.running:
            return None
        step = sched.schedule(now)
        assert step.requests, "internal error: empty batch with pending work"
        stats.hol_sum += len(sched.waiting)
        stats.hol_steps += 1
        stats.num_steps += 1
        self.step_pending = True
        end = now + self.latency.step_time(step)
        if (
            self.skip_ahead
            and end < bound
            and not step.prefill_items
            and not step.preempted
            and not step.num_admitted
            and len(step.requests) == len(sched.running)
        ):
            return self._skip_ahead(step, end, bound)
        self.in_flight = step
        return end

    def _skip_ahead(self, step: StepRecord, end: int, bound: int) -> int:
        """Advance the boundaries of a stable decode-only batch that fall before ``bound``, exactly as single steps.

        ``step`` decodes every running request, admitted nobody and preempted nobody. Until a request finishes, a
        running request cannot get a block, a new block key could let the waiting head in, or something external
        happens, every following step is the same batch with every context one token longer: each boundary emits
        one token per request and each formation takes a block for the requests whose context reaches a block
        boundary and keys the blocks that fill, in the order single stepping would (step by step, running order
        within a step). Step durations come in chunks (vectorised when long); the block events are the only
        per-step work, and per-request fields are brought up to date once at the end. Returns the end of the last
        step formed, which becomes the in-flight step.
        """
        reqs = step.requests
        B = len(reqs)
        # Step j (0 = ``step``) produces output token g + 1 + j; the first completion ends step ``last``.
        last = min(r.num_output_tokens - r.num_generated for r in reqs) - 1
        if last <= 0 or end >= bound:
            self.in_flight = step
            return end
        bs = self.block_size
        kv = self.kv
        pool = kv.pool
        a2 = self.output_token_time
        itl = self.stats.itl.counts
        # Requests by their context's phase within a block: at the formation of step j + 1 a request whose
        # context before that step, c + j, is a multiple of bs takes a block, and one with c + j + 1 a multiple
        # of bs fills (keys) its last block. ``c`` here is num_computed_tokens after forming step 0.
        by_phase: dict[int, list[Request]] = {}
        for r in reqs:
            by_phase.setdefault(r.num_computed_tokens % bs, []).append(r)
        base_sum = step.decode_context_sum  # context sum of step j is base_sum + j * B
        # A waiting request that did not fit stays out while free blocks only shrink, unless a block keyed during
        # the stretch adds to its prefix hits; that matters only when the running cap and the token budget
        # would still let it in.
        sched = self.scheduler
        watch_keys = bool(sched.waiting) and B < sched.max_running and B < sched.token_budget
        j = 0  # boundaries processed so far; the one at ``boundary`` ends step j
        boundary = end
        prev = step.start
        while j < last and boundary < bound:
            # Durations of steps j+1 .. j+m in one chunk; m covers every step that can end before ``bound``
            # (durations never shrink as contexts grow; if a model's did, the loop takes another chunk) or up to
            # the first completion.
            d_next = self.latency.decode_step_time(B, base_sum + (j + 1) * B)
            m = last - j
            if bound < NEVER:
                m = min(m, (bound - boundary) // max(d_next, 1) + 1)
            durations = self._decode_durations(B, base_sum + B * (j + 1), m, d_next)
            # bounds[i] = end of step j + i: bounds[0] is ``boundary``; the first n of them (< bound) are processed
            bounds = list(accumulate(durations, initial=boundary))
            n = min(bisect_left(bounds, bound, 0, m), last - j)  # bounds never decrease
            # KV events of the formations that follow those boundaries, in single-stepping order (the bodies of
            # BlockPool.take/register and KVCacheManager.block_key, inlined: this loop sees every block a
            # decode fills)
            block_key_of = pool.key
            index = pool.index
            for i in range(n):
                jj = j + i
                fillers = by_phase.get((-jj - 1) % bs)
                if fillers and watch_keys:
                    n = i  # a new key could give the waiting head enough prefix hits: form that step normally
                    break
                takers = by_phase.get(-jj % bs)
                if takers:
                    if len(takers) > pool.num_blocks - pool.num_used:
                        n = i  # forming step jj + 1 would preempt: leave that boundary to the normal path
                        break
                    for r in takers:
                        r.blocks.append(pool.take())
                if fillers:
                    for r in fillers:
                        idx = r.num_cached_blocks  # the one block that fills now: all before it are keyed
                        keys = r.block_keys
                        key = keys[idx] if idx < len(keys) else kv.block_key(r, idx)
                        block = r.blocks[idx]
                        block_key_of[block] = key
                        holders = index.get(key)
                        if holders is None:
                            index[key] = [block]
                        else:
                            holders.append(block)
                        r.num_cached_blocks = idx + 1
            if n == 0:
                break
            # tokens emitted at the n boundaries b_j .. b_{j+n-1}; the interval closed by b_{j+i} (i >= 1) is
            # durations[i - 1]. The very first boundary of the stretch is per request (requests may have had
            # different previous token times); every later one is shared by all B requests.
            if j == 0:
                for r in reqs:
                    v = boundary - r.last_token + a2
                    itl[v] = itl.get(v, 0) + 1
            else:
                v = boundary - prev + a2
                itl[v] = itl.get(v, 0) + B
            for v in durations[: n - 1]:
                v += a2
                itl[v] = itl.get(v, 0) + B
            prev = bounds[n - 1]
            boundary = bounds[n]
            j += n
            if n < len(durations):
                break
        if j:
            for r in reqs:
                r.num_generated += j
                r.num_computed_tokens += j
                r.last_token = prev
            stats = self.stats
            stats.total_output_tokens += B * j
            stats.num_steps += j
            stats.hol_sum += j * len(self.scheduler.waiting)
            stats.hol_steps += j
            stats.last_event_time = prev
            step = StepRecord.decode_only(prev, reqs, base_sum + j * B)
        self.in_flight = step
        return boundary

    def _decode_durations(self, num_decodes: int, first_sum: int, m: int, first: int) -> list[int]:
        """Durations of ``m`` consecutive decode-only steps whose context sums start at ``first_sum`` (the
        first duration, ``first``, is already known). Long runs go through the model's vectorised path."""
        vectorised = getattr(self.latency, "decode_step_times", None)
        if m > 32 and vectorised is not None:
            sums = first_sum + num_decodes * np.arange(m, dtype=np.int64)
            return vectorised(num_decodes, sums).tolist()
        f = self.latency.decode_step_time
        return [first] + [f(num_decodes, first_sum + i * num_decodes) for i in range(1, m)]

    def _apply(self, step: StepRecord, now: int) -> None:
        """Results of the step that ends at ``now``: each request that caught up with its known tokens emits its
        next token; finished requests release their KV (§7.4–§7.5, and §7.8 for placeholders)."""
        a2 = self.output_token_time
        stats = self.stats
        itl = stats.itl.counts
        finished_running = finished_waiting = False
        asynchronous = self.asynchronous
        for req in step.emits:
            req.num_placeholders -= 1
            N = req.num_output_tokens
            if N == 0:  # prefill-only: finishes without a token
                req.first_token = now
                req.ttft = now - req.arrival + a2
                stats.ttft.add(req.ttft)
                finished_waiting |= req.status == RequestStatus.WAITING
                self._finish(req, now, req.ttft)
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
                itl[v] = itl.get(v, 0) + 1
            req.last_token = now
            stats.total_output_tokens += 1
            if asynchronous and req.status == RequestStatus.RUNNING:
                # the block holding the token that was in flight can be keyed now (vLLM's cache_blocks)
                self.kv.register_full_blocks(req, req.num_computed_tokens - req.num_placeholders)
            if g == N:
                finished_waiting |= req.status == RequestStatus.WAITING  # preempted after its last formation
                self._finish(req, now, now - req.arrival + N * a2)
                finished_running = True
        if finished_running:
            sched = self.scheduler
            sched.running = [r for r in sched.running if r.status == RequestStatus.RUNNING]
            if finished_waiting:
                sched.waiting = deque(r for r in sched.waiting if r.status == RequestStatus.WAITING)

    # -- asynchronous scheduling (§7.8) -----------------------------------------------------------------------
    def _step_async(self, now: int) -> int | None:
        """The loop of vLLM's asynchronous scheduler at tick ``now``: apply the batch that ends now, then form
        batches while the device is busy, so that at most two are in flight (a FIFO). Returns the tick of the
        next STEP (the end of the oldest batch in flight), or None when the instance goes idle."""
        fifo = self.fifo
        if fifo and fifo[0].end <= now:
            self._apply(fifo.popleft(), now)
        sched = self.scheduler
        while True:
            if sched.waiting or sched.running:
                batch = self._form_async(now)
                if not batch.requests:
                    assert len(fifo) > 0, "internal error: empty batch with pending work"
                fifo.append(batch)
                if batch.requests and len(fifo) == 1 and batch.end > now:
                    continue  # the device is busy with it: form the next batch at once
            elif not fifo:
                return None  # idle until the next ENQUEUE
            oldest = fifo[0]
            if oldest.end > now:
                self.step_pending = True
                return oldest.end
            self._apply(fifo.popleft(), now)

    def _form_async(self, now: int) -> StepRecord:
        start = max(now, self.device_free)
        sched = self.scheduler
        step = sched.schedule(now, start)
        if step.requests:
            stats = self.stats
            stats.hol_sum += len(sched.waiting)
            stats.hol_steps += 1
            stats.num_steps += 1
            step.end = start + self.latency.step_time(step)
            self.device_free = step.end
        else:
            step.end = start  # an empty batch: no device time, produces nothing
        return step

    def _finish(self, req: Request, now: int, e2e: int) -> None:
        req.status = RequestStatus.FINISHED
        req.finish_time = now
        req.e2e = e2e
        self.kv.free(req)
        self.stats.completed += 1
        self.stats.e2e.add(e2e)
        req.tokens = None  # type: ignore[assignment]  # free the token memory of finished requests
        req.block_keys = []

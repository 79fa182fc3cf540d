"""Batch formation: the vLLM V1 scheduling pass (ENGINE.md §7.3).

There are no phases: each request's computed tokens chase its known tokens, one token budget is spent on running
requests first (in admission order), then on waiting ones. When a running request cannot get a block, the policy's
victim is preempted (recompute; under FCFS the most recently admitted running request), possibly the request itself;
after any preemption no waiting request is admitted in the same pass. A policy that may pick a victim scheduled
earlier in the pass (vLLM's priority policy, ``SchedulingPolicy.any_victim``) gets that victim's share of the step
taken back (``take_back``) and its tokens returned to the budget, as vLLM's ``Scheduler.schedule`` does. The
waiting queue and its order belong to the scheduling policy (engine/policy.py); KV blocks and their counters to the
KV manager.
"""

from __future__ import annotations

from typing import Final

from ..config import EngineConfig
from ..kv.cache import KVCacheManager
from ..metrics.histogram import add_count
from ..request import Request, RequestStatus
from ..step import StepRecord
from .policy import SchedulingPolicy

_WAITING: Final = RequestStatus.WAITING
_RUNNING: Final = RequestStatus.RUNNING


class Scheduler:
    __slots__ = (
        "kv",
        "num_formations",
        "policy",
        "running",
        "token_budget",
        "max_running",
        "long_prefill_threshold",
        "block_size",
        "num_preemptions",
        "num_self_preemptions",
        "num_admissions",
        "scheduling_delays",
    )

    def __init__(
        self, cfg: EngineConfig, kv: KVCacheManager, scheduling_delays: dict[int, int], policy: SchedulingPolicy
    ) -> None:
        self.kv = kv
        self.scheduling_delays = scheduling_delays  # histogram: first batch start - arrival, once per request
        self.policy = policy  # owns the waiting queue: its order and the preemption victims
        self.running: list[Request] = []  # admission order; victims come from the tail
        self.token_budget = cfg.max_num_scheduled_tokens
        self.max_running = cfg.max_num_running_reqs
        self.long_prefill_threshold = cfg.long_prefill_token_threshold
        self.block_size = cfg.block_size_in_tokens
        self.num_preemptions = 0
        self.num_self_preemptions = 0  # kv_allocation_failures: a request gave up its own blocks
        self.num_formations = 0  # batches formed by ``schedule`` (the fast path forms the others)
        self.num_admissions = 0  # also the admission sequence number (Request.seq) of the latest admission

    @property
    def waiting(self) -> SchedulingPolicy:
        """The waiting queue, in the policy's order (iterable, with a length)."""
        return self.policy

    def schedule(self, now: int, start: int | None = None) -> StepRecord:
        """Form the batch decided at ``now`` that runs from ``start`` (default ``now``; later when asynchronous
        scheduling forms it while the device is busy). Allocations and preemptions take effect immediately.

        Known tokens include the request's placeholders: output tokens of formed batches whose results have not
        been applied yet (always 0 in the synchronous loop, where results are applied before the next formation).
        """
        self.num_formations += 1
        start = now if start is None else start
        policy = self.policy
        if policy.reorders:
            policy.before_formation(start)
        step = StepRecord(start)
        budget = self.token_budget
        thr = self.long_prefill_threshold
        kv = self.kv
        running = self.running

        # Phase A: running requests, over the live list (a preempted tail request is never revisited).
        bs = self.block_size
        i = 0
        while i < len(running) and budget > 0:
            req = running[i]
            c = req.num_computed_tokens
            ph = req.num_placeholders
            P = req.num_prompt_tokens
            known = P + req.num_generated  # without placeholders: keys stop here
            k = known + ph - c
            if k == 0 or (ph and c + 2 - ph >= P + req.num_output_tokens):
                i += 1  # nothing to compute, or its last token is already in flight
                continue
            if 0 < thr < k:
                k = thr
            if k > budget:
                k = budget
            target = c + k
            # Most steps of a decode neither need a new block nor fill one: no KV call at all then.
            if target > len(req.blocks) * bs or min(target, known) // bs > req.num_cached_blocks:
                while not kv.allocate_running(req, k, known):
                    victim = policy.victim(running)
                    if policy.any_victim and victim is not req:
                        back = self.take_back(step, victim)
                        if back:  # it was scheduled earlier in this pass, so it stood before ``req``
                            budget += back
                            i -= 1
                    self._preempt(victim, step)
                    if victim is req:
                        self.num_self_preemptions += 1
                        break
                else:
                    self.record(step, req, k)
                    budget -= k
                    i += 1
                    continue
                break
            self.record(step, req, k)
            budget -= k
            i += 1

        # Phase B: waiting requests, only when nothing was preempted.
        if not step.preempted:
            self.admit_waiting(step, budget, len(running), start)
        return step

    def admit_waiting(self, step: StepRecord, budget: int, num_running: int, start: int) -> None:
        """Phase B: admit waiting requests in the policy's order while the budget, the running cap and the KV cache
        allow; ``num_running`` counts every running request (also those the instance keeps outside ``running``).

        With a tier whose loads the request waits for (``kv.async_loads``: vLLM's offloading connector,
        kv/vllm_offload.py), a waiting request whose GPU prefix hits are followed by tier hits starts loading them and
        leaves this pass; so does a request whose load is still under way at ``start``. Such requests take no token
        budget, no running slot and no GPU block, and go back to the head of the queue, in order, after the pass
        (vLLM's skipped waiting requests). Once its load is done, a request is admitted like any other, its loaded
        blocks counted as computed tokens (they cost no more time); only the rest of its prompt is scheduled."""
        waiting = self.policy
        running = self.running
        kv = self.kv
        bs = self.block_size
        thr = self.long_prefill_threshold
        max_running = self.max_running
        async_loads = kv.async_loads
        skipped: list[Request] | None = None  # made on the first skip (most passes have none)
        while len(waiting) and budget > 0 and num_running < max_running:
            req = waiting.head()
            if async_loads:
                end = kv.load_end(req)
                if end > start:  # its load is under way
                    if skipped is None:
                        skipped = []
                    skipped.append(waiting.pop_head())
                    continue
                if end >= 0:
                    kv.finish_load(req)
            hits = kv.lookup(req)
            if async_loads and hits and hits[-1] < 0 and not kv.loaded(req):
                kv.start_load(req, hits, start)
                if skipped is None:
                    skipped = []
                skipped.append(waiting.pop_head())
                continue
            cached = len(hits) * bs
            num_tokens = req.num_prompt_tokens + req.num_generated
            k = num_tokens - cached
            if 0 < thr < k:
                k = thr
            if k > budget:
                k = budget
            if not kv.allocate_waiting(req, hits, k):
                break  # the head stays; nothing behind it runs (vLLM's scheduler stops at the first that fails)
            if async_loads:
                kv.admitted(req)
            waiting.pop_head()
            running.append(req)
            num_running += 1
            self.num_admissions += 1
            req.seq = self.num_admissions
            step.num_admitted += 1
            req.status = _RUNNING
            req.num_computed_tokens = cached
            if req.first_scheduled < 0:
                req.first_scheduled = start
                d = start - req.arrival
                add_count(self.scheduling_delays, d, 1)
            self.record(step, req, k)
            budget -= k
        if skipped is not None:
            for req in reversed(skipped):
                waiting.add_preempted(req)
        if kv.transfer_time:  # blocks a KV tier loaded for the admitted requests: the step waits for them
            step.transfer_time += kv.transfer_time
            kv.transfer_time = 0

    @staticmethod
    def record(step: StepRecord, req: Request, k: int) -> None:
        c = req.num_computed_tokens
        ph = req.num_placeholders
        known = req.num_prompt_tokens + req.num_generated + ph
        step.requests.append(req)
        step.num_new_tokens.append(k)
        # A decode feeds the latest output token: one is known and every earlier known token is computed.
        if req.num_generated + ph and c == known - 1:
            step.num_decodes += 1
            step.decode_context_sum += c
        else:
            step.prefill_items.append((c, k))
            step.num_prefill_tokens += k
        c += k
        req.num_computed_tokens = c
        if c == known:  # caught up: this step samples the next token
            req.num_placeholders = ph + 1
            step.emits.append(req)

    @staticmethod
    def take_back(step: StepRecord, victim: Request) -> int:
        """Undo ``record`` for a running request that was scheduled earlier in this pass and is now preempted
        (vLLM's priority policy: ``Scheduler.schedule`` pops its tokens, blocks and outputs from the pass and refunds
        its tokens to the budget). Returns its tokens, or 0 when it was not scheduled in this pass.

        Its entry leaves ``requests``/``num_new_tokens``; a decode leaves the decode count and context sum, any other
        item its ``prefill_items`` entry, found by counting the prefill items of the entries before it (an entry was
        a decode exactly when it took one token, emits, and had an output token known before this step); an emit
        leaves ``emits`` with the placeholder it added. Only Phase A has run, so every entry is a running request.
        O(batch), and only on this preemption.
        """
        reqs = step.requests
        pos = len(reqs) - 1
        while pos >= 0 and reqs[pos] is not victim:
            pos -= 1
        if pos < 0:
            return 0
        counts = step.num_new_tokens
        k = counts[pos]
        emits = step.emits
        emitting: set[int] = set()
        emitted = False
        for r in emits:
            if r is victim:
                emitted = True
            else:
                emitting.add(id(r))
        c_before = victim.num_computed_tokens - k
        victim.num_computed_tokens = c_before
        if emitted:
            step.emits = [r for r in emits if r is not victim]
            victim.num_placeholders -= 1
        if emitted and k == 1 and victim.num_generated + victim.num_placeholders >= 1:
            step.num_decodes -= 1
            step.decode_context_sum -= c_before
        else:
            j = 0
            for q in range(pos):
                r = reqs[q]
                decode = counts[q] == 1 and id(r) in emitting and r.num_generated + r.num_placeholders >= 2
                if not decode:
                    j += 1
            del step.prefill_items[j]
            step.num_prefill_tokens -= k
        del reqs[pos]
        del counts[pos]
        return k

    def _preempt(self, victim: Request, step: StepRecord) -> None:
        """Recompute preemption: free all KV, back to the head of the waiting queue, keep generated tokens."""
        self.kv.preempt(victim)
        victim.num_computed_tokens = 0
        victim.status = _WAITING
        self.policy.add_preempted(victim)
        self.num_preemptions += 1
        step.preempted.append(victim)

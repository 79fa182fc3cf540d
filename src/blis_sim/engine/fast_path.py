"""The synchronous fast path of an instance: batch formation with the decode cohort, and decode skip-ahead.

``FastPath`` holds references to the parts of one instance that it works on (scheduler, cohort, KV manager, latency
model, counters) and nothing else; ``Instance.step`` uses it when the scheduling policy allows it
(``SchedulingPolicy.fast_path``) and ``--no-skip-ahead`` does not ask for the reference scheduler at every step.
Everything here gives exactly the results of the reference path (ENGINE.md §7.6): the cohort only changes how much
work a step costs, never what it decides. Blocks move through the KV manager (``grow``/``grow_by``).
"""

from __future__ import annotations

from typing import Final

import numpy as np

from ..kv.cache import KVCacheManager
from ..latency.base import LatencyModel
from ..metrics.counters import InstanceStats
from ..metrics.histogram import add_count
from ..request import Request
from ..step import NEVER, StepRecord
from .cohort import DecodeCohort, by_seq
from .scheduler import Scheduler

MEMO_LIMIT: Final = 1 << 18  # decode durations remembered per instance (about 25 MB at most)
FIRST_CHUNK: Final = 64  # decode durations priced in the first chunk of a stretch (doubling after each used up)
MAX_CHUNK: Final = 1 << 16  # and at most in one chunk (numpy arrays of a few MB)


class FastPath:
    __slots__ = (
        "sched",
        "cohort",
        "kv",
        "latency",
        "stats",
        "block_size",
        "output_token_time",
        "decode_memo",
        "memo_stride",
        "price_each_decode",
        "watched",
        "watched_tokens",
        "watched_keys",
    )

    def __init__(
        self,
        sched: Scheduler,
        cohort: DecodeCohort,
        kv: KVCacheManager,
        latency: LatencyModel,
        stats: InstanceStats,
        block_size: int,
        max_running: int,
        decode_memo: dict[int, int],
    ) -> None:
        self.sched = sched
        self.cohort = cohort
        self.kv = kv
        self.latency = latency
        self.stats = stats
        self.block_size = block_size
        self.output_token_time = latency.output_token_time()
        # decode-only step durations by context sum * stride + batch size; instances with the same latency model
        # and engine settings may share one (the model is a pure function)
        self.decode_memo = decode_memo
        self.memo_stride = max_running + 1
        self.price_each_decode = latency.decode_is_cheap()  # a compiled model: cheaper to call than to look up
        # the waiting head's block keys, for ``head_keys`` (remembered while the same request waits, unchanged)
        self.watched: Request | None = None
        self.watched_tokens = -1
        self.watched_keys: set[int] | None = None

    def form(self, now: int) -> StepRecord:
        """Form the next synchronous batch with the decode cohort taken as a whole (engine/cohort.py).

        Running requests that decode next join the cohort; the rest (prompt chunks) stay in ``running``. When
        the token budget and the free blocks cover every running request, vLLM's Phase A gives each its full
        share in admission order without preempting anyone, so only the cohort's block events and the other
        requests need visiting; the takes and the key registrations happen in admission order, as Phase A's
        would. Otherwise the cohort is written back and the step is formed by the reference scheduler.
        """
        sched = self.sched
        cohort = self.cohort
        running = sched.running
        if running:
            kept = []
            for r in running:
                g = r.num_generated
                if g and r.num_computed_tokens == r.num_prompt_tokens + g - 1:
                    cohort.join(r)
                else:
                    kept.append(r)
            if len(kept) < len(running):
                sched.running = running = kept
        bs = self.block_size
        kv = self.kv
        level = cohort.level
        size = cohort.size
        takers = cohort.takers(level) if size else []
        demand = size
        need = len(takers)
        thr = sched.long_prefill_threshold
        shares = []  # tokens each other running request computes in this step
        extras = []  # and the blocks it takes for them
        for r in running:
            c = r.num_computed_tokens
            k = r.num_prompt_tokens + r.num_generated - c
            if 0 < thr < k:
                k = thr
            shares.append(k)
            demand += k
            extra = -(-(c + k) // bs) - len(r.blocks)
            extras.append(extra)
            if extra > 0:
                need += extra
        if demand > sched.token_budget or need > kv.num_free():
            if size:
                sched.running = sorted(running + cohort.dissolve(), key=by_seq)
            return sched.schedule(now)
        step = StepRecord(now)
        fillers = cohort.fillers(level) if size else []
        if running:
            # block takes, then key registrations, each in admission order over the cohort and the others
            ti = 0
            for r, extra in zip(running, extras):
                seq = r.seq
                while ti < len(takers) and takers[ti].seq < seq:
                    kv.grow(takers[ti])
                    ti += 1
                if extra > 0:
                    kv.grow_by(r, extra)
            for t in takers[ti:]:
                kv.grow(t)
            fi = 0
            for r, k in zip(running, shares):
                seq = r.seq
                while fi < len(fillers) and fillers[fi].seq < seq:
                    f = fillers[fi]
                    kv.register_full_blocks(f, level + f.cohort_off + 1)
                    fi += 1
                kv.register_full_blocks(r, r.num_computed_tokens + k)  # a prompt chunk never passes its known tokens
            for f in fillers[fi:]:
                kv.register_full_blocks(f, level + f.cohort_off + 1)
            for r, k in zip(running, shares):
                sched.record(step, r, k)
        else:
            for t in takers:
                kv.grow(t)
            for f in fillers:
                kv.register_full_blocks(f, level + f.cohort_off + 1)
        if size:
            step.num_decodes += size
            step.decode_context_sum += size * level + cohort.sum_off
            step.cohort_size = size
            step.cohort_level = level
        budget = sched.token_budget - demand
        if budget > 0 and len(sched.policy):
            sched.admit_waiting(step, budget, len(running) + size, now)
        return step

    def skip_ahead(self, step: StepRecord, end: int, bound: int) -> int:
        """Advance the boundaries of a cohort-only step's stable batch that fall before ``bound``, exactly as
        single steps.

        Until a member finishes, a member cannot get a block, a new block key could let the waiting head in, or
        something external happens, every following step is the same cohort one level up: each boundary emits
        one token per member, and each formation takes a block for the members whose context reaches a block
        boundary and keys the blocks that fill, in admission order (the cohort's buckets). Step durations come
        in chunks (vectorised when long); the block events are the only per-step work. Returns the end of the
        last step formed; ``step``, moved to that last step, is the one in flight.
        """
        cohort = self.cohort
        B = cohort.size
        level0 = step.cohort_level
        # The step formed at level ``level0 + last`` gives the first member its last token.
        last = cohort.finishes[0][0] - level0
        if last <= 0 or end >= bound:
            return end
        kv = self.kv
        a2 = self.output_token_time
        itl = self.stats.itl.counts
        buckets = cohort.buckets
        bs = self.block_size
        base_sum = step.decode_context_sum  # context sum of step j is base_sum + j * B
        # A waiting request that did not fit stays out while free blocks only shrink, unless a block keyed during
        # the stretch adds to its prefix hits; that matters only when the running cap and the token budget
        # would still let it in.
        sched = self.sched
        watch_keys = len(sched.policy) > 0 and B < sched.max_running and B < sched.token_budget
        head_keys = self.head_keys() if watch_keys else None
        j = 0  # boundaries processed so far; the one at ``boundary`` ends step j
        boundary = end
        prev = step.start
        d_last = end - prev  # duration of the last step priced (the same batch at a smaller context)
        chunk = FIRST_CHUNK
        while j < last and boundary < bound:
            # Durations of steps j+1 .. j+m in one chunk; m covers every step that can end before ``bound`` or up to
            # the first completion: durations never shrink as contexts grow, so the last one sizes the chunk (an
            # over-estimate only prices steps the loop below leaves out; if a model's durations did shrink,
            # the loop takes another chunk). A block that cannot be had or a key the waiting head could use may
            # end the stretch long before either (a full KV cache: every few steps), so chunks start small and
            # double while they are used up: the steps priced and left out stay fewer than those processed + 64.
            m = last - j
            if m > chunk:
                m = chunk
            chunk = min(chunk << 1, MAX_CHUNK)
            if bound < NEVER:
                m = min(m, (bound - boundary) // max(d_last, 1) + 1)
            durations = self.decode_durations(B, base_sum + B * (j + 1), m)
            # The boundaries from ``boundary`` on, each the previous one plus a duration, that lie before ``bound``
            # (at most m, and none past the first completion): the first n are processed.
            n = 0
            cap = min(m, last - j)
            t = boundary
            while n < cap and t < bound:
                t += durations[n]
                n += 1
            # KV events of the formations that follow those boundaries, in single-stepping order; the formation
            # after boundary j + i is at level level0 + j + i + 1.
            phase = (-(level0 + j + 1)) % bs  # bucket of the takers at the first formation; fillers one below
            for i in range(n):
                fillers = buckets[phase - 1]  # phase 0 -> bucket bs - 1
                if fillers and watch_keys and registers_a_key(fillers, head_keys):
                    n = i  # a new key could give the waiting head enough prefix hits: form that step normally
                    break
                takers = buckets[phase]
                if takers:
                    if len(takers) > kv.num_free():
                        n = i  # forming this step would preempt: leave that boundary to the normal path
                        break
                    for r in takers:
                        kv.grow(r)
                for r in fillers:  # each fills the block after its keyed ones
                    kv.register_full_blocks(r, (r.num_cached_blocks + 1) * bs)
                phase = phase - 1 if phase else bs - 1
            if n == 0:
                break
            # tokens emitted at the n boundaries b_j .. b_{j+n-1}; the interval closed by b_{j+i} (i >= 1) is
            # durations[i - 1]. At the very first boundary of the stretch the cohort's newcomers have their own
            # previous token times; every later one is shared by all B members.
            if j == 0:
                newcomers = cohort.newcomers
                for r in newcomers:
                    v = boundary - r.last_token + a2
                    add_count(itl, v, 1)
                rest = B - len(newcomers)
                newcomers.clear()
                if rest:
                    v = boundary - cohort.last_emit + a2
                    add_count(itl, v, rest)
            else:
                v = boundary - prev + a2
                add_count(itl, v, B)
            # the intervals closed by the other n - 1 boundaries, a run of equal durations at a time
            run_d, run_n = 0, 0
            elapsed = 0
            for i in range(n - 1):
                d = durations[i]
                elapsed += d
                if d == run_d:
                    run_n += B
                    continue
                if run_n:
                    v = run_d + a2
                    add_count(itl, v, run_n)
                run_d, run_n = d, B
            if run_n:
                v = run_d + a2
                add_count(itl, v, run_n)
            d_last = durations[n - 1]
            prev = boundary + elapsed  # the n-th boundary processed, where the last step formed starts
            boundary = prev + d_last  # and where it ends
            j += n
            if n < len(durations):
                break
        if j:
            cohort.level = level0 + j
            cohort.last_emit = prev
            stats = self.stats
            stats.total_output_tokens += B * j
            stats.num_steps += j
            stats.hol_sum += j * len(sched.policy)
            stats.hol_steps += j
            stats.last_event_time = prev
            # the in-flight step is the cohort one level up: the same record, moved (it holds no request lists)
            step.start = step.end = prev
            step.cohort_level = level0 + j
            step.decode_context_sum = base_sum + j * B
        return boundary

    def plan(self, step: StepRecord, end: int, cap: int) -> tuple[list[int], list[int], int]:
        """What ``skip_ahead`` would do from the cohort-only ``step`` ending at ``end`` if nothing outside the
        instance acts on it, without doing it: the ticks of the boundaries it would process (at most ``cap``), the
        blocks taken by the formations after the first k of them (k = 0 .. len), and the tick of the first boundary
        it would not process (a completion, a block it cannot get, a key the waiting head could use, or the cap).
        Between ``end`` and that tick a router can see the instance's state without the instance stepping
        (``Instance.snapshot`` of a parked instance)."""
        cohort = self.cohort
        B = cohort.size
        level0 = step.cohort_level
        last = cohort.finishes[0][0] - level0
        times: list[int] = []
        takes = [0]
        if last <= 0:
            return times, takes, end
        n = last if last < cap else cap
        durations = self.decode_durations(B, step.decode_context_sum + B, n)
        buckets = cohort.buckets
        bs = self.block_size
        sched = self.sched
        watch_keys = len(sched.policy) > 0 and B < sched.max_running and B < sched.token_budget
        head_keys = self.head_keys() if watch_keys else None
        free = self.kv.num_free()
        taken = 0
        t = end
        phase = (-(level0 + 1)) % bs
        for i in range(n):
            fillers = buckets[phase - 1]
            if fillers and watch_keys and registers_a_key(fillers, head_keys):
                break
            k = len(buckets[phase])
            if k > free:
                break
            free -= k
            taken += k
            times.append(t)
            takes.append(taken)
            t += durations[i]
            phase = phase - 1 if phase else bs - 1
        return times, takes, t

    def decode_durations(self, num_decodes: int, first_sum: int, m: int) -> list[int]:
        """Durations of ``m`` consecutive decode-only steps whose context sums start at ``first_sum``.

        Long runs go through the model's vectorised path; short ones call a compiled model's ``decode_step_time``
        for each step, or look an interpreted model's (pure) values up in a memo: batch sizes and context sums
        recur across a run, so most lookups hit.
        """
        latency = self.latency
        if m > 32:
            vectorised = getattr(latency, "decode_step_times", None)
            if vectorised is not None:
                sums = first_sum + num_decodes * np.arange(m, dtype=np.int64)
                return vectorised(num_decodes, sums).tolist()
        out: list[int] = []
        if self.price_each_decode:
            s = first_sum
            for _ in range(m):
                out.append(latency.decode_step_time(num_decodes, s))
                s += num_decodes
            return out
        memo = self.decode_memo
        if len(memo) > MEMO_LIMIT:
            memo.clear()
        stride = self.memo_stride
        key = first_sum * stride + num_decodes  # (context sum, batch size) in one int
        step = num_decodes * stride
        for _ in range(m):
            v = memo.get(key)
            if v is None:
                v = memo[key] = latency.decode_step_time(num_decodes, key // stride)
            out.append(v)
            key += step
        return out

    def apply_cohort(self, step: StepRecord, now: int) -> list[Request]:
        """The cohort's share of a step's results: one token per member, counted at once. Returns the members
        that got their last token (out of the cohort, counters written back), in admission order."""
        cohort = self.cohort
        level = step.cohort_level
        finishing = cohort.pop_finishing(level)
        cohort.level = level + 1
        a2 = self.output_token_time
        itl = self.stats.itl.counts
        newcomers = cohort.newcomers
        for r in newcomers:
            v = now - r.last_token + a2
            add_count(itl, v, 1)
        rest = step.cohort_size - len(newcomers)
        newcomers.clear()
        if rest:
            v = now - cohort.last_emit + a2
            add_count(itl, v, rest)
        cohort.last_emit = now
        self.stats.total_output_tokens += step.cohort_size
        for r in finishing:
            r.num_generated = r.num_output_tokens
            r.num_computed_tokens = level + r.cohort_off + 1
            r.last_token = now
        return finishing


    def head_keys(self) -> set[int] | None:
        """The keys a block keyed during a stretch must hold to change what the waiting head's admission finds.

        At the step before the stretch the head did not fit; free blocks only shrink during it, and its prefix hits
        (``KVCacheManager.lookup``: the leading run of its first ``(num_tokens - 1) // block_size`` keys found in
        the index) can only grow when one of those keys is registered. So a filler whose new key is not among them
        cannot let the head in (a full KV cache with preempted requests waiting: otherwise every block a
        preempted-before member fills would end the stretch). An empty set: no key can add a hit (a request with
        deferred keys looks nothing up). None: any registered key counts (a policy that reorders its queue, or a
        KV tier, whose hits the index alone does not tell). The set is remembered while the same head waits with
        the same tokens."""
        policy = self.sched.policy
        kv = self.kv
        if policy.reorders or kv.tier is not None:
            return None
        head = policy.head()
        if head.keys_deferred:
            if kv.can_defer:
                return set()  # its lookup finds nothing until it is preempted (kv/cache.py)
            return None
        ntok = head.num_tokens
        if head is self.watched and ntok == self.watched_tokens:
            return self.watched_keys
        limit = (ntok - 1) // self.block_size
        keys: set[int] = set()
        if limit > 0:
            keys = set((head.block_keys or kv.keys_of(head))[:limit])
        self.watched = head
        self.watched_tokens = ntok
        self.watched_keys = keys
        return keys


def registers_a_key(fillers: list[Request], head_keys: set[int] | None) -> bool:
    """Whether filling these members' blocks adds a key to the index that matters to the waiting head (deferred
    keys add none, kv/cache.py; ``FastPath.head_keys``): the key of the block each fills, its first unkeyed one."""
    for r in fillers:
        if not r.keys_deferred:
            if head_keys is None:
                return True
            keys = r.block_keys
            if keys and keys[r.num_cached_blocks] in head_keys:
                return True
            if not keys:
                return True  # keys not computed yet (never the case for a keyed member): stay on the safe side
    return False

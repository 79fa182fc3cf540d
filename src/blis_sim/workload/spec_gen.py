"""Requests of a workload spec (ENGINE.md §10.5, §10.6): ``spec_requests(spec, seed, horizon, limit)``.

Per client, in list order, with its own named streams (``spec/<client index>/arrival``, ``.../length``,
``.../token/<chunk>``, ``.../session/<k>``; a prefix group's tokens from ``spec/prefix/<group>``):

* arrivals: ``t += max(1, floor(gap))`` from 0 (inference_perf stages: from each stage's start, dropping arrivals at or
  past its end) until ``t > horizon`` or the client's cap (2·limit requests when ``limit`` > 0) is reached; arrivals
  outside every lifecycle window are skipped. Gaps are drawn in vectorised blocks.
* lengths: every input length, then every output length (a multimodal client: text, then per modality the counts
  and per-item sizes), vectorised over the client's arrivals (a session draws all its rounds' lengths at once).
* tokens: drawn lazily per block of 4096 requests from a stream of its own, so only requests whose ids are read (the
  KV cache keys requests that can share blocks) cost a draw, and the ids do not depend on which are read.

Requests are ordered by (arrival, client index, round), the first ``limit`` are kept and numbered ``request_0...``.
A multi-turn client's arrivals start sessions: every round is built when the session's first round is produced;
rounds after the first are held in the ``SessionPlan`` until the previous round completes (``sessions.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..request import Request
from .distribution import TOKEN_ID_BOUND
from .rng import stream
from .samplers import gaps, lengths, weibull_shape
from .spec import DEFAULT_PREFIX_LENGTH, ClientSpec, Distribution, WorkloadSpec

UNLIMITED = 2**63 - 1
_BLOCK = 1 << 16  # gaps drawn per call
_TOKEN_CHUNK = 4096  # requests per lazily drawn token block
MODALITIES = ("image", "audio", "video")


@dataclass
class SessionPlan:
    """Rounds waiting for their previous round: previous round's index -> (next round, think time in ticks)."""

    follow: dict[int, tuple[Request, int]] = field(default_factory=dict)


class _Tokens:
    """The token ids of a block of requests of one client, drawn on first read; ``ids`` puts the group prefix
    before a request's own ids."""

    __slots__ = ("seed", "name", "total", "prefix", "block")

    def __init__(self, seed: int, name: str, total: int, prefix: np.ndarray) -> None:
        self.seed, self.name, self.total, self.prefix = seed, name, total, prefix
        self.block: np.ndarray | None = None

    def ids(self, start: int, stop: int) -> np.ndarray:
        if self.block is None:
            self.block = stream(self.seed, self.name).integers(0, TOKEN_ID_BOUND, size=self.total, dtype=np.int64)
        n = len(self.prefix)
        if n == 0:
            return self.block[start:stop]
        return np.concatenate((self.prefix, self.block[start:stop - n]))


def _bounded(spec: WorkloadSpec, horizon: int, limit: int) -> None:
    if limit > 0 or horizon < UNLIMITED or spec.staged:
        return
    for i, c in enumerate(spec.clients):
        if c.lifecycle is None or not c.lifecycle.windows:
            raise InputError(
                f"--workload-spec: clients[{i}]: the workload would be infinite (no num_requests, no horizon, and "
                "this client has no lifecycle windows): set num_requests > 0, horizon, or lifecycle.windows")


def _arrivals(spec: WorkloadSpec, ci: int, c: ClientSpec, seed: int, horizon: int, cap: int) -> np.ndarray:
    """The client's arrival ticks, ascending."""
    rng = stream(seed, f"spec/{ci}/arrival")
    total_fraction = sum(x.rate_fraction for x in spec.clients)
    share = c.rate_fraction / total_fraction
    proc, cv = c.arrival.process, c.arrival.cv
    k = weibull_shape(cv) if proc == "weibull" else None
    windows = c.lifecycle.windows if c.lifecycle is not None else ()
    if windows:
        horizon = min(horizon, max(w.end_us for w in windows))
    if spec.staged:
        spans, start = [], 0
        for st in spec.inference_perf.stages:  # type: ignore[union-attr]
            end = start + int(round(st.duration * 1e6))
            spans.append((start, min(end, horizon + 1), 1e6 / (st.rate * share)))
            start = end
    else:
        spans = [(0, horizon + 1, 1e6 / (spec.aggregate_rate * share))]  # type: ignore[operator]
    out: list[np.ndarray] = []
    kept = 0
    for begin, end, mean_us in spans:  # arrivals in [begin, end)
        t = begin
        while t < end and kept < cap:
            need = cap - kept if cap < UNLIMITED else _BLOCK
            n = max(16, min(_BLOCK, need, int((end - t) / mean_us * 1.2) + 16))
            times = t + np.cumsum(gaps(proc, cv, mean_us, rng, n, k))
            t = int(times[-1])
            times = times[times < end]
            if windows:
                inside = np.zeros(len(times), dtype=bool)
                for w in windows:
                    inside |= (times >= w.start_us) & (times < w.end_us)
                times = times[inside]
            times = times[: cap - kept]
            kept += len(times)
            out.append(times)
    return np.concatenate(out) if out else np.empty(0, dtype=np.int64)


def _input_lengths(c: ClientSpec, rng: np.random.Generator, n: int) -> np.ndarray:
    if c.input_distribution is not None and c.multimodal is None:
        return lengths(c.input_distribution.type, c.input_distribution.params, rng, n)
    mm = c.multimodal
    assert mm is not None
    total = np.zeros(n, dtype=np.int64)
    text: Distribution | None = mm.text_distribution or c.input_distribution
    if text is not None:
        total += lengths(text.type, text.params, rng, n)
    for m in MODALITIES:
        count_d, size_d = getattr(mm, f"{m}_count_distribution"), getattr(mm, f"{m}_distribution")
        if count_d is None or size_d is None:
            continue
        counts = np.floor(np.clip(_raw(count_d, rng, n), 0, None)).astype(np.int64)
        sizes = lengths(size_d.type, size_d.params, rng, int(counts.sum()))
        owner = np.repeat(np.arange(n), counts)
        total += np.bincount(owner, weights=sizes, minlength=n).astype(np.int64)
    return np.maximum(total, 1)


def _raw(d: Distribution, rng: np.random.Generator, n: int) -> np.ndarray:
    from .samplers import raw_values
    x = raw_values(d.type, d.params, rng, n)
    return np.floor(x + 0.5) if d.type not in ("constant", "empirical") else x


def _prefixes(spec: WorkloadSpec, seed: int) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for c in spec.clients:
        if c.prefix_group and c.prefix_group not in out:
            n = c.prefix_length or DEFAULT_PREFIX_LENGTH
            out[c.prefix_group] = stream(seed, f"spec/prefix/{c.prefix_group}").integers(
                0, TOKEN_ID_BOUND, size=n, dtype=np.int64)
    return out


def spec_requests(spec: WorkloadSpec, seed: int, horizon: int, limit: int, plan: SessionPlan) -> Iterator[Request]:
    """The spec's requests in arrival order (rounds after a session's first go to ``plan``); see the module doc."""
    _bounded(spec, horizon, limit)
    prefixes = _prefixes(spec, seed)
    times, owners, locals_, rounds_of = [], [], [], []
    per_client = []
    for ci, c in enumerate(spec.clients):
        mt = c.multi_turn
        rounds = mt.max_rounds if mt is not None else 1
        cap = math.ceil(2 * limit / rounds) if limit > 0 else UNLIMITED
        arr = _arrivals(spec, ci, c, seed, horizon, cap)
        n = len(arr)
        rng = stream(seed, f"spec/{ci}/length")
        ins = _input_lengths(c, rng, n * rounds)
        outs = lengths(c.output_distribution.type, c.output_distribution.params, rng, n * rounds)  # type: ignore[union-attr]
        prefix = prefixes.get(c.prefix_group, np.empty(0, dtype=np.int64)) if c.prefix_group else \
            np.empty(0, dtype=np.int64)
        offsets = np.zeros(n + 1, dtype=np.int64)
        if mt is None:
            own = ins + outs
            # offsets restart at every token block
            for b in range(0, n, _TOKEN_CHUNK):
                seg = own[b:b + _TOKEN_CHUNK]
                offsets[b + 1:b + 1 + len(seg)] = np.cumsum(seg)
        per_client.append((c, rounds, ins, outs, prefix, offsets))
        times.append(arr)
        owners.append(np.full(n, ci, dtype=np.int64))
        locals_.append(np.arange(n, dtype=np.int64))
        rounds_of.append(np.full(n, rounds, dtype=np.int64))
    if not times:
        return iter(())
    t = np.concatenate(times)
    owner = np.concatenate(owners)
    local = np.concatenate(locals_)
    order = np.lexsort((local, owner, t))
    nround = np.concatenate(rounds_of)[order]
    if limit > 0:
        cum = np.cumsum(nround)
        keep = int(np.searchsorted(cum, limit, side="left")) + 1
        order = order[:keep]
    if len(order) == 0:
        raise InputError("--workload-spec: the spec generates no request (raise the rates, num_requests, the horizon "
                         "or the lifecycle windows)")
    return _produce(t[order].tolist(), owner[order].tolist(), local[order].tolist(), per_client, seed, limit, plan)


def _produce(times: list[int], owners: list[int], locals_: list[int], per_client: list, seed: int, limit: int,
             plan: SessionPlan) -> Iterator[Request]:
    chunks: list[dict[int, _Tokens]] = [{} for _ in per_client]
    index = 0
    follow = plan.follow
    for at, ci, k in zip(times, owners, locals_):
        c, rounds, ins, outs, prefix, offsets = per_client[ci]
        if rounds == 1:
            b = k // _TOKEN_CHUNK
            src = chunks[ci].get(b)
            if src is None:
                stop = min(b * _TOKEN_CHUNK + _TOKEN_CHUNK, len(ins))
                total = int(offsets[stop])
                src = chunks[ci][b] = _Tokens(seed, f"spec/{ci}/token/{b}", total, prefix)
            n_in, n_out = int(ins[k]), int(outs[k])
            req = Request(index, at, None, len(prefix) + n_in, f"request_{index}", c.slo_class, c.tenant_id,
                          independent_tokens=len(prefix) == 0, token_source=src, token_start=int(offsets[k]),
                          num_tokens=len(prefix) + n_in + n_out)
            if c.priority:
                req.priority = float(c.priority)
            index += 1
            yield req
            continue
        mt = c.multi_turn
        rng = stream(seed, f"spec/{ci}/session/{k}")
        reqs = []
        prev_in: np.ndarray | None = None
        prev_out: np.ndarray | None = None
        for r in range(rounds):
            if limit > 0 and index >= limit:
                break
            n_in, n_out = int(ins[k * rounds + r]), int(outs[k * rounds + r])
            new = rng.integers(0, TOKEN_ID_BOUND, size=n_in, dtype=np.int64)
            out = rng.integers(0, TOKEN_ID_BOUND, size=n_out, dtype=np.int64)
            if r > 0 and mt.context_growth == "accumulate":
                inp = np.concatenate((prev_in, prev_out, new))  # type: ignore[arg-type]
            else:
                inp = np.concatenate((prefix, new))
            req = Request(index, at, np.concatenate((inp, out)), len(inp), f"request_{index}", c.slo_class,
                          c.tenant_id)
            req.session_id = f"sess_{ci}_{k}"
            req.round_index = r
            if c.priority:
                req.priority = float(c.priority)
            reqs.append(req)
            prev_in, prev_out = inp, out
            index += 1
        for a, b_ in zip(reqs, reqs[1:]):
            follow[a.index] = (b_, mt.think_time_us)
        if reqs:
            yield reqs[0]

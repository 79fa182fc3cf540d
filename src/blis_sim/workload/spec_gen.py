"""Requests of a workload spec (ENGINE.md §10.5, §10.6): ``spec_requests(spec, seed, horizon, limit)``.

Per client i, in list order, from its named streams (§3.1) ``spec/client/<i>/arrival``, ``.../length`` and
``.../token`` (a prefix group's tokens from ``spec/prefix/<group>``), in the order §10.5 lists the draws:

* arrivals: ``t += max(1, floor(gap))`` from 0 (inference_perf stages with explicit clients: from each stage's start,
  dropping arrivals at or past its end) until ``t > horizon`` or the client's cap (2·limit requests when
  ``limit`` > 0; for sessions 2·limit / rounds) is reached; arrivals outside every lifecycle window are skipped
  (their gaps were drawn). Gaps are drawn in vectorised blocks: the same values as one scalar call per gap.
* lengths: per request (per session round), in order: the input length (a multimodal client: the text length, then
  per modality image, audio, video the count and that many per-item sizes), the output length, then the reason
  ratio when the client has one (``samplers.draw_layout``: one vectorised call when that gives the scalar calls'
  values, otherwise request by request).
* tokens: per request its own input ids, then its output ids, each id ``floor(random() · 128000)`` (one 64-bit draw
  per id), so request k's ids start at a known position of the stream: they are drawn lazily per block of 4096
  requests by advancing a copy of the stream there, and only requests whose ids are read (the KV cache keys those
  that can share blocks) cost a draw. A session draws all its rounds' ids when it starts.

Requests are ordered by (arrival, client index, round), the first ``limit`` are kept and numbered ``request_0...``.
A multi-turn client's arrivals start sessions: every round is built when the session's first round is produced;
rounds after the first are held in the ``SessionPlan`` until the previous round completes (``sessions.py``).
Per-request metadata (``client_id``, ``streaming``, modality token counts, ``reason_ratio``) goes to ``Request.meta``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..request import Request
from .distribution import MAX_TOKEN_LENGTH, TOKEN_ID_BOUND
from .rng import stream
from .samplers import COUNT, RATIO, Part, draw_layout, gaps, weibull_shape
from .spec import DEFAULT_PREFIX_LENGTH, ClientSpec, Distribution, WorkloadSpec

UNLIMITED = 2**63 - 1
_BLOCK = 1 << 16  # gaps drawn per call
_TOKEN_CHUNK = 4096  # requests per lazily drawn token block
MODALITIES = ("image", "audio", "video")


@dataclass
class SessionPlan:
    """Rounds waiting for their previous round: previous round's index -> (next round, think time in ticks)."""

    follow: dict[int, tuple[Request, int]] = field(default_factory=dict)


class Meta(dict):
    """A request's metadata for its results-file record; ``prefix_len`` (not a record field) is its group prefix's
    length, for trace v2 export."""

    __slots__ = ("prefix_len",)


def token_ids(state: dict, position: int, count: int) -> np.ndarray:
    """Ids ``position .. position + count`` of a token stream whose initial bit-generator state is ``state``: one
    ``random()`` (one 64-bit output) per id, mapped to ``floor(u · 128000)``."""
    bits = np.random.PCG64()
    bits.state = state
    if position:
        bits.advance(position)
    return (np.random.Generator(bits).random(count) * TOKEN_ID_BOUND).astype(np.int64)


class _Tokens:
    """The token ids of a block of requests of one client, drawn on first read from the client's token stream
    (positions ``base .. base + total``); ``ids`` puts the group prefix before a request's own ids."""

    __slots__ = ("state", "base", "total", "prefix", "block")

    def __init__(self, state: dict, base: int, total: int, prefix: np.ndarray) -> None:
        self.state, self.base, self.total, self.prefix = state, base, total, prefix
        self.block: np.ndarray | None = None

    def ids(self, start: int, stop: int) -> np.ndarray:
        if self.block is None:
            self.block = token_ids(self.state, self.base, self.total)
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


# The longest mean gap between a client's arrivals (about 36 years): its sum over a block of gaps must stay within the
# int64 clock; a slower client would put its arrivals beyond any simulated time
MAX_MEAN_GAP_US = 2.0**50


def _arrivals(spec: WorkloadSpec, ci: int, c: ClientSpec, seed: int, horizon: int, cap: int) -> np.ndarray:
    """The client's arrival ticks, ascending."""
    rng = stream(seed, f"spec/client/{ci}/arrival")
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
    for _, _, mean_us in spans:
        if mean_us > MAX_MEAN_GAP_US:
            raise InputError(
                f"--workload-spec: clients[{ci}]: its arrival rate ({1e6 / mean_us:.3g} req/s: its share of the "
                f"{'stage rate' if spec.staged else 'aggregate_rate'}) puts a mean of {mean_us / 3.15576e13:.3g} "
                f"years between arrivals, beyond what the simulated clock holds; accepted: at least "
                f"{1e6 / MAX_MEAN_GAP_US:.3g} req/s per client")
    out: list[np.ndarray] = []
    kept = 0
    for begin, end, mean_us in spans:  # arrivals in [begin, end)
        t = begin
        while t < end and kept < cap:
            need = cap - kept if cap < UNLIMITED else _BLOCK
            n = max(16, min(_BLOCK, need, int(min((end - t) / mean_us * 1.2, _BLOCK)) + 16))
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


def _layout(c: ClientSpec) -> tuple[list, dict[str, int]]:
    """The draws of one request (session round) of ``c`` in §10.5's order, and where each named value is."""
    items: list = []
    where: dict[str, int] = {}
    mm = c.multimodal
    if mm is None:
        where["input"] = len(items)
        items.append(Part(c.input_distribution.type, c.input_distribution.params))  # type: ignore[union-attr]
    else:
        text: Distribution | None = mm.text_distribution or c.input_distribution
        if text is not None:
            where["text"] = len(items)
            items.append(Part(text.type, text.params))
        for m in MODALITIES:
            count_d, size_d = getattr(mm, f"{m}_count_distribution"), getattr(mm, f"{m}_distribution")
            if count_d is not None and size_d is not None:
                where[m] = len(items)
                items.append((Part(count_d.type, count_d.params, COUNT), Part(size_d.type, size_d.params)))
    where["output"] = len(items)
    items.append(Part(c.output_distribution.type, c.output_distribution.params))  # type: ignore[union-attr]
    ratio = c.reasoning.reason_ratio_distribution if c.reasoning is not None else None
    if ratio is not None:
        where["ratio"] = len(items)
        items.append(Part(ratio.type, ratio.params, RATIO))
    return items, where


def _draw_lengths(c: ClientSpec, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, list | None]:
    """Input and output lengths of ``n`` requests (rounds) and, for multimodal or reasoning clients, each one's
    metadata values (modality token counts, reason ratio)."""
    items, where = _layout(c)
    values = draw_layout(items, rng, n)
    outs = values[where["output"]]
    if c.multimodal is None:
        ins = values[where["input"]]
    else:
        ins = np.zeros(n, dtype=np.int64)
        for name in ("text", *MODALITIES):
            if name in where:
                ins += values[where[name]]
        ins = np.clip(ins, 1, MAX_TOKEN_LENGTH)
    if c.multimodal is None and "ratio" not in where:
        return ins, outs, None
    cols: list[tuple[str, np.ndarray]] = []
    if c.multimodal is not None:
        zero = np.zeros(n, dtype=np.int64)
        for name in ("text", *MODALITIES):
            cols.append((f"{name}_tokens", values[where[name]] if name in where else zero))
    if "ratio" in where:
        cols.append(("reason_ratio", values[where["ratio"]]))
    names = [k for k, _ in cols]
    rows = zip(*[v.tolist() for _, v in cols])
    return ins, outs, [dict(zip(names, r)) for r in rows]


def _meta(c: ClientSpec, prefix_len: int, extra: dict | None) -> Meta:
    m = Meta()
    if c.id:
        m["client_id"] = c.id
    if c.prefix_group:
        m["prefix_group"] = c.prefix_group
    if c.streaming:
        m["streaming"] = True
    if extra:
        m.update(extra)
    m.prefix_len = prefix_len
    return m


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
    empty = np.empty(0, dtype=np.int64)
    for ci, c in enumerate(spec.clients):
        mt = c.multi_turn
        rounds = mt.max_rounds if mt is not None else 1
        cap = math.ceil(2 * limit / rounds) if limit > 0 else UNLIMITED
        arr = _arrivals(spec, ci, c, seed, horizon, cap)
        n = len(arr)
        ins, outs, extra = _draw_lengths(c, stream(seed, f"spec/client/{ci}/length"), n * rounds)
        prefix = prefixes[c.prefix_group] if c.prefix_group else empty
        # position of each request's (session's) first id in the client's token stream
        own = ins + outs
        if rounds > 1:
            own = own.reshape(n, rounds).sum(axis=1)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(own, out=offsets[1:])
        state = stream(seed, f"spec/client/{ci}/token").bit_generator.state
        shared = _meta(c, len(prefix), None) if extra is None else None
        per_client.append((c, rounds, ins, outs, prefix, offsets, state, shared, extra))
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
    return _produce(t[order].tolist(), owner[order].tolist(), local[order].tolist(), per_client, limit, plan)


def _produce(times: list[int], owners: list[int], locals_: list[int], per_client: list, limit: int,
             plan: SessionPlan) -> Iterator[Request]:
    chunks: list[dict[int, _Tokens]] = [{} for _ in per_client]
    index = 0
    follow = plan.follow
    for at, ci, k in zip(times, owners, locals_):
        c, rounds, ins, outs, prefix, offsets, state, shared, extra = per_client[ci]
        if rounds == 1:
            b = k // _TOKEN_CHUNK
            src = chunks[ci].get(b)
            if src is None:
                first = b * _TOKEN_CHUNK
                stop = min(first + _TOKEN_CHUNK, len(ins))
                base = int(offsets[first])
                src = chunks[ci][b] = _Tokens(state, base, int(offsets[stop]) - base, prefix)
            n_in, n_out = int(ins[k]), int(outs[k])
            req = Request(index, at, None, len(prefix) + n_in, f"request_{index}", c.slo_class, c.tenant_id,
                          independent_tokens=len(prefix) == 0, token_source=src,
                          token_start=int(offsets[k]) - src.base, num_tokens=len(prefix) + n_in + n_out)
            req.meta = shared if shared is not None else _meta(c, len(prefix), extra[k])
            if c.priority:
                req.priority = float(c.priority)
            index += 1
            yield req
            continue
        mt = c.multi_turn
        first = k * rounds
        ids = token_ids(state, int(offsets[k]), int(offsets[k + 1] - offsets[k]))
        pos = 0
        reqs = []
        prev_in: np.ndarray | None = None
        prev_out: np.ndarray | None = None
        for r in range(rounds):
            if limit > 0 and index >= limit:
                break
            n_in, n_out = int(ins[first + r]), int(outs[first + r])
            new = ids[pos:pos + n_in]
            out = ids[pos + n_in:pos + n_in + n_out]
            pos += n_in + n_out
            if r > 0 and mt.context_growth == "accumulate":
                inp = np.concatenate((prev_in, prev_out, new))  # type: ignore[arg-type]
            else:
                inp = np.concatenate((prefix, new))
            req = Request(index, at, np.concatenate((inp, out)), len(inp), f"request_{index}", c.slo_class,
                          c.tenant_id)
            req.session_id = f"sess_{ci}_{k}"
            req.round_index = r
            req.meta = shared if shared is not None else _meta(c, len(prefix), extra[first + r])
            if c.priority:
                req.priority = float(c.priority)
            reqs.append(req)
            prev_in, prev_out = inp, out
            index += 1
        for a, b_ in zip(reqs, reqs[1:]):
            follow[a.index] = (b_, mt.think_time_us)
        if reqs:
            yield reqs[0]

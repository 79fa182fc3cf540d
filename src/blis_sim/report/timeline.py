"""Timeline export: a run's engine steps, request lifecycles and per-instance counters as a Chrome trace-event file
(the "Trace Event Format" that Perfetto and chrome://tracing open), recorded by an ``Observer`` (docs/timeline.md).

One process per instance (``instance_0``, ...; ``pid`` is the instance index) holds:

* thread 0, ``steps``: a complete slice (``"ph": "X"``) per engine step, from ``step.start`` to ``step.end``, named
  ``prefill``, ``decode`` or ``mixed`` after what it computes; its args are what the step scheduled;
* thread 1, ``preemptions``: an instant (``"ph": "i"``) where a request was preempted (the start of the step whose
  formation preempted it);
* counters (``"ph": "C"``) ``queue_depth`` (requests left waiting) and ``kv_utilization`` (GPU KV blocks in use over
  the instance's blocks), both sampled when a step is formed;
* request lifecycles as nestable async slices (``"ph": "b"/"e"``, category ``request``, ``id`` the request's index):
  the request (arrival to completion) enclosing ``queued`` (arrival to first scheduled), ``prefill`` (first scheduled
  to first token) and ``decode`` (first token to completion), with a ``preempted`` async instant (``"ph": "n"``) at
  each preemption. Only requests that complete get a lifecycle.

Simulation ticks are microseconds, as the format's ``ts`` and ``dur``: they are written unchanged.

Bounded: at most ``STEP_LIMIT`` step slices and ``REQUEST_LIMIT`` request lifecycles are kept. Past a limit a
deterministic sample is kept instead: the steps whose number on their instance (0, 1, 2, ... in formation order) is a
multiple of a stride ``k``, and the requests whose index (their 0-based place in the workload) is a multiple of a
stride ``m``; each stride is the smallest power of two that keeps the count within its limit (the recorder doubles it
when the count overflows, so memory stays bounded too). Counters are sampled with the steps, preemption marks with
the requests. The file's ``otherData.sampling`` says what was kept, and ``write_timeline`` warns.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Final, Iterable, Iterator

from ..engine.observer import Observer
from ..request import Request
from ..step import StepRecord
from .results_file import write_text_atomic

log = logging.getLogger("blis_sim")

STEP_LIMIT: Final = 200_000  # step slices kept in a timeline before it is sampled
REQUEST_LIMIT: Final = 50_000  # request lifecycles kept before they are sampled
FORMAT: Final = "blis-sim timeline"  # otherData.format: what ``blis timeline`` reads
FORMAT_VERSION: Final = 1

STEPS_TID, PREEMPTIONS_TID = 0, 1

# one kept step: (number on its instance, instance, start, end, prefill tokens, decode requests, scheduled requests,
# preempted, admitted, KV blocks used, queue depth, KV transfer ticks)
_Step = tuple[int, int, int, int, int, int, int, int, int, int, int, int]


class TimelineRecorder(Observer):
    """Records a run's timeline; pass it to ``api.execute(prepared, observer=...)``, then ``trace()`` gives the
    trace-event document and ``write(path)`` writes it atomically.

    ``total_kv_blocks`` (GPU KV blocks per instance) scales the ``kv_utilization`` counter (0 leaves it out);
    ``latency_model`` names what priced the steps (each step slice's ``duration`` arg); ``num_instances`` gives
    every instance a track, also one that never steps (0: the instances seen). ``step_limit`` and
    ``request_limit`` bound what is kept (module docstring).
    """

    def __init__(
        self,
        total_kv_blocks: int = 0,
        latency_model: str = "",
        num_instances: int = 0,
        step_limit: int = STEP_LIMIT,
        request_limit: int = REQUEST_LIMIT,
    ) -> None:
        if step_limit < 1 or request_limit < 1:
            raise ValueError("the timeline limits must be >= 1")
        self.total_kv_blocks = total_kv_blocks
        self.latency_model = latency_model
        self.num_instances = num_instances
        self.step_limit = step_limit
        self.request_limit = request_limit
        self.step_stride = 1  # k: steps kept are those whose number on their instance is a multiple of k
        self.request_stride = 1  # m: requests kept are those whose index is a multiple of m
        self.steps_seen = 0
        self.requests_completed = 0
        self.rejected = 0
        self._step_counts: list[int] = []  # steps formed so far, per instance
        self._steps: list[_Step] = []
        # completed requests kept: (index, id, instance, arrival, first scheduled, first token, finish, prompt
        # tokens, output tokens, [preemption ticks])
        self._requests: list[tuple[int, str, int, int, int, int, int, int, int, list[int]]] = []
        # preemptions of requests kept so far: index -> (id, [(instance, tick)])
        self._preemptions: dict[int, tuple[str, list[tuple[int, int]]]] = {}

    # -- the observer ------------------------------------------------------------------------------------------
    def on_admission(self, req: Request, now: int, admitted: bool, reason: str) -> None:
        if not admitted:
            self.rejected += 1

    def on_step(self, instance: int, step: StepRecord, queue_depth: int, kv_used: int) -> None:
        counts = self._step_counts
        while len(counts) <= instance:
            counts.append(0)
        n = counts[instance]
        counts[instance] = n + 1
        self.steps_seen += 1
        if step.preempted:
            stride = self.request_stride
            for req in step.preempted:
                if req.index % stride == 0:
                    entry = self._preemptions.get(req.index)
                    if entry is None:
                        entry = self._preemptions[req.index] = (req.id, [])
                    entry[1].append((instance, step.start))
        if n % self.step_stride:
            return
        self._steps.append((
            n, instance, step.start, step.end, step.num_prefill_tokens, step.num_decodes,
            len(step.requests) + step.cohort_size, len(step.preempted), step.num_admitted, kv_used, queue_depth,
            step.transfer_time,
        ))
        if len(self._steps) > self.step_limit:
            while len(self._steps) > self.step_limit:
                self.step_stride *= 2
                k = self.step_stride
                self._steps = [s for s in self._steps if s[0] % k == 0]
                if k > 2 ** 62:  # more instances than the limit: each keeps its first step
                    break

    def on_completion(self, instance: int, req: Request, now: int) -> None:
        self.requests_completed += 1
        entry = self._preemptions.pop(req.index, None)
        if req.index % self.request_stride:
            return
        marks = [tick for _, tick in entry[1]] if entry is not None else []
        self._requests.append((
            req.index, req.id, instance, req.arrival, req.first_scheduled, req.first_token, req.finish_time,
            req.num_prompt_tokens, req.num_output_tokens, marks,
        ))
        if len(self._requests) > self.request_limit:
            while len(self._requests) > self.request_limit and self.request_stride <= 2 ** 62:
                self.request_stride *= 2
                m = self.request_stride
                self._requests = [r for r in self._requests if r[0] % m == 0]
            m = self.request_stride
            self._preemptions = {i: e for i, e in self._preemptions.items() if i % m == 0}

    # -- the document -------------------------------------------------------------------------------------------
    @property
    def sampled(self) -> bool:
        return self.step_stride > 1 or self.request_stride > 1

    def sampling_text(self) -> str:
        """What was kept, in one sentence (empty when nothing was left out)."""
        parts = []
        if self.step_stride > 1:
            k = self.step_stride
            parts.append(f"1 step in {k} on each instance (numbers 0, {k}, {2 * k}, ...: {len(self._steps):,} of "
                         f"{self.steps_seen:,} steps, limit {self.step_limit:,})")
        if self.request_stride > 1:
            parts.append(f"the requests whose index is a multiple of {self.request_stride} ({len(self._requests):,} "
                         f"of {self.requests_completed:,} completed requests, limit {self.request_limit:,})")
        return "; ".join(parts)

    def trace(self) -> dict[str, Any]:
        """The trace-event document: ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}``."""
        return {"traceEvents": self.events(), "displayTimeUnit": "ms", "otherData": self.metadata()}

    def metadata(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "generator": "blis-sim",
            "time_unit": "ticks of 1 us (ts and dur are ticks)",
            "latency_model": self.latency_model,
            "num_instances": self._instances(),
            "total_kv_blocks_per_instance": self.total_kv_blocks,
            "steps": self.steps_seen,
            "steps_kept": len(self._steps),
            "completed_requests": self.requests_completed,
            "requests_kept": len(self._requests),
            "rejected_requests": self.rejected,
            "sampled": self.sampled,
            "sampling": {
                "step_limit": self.step_limit,
                "step_stride": self.step_stride,
                "request_limit": self.request_limit,
                "request_stride": self.request_stride,
                "rule": "steps whose number on their instance is a multiple of step_stride (their counters with "
                        "them); completed requests whose index is a multiple of request_stride (their preemption "
                        "marks with them)",
                "description": self.sampling_text() or "complete: nothing left out",
            },
        }

    def _instances(self) -> int:
        return max(self.num_instances, len(self._step_counts))

    def events(self) -> list[dict[str, Any]]:
        """Every event, grouped: track names, then per instance its steps with their counters, then preemption
        marks, then request lifecycles (by instance, arrival, index). Deterministic for a deterministic run."""
        return list(self.iter_events())

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """``events()`` one at a time (``write`` streams them to the file)."""
        for i in range(self._instances()):
            yield {"name": "process_name", "ph": "M", "pid": i, "tid": STEPS_TID,
                   "args": {"name": f"instance_{i}"}}
            yield {"name": "process_sort_index", "ph": "M", "pid": i, "tid": STEPS_TID,
                   "args": {"sort_index": i}}
            yield {"name": "thread_name", "ph": "M", "pid": i, "tid": STEPS_TID, "args": {"name": "steps"}}
            yield {"name": "thread_name", "ph": "M", "pid": i, "tid": PREEMPTIONS_TID,
                   "args": {"name": "preemptions"}}
        total = self.total_kv_blocks
        for (_, i, start, end, prefill, decodes, scheduled, preempted, admitted, kv_used, queue,
             transfer) in sorted(self._steps, key=lambda s: (s[1], s[0])):
            name = "mixed" if prefill and decodes else ("prefill" if prefill else "decode")
            args: dict[str, Any] = {
                "prefill_tokens": prefill,
                "decode_requests": decodes,
                "scheduled_requests": scheduled,
                "admitted": admitted,
                "preempted": preempted,
                "kv_blocks_used": kv_used,
                "queue_depth": queue,
                "duration": self.latency_model or "latency model",
            }
            if transfer:
                args["kv_transfer_us"] = transfer
            yield {"name": name, "cat": "step", "ph": "X", "pid": i, "tid": STEPS_TID, "ts": start,
                   "dur": end - start, "args": args}
            yield {"name": "queue_depth", "ph": "C", "pid": i, "ts": start, "args": {"waiting": queue}}
            if total > 0:
                yield {"name": "kv_utilization", "ph": "C", "pid": i, "ts": start,
                       "args": {"used": round(kv_used / total, 6)}}
        marks: list[tuple[int, int, int, str]] = [
            (inst, tick, index, rid) for index, (rid, ticks) in self._preemptions.items() for inst, tick in ticks
        ]
        for index, rid, inst, *_, ticks in self._requests:
            marks.extend((inst, tick, index, rid) for tick in ticks)
        for inst, tick, index, rid in sorted(marks):
            yield {"name": "preempted", "cat": "preemption", "ph": "i", "s": "t", "pid": inst,
                   "tid": PREEMPTIONS_TID, "ts": tick, "args": {"request": rid, "index": index}}
        for (index, rid, inst, arrival, scheduled_at, first_token, finish, prompt, output,
             ticks) in sorted(self._requests, key=lambda r: (r[2], r[3], r[0])):
            yield {"name": rid, "cat": "request", "ph": "b", "pid": inst, "id": index, "ts": arrival,
                   "args": {"prompt_tokens": prompt, "output_tokens": output, "preemptions": len(ticks)}}
            for name, begin, end in (("queued", arrival, scheduled_at), ("prefill", scheduled_at, first_token),
                                     ("decode", first_token, finish)):
                yield {"name": name, "cat": "request", "ph": "b", "pid": inst, "id": index, "ts": begin}
                yield {"name": name, "cat": "request", "ph": "e", "pid": inst, "id": index, "ts": end}
            for tick in ticks:
                yield {"name": "preempted", "cat": "request", "ph": "n", "pid": inst, "id": index, "ts": tick}
            yield {"name": rid, "cat": "request", "ph": "e", "pid": inst, "id": index, "ts": finish}

    def write(self, path: Path) -> None:
        """Write the trace atomically (no partial file on any failure), streamed event by event; see
        ``write_timeline``."""
        doc = {"displayTimeUnit": "ms", "otherData": self.metadata()}
        write_text_atomic(Path(path), _chunks(self.iter_events(), doc))


def render_trace(doc: dict[str, Any]) -> str:
    """The document as text: one event per line (a file that diffs and greps well), same bytes for the same
    document (``write`` writes exactly this)."""
    return "".join(_chunks(doc["traceEvents"], {k: v for k, v in doc.items() if k != "traceEvents"}))


def _chunks(events: Iterable[dict[str, Any]], rest: dict[str, Any]) -> Iterator[str]:
    yield '{"traceEvents":['
    sep = "\n"
    for e in events:
        yield sep + json.dumps(e, separators=(",", ":"), allow_nan=False)
        sep = ",\n"
    tail = json.dumps(rest, indent=1, allow_nan=False)[1:]  # the other keys, after the events
    yield "\n]" + ("," if rest else "") + tail + "\n"


def write_timeline(recorder: TimelineRecorder, path: Path, flag: str = "--timeline-out") -> None:
    """Write ``recorder``'s timeline to ``path`` atomically; an unwritable file is an ``InputError`` naming
    ``flag``, a sampled timeline a one-line warning."""
    from ..errors import InputError

    try:
        recorder.write(path)
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot write: {exc.strerror or exc}") from None
    if recorder.sampled:
        log.warning("%s %s: the timeline was sampled: %s", flag, path, recorder.sampling_text())

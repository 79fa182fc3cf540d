"""Helpers to drive the engine directly: hand-made requests, a linear latency model, invariant checks."""

from __future__ import annotations

import numpy as np

from blis_sim.cluster.policies import AlwaysAdmit, RoundRobin
from blis_sim.cluster.simulator import ClusterSimulator
from blis_sim.config import EngineConfig
from blis_sim.engine.instance import Instance
from blis_sim.latency.base import LatencyModel
from blis_sim.request import Request, RequestStatus


class LinearLatency(LatencyModel):
    """step = b0 + b1*prefill tokens + b2*decodes (the blackbox shape, kept local to the tests)."""

    name = "test-linear"

    def __init__(self, b0=1000, b1=10, b2=1, a0=0, a2=0, a1=0, cheap=False):
        self.b0, self.b1, self.b2, self.a0, self.a2, self.a1 = b0, b1, b2, a0, a2, a1
        self.cheap = cheap  # True: skip-ahead prices every decode step instead of using its memo

    def decode_is_cheap(self):
        return self.cheap

    def step_time(self, step):
        return self.b0 + self.b1 * step.num_prefill_tokens + self.b2 * step.num_decodes

    def decode_step_time(self, num_decodes, context_sum):
        return self.b0 + self.b2 * num_decodes

    def queueing_time(self, num_prompt_tokens):
        return self.a0 + self.a1 * num_prompt_tokens

    def output_token_time(self):
        return self.a2

    def describe(self):
        return {"name": self.name}


def make_request(index, arrival, prompt, output, priority=0, request_id=None):
    tokens = np.asarray(list(prompt) + list(output), dtype=np.int64)
    req = Request(index, arrival, tokens, len(prompt), request_id=request_id)
    req.priority = float(priority)
    return req


def fresh(requests):
    """Unsimulated copies of hand-made requests (the compiled Request does not support copy.deepcopy)."""
    out = []
    for r in requests:
        copy = Request(r.index, r.arrival, r.tokens.copy(), r.num_prompt_tokens, request_id=r.id)
        copy.priority = r.priority
        out.append(copy)
    return out


def check_instance(inst: Instance) -> None:
    """KV invariants of ENGINE.md §8.8 plus the status bookkeeping of the queues."""
    sched = inst.scheduler
    running = inst.running_requests()
    owners = [r.blocks for r in running]
    for r in sched.waiting:
        assert not r.blocks, "a waiting request owns blocks"
        assert r.status == RequestStatus.WAITING
    for r in running:
        assert r.status == RequestStatus.RUNNING
        assert len(r.blocks) == -(-r.num_computed_tokens // inst.block_size), r
    inst.kv.pool.check_invariants(owners)
    assert len(running) <= sched.max_running


class CheckedInstance(Instance):
    """An instance that checks every invariant after each result application and each batch formation."""

    __slots__ = ("steps", "_seen")

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.steps = []
        self._seen = []  # async batches already recorded

    def apply_step(self, step, now):
        super().apply_step(step, now)
        check_instance(self)

    def step(self, now, bound=2**63):
        end = super().step(now, bound)
        check_instance(self)
        if end is not None and self.asynchronous:
            for s in self.fifo:
                assert s.num_scheduled_tokens <= self.scheduler.token_budget
                if s.requests and all(s is not seen for seen in self._seen):
                    self._seen.append(s)
                    self.steps.append((s.start, s.end, s.num_scheduled_tokens))
        elif end is not None and self.in_flight is not None:  # (None: idle until a KV tier load ends)
            s = self.in_flight
            assert s.num_scheduled_tokens <= self.scheduler.token_budget
            thr = self.scheduler.long_prefill_threshold
            if thr:
                assert max(s.num_new_tokens, default=1) <= thr
            assert len(s.requests) == len(set(map(id, s.requests)))
            self.steps.append((now, end, s.num_scheduled_tokens))
        return end


def simulate(requests, engine: EngineConfig, latency=None, num_instances=1, horizon=2**63 - 1, checked=True,
             skip_ahead=True, admission=None, policy=None, observer=None, tier=None, refresh=0, routing=None,
             latencies=(0, 0), instances_out=None):
    """Run ``requests`` on ``num_instances`` instances; ``policy`` and ``tier`` are factories called per instance,
    ``routing`` one called with the number of instances (default round-robin)."""
    latency = latency or LinearLatency()
    cls = CheckedInstance if checked else Instance
    instances = [
        cls(i, engine, engine.total_kv_blocks, latency, skip_ahead, policy=policy() if policy else None,
            observer=observer, tier=tier() if tier else None, snapshot_refresh_interval=refresh)
        for i in range(num_instances)
    ]
    if instances_out is not None:  # the caller's view of the instances while they run
        instances_out.extend(instances)
    router = routing(num_instances) if routing else RoundRobin(num_instances)
    sim = ClusterSimulator(instances, admission or AlwaysAdmit(), router, latencies[0], latencies[1], horizon,
                           keep_routed=True, observer=observer, snapshots_always=refresh > 0)
    sim.run(sorted(requests, key=lambda r: (r.arrival, r.index)))
    return sim

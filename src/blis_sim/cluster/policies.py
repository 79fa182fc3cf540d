"""Admission and routing policies: pure decisions over a request and cheap instance snapshots (ENGINE.md §11).

Only the defaults exist in this version (always-admit, round-robin); the others arrive with the cluster
control-plane issue and plug in here as more entries of the two tables.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..request import Request


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the router may see of one instance (§6.2)."""

    queue_depth: int
    batch_size: int
    pending_requests: int
    kv_utilization: float
    free_kv_blocks: int

    @property
    def effective_load(self) -> int:
        return self.queue_depth + self.batch_size + self.pending_requests


class AlwaysAdmit:
    needs_snapshots = False
    admits_everything = True  # lets the cluster predict where upcoming arrivals go

    def admit(self, req: Request, snapshots: list[Snapshot] | None, now: int) -> tuple[bool, str]:
        return True, ""


class RoundRobin:
    """target = (number of requests routed so far) mod N."""

    needs_snapshots = False

    def __init__(self, num_instances: int) -> None:
        self.num_instances = num_instances
        self.counter = 0

    def choose(self, req: Request, snapshots: list[Snapshot] | None) -> int:
        target = self.counter % self.num_instances
        self.counter += 1
        return target

    def upcoming_index(self, instance: int) -> int:
        """Which of the next routed requests (0 = the very next) will go to ``instance``."""
        return (instance - self.counter) % self.num_instances


ADMISSION_POLICIES = {"always-admit": lambda cfg: AlwaysAdmit()}
ROUTING_POLICIES = {"round-robin": lambda cfg: RoundRobin(cfg.num_instances)}

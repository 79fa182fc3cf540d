"""Admission and routing policies: pure decisions over a request and cheap instance snapshots (ENGINE.md §11).

Only the defaults exist in this version (always-admit, round-robin); the others plug in here as more entries of the
two tables, which are the only place their names are bound to code (the names the CLI accepts are in
``config.names``; a name without an entry here is refused as not built yet).
"""

from __future__ import annotations

from typing import Callable

from mypy_extensions import mypyc_attr

from ..engine.snapshot import Snapshot
from ..request import Request

__all__ = [
    "ADMISSION_POLICIES", "ROUTING_POLICIES", "AdmissionPolicy", "AlwaysAdmit", "RoundRobin", "RoutingPolicy",
    "Snapshot",
]


@mypyc_attr(allow_interpreted_subclasses=True)
class AdmissionPolicy:
    """Decides whether an arriving request enters the cluster. A compiled base class, so that the compiled cluster
    loop calls a policy directly; policies written in Python subclass it too."""

    def __init__(self) -> None:
        self.needs_snapshots = False  # the cluster builds instance snapshots only for policies that read them
        self.admits_everything = False  # True lets the cluster predict where upcoming arrivals go

    def admit(self, req: Request, snapshots: list[Snapshot] | None, now: int) -> tuple[bool, str]:
        """(admitted, reason for a rejection)."""
        raise NotImplementedError


@mypyc_attr(allow_interpreted_subclasses=True)
class RoutingPolicy:
    """Picks the instance of an admitted request (its index in the cluster)."""

    def __init__(self) -> None:
        self.needs_snapshots = False
        self.predictable = False  # True: upcoming_index says where the next requests go, from the order alone

    def choose(self, req: Request, snapshots: list[Snapshot] | None) -> int:
        raise NotImplementedError

    def upcoming_index(self, instance: int) -> int:
        """Which of the next routed requests (0 = the very next) will go to ``instance`` (predictable policies)."""
        raise NotImplementedError


class AlwaysAdmit(AdmissionPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.admits_everything = True

    def admit(self, req: Request, snapshots: list[Snapshot] | None, now: int) -> tuple[bool, str]:
        return True, ""


class RoundRobin(RoutingPolicy):
    """target = (number of requests routed so far) mod N."""

    def __init__(self, num_instances: int) -> None:
        super().__init__()
        self.predictable = True
        self.num_instances = num_instances
        self.counter = 0

    def choose(self, req: Request, snapshots: list[Snapshot] | None) -> int:
        target = self.counter % self.num_instances
        self.counter += 1
        return target

    def upcoming_index(self, instance: int) -> int:
        return (instance - self.counter) % self.num_instances


# Policy name -> factory taking the run's ClusterConfig.
ADMISSION_POLICIES: dict[str, Callable[..., AdmissionPolicy]] = {"always-admit": lambda cfg: AlwaysAdmit()}
ROUTING_POLICIES: dict[str, Callable[..., RoutingPolicy]] = {"round-robin": lambda cfg: RoundRobin(cfg.num_instances)}

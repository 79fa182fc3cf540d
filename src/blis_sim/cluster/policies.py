"""Admission and routing policies: decisions over a request and instance snapshots (ENGINE.md §11.1, §11.2).

The two tables at the end are the only place their names are bound to code (the names the CLI accepts are in
``config.names``; a name without an entry here is refused as not built yet). A policy object keeps its own state
(the round-robin counter, the token bucket, prefix-affinity's maps). Snapshots come in instance order, and "first
wins" ties: the lowest instance index wins.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

from mypy_extensions import mypyc_attr
from xxhash import xxh3_128

from ..config.names import DEFAULT_SCORERS, SCORERS
from ..config.validators import parse_scorers
from ..engine.snapshot import Snapshot
from ..kv.cache import add_prefix_keys
from ..request import Request

__all__ = [
    "ADMISSION_POLICIES", "ROUTING_POLICIES", "AdmissionPolicy", "AlwaysAdmit", "AlwaysBusiest", "LeastLoaded",
    "PrefixAffinity", "RejectAll", "RoundRobin", "RouterPrefixIndex", "RoutingPolicy", "Snapshot", "TokenBucket",
    "Weighted",
]

ROUTER_INDEX_CAPACITY = 10_000  # block keys per instance in weighted routing's router-side prefix index (§11.2)


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
        """The target instance; ``snapshots`` (one per instance, in index order) when ``needs_snapshots``."""
        raise NotImplementedError

    def scores(self) -> list[float] | None:
        """The per-instance scores behind the last ``choose``, for policies that score (decision traces)."""
        return None

    def upcoming_index(self, instance: int) -> int:
        """Which of the next routed requests (0 = the very next) will go to ``instance`` (predictable policies)."""
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------------------------------
# Admission (§11.1)
# ---------------------------------------------------------------------------------------------------------------------


class AlwaysAdmit(AdmissionPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.admits_everything = True

    def admit(self, req: Request, snapshots: list[Snapshot] | None, now: int) -> tuple[bool, str]:
        return True, ""


class RejectAll(AdmissionPolicy):
    def admit(self, req: Request, snapshots: list[Snapshot] | None, now: int) -> tuple[bool, str]:
        return False, "reject-all"


class TokenBucket(AdmissionPolicy):
    """A bucket of ``capacity`` tokens, full at tick 0, refilled at ``refill_rate`` tokens per second; a request
    costs its prompt tokens and is admitted when the bucket holds at least that many."""

    def __init__(self, capacity: float, refill_rate: float) -> None:
        super().__init__()
        self.capacity = capacity
        self.refill_rate = refill_rate
        self.tokens = capacity
        self.last = 0

    def admit(self, req: Request, snapshots: list[Snapshot] | None, now: int) -> tuple[bool, str]:
        if now > self.last:
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.refill_rate / 1e6)
            self.last = now
        cost = req.num_prompt_tokens
        if self.tokens >= cost:
            self.tokens -= cost
            return True, ""
        return False, "insufficient tokens"


# ---------------------------------------------------------------------------------------------------------------------
# Routing (§11.2)
# ---------------------------------------------------------------------------------------------------------------------


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


def least_loaded(snapshots: list[Snapshot]) -> int:
    """The instance with the smallest effective load, the lowest index on a tie."""
    best = 0
    best_load = snapshots[0].effective_load
    for i in range(1, len(snapshots)):
        load = snapshots[i].effective_load
        if load < best_load:
            best, best_load = i, load
    return best


class LeastLoaded(RoutingPolicy):
    def __init__(self) -> None:
        super().__init__()
        self.needs_snapshots = True

    def choose(self, req: Request, snapshots: list[Snapshot] | None) -> int:
        assert snapshots is not None
        return least_loaded(snapshots)


class AlwaysBusiest(RoutingPolicy):
    """The instance with the largest effective load, the lowest index on a tie (a pathological baseline)."""

    def __init__(self) -> None:
        super().__init__()
        self.needs_snapshots = True

    def choose(self, req: Request, snapshots: list[Snapshot] | None) -> int:
        assert snapshots is not None
        best = 0
        best_load = snapshots[0].effective_load
        for i in range(1, len(snapshots)):
            load = snapshots[i].effective_load
            if load > best_load:
                best, best_load = i, load
        return best


def prompt_block_keys(req: Request, block_size: int) -> list[int]:
    """The block keys (§8.2) of the request's full prompt blocks, in order (the trailing partial block has none)."""
    keys: list[int] = []
    full = req.num_prompt_tokens // block_size
    if full:
        add_prefix_keys(keys, req.tokens[: full * block_size].tobytes(), block_size)
    return keys


class PrefixAffinity(RoutingPolicy):
    """Requests whose full prompt blocks are the same go where the first of them went; others least-loaded.

    The key is the block key of the last full prompt block (it covers every full block before it), or a digest of
    the whole prompt when it is shorter than one block. The map from keys to instances is unbounded."""

    def __init__(self, block_size: int) -> None:
        super().__init__()
        self.needs_snapshots = True
        self.block_size = block_size
        self.targets: dict[int, int] = {}

    def choose(self, req: Request, snapshots: list[Snapshot] | None) -> int:
        assert snapshots is not None
        bs = self.block_size
        full = req.num_prompt_tokens // bs
        if full:
            key = xxh3_128(req.tokens[: full * bs].tobytes()).intdigest()  # = the last full block's key
        else:
            key = xxh3_128(req.tokens[: req.num_prompt_tokens].tobytes()).intdigest()
        target = self.targets.get(key)
        if target is None:
            target = least_loaded(snapshots)
            self.targets[key] = target
        return target


class RouterPrefixIndex:
    """One instance's router-side index: an LRU of block keys (recency = touch order), at most ``capacity`` keys.
    An estimate built from routing history only, not the instance's real KV cache."""

    __slots__ = ("capacity", "keys")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # recency order, least recent first (an OrderedDict: a plain dict's first key is O(n) to find once many
        # keys were deleted from its front)
        self.keys: OrderedDict[int, None] = OrderedDict()

    def matched(self, keys: list[int]) -> int:
        """How many leading ``keys`` the index holds."""
        held = self.keys
        n = 0
        for k in keys:
            if k not in held:
                break
            n += 1
        return n

    def record(self, keys: list[int]) -> None:
        """Touch each key in order: a held key becomes the most recent; a new key evicts the least recent one when
        the index is full."""
        held = self.keys
        for k in keys:
            if k in held:
                held.move_to_end(k)
                continue
            if len(held) >= self.capacity:
                held.popitem(last=False)
            held[k] = None


class Weighted(RoutingPolicy):
    """Composable scorers (``--routing-scorers name:weight,...``): each instance's total is the sum over scorers
    of clamp(score, 0, 1) x weight / (sum of weights), accumulated in scorer order; the first instance with the
    strictly greatest total wins. The prefix-affinity scorer then records the request in the winner's index."""

    def __init__(self, scorers: tuple[tuple[str, float], ...], num_instances: int, block_size: int,
                 index_capacity: int = ROUTER_INDEX_CAPACITY) -> None:
        super().__init__()
        self.needs_snapshots = True
        total = sum(w for _, w in scorers)
        self.names = [name for name, _ in scorers]
        self.weights = [w / total for _, w in scorers]
        self.block_size = block_size
        self.uses_prefix = "prefix-affinity" in self.names
        self.indexes = [RouterPrefixIndex(index_capacity) for _ in range(num_instances)]
        self.last: list[float] = []

    def scores(self) -> list[float] | None:
        return list(self.last)

    def choose(self, req: Request, snapshots: list[Snapshot] | None) -> int:
        assert snapshots is not None
        n = len(snapshots)
        totals = [0.0] * n
        keys: list[int] = prompt_block_keys(req, self.block_size) if self.uses_prefix else []
        for name, weight in zip(self.names, self.weights):
            if name == "queue-depth":
                loads = [s.effective_load for s in snapshots]
                lo, hi = min(loads), max(loads)
                for i in range(n):
                    score = 1.0 if hi == lo else (hi - loads[i]) / (hi - lo)
                    totals[i] += _clamp(score) * weight
            elif name == "kv-utilization":
                for i in range(n):
                    totals[i] += _clamp(1.0 - snapshots[i].kv_utilization) * weight
            elif name == "load-balance":
                for i in range(n):
                    totals[i] += _clamp(1.0 / (1 + snapshots[i].effective_load)) * weight
            else:  # prefix-affinity
                for i in range(n):
                    score = self.indexes[i].matched(keys) / len(keys) if keys else 0.0
                    totals[i] += _clamp(score) * weight
        best = 0
        for i in range(1, n):
            if totals[i] > totals[best]:
                best = i
        if self.uses_prefix:
            self.indexes[best].record(keys)
        self.last = totals
        return best


def _clamp(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


def _scorers(text: str) -> tuple[tuple[str, float], ...]:
    return parse_scorers(text, SCORERS) or DEFAULT_SCORERS


# Policy name -> factory taking the run's ClusterConfig and EngineConfig.
ADMISSION_POLICIES: dict[str, Callable[..., AdmissionPolicy]] = {
    "always-admit": lambda cluster, engine: AlwaysAdmit(),
    "reject-all": lambda cluster, engine: RejectAll(),
    "token-bucket": lambda cluster, engine: TokenBucket(cluster.token_bucket_capacity,
                                                        cluster.token_bucket_refill_rate),
}
ROUTING_POLICIES: dict[str, Callable[..., RoutingPolicy]] = {
    "round-robin": lambda cluster, engine: RoundRobin(cluster.num_instances),
    "least-loaded": lambda cluster, engine: LeastLoaded(),
    "always-busiest": lambda cluster, engine: AlwaysBusiest(),
    "prefix-affinity": lambda cluster, engine: PrefixAffinity(engine.block_size_in_tokens),
    "weighted": lambda cluster, engine: Weighted(_scorers(cluster.routing_scorers), cluster.num_instances,
                                                 engine.block_size_in_tokens),
}

"""Named random streams (ENGINE.md §3.1): one independent numpy PCG64 generator per purpose, derived from a seed.

A stream depends only on the integer seed and its name, never on which other streams exist, the order in which they
are created, or ``PYTHONHASHSEED`` (the name is hashed with SHA-256, not the salted built-in ``hash``).
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

_SEED_MODULUS = 2**64


def spawn_key(name: str) -> tuple[int, int, int, int]:
    """The four little-endian uint32 words of the first 16 bytes of sha256(name)."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return struct.unpack("<4I", digest[:16])


def stream(seed: int, name: str) -> np.random.Generator:
    """A fresh generator for stream ``name`` under ``seed`` (negative seeds allowed: Python's modulo maps them)."""
    seq = np.random.SeedSequence(entropy=int(seed) % _SEED_MODULUS, spawn_key=spawn_key(name))
    return np.random.Generator(np.random.PCG64(seq))


class Streams:
    """The streams of one run: created lazily on first use and cached by name."""

    __slots__ = ("seed", "_cache")

    def __init__(self, seed: int) -> None:
        self.seed = int(seed)
        self._cache: dict[str, np.random.Generator] = {}

    def get(self, name: str) -> np.random.Generator:
        """The run's generator for ``name`` (the same object on every call)."""
        gen = self._cache.get(name)
        if gen is None:
            gen = self._cache[name] = stream(self.seed, name)
        return gen

    __getitem__ = get

    def __contains__(self, name: str) -> bool:
        return name in self._cache

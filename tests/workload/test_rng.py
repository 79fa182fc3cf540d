"""Named streams (ENGINE.md §3.1): derivation, independence, caching, determinism across processes."""

import hashlib
import os
import struct
import subprocess
import sys

import numpy as np

from blis_sim.workload.rng import Streams, spawn_key, stream


def test_derivation_follows_the_spec_formula():
    name = "workload/token"
    words = struct.unpack("<4I", hashlib.sha256(name.encode()).digest()[:16])
    seq = np.random.SeedSequence(entropy=42, spawn_key=words)
    expected = np.random.Generator(np.random.PCG64(seq)).integers(0, 2**62, size=8)
    assert spawn_key(name) == words
    assert np.array_equal(stream(42, name).integers(0, 2**62, size=8), expected)


def test_same_seed_and_name_give_the_same_sequence():
    assert np.array_equal(stream(7, "a").random(16), stream(7, "a").random(16))


def test_different_names_and_seeds_give_different_sequences():
    base = stream(7, "workload/length").random(16)
    assert not np.array_equal(base, stream(7, "workload/token").random(16))
    assert not np.array_equal(base, stream(8, "workload/length").random(16))


def test_negative_seed_is_taken_modulo_2_64():
    assert np.array_equal(stream(-1, "x").random(4), stream(2**64 - 1, "x").random(4))
    assert np.array_equal(stream(2**64 + 5, "x").random(4), stream(5, "x").random(4))


def test_streams_are_independent_of_creation_order_and_cached():
    a = Streams(3)
    a.get("one").random(100)  # consuming one stream does not move another
    b = Streams(3)
    assert np.array_equal(a.get("two").random(5), b["two"].random(5))
    assert a.get("one") is a["one"]
    assert "one" in a and "three" not in a


def test_streams_identical_across_processes_with_different_hash_seeds():
    code = (
        "from blis_sim.workload.rng import stream;"
        "print(stream(123, 'workload/token').integers(0, 128000, size=5).tolist(),"
        " stream(-9, 'spec/client/0/arrival').random())"
    )
    outputs = set()
    for hash_seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        outputs.add(res.stdout)
    tokens = stream(123, "workload/token").integers(0, 128000, size=5).tolist()
    assert outputs == {f"{tokens} {stream(-9, 'spec/client/0/arrival').random()}\n"}

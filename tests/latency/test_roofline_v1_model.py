"""Roofline v1 (ROOFLINE.md §2, §3, §6): building blocks, the §8.1 worked step times, structure and parity."""

from __future__ import annotations

import importlib.util
import random
from dataclasses import replace
from pathlib import Path

import pytest

from blis_sim.errors import InputError
from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.roofline_v1 import RooflineV1

SHARED = Path(__file__).parents[2] / ".." / "shared"

CASES = {  # name: (prefills (p, n), decode contexts)
    "1 decode": ([], [1024]),
    "32 decodes": ([], [1024] * 32),
    "128 decodes": ([], [1024] * 128),
    "prefill 2048": ([(0, 2048)], []),
    "prefill 512 + 32 decodes": ([(0, 512)], [1024] * 32),
}
EXPECTED = {
    1: [5882, 7335, 15901, 55790, 10830],
    2: [4246, 5007, 9307, 33387, 7437],
}


def rel(a: float, b: float, tol: float = 5e-7) -> bool:
    return abs(a - b) <= tol * abs(b)


def test_building_blocks_llama_8b(llama8b, h100):
    m = RooflineV1(llama8b, h100, 1)
    # §2.1: 32 layers · 2 B · (4096·(4096 + 2·1024) + 4096² + 3·4096·14336) params
    assert m.weight_bytes == 32 * 2 * 218_103_808 == 13_958_643_712
    assert m.kv_per_token == 131_072
    g, a = m.request_flops(1024, 1)
    assert g == 2 * 218_103_808 * 32  # 2 FLOPs per weight per token
    assert rel(g, 1.395864e10) and rel(a, 5.410652e8)
    assert m.request_dynamic_bytes(1024, 1) == pytest.approx(131_072 + 107_374_182.4 + 196_608, rel=1e-15)
    g, a = m.request_flops(0, 2048)
    assert rel(g, 2.858730e13) and rel(a, 1.107560e12)
    # hand computation: A = L·(4·H·dh + 4·H)·n·c with c = 1023.5
    assert a == pytest.approx(32 * (4 * 32 * 128 + 4 * 32) * 2048 * 1023.5, rel=1e-15)
    assert m.request_dynamic_bytes(0, 2048) == pytest.approx(268_435_456 + 456_340_275.2, rel=1e-15)
    g, a = m.request_flops(0, 512)
    assert rel(g, 7.146826e12) and rel(a, 6.912108e10)
    assert m.request_dynamic_bytes(0, 512) == pytest.approx(67_108_864 + 114_085_068.8, rel=1e-15)


def test_phase_times_llama_8b(llama8b, h100):
    m = RooflineV1(llama8b, h100, 1)
    assert rel(m.decode_time(1, 1024), 5.831818e-3)
    assert rel(m.decode_time(32, 32 * 1024), 7.216046e-3)
    assert rel(m.decode_time(128, 128 * 1024), 1.574713e-2)  # compute-bound (μd = 0.12)
    assert rel(m.prefill_time([(0, 2048)]), 5.564029e-2)
    assert rel(m.prefill_time([(0, 512)]), 1.181034e-2)


@pytest.mark.parametrize("tp", [1, 2])
def test_worked_step_times_packaged_data(llama8b, h100, step, tp):
    m = RooflineV1(llama8b, h100, tp)
    assert [m.step_time(step(p, d)) for p, d in CASES.values()] == EXPECTED[tp]


@pytest.mark.parametrize("tp", [1, 2])
def test_worked_step_times_reference_data(reference_dir, step, tp):
    model = load_model_config(reference_dir / "model_configs" / "llama-3.1-8b-instruct")
    hw = load_hardware(reference_dir / "hardware_config_roofline.json", "H100")
    hw.check_v1()
    m = RooflineV1(model, hw, tp)
    assert [m.step_time(step(p, d)) for p, d in CASES.values()] == EXPECTED[tp]


def test_mixed_overhead_of_case_c(llama8b, h100, step):
    # R = 33: Ostep' = 50·(1 + 0.15·log2(16.5)·(0.3 + 64/33)) ≈ 117.93 µs, Oreq = 1·50 µs
    m = RooflineV1(llama8b, h100, 1)
    th = 0.75 * m.prefill_time([(0, 512)]) + 0.25 * m.decode_time(32, 32 * 1024)
    assert m.step_time(step([(0, 512)], [1024] * 32)) == round(th * 1e6 + 117.9274 + 50)


def test_blend_rules(llama8b, h100, step):
    m = RooflineV1(llama8b, h100, 1)
    ostep = lambda r, nd: 50 * (1 + 0.15 * __import__("math").log2(r / 2) * (0.3 + 2 * nd / r))  # noqa: E731
    # decode-dominated: 60 decodes > 2·20 prefill tokens and > 50
    tp_, td = m.prefill_time([(100, 20)]), m.decode_time(60, 60 * 500)
    expect = (0.35 * tp_ + 0.65 * td) * 1e6 + ostep(61, 60) + 50
    assert abs(m.step_time(step([(100, 20)], [500] * 60)) - expect) <= 0.5 + 1e-6
    # token-weighted: 40 prefill tokens, 30 decodes (neither rule applies)
    tp_, td = m.prefill_time([(0, 40)]), m.decode_time(30, 30 * 200)
    expect = (40 / 70 * tp_ + 30 / 70 * td) * 1e6 + ostep(31, 30) + 50
    assert abs(m.step_time(step([(0, 40)], [200] * 30)) - expect) <= 0.5 + 1e-6


def test_single_token_chunk_uses_decode_factors(llama8b, h100):
    m = RooflineV1(llama8b, h100, 1)
    assert m.request_dynamic_bytes(1000, 1) == pytest.approx(131072 * (1 + 1000 * 0.80) + 32 * 4096 * 2 * 0.75)
    assert m.request_dynamic_bytes(1000, 2) == pytest.approx(131072 * (2 + 1000 * 0.92) + 32 * 4096 * 2 * 2 * 0.85)


def test_rounding_half_away_from_zero(llama8b, h100, step):
    # An empty batch costs round(Ostep); 2.5 µs must round to 3 (banker's rounding would give 2).
    m = RooflineV1(llama8b, replace(h100, t_overhead_micros=2.5), 1)
    assert m.step_time(step()) == 3


def test_monotone_in_batch_size(llama8b, h100, step):
    for tp in (1, 2, 4):
        m = RooflineV1(llama8b, h100, tp)
        times = [m.step_time(step([], [1024] * b)) for b in range(1, 257)]
        assert times == sorted(times) and times[-1] > times[0]
        times = [m.step_time(step([(0, n)], [])) for n in range(1, 4097, 17)]
        assert times == sorted(times) and times[-1] > times[0]
        times = [m.step_time(step([(0, 256)] * k, [])) for k in range(1, 16)]
        assert times == sorted(times)


def test_monotone_in_context_length(llama8b, h100, step):
    m = RooflineV1(llama8b, h100, 1)
    times = [m.step_time(step([], [c] * 16)) for c in range(0, 32768, 97)]
    assert times == sorted(times) and times[-1] > times[0]
    times = [m.step_time(step([(p, 512)], [])) for p in range(0, 32768, 331)]
    assert times == sorted(times) and times[-1] > times[0]


def test_tp_lowers_compute_time(llama8b, h100):
    phases = []
    for tp in (1, 2, 4, 8):
        m = RooflineV1(llama8b, h100, tp)
        phases.append((m.prefill_time([(0, 2048)]), m.decode_time(128, 128 * 1024)))
    for (p1, d1), (p2, d2) in zip(phases, phases[1:]):
        assert p2 < p1 and d2 < d1


def test_communication_only_with_tp(llama8b, h100, step):
    # With no TP speed-up on compute (εp = 0) and a compute-bound prefill, TP 2 differs from TP 1 only by
    # L·2·allReduceLatency = 32·2·20 µs = 1280 µs.
    hw = replace(h100, tp_scaling_exponent=0.0)
    s = step([(0, 2048)], [])
    assert RooflineV1(llama8b, hw, 2).step_time(s) - RooflineV1(llama8b, hw, 1).step_time(s) == 1280


def test_alpha_and_describe(llama8b, h100):
    m = RooflineV1(llama8b, h100, 2, (1601.35, 3.5125, 1805.54))
    assert m.queueing_time(512) == 3399 and m.output_token_time() == 1805
    d = m.describe()
    assert d["kind"] == "roofline-v1" and d["hardware"] == "H100" and d["tp"] == 2
    assert RooflineV1(llama8b, h100, 1).queueing_time(10_000) == 0


def test_tp_must_be_positive(llama8b, h100):
    with pytest.raises(InputError, match="--tp must be an integer >= 1 in roofline mode, got 0"):
        RooflineV1(llama8b, h100, 0)


def _reference_script():
    path = SHARED / "spec" / "roofline_examples.py"
    if not path.is_file():
        pytest.skip(f"reference script not available at {path}")
    spec = importlib.util.spec_from_file_location("roofline_examples_ref", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SystemExit as exc:  # it looks for the shared data folder at import
        pytest.skip(f"reference script cannot run here: {exc}")
    return module


def test_parity_with_reference_script_random_batches(reference_dir, step):
    ref = _reference_script()
    rng = random.Random(1234)
    mismatches = 0
    for tp in (1, 2, 4):
        for gpu in ("H100", "A100-SXM"):
            ref_model = ref.load_model(str(reference_dir / "model_configs" / "llama-3.1-8b-instruct" / "config.json"))
            ref_hw = ref.load_hw(str(reference_dir / "hardware_config_roofline.json"), gpu)
            m = RooflineV1(
                load_model_config(reference_dir / "model_configs" / "llama-3.1-8b-instruct"),
                load_hardware(reference_dir / "hardware_config_roofline.json", gpu), tp,
            )
            for _ in range(150):
                prefills = [(rng.randrange(0, 4000), rng.choice([1, 2, rng.randrange(1, 2048)]))
                            for _ in range(rng.choice([0, 0, 1, 1, 2, 5]))]
                decodes = [rng.randrange(1, 8000) for _ in range(rng.choice([0, 1, 7, 40, 200]))]
                if not prefills and not decodes:
                    continue
                want = ref.step_v1(ref_model, ref_hw, tp, prefills, decodes, verbose=False)[0]
                got = m.step_time(step(prefills, decodes))
                assert abs(got - want) <= 1, (prefills, decodes, tp, gpu)
                mismatches += got != want
    assert mismatches <= 3

"""The vectorised decode step times used by skip-ahead are bit-identical to the scalar path."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from blis_sim.latency.blackbox import BlackboxModel
from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.latency.roofline_v1 import RooflineV1
from blis_sim.step import StepRecord

DATA = Path(__file__).resolve().parents[2] / "src" / "blis_sim" / "data"
MODELS = ["llama-3.1-8b-instruct", "qwen2.5-7b-instruct", "llama-2-70b-hf", "mixtral-8x7b-v0.1"]


def _models():
    out = [BlackboxModel((1.0, 2.0, 3.0), (5752.705191348184, 17.25086436834028, 5.999143920128404))]
    hand_set = load_hardware(DATA / "hardware_config_handset.json", "H100")
    added = replace(hand_set, name="H100+terms", all_reduce_bw_gbs=200.0, decode_kv_bw_eff=0.3, moe_experts=1.0,
                    request_overhead_micros=8000.0)  # every added v1 term on
    for hw in [load_hardware(DATA / "hardware_config.json", gpu) for gpu in ("H100", "A100-80", "L40S")] + \
            [hand_set, added]:
        for name in MODELS:
            for tp in (1, 2, 4, 8):
                out.append(RooflineV1(load_model_config(DATA / "model_configs" / name), hw, tp))
    return out


MODELS_UNDER_TEST = _models()


@settings(max_examples=300, deadline=None)
@given(idx=st.integers(0, len(MODELS_UNDER_TEST) - 1), b=st.integers(1, 1024),
       ctx=st.lists(st.integers(0, 2_000_000), min_size=1, max_size=20))
def test_vectorised_equals_scalar_equals_step_time(idx, b, ctx):
    model = MODELS_UNDER_TEST[idx]
    sums = np.array([b * c for c in ctx], dtype=np.int64)
    vec = model.decode_step_times(b, sums).tolist()
    scalar = [model.decode_step_time(b, int(s)) for s in sums]
    assert vec == scalar
    for s, expected in zip(sums.tolist(), scalar):
        record = StepRecord(0)
        record.num_decodes, record.decode_context_sum = b, s
        assert model.step_time(record) == expected

"""``LatencyConfig.hardware_overrides``: calibration keys replacing the GPU entry's values give exactly the step
times of a hardware config file edited to hold them (v1; v2 with the shipped fitted kernels), and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mfu_fixtures import write_tables
from pydantic import ValidationError

from blis_sim import api
from blis_sim.config import SimulationConfig
from blis_sim.config.models import EngineConfig, LatencyConfig
from blis_sim.errors import InputError
from blis_sim.latency.hardware import V2_OVERRIDABLE
from blis_sim.latency.select import resolve_latency

DATA = Path(__file__).parents[2] / "src" / "blis_sim" / "data"
MODEL = DATA / "model_configs" / "llama-3.1-8b-instruct"
CASES = [([], [1000] * 8), ([(0, 512)], []), ([(0, 300)], [700] * 40), ([(128, 2048)], [4000] * 3), ([], [90_000])]
V1 = {"mfuPrefill": 0.41, "mfuDecode": 0.19, "BwEffConstant": 0.55, "TOverheadMicros": 700.0,
      "requestOverheadMicros": 1234.0, "decodeKvBwEff": 0.6, "allReduceBwGBs": 90.0}
V2 = {"TOverheadMicros": 333.0, "allReduceLatency": 3.5, "requestOverheadMicros": 4321.0, "gemmEta": 0.7,
      "TFlopsPeak": 900.0}  # TFlopsPeak is not a rooflineV2 key: it replaces the entry's own


def edited_config(tmp_path: Path, values: dict[str, float], v2: bool) -> Path:
    """The packaged hardware config with the H100 entry holding ``values`` where v1 or v2 reads them."""
    raw = json.loads((DATA / "hardware_config.json").read_text(encoding="utf-8"))
    entry = raw["H100"]
    for key, value in values.items():
        if v2 and key in V2_OVERRIDABLE:
            entry.setdefault("rooflineV2", {})[key] = value
        else:
            entry[key] = value
    path = tmp_path / "hardware_config.json"
    path.write_text(json.dumps(raw), encoding="utf-8")
    return path


def latency(hardware_config: Path, **fields) -> LatencyConfig:
    return LatencyConfig(model="x", hardware="H100", tp=2, model_config_folder=MODEL, hardware_config=hardware_config,
                         alpha_coeffs=(100.0, 0.5, 3.0), **fields)


@pytest.mark.parametrize("kind, values", [("roofline-v1", V1), ("roofline-v2", V2)])
def test_overrides_price_steps_as_an_edited_file(tmp_path, step, kind, values):
    packaged = DATA / "hardware_config.json"
    over = resolve_latency(latency(packaged, latency_model=kind, hardware_overrides=tuple(values.items())),
                           EngineConfig())
    edited = resolve_latency(latency(edited_config(tmp_path, values, kind == "roofline-v2"), latency_model=kind),
                             EngineConfig())
    plain = resolve_latency(latency(packaged, latency_model=kind), EngineConfig())
    times = [over.model.step_time(step(p, d)) for p, d in CASES]
    assert times == [edited.model.step_time(step(p, d)) for p, d in CASES]
    assert times != [plain.model.step_time(step(p, d)) for p, d in CASES]  # the overrides did change something
    assert [over.model.decode_step_time(b, b * 900) for b in (1, 7, 64)] == \
           [edited.model.decode_step_time(b, b * 900) for b in (1, 7, 64)]
    assert (over.model.queueing_time(500), over.model.output_token_time()) == \
           (edited.model.queueing_time(500), edited.model.output_token_time())
    assert over.model.describe() == edited.model.describe()
    assert (over.total_kv_blocks, over.hardware, over.kind) == (edited.total_kv_blocks, edited.hardware, kind)


def test_overrides_give_the_same_run_as_an_edited_file(tmp_path):
    """A whole run (every step, queueing and token time, through the engine) comes out the same."""
    workload = {"num_requests": 60, "rate": 30.0, "arrival_process": "poisson", "prompt_tokens": 300,
                "prompt_tokens_max": 900, "output_tokens": 40, "output_tokens_max": 120}

    def results(lat: LatencyConfig):
        res = api.run(SimulationConfig(latency=lat, workload=workload, engine={"total_kv_blocks": 400}))
        return res.cluster, res.instances, res.requests

    over = results(latency(DATA / "hardware_config.json", hardware_overrides=tuple(V1.items())))
    assert over == results(latency(edited_config(tmp_path, V1, v2=False)))


def test_overrides_are_checked_like_the_file():
    lat = latency(DATA / "hardware_config.json", hardware_overrides=(("mfuPrefill", 0.0),))
    with pytest.raises(InputError, match="hardware config H100: mfuPrefill must be a positive number, got 0"):
        resolve_latency(lat, EngineConfig())


def test_overrides_need_v1_or_fitted_v2(tmp_path):
    with pytest.raises(InputError, match="needs roofline v1 or v2 \\(fitted kernels\\), not blackbox"):
        resolve_latency(LatencyConfig(model="x", beta_coeffs=(1, 0, 0), hardware_overrides=(("mfuPrefill", 0.5),)),
                        EngineConfig())
    root = write_tables(tmp_path / "bench")
    lat = latency(DATA / "hardware_config.json", bench_data_path=root, latency_model="roofline-v2",
                  hardware_overrides=(("TOverheadMicros", 10.0),))
    with pytest.raises(InputError, match="needs roofline v1 or v2 \\(fitted kernels\\), not roofline-v2"):
        resolve_latency(lat, EngineConfig())


def test_unknown_override_keys_are_refused():
    with pytest.raises(ValidationError, match=r"unknown hardware calibration key\(s\) 'mfuprefill' \(keys, spelled"):
        LatencyConfig(model="x", hardware_overrides=(("mfuprefill", 0.5),))
    assert LatencyConfig(model="x", hardware_overrides=[["gemmEta", 1]]).hardware_overrides == (("gemmEta", 1.0),)

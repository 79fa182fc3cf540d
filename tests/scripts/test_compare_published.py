"""docs/data/published_vllm.yaml (published vLLM measurements) and scripts/compare_published.py, which simulates
them: every point is well formed and simulatable, and a short run of the script gives finite, positive
predictions."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cp():
    spec = importlib.util.spec_from_file_location("compare_published", REPO / "scripts" / "compare_published.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def points(cp):
    return cp.load_points(REPO / "docs" / "data" / "published_vllm.yaml")


def test_every_point_is_well_formed(cp, points):
    assert len(points) >= 15
    problems = {p.get("id", i): cp.check_point(p) for i, p in enumerate(points)}
    assert {k: v for k, v in problems.items() if v} == {}
    ids = [p["id"] for p in points]
    assert len(ids) == len(set(ids)), "point ids must be unique"
    assert {p["gpu"] for p in points} <= set(cp.KNOWN_GPUS)
    assert len({p["source"]["url"].split("#")[0] for p in points}) >= 4, "at least four sources"
    for p in points:
        for name in p.get("excluded") or {}:
            assert name not in p["measured"], f"{p['id']}: {name} both measured and excluded"


def test_every_model_has_a_packaged_config(cp, points):
    for model in {p["model"] for p in points}:
        folder = cp.model_folder(model, [])
        cfg = json.loads((folder / "config.json").read_text())
        for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size"):
            assert cfg[key] > 0, (model, key)


def test_schema_check_rejects_bad_points(cp, points):
    good = points[0]
    assert cp.check_point({**good, "gpu": "V100"})
    assert cp.check_point({**good, "measured": {"ttft_mean_ms": -1.0}})
    assert cp.check_point({**good, "load": {"kind": "burst", "value": 1}})
    assert cp.check_point({k: v for k, v in good.items() if k != "source"})


def test_short_run_gives_finite_positive_predictions(cp, tmp_path):
    rate_id, conc_id = "pace-llama31-8b-l40s-rate4", "gpustack-qwen3-8b-h100-c4"
    out = tmp_path / "report.json"
    md = tmp_path / "report.md"
    assert cp.main(["--only", rate_id, conc_id, "--max-requests", "24", "--json", str(out),
                    "--markdown", str(md)]) == 0
    report = json.loads(out.read_text())
    assert [p["id"] for p in report["points"]] == [rate_id, conc_id]
    for point in report["points"]:
        assert point["status"] == "ok"
        v1 = point["runs"]["roofline-v1"]
        assert v1["status"] == "ok", v1
        for metric in point["measured"]:
            value = v1["predicted"][metric]
            assert math.isfinite(value) and value > 0, (point["id"], metric, value)
        v2 = point["runs"]["roofline-v2"]
        if v2["status"] == "ok":
            assert all(math.isfinite(x) and x > 0 for x in v2["predicted"].values())
        else:
            assert v2["reason"]
    conc = report["points"][1]["runs"]["roofline-v1"]
    assert conc["requests"] == 24 and not any("closed loop" in n for n in conc["notes"])
    # the rate point (real vLLM served 4 req/s on one L40S) is judged kept up; a closed loop has no offered rate
    rate = report["points"][0]["runs"]["roofline-v1"]
    assert rate["kept_up"] is True and "queueing delay went from" in rate["kept_up_reason"]
    assert conc["kept_up"] is None
    assert "- roofline-v1: 1 rate point(s), 1 kept up, 0 did not" in md.read_text()
    assert report["mape"]["roofline-v1"]["L40S"]["itl_median_ms"]["n"] == 1
    assert "| " + rate_id in md.read_text()


def test_unsimulatable_point_is_skipped_not_fatal(cp, points, tmp_path):
    bad = dict(points[0], id="no-such-model", model="nobody/no-such-model-7b")
    report = cp.compare([bad], ["roofline-v1"], cp.hardware_file(None), max_requests=4, seed=1, extra_configs=[])
    row = report["points"][0]
    assert row["status"] == "skipped" and "no model config" in row["reason"]
    assert "no-such-model" in cp.markdown(report)


def test_schema_check_rejects_repeated_outside_offline(cp, points):
    rate = next(p for p in points if p["load"]["kind"] == "rate")
    assert cp.check_point({**rate, "load": {**rate["load"], "repeated": True}})
    latency = next(p for p in points if p["load"].get("repeated"))
    assert cp.check_point({**latency, "load": {**latency["load"], "repeated": "yes"}})


def test_repeated_batch_hits_the_prefix_cache(cp, points):
    """benchmark_latency sends the same prompts in every iteration: the measured copy of a repeated batch finds
    all but the last block of each prompt cached, so its E2E loses most of the prefill (16 prompts of 512 tokens:
    8,192 tokens: about half a second on an L40S), and the warm-up's requests are not counted."""
    p = next(p for p in points if p["id"] == "pace-llama31-8b-l40s-latency-bs16")
    hw = cp.hardware_file(None)
    warm = cp.simulate(p, "roofline-v2", hw, max_requests=1000, seed=42, extra_configs=[])
    cold = cp.simulate({**p, "load": {k: v for k, v in p["load"].items() if k != "repeated"}}, "roofline-v2", hw,
                       max_requests=1000, seed=42, extra_configs=[])
    assert any("prefix cache" in n for n in warm["notes"])
    gain = cold["predicted"]["e2e_mean_ms"] - warm["predicted"]["e2e_mean_ms"]
    ttft_gain = cold["predicted"]["ttft_mean_ms"] - warm["predicted"]["ttft_mean_ms"]
    assert ttft_gain > 400 and abs(gain - ttft_gain) < 1.0, (gain, ttft_gain)  # the decode steps are unchanged
    assert warm["predicted"]["tpot_mean_ms"] == pytest.approx(cold["predicted"]["tpot_mean_ms"], rel=1e-6)
    assert warm["predicted"]["ttft_mean_ms"] < 0.1 * cold["predicted"]["ttft_mean_ms"]
    # only the measured copy is scored: 16 requests over the copy's span, not 32 over an hour
    assert warm["predicted"]["requests_per_s"] > 1.0


def test_repeated_batch_copies_the_token_ids(cp):
    import numpy as np

    from blis_sim.request import Request

    reqs = [Request(i, 0, np.arange(10 * i, 10 * i + 12), 8, independent_tokens=True) for i in range(3)]
    out = cp.repeated_batch(reqs, 5_000_000)
    assert [r.index for r in out] == list(range(6)) and [r.arrival for r in out] == [0] * 3 + [5_000_000] * 3
    for a, b in zip(out[:3], out[3:]):
        assert np.array_equal(a.tokens, b.tokens) and a.num_prompt_tokens == b.num_prompt_tokens == 8
        assert not a.keys_deferred and not b.keys_deferred


def test_step_gaps_count_every_decode_once(cp, points):
    """The observer's per-token gaps must weigh each decode once, whether the step was formed by the scheduler (a
    chunked prefill beside decodes) or by the decode cohort: their mean then equals the records' mean ITL (all
    decode time over all gaps). 60 prompts of 4,000 tokens mix both kinds of step; counting the cohort twice gave
    106.5 ms against 121.7."""
    p = next(p for p in points if p["id"] == "gpustack-qwen3-14b-a100-rand4k-offline")
    run = cp.simulate(p, "roofline-v2", cp.hardware_file(None), max_requests=60, seed=42, extra_configs=[])
    assert run["step_gap_itl_mean_ms"] == pytest.approx(run["predicted"]["itl_mean_ms"], rel=1e-6)

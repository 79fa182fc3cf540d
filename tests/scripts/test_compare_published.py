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

"""Constants and helpers of the capacity-planning tests (imported by basename, like tests/engine/harness.py)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = "meta-llama/llama-3.1-8b-instruct"
FOLDER = ROOT / "model_configs" / "llama-3.1-8b-instruct"
HW = ROOT / "hardware_config.json"

# a roofline run small enough for a test: H100, chatbot lengths
BASE = {"model": MODEL, "model_config_folder": str(FOLDER), "hardware_config": str(HW), "hardware": "H100",
        "workload": "chatbot"}


def sweep_yaml(base: dict, axes: dict, **extra) -> str:
    import yaml

    return yaml.safe_dump({"base": base, "axes": axes, **extra}, sort_keys=False)

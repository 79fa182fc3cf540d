"""Shared fixtures for the latency tests: packaged model/hardware data, a StepRecord builder, the shared folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from blis_sim.latency.hardware import load_hardware
from blis_sim.latency.hf_config import load_model_config
from blis_sim.step import StepRecord

REPO = Path(__file__).parents[2]
DATA = REPO / "src" / "blis_sim" / "data"
SHARED = REPO / ".." / "shared"
REFERENCE = SHARED / "data" / "reference"


make_step = StepRecord.priced


@pytest.fixture(scope="session")
def step():
    """The ``make_step`` builder."""
    return make_step


@pytest.fixture(scope="session")
def llama8b():
    return load_model_config(DATA / "model_configs" / "llama-3.1-8b-instruct")


@pytest.fixture(scope="session")
def h100():
    """The hand-set H100 constants of ROOFLINE.md §1.2 (the packaged defaults are calibrated, README "Calibrating")."""
    hw = load_hardware(DATA / "hardware_config_handset.json", "H100")
    hw.check_v1()
    return hw


@pytest.fixture
def reference_dir() -> Path:
    if not REFERENCE.is_dir():
        pytest.skip(f"reference data not available at {REFERENCE}")
    return REFERENCE


BENCH_DATA = SHARED / "data" / "bench_data"  # the same path as mfu_fixtures.BENCH_DATA


@pytest.fixture(scope="session")
def bench_data() -> Path:
    """The measured H100 tables of ../shared (read-only); tests that need them skip when they are absent."""
    if not (BENCH_DATA / "gemm").is_dir():
        pytest.skip(f"measured MFU tables not available at {BENCH_DATA}")
    return BENCH_DATA

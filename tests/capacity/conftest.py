"""Fixtures of the capacity-planning tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from capacity_helpers import sweep_yaml

from blis_sim import logging_setup


@pytest.fixture
def write_sweep(tmp_path):
    def _write(base: dict, axes: dict, name: str = "sweep.yaml", **extra) -> Path:
        path = tmp_path / name
        path.write_text(sweep_yaml(base, axes, **extra))
        return path

    return _write


@pytest.fixture(autouse=True)
def _reset_logging():
    yield
    logging_setup.reset()

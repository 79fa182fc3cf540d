"""Shared helpers of the CLI tests: stand in for ``api.run`` (``invoke``, which runs ``main`` in-process, is in
tests/conftest.py)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest


class FakeResults:
    """Stands in for both the prepared run (``expected_requests``) and the results (``stdout_text``)."""

    expected_requests = None

    def __init__(self, text: str = "=== Simulation Metrics ===\n{\n  \"instance_id\": \"cluster\"\n}\n") -> None:
        self.text = text

    def stdout_text(self) -> str:
        return self.text


@dataclass
class FakeApi:
    """Records the configurations ``api.run`` was called with; ``behaviour`` decides what a call does."""

    calls: list[Any] = field(default_factory=list)
    behaviour: Callable[[Any], Any] | None = None
    results: FakeResults = field(default_factory=FakeResults)
    written: list[tuple[Any, Any]] = field(default_factory=list)

    def prepare(self, cfg):
        """Stands in for ``api.prepare``: the real front of it (the policy bundle applied, the feature check), then
        ``behaviour`` (which may raise). ``calls`` records the configuration the run would use."""
        from blis_sim.api import resolve_config

        cfg = resolve_config(cfg)
        self.calls.append(cfg)
        if self.behaviour is not None:
            return self.behaviour(cfg)
        return self.results

    def execute(self, prepared, progress=None, collect_requests=True):
        return prepared

    @property
    def cfg(self):
        assert len(self.calls) == 1, f"api.run called {len(self.calls)} times"
        return self.calls[0]


@pytest.fixture
def fake_api(monkeypatch) -> FakeApi:
    """Replace ``blis_sim.api.prepare``/``execute`` (and the results writer) by recorders.

    The real module is imported (a broken ``blis_sim.api`` fails every test using this fixture), and only functions
    it really has are replaced.
    """
    api = importlib.import_module("blis_sim.api")
    fake = FakeApi()
    monkeypatch.setattr(api, "prepare", fake.prepare)
    monkeypatch.setattr(api, "execute", fake.execute)

    results_file = importlib.import_module("blis_sim.report.results_file")

    def write_results(results, path):
        fake.written.append((results, path))
        with open(path, "w") as fh:
            fh.write("{}\n")

    monkeypatch.setattr(results_file, "write_results", write_results)
    return fake

"""Shared pytest configuration of the whole suite."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings

from blis_sim import cli, logging_setup

# `pytest -m fuzz --hypothesis-profile long`: the fuzz suites with many more examples and no deadline (local use; the
# default profile keeps CI short).
settings.register_profile("long", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@dataclass
class Outcome:
    rc: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


@pytest.fixture
def invoke(capsys) -> Callable[..., Outcome]:
    """``invoke("run", "--model", "m")`` runs the command line in-process and captures both streams."""

    def _invoke(*args: str, prog: str = "blis") -> Outcome:
        capsys.readouterr()
        rc = cli.run_cli(list(args), prog_name=prog)
        captured = capsys.readouterr()
        return Outcome(rc, captured.out, captured.err)

    yield _invoke
    logging_setup.reset()  # main() configured the blis_sim logger; leave it as other test modules expect it

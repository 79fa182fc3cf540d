from __future__ import annotations

import pytest

from blis_sim import cli, logging_setup


class _Outcome:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err
        self.err_lines = err.splitlines()


@pytest.fixture
def invoke_cli(capsys):
    def _invoke(*args):
        capsys.readouterr()
        rc = cli.run_cli(list(args), prog_name="blis")
        captured = capsys.readouterr()
        return _Outcome(rc, captured.out, captured.err)

    yield _invoke
    logging_setup.reset()

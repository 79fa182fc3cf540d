"""logging_setup: the ``blis: <level>: <message>`` format on stderr and the --log names (ENGINE.md §14.4)."""

from __future__ import annotations

import logging

import pytest

from blis_sim import logging_setup


@pytest.fixture(autouse=True)
def _reset():
    yield
    logging_setup.reset()


@pytest.mark.parametrize(
    "name, level",
    [
        ("debug", logging.DEBUG), ("trace", logging.DEBUG), ("info", logging.INFO), ("warn", logging.WARNING),
        ("warning", logging.WARNING), ("error", logging.ERROR), ("fatal", logging.CRITICAL),
        ("panic", logging.CRITICAL), (None, logging.WARNING), ("nonsense", logging.WARNING),
    ],
)
def test_levels(name, level):
    assert logging_setup.configure(name) == level
    assert logging.getLogger("blis_sim").level == level


def test_format_and_stream(capsys):
    logging_setup.configure("debug")
    logging.getLogger("blis_sim.engine").debug("step %d", 3)
    logging.getLogger("blis_sim").critical("stop")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "blis: debug: step 3\nblis: critical: stop\n"


def test_configure_twice_keeps_one_handler(capsys):
    logging_setup.configure("info")
    logging_setup.configure("info")
    logging.getLogger("blis_sim").info("x")
    assert capsys.readouterr().err == "blis: info: x\n"


def test_reset_removes_the_handler(capsys):
    logging_setup.configure("info")
    logging_setup.reset()
    assert logging.getLogger("blis_sim").level == logging.NOTSET
    assert not [h for h in logging.getLogger("blis_sim").handlers if isinstance(h, logging_setup._StderrHandler)]

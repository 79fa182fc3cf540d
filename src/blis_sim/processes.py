"""Child processes of a command: ended with it."""

from __future__ import annotations


def stop_children() -> None:
    """End the worker processes this command started (process pools of evaluate, calibrate and sweeps)."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()

"""Child processes of a command: ended with it."""

from __future__ import annotations

import signal
from typing import Any


def stop_children() -> None:
    """End the worker processes this command started (process pools of evaluate, calibrate and sweeps)."""
    import multiprocessing

    for child in multiprocessing.active_children():
        child.terminate()


def init_worker() -> None:
    """Initializer of every worker pool. Ctrl-C reaches the whole process group: the parent decides what happens
    (cancel, keep the finished points), so a worker ignores SIGINT. SIGTERM (``terminate``, sent by
    ``stop_children`` and by ``stop_pool``) ends a worker at once: the handler the parent installed (``_entry``)
    would raise ``Terminated`` inside the task, which the pool reports as the task's result while the worker lives
    on."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def stop_pool(pool: Any) -> None:
    """Shut a ``ProcessPoolExecutor`` down without waiting for the tasks under way: queued ones are cancelled,
    running ones abandoned (their workers terminated)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=5)

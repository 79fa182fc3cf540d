"""Progress on stderr: a rich bar with an ETA while a sweep or a capacity search runs (only on a terminal and
without --quiet; stdout carries nothing but results)."""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable, Iterator


@contextlib.contextmanager
def sweep_bar(quiet: bool) -> Iterator[Callable[[int, int, int], None] | None]:
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TextColumn("points"),
                   TextColumn("{task.fields[failed]}"), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task: Any = None

    def update(done: int, total: int, failed: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("sweep", total=total, failed="")
        bar.update(task, completed=done, failed=f"({failed} failed)" if failed else "")

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


@contextlib.contextmanager
def capacity_bar(quiet: bool) -> Iterator[Callable[[int, int, int, int], None] | None]:
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(TextColumn("capacity"), BarColumn(), TextColumn("{task.fields[configs]} configurations,"),
                   TextColumn("{task.completed} probes of ~{task.total}"), TimeElapsedColumn(), TextColumn("ETA"),
                   TimeRemainingColumn(), console=Console(stderr=True), transient=True)
    task: Any = None

    def update(done: int, expected: int, configs_done: int, configs: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task("capacity", total=expected, configs="")
        bar.update(task, completed=done, total=max(expected, done), configs=f"{configs_done}/{configs}")

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()

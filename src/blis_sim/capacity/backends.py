"""Where points run: ``serial`` (this process, one after the other), ``local`` (a process pool over the cores, the
default) or ``ray`` (Ray tasks; ``--ray-address`` joins a running cluster, otherwise a local Ray instance is started
for the command and stopped after it).

Every backend runs the same function (``runner.run_task``) on the same picklable tasks, so a point's row does not
depend on the backend. The interface is submit / next finished / close, so that a capacity search can submit its next
probe as soon as the previous one of the same configuration returns.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from ..errors import InputError
from ..processes import init_worker, stop_pool
from .runner import Outcome, Task, run_task

BACKENDS = ("serial", "local", "ray")


class Backend:
    name = ""
    workers = 1

    def submit(self, task: Task) -> None:
        raise NotImplementedError

    def next_done(self) -> Outcome:
        """The next finished task's outcome (blocks)."""
        raise NotImplementedError

    @property
    def pending(self) -> int:
        raise NotImplementedError

    def close(self, cancel: bool = False) -> None:
        """Release the workers; ``cancel`` drops the tasks not finished yet (Ctrl-C)."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(cancel=exc_type is not None)


class SerialBackend(Backend):
    name = "serial"

    def __init__(self) -> None:
        self._queue: deque[Task] = deque()

    def submit(self, task: Task) -> None:
        self._queue.append(task)

    def next_done(self) -> Outcome:
        return run_task(self._queue.popleft())

    @property
    def pending(self) -> int:
        return len(self._queue)

    def close(self, cancel: bool = False) -> None:
        self._queue.clear()


class LocalBackend(Backend):
    name = "local"

    def __init__(self, jobs: int | None = None) -> None:
        self.workers = max(1, jobs or os.cpu_count() or 1)
        self._pool = ProcessPoolExecutor(max_workers=self.workers, initializer=init_worker)
        self._futures: dict[Future, Task] = {}
        self._done: deque[Outcome] = deque()

    def submit(self, task: Task) -> None:
        try:
            self._futures[self._pool.submit(run_task, task)] = task
        except RuntimeError as exc:  # a broken pool (a worker was killed) refuses new work
            self._done.append(Outcome(task.key, None, f"internal error: worker pool unusable: {exc}"))

    def next_done(self) -> Outcome:
        if not self._done:
            finished, _ = wait(list(self._futures), return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: self._futures[f].key):
                task = self._futures.pop(fut)
                try:
                    self._done.append(fut.result())
                except Exception as exc:  # noqa: BLE001 - the worker died (killed, out of memory)
                    self._done.append(Outcome(task.key, None, f"internal error: worker process failed: "
                                                              f"{type(exc).__name__}: {exc}"))
        return self._done.popleft()

    @property
    def pending(self) -> int:
        return len(self._futures) + len(self._done)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for fut in self._futures:
                fut.cancel()
            stop_pool(self._pool)  # the running points are abandoned, not awaited
        else:
            self._pool.shutdown(wait=True)
        self._futures.clear()


class RayBackend(Backend):
    name = "ray"

    def __init__(self, address: str | None = None, jobs: int | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise InputError("--backend ray needs Ray, which is not installed: pip install 'blis-sim[ray]'") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = jobs or os.cpu_count() or 1
            try:
                ray.init(**kwargs)
            except Exception as exc:  # noqa: BLE001 - a bad address, an unreachable cluster
                where = f"--ray-address {address}" if address else "a local Ray instance"
                raise InputError(f"--backend ray: cannot start or join {where}: {type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())}") from None
            self._started = True
        self.workers = int(ray.cluster_resources().get("CPU", 1))
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_task)
        self._refs: dict[Any, Task] = {}
        self._done: deque[Outcome] = deque()

    def submit(self, task: Task) -> None:
        self._refs[self._remote.remote(task)] = task

    def next_done(self) -> Outcome:
        if not self._done:
            ready, _ = self._ray.wait(list(self._refs), num_returns=1)
            for ref in ready:
                task = self._refs.pop(ref)
                try:
                    self._done.append(self._ray.get(ref))
                except Exception as exc:  # noqa: BLE001 - a lost worker, a node gone
                    self._done.append(Outcome(task.key, None, f"internal error: Ray task failed: "
                                                              f"{type(exc).__name__}: {' '.join(str(exc).split())}"))
        return self._done.popleft()

    @property
    def pending(self) -> int:
        return len(self._refs) + len(self._done)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            for ref in self._refs:
                try:
                    self._ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - already finished
                    pass
        self._refs.clear()
        if self._started:
            self._ray.shutdown()
            self._started = False


def make_backend(name: str, jobs: int | None = None, ray_address: str | None = None) -> Backend:
    if name not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if ray_address and name != "ray":
        raise InputError("--ray-address needs --backend ray")
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be an integer >= 1, got {jobs}")
    if name == "serial":
        return SerialBackend()
    if name == "local":
        return LocalBackend(jobs)
    return RayBackend(ray_address, jobs)

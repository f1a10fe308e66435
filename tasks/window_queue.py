"""Windows run in turn by a Prefect task per thread of a local Dask cluster whose worker is threads of this process.

A step puts its windows in a `WindowQueue`; one Prefect task per worker thread ("windows 1/3") takes them one
after the other until the queue is closed. A task submitted to a Dask task runner receives copies of its
arguments (Prefect and Dask serialise them), never the step's own objects, so the queue is registered as a
plugin of the cluster's in-process worker for the step's run (Dask's place for a worker's state), under a name
of its own, and each task finds it there (`get_worker().plugins`). Its lifetime is the step's.
"""

import queue
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from distributed import Worker, WorkerPlugin, get_worker

from eoflows.runtime import Placement
from tasks.windows import measured

if TYPE_CHECKING:
    from prefect import Task


class WindowQueue(WorkerPlugin):
    """The windows of one step waiting for the Prefect tasks that run them in turn (threads of this process)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Future, Callable[[Any], Any], Any] | None] = queue.SimpleQueue()
        self.closed = False

    def submit(self, job: Callable[[Any], Any], window: Any) -> Future:
        """Queue `job(window)`; its future ends with the window's `Ran`."""
        future: Future = Future()
        self._queue.put((future, job, window))
        return future

    def run(self) -> int:
        """Run queued windows until the queue is closed; how many ran (a window's error goes to its future)."""
        ran = 0
        while (item := self._queue.get()) is not None:
            future, job, window = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(measured(job, window))
                except BaseException as exc:  # handed to the step, which cancels the rest
                    future.set_exception(exc)
                ran += 1
        return ran

    def close(self, runners: int, error: BaseException | None = None) -> None:
        """No more windows: each of the `runners` ends after its window; with `error`, the queued ones fail."""
        self.closed = True
        while error is not None:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[0].set_running_or_notify_cancel():
                item[0].set_exception(error)
        for _ in range(runners):
            self._queue.put(None)


def run_queue(name: str, number: int, of: int) -> int:
    """Run windows of the step's queue, the worker's plugin `name` (one of `of` such tasks); how many it ran."""
    return get_worker().plugins[name].run()


@cache
def queue_task() -> "Task":
    """The Prefect task that runs windows in turn on a thread of the local cluster (made when first needed)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(run_queue, name="windows", task_run_name="windows {number}/{of}", cache_policy=NO_CACHE,
                persist_result=False)  # fmt: skip


def _workers(runner: Any) -> list[Any]:
    """The workers of the cluster `runner` (a started Prefect Dask task runner) started, if it started one."""
    cluster = getattr(runner.client, "cluster", None)
    return list(cluster.workers.values()) if cluster is not None else []


def in_process(runner: Any) -> bool:
    """True when the cluster of `runner` has workers and all are threads of this process (not worker processes)."""
    workers = _workers(runner)
    return bool(workers) and all(isinstance(w, Worker) for w in workers)


@contextmanager
def queued(runner: Any) -> Iterator[Placement]:
    """Windows run in turn by a Prefect task per thread of the in-process cluster of `runner` (`in_process`).

    Should such a task end while windows are still queued (it crashed), they fail instead of waiting forever.
    """
    client = runner.client
    threads = sum(client.nthreads().values())
    name, windows = f"eoflows-windows-{uuid.uuid4().hex}", WindowQueue()
    workers = _workers(runner)
    for worker in workers:
        client.sync(worker.plugin_add, plugin=windows, name=name)

    def ended(done: Any) -> None:
        if not windows.closed:
            windows.close(0, RuntimeError(f"the window task {done.task_run_id} ended before the step's windows did"))

    runners = []
    try:
        for number in range(1, threads + 1):
            runners.append(runner.submit(queue_task(), {"name": name, "number": number, "of": threads}))
            runners[-1].add_done_callback(ended)
        yield Placement(windows.submit, f"{threads} Prefect tasks on the flow's DaskTaskRunner (a local cluster), "
                        "each running windows in turn", False)  # fmt: skip
    finally:
        windows.close(len(runners))
        for future in runners:
            future.wait()
        for worker in workers:
            client.sync(worker.plugin_remove, name=name)

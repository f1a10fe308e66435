"""The one window runner of the Dask steps: plan -> place -> run each window -> write as results return -> usage.

A compute step cuts its output grid into windows (`tiles`), asks its runtime where they run
(`runtime.windows.place(dask, pixels)`), gives `run_windows` a job for one window (a picklable callable) and a
`write` for one result, and gets back what the windows cost. `run_windows` hands each result to `write` in the
step's process as soon as it returns (so a result is dropped before the next arrives), cancels the windows not
yet done on the first failure, and measures each window (time, CPU, the worker and scheduler that ran it).

Where windows run (`eoflows.runtime.WindowSites`):
- `Threads`: threads of this process, one more than there are cores (each window also waits on file writes);
- `Alone`, a step run alone (the CLI, a CWL tool): the running cluster named by DASK_SCHEDULER_ADDRESS, else
  the gateway's cluster (the one Calrissian procured, named in DASK_CLUSTER, else a new one for the step), else
  `Threads`;
- `OnTaskRunner`: a started Prefect Dask task runner, as Prefect task runs, so the UI shows them while they run:
  - on a local cluster whose worker is threads of this process, a task per worker thread ("windows 1/3"), each
    running the step's windows in turn (`tasks.window_queue`) and writing their output itself: Prefect
    serialises and rebuilds its settings and context for every task it submits to a Dask task runner, a cost a
    task per window would pay for every window;
  - on a Gateway's or any other cluster, a task per window: its workers may share no disk with the step, so each
    window sends its result back;
- `FlowCluster`, in a package's flow: `OnTaskRunner` on the Dask task runner the flow opens for the step, when
  the work is worth a cluster (one is configured, or the step makes at least `DaskSettings.local_cluster_from`
  pixels: a local cluster takes a second or more to start), else `Threads` of the flow's process.
"""

import ctypes
import os
import queue
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from eoflows.runtime import Placement
from eoflows.settings import DaskSettings
from tasks.reporting import progress, report_table

if TYPE_CHECKING:
    from prefect import Task
    from prefect.futures import PrefectFuture

M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # glibc mallopt parameters
LOCAL_CLUSTER = "distributed.LocalCluster"  # the cluster class of the flows' local task runner (flows.runners)
#: Dask configuration of that in-process cluster: no sampling profiler. Its samples of the worker threads' frames
#: keep a window's result (a local of the frame) alive after the step wrote it, until the sample is processed.
NO_PROFILER = {"distributed.worker.profile.enabled": False}
Tile = tuple[slice, slice]  # rows and columns of a grid


def tiles(height: int, width: int, size: tuple[int, int]) -> list[Tile]:
    """Windows of `size` (rows, columns) covering a height x width grid, row by row; edge windows are smaller."""
    return [
        (slice(r, min(r + size[0], height)), slice(c, min(c + size[1], width)))
        for r in range(0, height, size[0])
        for c in range(0, width, size[1])
    ]


def _glibc(name: str) -> Any:
    """The C library's function `name` where the allocator is glibc's (Linux), else None."""
    return getattr(ctypes.CDLL(None), name, None) if sys.platform.startswith("linux") else None


@cache
def tune_malloc(arenas: int = 2, mmap_threshold: int = 64 * 2**20) -> None:
    """Tune glibc's malloc for window arrays, once per process (threads of a step, a Dask worker's process).

    - at most `arenas` arenas, so window threads reuse each other's freed buffers (less peak memory, same speed);
    - where MALLOC_TRIM_THRESHOLD_ is set (Dask's nanny sets it for its worker processes, a Gateway's), which
      freezes glibc's mmap threshold at 128 kB, arrays below `mmap_threshold` bytes (a window's are 10-40 MB) come
      from the heap again, not each from a fresh mmap that the kernel zeroes page by page. Elsewhere glibc's own
      sliding threshold is kept (a fixed one made the step slower).
    No-op where glibc is not the allocator. (Measured: README, "Benchmark".)
    """
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(M_ARENA_MAX, arenas)
        if os.environ.get("MALLOC_TRIM_THRESHOLD_"):
            mallopt(M_MMAP_THRESHOLD, mmap_threshold)


def trim_malloc() -> None:
    """Give the heap's free memory back to the system (glibc), as the windows of a step are done.

    Freed window arrays otherwise stay in the process's heap: in a flow on the local cluster (threads of the flow's
    process), stage-out's uploads then come on top of them. No-op where glibc is not the allocator.
    """
    trim = _glibc("malloc_trim")
    if trim is not None:
        trim(0)


@dataclass
class Ran:
    """One window's result and what it cost, measured where it ran."""

    result: Any
    seconds: float
    cpu: float
    worker: str  # Dask worker address, "this process" for local threads
    scheduler: str

    def take(self) -> Any:
        """The result, dropped from here.

        Prefect keeps each task's return value (this) in the transaction of the step that submitted it until
        the step ends: a result left here would outlive its write (the chunks sent back by every window of a tile).
        """
        result, self.result = self.result, None
        return result


def measured(job: Callable[[Any], Any], window: Any) -> Ran:
    """Run `job(window)` where it was placed; time it and say which worker ran it."""
    from distributed import get_worker

    tune_malloc()
    t0, cpu0 = time.perf_counter(), time.thread_time()
    result = job(window)
    try:
        worker = get_worker()
        where = (worker.address, worker.scheduler.address)
    except ValueError:  # not on a Dask worker: a thread of the step's process
        where = ("this process", "-")
    return Ran(result, time.perf_counter() - t0, time.thread_time() - cpu0, *where)


@cache
def window_task() -> "Task":
    """The Prefect task of one window (made when a flow first runs windows: steps alone never import Prefect)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(measured, name="window", cache_policy=NO_CACHE, persist_result=False)


@dataclass
class Usage:
    """What the windows of one step cost, and where they ran."""

    where: str
    windows: int = 0
    cpu: float = 0.0
    workers: Counter[str] = field(default_factory=Counter)  # windows per worker
    schedulers: set[str] = field(default_factory=set)

    def add(self, ran: Ran) -> None:
        """Count one finished window."""
        self.windows += 1
        self.cpu += ran.cpu
        self.workers[ran.worker] += 1
        self.schedulers.add(ran.scheduler)


def report_usage(title: str, usage: Usage, wall: float, measures: dict[str, Any]) -> None:
    """The step's `compute-usage` table: time and CPU, the windows, the step's own `measures`, memory, where."""
    rows = {
        "wall time (s)": round(wall, 2),
        "CPU time in windows (s)": round(usage.cpu, 2),
        "windows": usage.windows,
        **measures,
        "peak RSS of the step process (MB)": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "windows ran on": usage.where,
        "window workers": ", ".join(sorted(usage.workers)),
        "windows per worker": ", ".join(f"{n}" for _, n in sorted(usage.workers.items())),
        "window schedulers": ", ".join(sorted(usage.schedulers)),
    }
    report_table("compute-usage", title, [{"measure": k, "value": v} for k, v in rows.items()])


@dataclass(frozen=True)
class Threads:
    """Windows on threads of this process, one more than there are cores; `what` says whose threads they are."""

    what: str = "local threads"

    @contextmanager
    def place(self, dask: DaskSettings | None, pixels: int) -> Iterator[Placement]:
        """Threads for the step's windows, whatever `dask` says (see `Alone` for a process that follows it)."""
        n = (os.cpu_count() or 1) + 1
        tune_malloc()
        with ThreadPoolExecutor(n, thread_name_prefix="eoflows-window") as pool:
            yield Placement(lambda job, window: pool.submit(measured, job, window), f"{n} {self.what}", False)


@dataclass(frozen=True)
class Alone:
    """A step run alone (the CLI, a CWL tool, a notebook): the Dask cluster `dask` configures, else local threads.

    A Gateway cluster made for the step is shut down on exit; a running one (named) is left running.
    """

    @contextmanager
    def place(self, dask: DaskSettings | None, pixels: int) -> Iterator[Placement]:
        """The configured cluster's workers (results sent back), else `Threads`."""
        if dask is None or not dask.enabled:
            with Threads().place(dask, pixels) as place:
                yield place
            return
        with _dask_client(dask) as (client, where):
            executor = client.get_executor(pure=False)  # concurrent.futures: cancelling one cancels its Dask task
            yield Placement(lambda job, window: executor.submit(measured, job, window), where, True)


@dataclass(frozen=True)
class OnTaskRunner:
    """Windows as Prefect task runs on `runner`, a started Prefect Dask task runner (see the module docstring)."""

    runner: Any

    @contextmanager
    def place(self, dask: DaskSettings | None, pixels: int) -> Iterator[Placement]:
        """A task per worker thread on a local cluster of this process's threads, else a task per window."""
        from tasks.window_queue import in_process, queued

        runner = self.runner
        with _without_step_arguments():
            # a LocalCluster's workers share this machine's disk: they write their chunks themselves, as local
            # threads do, instead of sending them back through the scheduler to this process
            if getattr(runner, "cluster_class", None) == LOCAL_CLUSTER and in_process(runner):
                with queued(runner) as place:
                    yield place
                return
            task = window_task()
            yield Placement(lambda job, window: runner.submit(task, {"job": job, "window": window}),
                            f"Prefect tasks on the flow's {type(runner).__name__}", True)  # fmt: skip


@contextmanager
def _without_step_arguments() -> Iterator[None]:
    """While inside, the tasks submitted from the step's Prefect task carry no copy of the step's arguments.

    Prefect sends the run context of the submitting task, its arguments included, with every task it submits
    to a Dask task runner. A window task uses none of them, and the step's runtime (queues, threads, the
    task runner itself) cannot be copied to another process.
    """
    from prefect.context import TaskRunContext

    step = TaskRunContext.get()
    if step is None:
        yield
        return
    with step.model_copy(update={"parameters": {}}):
        yield


@dataclass(frozen=True)
class FlowCluster:
    """In a package's flow: the flow's Dask task runner when the work is worth it, else the flow's threads.

    `open(dask)` opens the task runner for the step, and closes it on exit (see the module docstring).
    """

    open: Callable[[DaskSettings | None], AbstractContextManager[Any]]

    @contextmanager
    def place(self, dask: DaskSettings | None, pixels: int) -> Iterator[Placement]:
        """The flow's task runner for a configured cluster or big work; threads of the flow's process otherwise."""
        threshold = (dask or DaskSettings()).local_cluster_from
        if (dask is not None and dask.enabled) or pixels >= threshold:
            with self.open(dask) as runner, OnTaskRunner(runner).place(dask, pixels) as place:
                yield place
            return
        what = f"threads of the flow process ({pixels:,} px, below the {threshold:,} px a local cluster is started for)"
        with Threads(what).place(dask, pixels) as place:
            yield place


@contextmanager
def _dask_client(dask: DaskSettings) -> Iterator[tuple[Any, str]]:
    """A client of the configured cluster and its description; a Gateway cluster made here is shut down on exit."""
    if dask.scheduler_address:
        from distributed import Client

        with Client(dask.scheduler_address, set_as_default=False) as client:
            yield client, f"the Dask cluster at {dask.scheduler_address} ({client.dashboard_link})"
        return
    from tasks.remote.gateway import cluster_for

    with cluster_for(dask) as cluster, cluster.get_client(set_as_default=False) as client:
        yield client, f"Dask Gateway cluster {cluster.name} ({cluster.dashboard_link})"


def _taken(future: "Future | PrefectFuture") -> Ran:
    """A finished window's measured result; a Dask future is released at once (its worker drops the result)."""
    try:
        return future.result()
    finally:
        release = getattr(getattr(future, "wrapped_future", None), "release", None)  # a Prefect future's Dask future
        if release is not None:
            release()


def run_windows(
    place: Placement,
    job: Callable[[Any], Any],
    windows: Sequence[Any],
    write: Callable[[Any], None],
    description: str,
) -> Usage:
    """Run `job` on every window where `place` puts it; `write` each result here as it returns; the usage.

    Each window's future is let go of as soon as its result is taken, so no result outlives its `write`, here or
    on a Dask worker. On the first failure (or an interruption) the windows not yet done are cancelled and the
    error raised.
    """
    usage = Usage(place.where)
    finished: queue.SimpleQueue[int] = queue.SimpleQueue()  # ids of the futures done, as they finish
    pending: dict[int, Future | PrefectFuture] = {}

    def track(future: "Future | PrefectFuture") -> None:
        pending[id(future)] = future
        future.add_done_callback(lambda done: finished.put(id(done)))

    try:
        for window in windows:
            track(place.submit(job, window))
        with progress(len(pending), description) as advance:
            while pending:
                ran = _taken(pending.pop(finished.get()))
                write(ran.take())
                usage.add(ran)
                advance()
    except BaseException:
        for future in pending.values():
            getattr(future, "wrapped_future", future).cancel()  # a Prefect future wraps the runner's own
        raise
    trim_malloc()
    return usage

"""The one window runner of the Dask steps: plan -> run each window -> write as results return -> usage.

A compute step cuts its output grid into windows (`tiles`), gives `run_windows` a job for one window (a
picklable callable) and a `write` for one result, and gets back what the windows cost. `run_windows` runs
each window where the step's placement puts it, hands each result to `write` in the step's process as soon
as it returns (so a result is dropped before the next arrives), cancels the windows not yet done on the first
failure, and measures each window (time, CPU, the worker and scheduler that ran it).

Where windows run (`placement`), in order:
- in a flow: on the flow's Dask task runner, which the flow opens for the step when the step asks for it
  (`flow_cluster`, `flows.build`), as Prefect task runs, so the UI shows them while they run:
  - on a Gateway's or any other cluster, a task per window: its workers may share no disk with the step, so
    each window sends its result back;
  - on the local cluster (threads of the flow's process), a task per worker thread ("windows 1/3"), each
    running the step's windows in turn until none are left, and writing their output itself. Prefect rebuilds
    its settings and context for every task a Dask task runner runs and serialises them for every submission:
    measured with py-spy on a full tile, 0.2-0.3 s of CPU per window task, a third of the window threads' own
    CPU, which made the flow's compute 1.22x the step's;
  Without a configured cluster, work smaller than `DaskSettings.local_cluster_from` pixels runs in the flow's
  own threads instead: a cluster takes a second or more to start, more than such work is worth (measured in
  `bench/monitor.py`);
- a step run alone (the CLI, a CWL tool) with a Dask cluster configured: the running cluster named by
  DASK_SCHEDULER_ADDRESS, else the gateway's cluster (the one Calrissian procured, named in DASK_CLUSTER, else a
  new one for the step);
- otherwise local threads, one more than there are cores (each window also waits on file writes; measured on
  a full tile, 2 cores: 34 s instead of 39 s with one per core).
"""

import ctypes
import os
import queue
import resource
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from eoflows.settings import DaskSettings
from tasks.reporting import flow_run_context, progress, report_table

if TYPE_CHECKING:
    from prefect import Task
    from prefect.futures import PrefectFuture

M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3  # glibc mallopt parameters
LOCAL_CLUSTER = "distributed.LocalCluster"  # the cluster class of the flows' local task runner (flows.runners)
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

    - at most `arenas` arenas, so window threads reuse each other's freed buffers: measured on a full tile with
      three threads, 930 MB peak RSS without, 720 MB with, same speed;
    - where MALLOC_TRIM_THRESHOLD_ is set (Dask's nanny sets it for its worker processes, a Gateway's), which
      freezes glibc's mmap threshold at 128 kB, arrays below `mmap_threshold` bytes (a window's are 10-40 MB) come
      from the heap again, not each from a fresh mmap that the kernel zeroes page by page: measured on a full
      tile in a LocalCluster worker process, 41.7 s instead of 53.9 s. Elsewhere glibc's own sliding threshold is
      kept (a fixed one made the step 7 % slower).
    No-op where glibc is not the allocator.
    """
    mallopt = _glibc("mallopt")
    if mallopt is not None:
        mallopt(M_ARENA_MAX, arenas)
        if os.environ.get("MALLOC_TRIM_THRESHOLD_"):
            mallopt(M_MMAP_THRESHOLD, mmap_threshold)


def trim_malloc() -> None:
    """Give the heap's free memory back to the system (glibc), as the windows of a step are done.

    Freed window arrays otherwise stay in the process's heap: in a flow on the local cluster (threads of the flow's
    process), stage-out's uploads then came on top of them (whole run on a full tile to S3: 1.50 GiB peak RSS).
    No-op where glibc is not the allocator.
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
        the step ends: a result left here would outlive its write (chunks sent back by every window of a full
        tile: 4.3 GB peak RSS).
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
class Placement:
    """Where the windows of a step run: a way to submit one, in words, and whether that is another process."""

    submit: Callable[[Callable[[Any], Any], Any], "Future | PrefectFuture"]
    where: str
    remote: bool  # windows run in other processes, maybe other machines: they must send their results back


# how a flow opens its Dask task runner for a step (set by `flows.build` while the step runs): entered, it makes
# that runner the flow run's task runner and yields it
ClusterOpener = Callable[[DaskSettings | None], AbstractContextManager[Any]]
_flow_cluster: ContextVar[ClusterOpener | None] = ContextVar("eoflows_flow_cluster", default=None)


@contextmanager
def flow_cluster(opener: ClusterOpener) -> Iterator[None]:
    """While inside, the Dask steps of this flow run open their task runner with `opener`, if they need one."""
    token = _flow_cluster.set(opener)
    try:
        yield
    finally:
        _flow_cluster.reset(token)


class _Feed:
    """The windows of a step waiting for the Prefect tasks that run them in turn (threads of this process)."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Future, Callable[[Any], Any], Any] | None] = queue.SimpleQueue()
        self.closed = False

    def submit(self, job: Callable[[Any], Any], window: Any) -> Future:
        """Queue `job(window)`; its future ends with the window's `Ran`."""
        future: Future = Future()
        self._queue.put((future, job, window))
        return future

    def run(self) -> int:
        """Run queued windows until the feed is closed; how many ran (a window's error goes to its future)."""
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


_feeds: dict[str, _Feed] = {}  # the feeds of the steps running in this process, by key


def run_feed(feed: str, number: int, of: int) -> int:
    """Run windows of the step's `feed` (one of `of` such tasks) until it is closed; how many it ran."""
    return _feeds[feed].run()


@cache
def feed_task() -> "Task":
    """The Prefect task that runs windows in turn on a thread of the local cluster (made when first needed)."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(run_feed, name="windows", task_run_name="windows {number}/{of}", cache_policy=NO_CACHE,
                persist_result=False)  # fmt: skip


@contextmanager
def _fed(runner: Any) -> Iterator[Placement]:
    """Windows run in turn by a Prefect task per thread of the local cluster `runner` (its worker's threads).

    Should such a task end while windows are still queued (it crashed), they fail instead of waiting forever.
    """
    threads = sum(runner.client.nthreads().values())
    key, feed = uuid.uuid4().hex, _Feed()
    _feeds[key] = feed

    def ended(done: Any) -> None:
        if not feed.closed:
            feed.close(0, RuntimeError(f"the window task {done.task_run_id} ended before the step's windows did"))

    runners = []
    try:
        for number in range(1, threads + 1):
            runners.append(feed_task().submit(key, number, threads))
            runners[-1].add_done_callback(ended)
        yield Placement(feed.submit, f"{threads} Prefect tasks on the flow's DaskTaskRunner (a local cluster), "
                        "each running windows in turn", False)  # fmt: skip
    finally:
        feed.close(len(runners))
        for future in runners:
            future.wait()
        del _feeds[key]


@contextmanager
def placement(dask: DaskSettings | None, pixels: int) -> Iterator[Placement]:
    """The placement of the windows of a step making `pixels` output pixels (see the module docstring).

    Clusters it made are released on exit.
    """
    if (flow_run := flow_run_context()) is not None:
        opener = _flow_cluster.get()
        configured = dask is not None and dask.enabled
        threshold = dask.local_cluster_from if dask is not None else DaskSettings().local_cluster_from
        if opener is None or configured or pixels >= threshold:
            # no opener: a flow of the user's own calls the step; its task runner is taken as it is
            with opener(dask) if opener is not None else nullcontext(flow_run.task_runner) as runner:
                # a LocalCluster's workers share this machine's disk: they write their chunks themselves, as local
                # threads do, instead of sending them back through the scheduler to this process
                local = getattr(runner, "cluster_class", None) == LOCAL_CLUSTER and not getattr(runner, "address", None)
                if local:
                    with _fed(runner) as place:
                        yield place
                else:
                    yield Placement(window_task().submit, f"Prefect tasks on the flow's {type(runner).__name__}", True)
            return
        with _threads(f"threads of the flow process ({pixels:,} px, below the {threshold:,} px a local cluster "
                      "is started for)") as place:  # fmt: skip
            yield place
        return
    if dask is not None and dask.enabled:
        with _dask_client(dask) as (client, where):
            executor = client.get_executor(pure=False)  # concurrent.futures: cancelling one cancels its Dask task
            yield Placement(lambda job, window: executor.submit(measured, job, window), where, True)
        return
    with _threads("local threads") as place:
        yield place


@contextmanager
def _threads(what: str) -> Iterator[Placement]:
    """Windows on threads of this process, one more than there are cores."""
    n = (os.cpu_count() or 1) + 1
    tune_malloc()
    with ThreadPoolExecutor(n, thread_name_prefix="eoflows-window") as pool:
        yield Placement(lambda job, window: pool.submit(measured, job, window), f"{n} {what}", False)


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

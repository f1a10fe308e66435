"""The window runner: tiling, writing results as they return (and letting them go), cancelling on a failure."""

import threading
import weakref
from collections.abc import Callable
from typing import Any

import dask
import numpy as np
import pytest

from eoflows.runtime import Placement
from tasks.windows import LOCAL_CLUSTER, NO_PROFILER, OnTaskRunner, Threads, Usage, run_windows, tiles


def test_tiles_cover_the_grid_once() -> None:
    found = tiles(5, 7, (2, 3))
    assert len(found) == 9 and found[0] == (slice(0, 2), slice(0, 3)) and found[-1] == (slice(4, 5), slice(6, 7))
    covered = np.zeros((5, 7), int)
    for rows, cols in found:
        covered[rows, cols] += 1
    assert (covered == 1).all()


def run_checked(place: Placement, windows: int) -> tuple[list[float], Usage]:
    """Run `windows` windows (each an array of its number) on `place`; what was written, sorted, and the usage.

    Each write checks that no earlier result outlived its own write.
    """
    written, alive = [], []

    def write(result: np.ndarray) -> None:
        assert not [ref for ref in alive if ref() is not None]  # no earlier result outlived its write
        alive.append(weakref.ref(result))
        written.append(float(result[0]))

    usage = run_windows(place, lambda w: np.full(100_000, w, np.float64), range(windows), write, "test windows")
    return sorted(written), usage


def in_a_flow(body: Callable[[OnTaskRunner], Any], cluster_class: str | None = LOCAL_CLUSTER) -> Any:
    """`body(sites)` in a Prefect task of a flow on a Dask cluster of 3 threads in the flow's process.

    `sites` places windows on the flow's task runner.

    With `cluster_class` None, the task runner does not know the cluster for a local one (windows as on a
    Gateway's: a Prefect task each, results sent back).
    """
    from prefect import flow, task
    from prefect.context import FlowRunContext
    from prefect_dask import DaskTaskRunner

    runner = DaskTaskRunner(cluster_class=cluster_class,
                            cluster_kwargs={"n_workers": 1, "threads_per_worker": 3, "processes": False,
                                            "dashboard_address": "127.0.0.1:0"})  # fmt: skip
    with dask.config.set(NO_PROFILER):  # as the flows' local cluster (flows.runners)
        return flow(task_runner=runner)(lambda: task(body)(OnTaskRunner(FlowRunContext.get().task_runner)))()


def test_each_result_is_written_once_and_let_go_before_the_next() -> None:
    with Threads().place(None, 0) as place:
        assert not place.remote and place.where.endswith("local threads")
        written, usage = run_checked(place, 12)
    assert written == list(range(12))
    assert usage.windows == 12 and usage.workers == {"this process": 12} and usage.cpu >= 0


def test_in_a_flow_each_window_result_is_let_go_after_its_write() -> None:
    """Prefect keeps the return value of each window task (in the submitting step's transaction) until the step
    ends; the result a window returns must still go as soon as it is written."""

    def step(sites: OnTaskRunner) -> tuple[str, list[float]]:
        with sites.place(None, 0) as place:
            return place.where, run_checked(place, 6)[0]

    where, written = in_a_flow(step, cluster_class=None)
    assert where == "Prefect tasks on the flow's DaskTaskRunner" and written == list(range(6))


def test_on_a_local_cluster_a_task_per_thread_runs_the_windows_in_turn() -> None:
    def step(sites: OnTaskRunner) -> tuple[str, list[float], Usage]:
        with sites.place(None, 0) as place:
            return place.where, *run_checked(place, 12)

    where, written, usage = in_a_flow(step)
    assert where == "3 Prefect tasks on the flow's DaskTaskRunner (a local cluster), each running windows in turn"
    assert written == list(range(12)) and usage.windows == 12
    (worker,) = usage.workers  # the cluster's one worker (threads of this process)
    assert worker.startswith("inproc://") and usage.workers[worker] == 12


STARTED: list[int] = []
RELEASE = threading.Event()


def held_job(window: int) -> int:
    """Window 0 fails; the others wait for `RELEASE` (module-level: Prefect pickles the context of the step)."""
    STARTED.append(window)
    if window == 0:
        raise ValueError("window 0 is broken")
    RELEASE.wait(30)
    return window


def failing_step(sites: OnTaskRunner | Threads) -> None:
    """20 windows of `held_job` (module-level too, as it refers to `RELEASE`)."""
    STARTED.clear()
    RELEASE.clear()
    with sites.place(None, 0) as place:
        try:
            run_windows(place, held_job, range(20), lambda result: None, "test windows")
        finally:
            RELEASE.set()


@pytest.mark.parametrize("where", ["local threads", "a local cluster"])
def test_a_failing_window_cancels_the_windows_not_started(where: str) -> None:
    with pytest.raises(ValueError, match="window 0 is broken"):
        failing_step(Threads()) if where == "local threads" else in_a_flow(failing_step)
    assert 0 in STARTED and len(STARTED) < 20  # the queued windows never ran


def test_windows_queued_for_a_runner_that_ended_fail_instead_of_waiting() -> None:
    from tasks.window_queue import WindowQueue

    windows = WindowQueue()
    queued = [windows.submit(lambda w: w, window) for window in range(3)]
    windows.close(2, RuntimeError("the window task 1 ended before the step's windows did"))
    for future in queued:
        with pytest.raises(RuntimeError, match="ended before the step's windows did"):
            future.result(timeout=1)
    assert windows.run() == 0  # runners still attached end at once

"""The window runner: tiling, writing results as they return (and letting them go), cancelling on a failure."""

import threading
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tasks.windows import LOCAL_CLUSTER, placement, run_windows, tiles


def test_tiles_cover_the_grid_once() -> None:
    found = tiles(5, 7, (2, 3))
    assert len(found) == 9 and found[0] == (slice(0, 2), slice(0, 3)) and found[-1] == (slice(4, 5), slice(6, 7))
    covered = np.zeros((5, 7), int)
    for rows, cols in found:
        covered[rows, cols] += 1
    assert (covered == 1).all()


def test_each_result_is_written_once_and_let_go_before_the_next() -> None:
    written, alive = [], []

    def write(result: np.ndarray) -> None:
        assert not [ref for ref in alive if ref() is not None]  # no earlier result outlived its write
        alive.append(weakref.ref(result))
        written.append(float(result[0]))

    with placement(None, 0) as place:
        assert not place.remote and place.where.endswith("local threads")
        usage = run_windows(place, lambda w: np.full(100_000, w, np.float64), range(12), write, "test windows")
    assert sorted(written) == list(range(12))
    assert usage.windows == 12 and usage.workers == {"this process": 12} and usage.cpu >= 0


def test_a_failing_window_cancels_the_windows_not_started() -> None:
    started, release = [], threading.Event()

    def job(window: int) -> int:
        started.append(window)
        if window == 0:
            raise ValueError("window 0 is broken")
        release.wait(30)
        return window

    with placement(None, 0) as place, pytest.raises(ValueError, match="window 0 is broken"):
        try:
            run_windows(place, job, range(20), lambda result: None, "test windows")
        finally:
            release.set()
    assert len(started) < 20  # the queued windows never ran


def test_in_a_flow_each_window_result_is_let_go_after_its_write() -> None:
    """Prefect keeps the return value of each window task (in the submitting step's transaction) until the step
    ends; the result a window returns must still go as soon as it is written."""
    from prefect import flow, task
    from prefect_dask import DaskTaskRunner

    @task
    def step() -> list[float]:
        written, alive = [], []

        def write(result: np.ndarray) -> None:
            assert not [ref for ref in alive if ref() is not None]  # no earlier result outlived its write
            alive.append(weakref.ref(result))
            written.append(float(result[0]))

        with placement(None, 0) as place:
            assert place.where.startswith("Prefect tasks on the flow's DaskTaskRunner")
            run_windows(place, lambda w: np.full(100_000, w, np.float64), range(6), write, "test windows")
        return sorted(written)

    @flow(task_runner=DaskTaskRunner(cluster_kwargs={"n_workers": 1, "threads_per_worker": 2, "processes": False}))
    def windows() -> list[float]:
        return step()

    assert windows() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def local_cluster_flow(body: Callable[[], Any]) -> Any:
    """`body()` in a Prefect task of a flow on a local Dask cluster in the flow's process (3 threads)."""
    from prefect import flow, task
    from prefect_dask import DaskTaskRunner

    runner = DaskTaskRunner(cluster_class=LOCAL_CLUSTER,
                            cluster_kwargs={"n_workers": 1, "threads_per_worker": 3, "processes": False})  # fmt: skip
    return flow(task_runner=runner)(lambda: task(body)())()


def test_on_a_local_cluster_a_task_per_thread_runs_the_windows_in_turn() -> None:
    written = []

    def step() -> tuple[str, Any]:
        with placement(None, 0) as place:
            usage = run_windows(place, lambda w: np.full(1000, w, np.float64), range(12),
                                lambda result: written.append(float(result[0])), "test windows")  # fmt: skip
        return place.where, usage

    where, usage = local_cluster_flow(step)
    assert where == "3 Prefect tasks on the flow's DaskTaskRunner (a local cluster), each running windows in turn"
    assert sorted(written) == list(range(12)) and usage.windows == 12
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


def failing_step() -> None:
    """Windows of `held_job`; module-level too, as it refers to `RELEASE` (pickled with a step made in a test)."""
    with placement(None, 0) as place:
        try:
            run_windows(place, held_job, range(20), lambda result: None, "test windows")
        finally:
            RELEASE.set()


def test_on_a_local_cluster_a_failing_window_cancels_the_windows_not_started() -> None:
    with pytest.raises(ValueError, match="window 0 is broken"):
        local_cluster_flow(failing_step)
    assert 0 in STARTED and len(STARTED) < 20  # the queued windows never ran


def test_windows_queued_for_a_runner_that_ended_fail_instead_of_waiting() -> None:
    from tasks.windows import _Feed

    feed = _Feed()
    queued = [feed.submit(lambda w: w, window) for window in range(3)]
    feed.close(2, RuntimeError("the window task 1 ended before the step's windows did"))
    for future in queued:
        with pytest.raises(RuntimeError, match="ended before the step's windows did"):
            future.result(timeout=1)
    assert feed.run() == 0  # runners still attached end at once

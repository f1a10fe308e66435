"""The window runner: tiling, writing results as they return (and letting them go), cancelling on a failure."""

import threading
import weakref

import numpy as np
import pytest

from tasks.windows import placement, run_windows, tiles


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

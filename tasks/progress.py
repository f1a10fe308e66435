"""Progress of long work: a Prefect progress artifact inside a run, a progress bar on the terminal otherwise."""

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import FlowRunContext, TaskRunContext
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tasks.logs import logger

Advance = Callable[[], None]


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run."""
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


@contextmanager
def progress(total: int, description: str, every_s: float = 1.0) -> Iterator[Advance]:
    """Yield a function to call once per finished unit of work, out of `total`.

    In a Prefect run this keeps a progress artifact up to date (at most once per `every_s` seconds, and at
    the end) and logs each tenth done, which the run log and the terminal of `eoflows run` show; elsewhere it
    draws a progress bar on standard error.
    """
    done = 0
    if in_prefect_run():
        artifact = create_progress_artifact(0.0, description=description)
        last, tenth, log = time.monotonic(), 0, logger()

        def advance() -> None:
            nonlocal done, last, tenth
            done += 1
            if done == total or time.monotonic() - last >= every_s:
                update_progress_artifact(artifact, 100.0 * done / total)
                last = time.monotonic()
            if done * 10 // total > tenth:
                tenth = done * 10 // total
                log.info("%s: %d of %d done (%d%%)", description, done, total, 100 * done // total)

        yield advance
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)

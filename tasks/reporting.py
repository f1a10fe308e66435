"""What a person sees of long work: log lines, progress and small tables, in the Prefect UI or on the terminal.

Inside a Prefect flow or task run: the run logger, a progress artifact and table/markdown artifacts. Elsewhere
(a step run alone by the CLI or a CWL tool): the standard `eoflows` logger, a progress bar on standard error,
and the tables as log lines.
"""

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Advance = Callable[[], None]


def flow_run_context() -> Any:
    """Prefect's `FlowRunContext` inside a flow run, else None.

    A process that has not imported Prefect runs no flow: a step run alone (CLI, CWL tool) never imports it.
    """
    if "prefect" not in sys.modules:
        return None
    from prefect.context import FlowRunContext

    return FlowRunContext.get()


def flow_run_id() -> str | None:
    """The id of the Prefect flow run this process works for, else None.

    Its run context, or `PREFECT__FLOW_RUN_ID` as Prefect sets it for a run's processes (what
    `prefect.runtime.flow_run.get_id` reads).
    """
    if "prefect" not in sys.modules:
        return os.environ.get("PREFECT__FLOW_RUN_ID") or None
    from prefect.runtime import flow_run

    return flow_run.get_id()


def shown(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`call(...)` publishing an artifact; on failure (the Prefect API refused or did not answer) a warning and None.

    What a person sees of the work must never stop the work.
    """
    try:
        return call(*args, **kwargs)
    except RuntimeError:  # the run's API client is closed: the run is ending (a stop); its work ends with it
        raise
    except Exception as exc:
        logger().warning("Artifact not published (%s: %s); the work goes on", type(exc).__name__, exc)
        return None


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run (see `flow_run_context`)."""
    if "prefect" not in sys.modules:
        return False
    from prefect.context import TaskRunContext

    return TaskRunContext.get() is not None or flow_run_context() is not None


def logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run, the standard `eoflows` logger elsewhere."""
    if not in_prefect_run():
        return logging.getLogger("eoflows")
    from prefect.logging import get_run_logger

    return get_run_logger()


@contextmanager
def progress(total: int, description: str, every_s: float = 1.0) -> Iterator[Advance]:
    """Yield a function to call once per finished unit of work, out of `total`.

    In a Prefect run this keeps a progress artifact up to date (at most once per `every_s` seconds, and at
    the end) and logs each tenth done, which the run log and the terminal of `eoflows run` show; elsewhere it
    draws a progress bar on standard error.
    """
    done = 0
    if in_prefect_run():
        from prefect.artifacts import create_progress_artifact, update_progress_artifact

        artifact = shown(create_progress_artifact, 0.0, description=description)
        last, tenth, log = time.monotonic(), 0, logger()

        def advance() -> None:
            nonlocal done, last, tenth
            done += 1
            if artifact is not None and (done == total or time.monotonic() - last >= every_s):
                shown(update_progress_artifact, artifact, 100.0 * done / total)
                last = time.monotonic()
            if done * 10 // total > tenth:
                tenth = done * 10 // total
                log.info("%s: %d of %d done (%d%%)", description, done, total, 100 * done // total)

        yield advance
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(file=sys.stderr), transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def report_table(key: str, title: str, rows: list[dict[str, Any]]) -> None:
    """Publish `rows` as a table artifact named `key` (lowercase, digits, dashes) or log them."""
    if in_prefect_run():
        from prefect.artifacts import create_table_artifact

        shown(create_table_artifact, rows, key=key, description=title, _sync=True)  # also from async tasks
        return
    log = logger()
    log.info("%s", title)
    for row in rows:
        log.info("  %s", " | ".join(str(v) for v in row.values()))


def report_markdown(key: str, title: str, text: str) -> None:
    """Publish `text` as a markdown artifact named `key` in a Prefect run, or log it."""
    if in_prefect_run():
        from prefect.artifacts import create_markdown_artifact

        shown(create_markdown_artifact, text, key=key, description=title, _sync=True)
        return
    logger().info("%s\n%s", title, text)

"""A flow run's work folder, and what a run learns from the folders of dead runs: they crashed.

A run killed without a chance to report (SIGKILL, a lost machine) stays Running in Prefect until something says
otherwise. Its work folder says it: the next run on the machine removes the folder (`tasks.data.work_folders`)
and marks that flow run Crashed if the API still shows it running.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import UUID

from prefect import get_client
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_run_logger
from prefect.runtime import flow_run
from prefect.states import Crashed

from tasks.data.work_folders import Stale, work_folder


def mark_crashed(stale: list[Stale]) -> None:
    """Say which dead runs' folders were removed; mark their flow runs Crashed where still shown running."""
    log = get_run_logger()
    for found in stale:
        log.warning("Removed the work folder %s of a run that ended without cleaning up (flow run %s)",
                    found.path, found.owner or "unknown")  # fmt: skip
        try:
            run_id = UUID(str(found.owner))
            with get_client(sync_client=True) as client:
                run = client.read_flow_run(run_id)
                if run.state is not None and run.state.is_running():
                    message = f"Its process ended without reporting; found by flow run {flow_run.get_id()}"
                    client.set_flow_run_state(run_id, Crashed(message=message), force=True)
                    log.warning("Marked flow run %s (%s) Crashed", run.name, run_id)
        except (ValueError, ObjectNotFound):
            continue  # not a flow run, or one of another Prefect API


@contextmanager
def flow_work_folder(what: str) -> Iterator[Path]:
    """A private work folder for this flow run (removed after it, or by the next run if this one is killed)."""
    with work_folder(what, owner=flow_run.get_id()) as (folder, stale):
        mark_crashed(stale)
        yield folder

"""The Prefect API a command reports to: the configured one, else a temporary server owned by this process.

Without `PREFECT_API_URL`, Prefect would start its own temporary server, which outlives a killed parent and
sends telemetry. Ours is the same server (Prefect's API app under uvicorn, on the profile's database, so runs
stay visible afterwards with `prefect server start`), with analytics off, and it ends with this process even
when that is killed (`eoflows.processes.die_with_parent`).

The server takes seconds to start (it imports Prefect's whole API), so a command that will need it starts it
first (`starting_early`, for the command's lifetime), imports its flows while the server starts on the other
core, and hands that server to `prefect_api`. The temporary server skips the registration of block types at
start (it would import every installed Prefect collection, Kubernetes' client among them, seconds more): a block
saved from Python registers its own type.
"""

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from eoflows.prefect_watch import watched
from eoflows.processes import free_port, started, wait_answering
from tasks.data.work_folders import locked_folder

NAME = "temporary Prefect server"
LOGS_REFUSED = "--- Error logging to API ---"  # what Prefect's log worker writes before the API's error


@dataclass(frozen=True)
class Server:
    """A temporary Prefect server's process, API URL and log."""

    process: subprocess.Popen
    url: str
    log: Path


@contextmanager
def _temporary_server() -> Iterator[Server]:
    """Start a temporary Prefect server (not waiting for it to answer); stopped on exit."""
    port = free_port()
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
        "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",  # (its check alone imports the collections)
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]  # fmt: skip
    with locked_folder("prefect-server", owner=NAME) as logs:  # a killed command's: removed by the next run
        log = logs / "server.log"
        # its own session: a terminal's Ctrl-C (SIGINT to the foreground group) reaches eoflows alone, which stops
        # the run while the server still takes its last reports, then stops the server
        with started(command, log=log, env=env, start_new_session=True) as process:
            yield Server(process, f"http://127.0.0.1:{port}/api", log)


@contextmanager
def starting_early() -> Iterator[Server | None]:
    """A temporary server started now, for `prefect_api` inside the block, unless the environment names an API.

    An API configured elsewhere (a Prefect profile) is only known once Prefect is imported: `prefect_api` then
    stops the server started here, unused. The server ends with the block.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield None
        return
    with _temporary_server() as server:
        yield server


@contextmanager
def prefect_api(early: Server | None = None) -> Iterator[str]:
    """The URL of the Prefect API for the block: the configured one, else a temporary server.

    That server is `early` when given (`starting_early`), else one started now. If the API stops answering, the
    block is stopped (`eoflows.prefect_watch`).
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        if early is not None:
            early.process.terminate()
        try:
            with watched(configured):
                yield configured
        finally:
            flush_run_reports()
        return
    with nullcontext(early) if early is not None else _temporary_server() as server:
        wait_answering(server.process, f"{server.url}/health", NAME, timeout=120, log=server.log)
        previous = os.environ.get("PREFECT_API_URL")
        os.environ["PREFECT_API_URL"] = server.url  # for the processes the run starts (Dask workers, cwltool)
        try:
            with temporary_settings({PREFECT_API_URL: server.url}):
                try:
                    with watched(server.url):
                        yield server.url
                finally:
                    flush_run_reports()
        finally:
            if previous is None:
                os.environ.pop("PREFECT_API_URL", None)
            else:
                os.environ["PREFECT_API_URL"] = previous


def flush_run_reports() -> None:
    """Send the logs and events still queued in this process (before the server they go to stops).

    Logs the API refuses (a full disk on its side, say) are said in one line, instead of Prefect's raw error as
    the command's last line.
    """
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    real, sys.stderr = sys.stderr, io.StringIO()  # where Prefect's log worker writes what the API refused
    try:
        APILogHandler().flush()
        EventsWorker.drain_all(timeout=5)
    finally:
        captured, sys.stderr = sys.stderr.getvalue(), real
    kept, _, refused = captured.partition(LOGS_REFUSED)
    sys.stderr.write(kept)
    if refused:
        reason = " ".join(refused.replace(LOGS_REFUSED, " ").split())[:300]
        print(f"eoflows: warning: the Prefect API refused some of the run's logs, which are lost ({reason})",
              file=sys.stderr)  # fmt: skip

"""The Prefect API a command reports to: the configured one, else a temporary server owned by this process.

Without `PREFECT_API_URL`, Prefect would start its own temporary server, which outlives a killed parent and
sends telemetry. Ours is the same server (Prefect's API app under uvicorn, on the profile's database, so runs
stay visible afterwards with `prefect server start`), with analytics off, and it ends with this process even
when that is killed (`eoflows.processes.die_with_parent`).
"""

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect.settings import PREFECT_API_URL, temporary_settings

from eoflows.processes import free_port, http_process


@contextmanager
def prefect_api() -> Iterator[str]:
    """The URL of the Prefect API for the block: the configured one, or a temporary server started here."""
    configured = PREFECT_API_URL.value()
    if configured:
        yield configured
        return
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT__SERVER_EPHEMERAL": "1",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on"]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="eoflows-prefect-") as logs:
        log = Path(logs) / "server.log"
        with http_process(command, f"{url}/health", "temporary Prefect server", timeout=120, log=log, env=env):
            previous = os.environ.get("PREFECT_API_URL")
            os.environ["PREFECT_API_URL"] = url  # for the processes the run starts (Dask workers, cwltool)
            try:
                with temporary_settings({PREFECT_API_URL: url}):
                    try:
                        yield url
                    finally:
                        flush_run_reports()
            finally:
                if previous is None:
                    os.environ.pop("PREFECT_API_URL", None)
                else:
                    os.environ["PREFECT_API_URL"] = previous


def flush_run_reports() -> None:
    """Send the logs and events still queued in this process (before the server they go to stops)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    EventsWorker.drain_all(timeout=5)

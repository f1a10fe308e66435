"""`eoflows serve`: OGC API - Processes on Prefect (`deployments.processes_api`)."""

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal


@contextmanager
def _worker(pool: str) -> Iterator[None]:
    """A worker of `pool` (the embedded default's), stopped on exit."""
    from eoflows.processes import started

    # the pool exists (ensure_pools), with its type: a docker pool gets eoflows' docker worker, not a process one
    command = [str(Path(sys.executable).with_name("prefect")), "worker", "start", "--pool", f"eoflows-{pool}"]
    with started(command, env=dict(os.environ)):
        yield


def serve(
    *,
    host: str = "127.0.0.1",
    port: int = 5000,
    results: str = "ogc-results",
    pool: Literal["local", "docker", "kubernetes"] = "local",
    storage: str = "",
    cwl: Literal["local", "calrissian"] = "local",
    execute_needs_token: bool = False,
) -> None:
    """Serve every installed package as an OGC API - Processes process; every job is a Prefect flow run.

    With PREFECT_API_URL, jobs are runs of the packages' deployments on that server, run by its workers (eoflows
    deploy makes them). Without, a temporary Prefect server, the deployments and a process worker are started
    and stopped with the server.

    Args:
        host: Address to listen on.
        port: Port to listen on.
        results: Folder or s3:// prefix a job publishes to (RESULTS/JOB_ID/) unless its request says.
        pool: The work pool whose deployments (NAME/POOL) the jobs are runs of: local, docker or kubernetes.
        storage: Name of a saved 'eoflows-s3-storage' block: the S3 endpoint and credentials of the jobs (results
            on S3); empty: the workers' AWS_* variables.
        cwl: The run-cwl deployment that runs the jobs of deployed CWL packages: local (cwltool on a worker of
            eoflows-local) or calrissian (a Calrissian Job from a worker of eoflows-k8s).
        execute_needs_token: Execute and dismiss need the bearer token too (deploy, replace and undeploy always
            do). The token is the EOFLOWS_SERVE_TOKEN variable, never an argument; without it, deploying is off.
    """
    import uvicorn

    from deployments.processes_api import ServerSettings, create_app
    from eoflows.errors import InputError, Stopped
    from eoflows.prefect_api import prefect_api

    where = results if results.startswith("s3://") else str(Path(results).resolve())
    token = os.environ.get("EOFLOWS_SERVE_TOKEN", "")
    if execute_needs_token and not token:
        raise InputError("--execute-needs-token: set EOFLOWS_SERVE_TOKEN to the token clients give")
    embedded = not os.environ.get("PREFECT_API_URL")
    with prefect_api() as url:
        if embedded:
            from deployments.deploy import deploy_all, ensure_pools, project_of

            ensure_pools()
            deploy_all(project_of(None))
        with _worker(pool) if embedded else contextlib.nullcontext():
            ui = url.removesuffix("/api")
            print(
                f"OGC API - Processes at http://{host}:{port}/ (jobs: flow runs on {url}; results: {where}; "
                f"deploy: {'with the token' if token else 'off, no EOFLOWS_SERVE_TOKEN'})"
            )
            try:
                uvicorn.run(
                    create_app(
                        ServerSettings(
                            where,
                            pool,
                            ui,
                            storage=storage,
                            cwl=cwl,
                            token=token,
                            execute_needs_token=execute_needs_token,
                        )
                    ),
                    host=host,
                    port=port,
                    log_level="warning",
                )
            except Stopped:  # SIGTERM, the way a server is stopped: uvicorn has shut down, then passed it on
                print("OGC API - Processes stopped")

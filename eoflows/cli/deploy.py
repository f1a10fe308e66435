"""`eoflows deploy` and `eoflows schedule`: the project's deployments on a Prefect server that keeps running."""

import json
import re
from pathlib import Path
from typing import Annotated

from cyclopts import App, Parameter


def deploy(*, project: Path | None = None, namespace: str = "eoflows", image: str | None = None) -> None:
    """Register the blocks, create the work pools and the crashed-run detection, deploy every flow of prefect.yaml.

    Every installed package (`eoflows packages`) gets the deployments of prefect.yaml's `package_deployments`.
    Needs PREFECT_API_URL (a server that keeps running).

    Args:
        project: The folder holding prefect.yaml; default the current folder when it has one, else eoflows' own.
        namespace: Kubernetes namespace of the eoflows-k8s pool's jobs.
        image: Image of the eoflows-k8s and eoflows-docker pools' runs; default the image of this eoflows version.
    """
    from deployments.deploy import deploy_all, ensure_crash_detection, ensure_pools, project_of, register_blocks
    from eoflows import IMAGE

    folder = project_of(project)
    print("blocks: " + ", ".join(register_blocks()))
    print("work pools: " + ", ".join(ensure_pools(image or IMAGE, namespace)))
    print("automations: " + ensure_crash_detection())
    output = deploy_all(folder)
    names = sorted(set(re.findall(r"Deployment '([^']+)' successfully", output)))
    print("deployments: " + ", ".join(names))


def schedule(
    deployment: str,
    *,
    cron: str | None = None,
    interval: float | None = None,
    timezone: str = "UTC",
    param: Annotated[list[str], Parameter(alias="-p")] = [],
    inactive: bool = False,
) -> None:
    """Add a schedule with its own parameters to a deployment, as the Prefect UI does (needs PREFECT_API_URL).

    Args:
        deployment: The deployment, as FLOW/NAME (e.g. monitor/local).
        cron: Cron expression, e.g. "0 6 * * *" (or give --interval).
        interval: Seconds between runs (or give --cron).
        timezone: Time zone of the schedule.
        param: A parameter of the scheduled runs, KEY=VALUE (VALUE as JSON when it parses); repeat.
        inactive: Create the schedule paused.
    """
    from deployments.schedules import create_schedule, parse_parameters

    created = create_schedule(deployment, parse_parameters(param), cron, interval, timezone, not inactive)
    print(f"schedule {created.id} of {deployment}: {cron or f'every {interval:g} s'} ({timezone}), "
          f"{'active' if created.active else 'inactive'}, parameters {json.dumps(created.parameters)}")  # fmt: skip


def add_to(root: App) -> None:
    """Add `deploy` and `schedule` to the root app (commands of their own, not a group)."""
    root.command(deploy, name="deploy")
    root.command(schedule, name="schedule")

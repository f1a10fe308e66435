"""`eoflows deploy`: register eoflows' blocks, create its three work pools, deploy everything in prefect.yaml.

Idempotent: pools are created or updated, deployments are upserted, and schedules made in the Prefect UI
survive (prefect.yaml gives `schedules` only to the deployment that keeps them in YAML).
"""

import contextlib
import copy
import datetime as dt
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.objects import StateType
from prefect.exceptions import ObjectNotFound
from prefect.workers.process import ProcessWorker

from blocks.calrissian import CalrissianBlock
from blocks.dask_cluster import DaskBlock
from blocks.ogc_process import OgcProcessBlock
from blocks.s3 import S3Block
from deployments.kubernetes import K8S_POOL, base_job_template
from eoflows import IMAGE
from eoflows.errors import InputError, RemoteRunError
from eoflows.package import Package

LOCAL_POOL = "eoflows-local"
DOCKER_POOL = "eoflows-docker"


def register_blocks() -> list[str]:
    """Register eoflows' block types with the Prefect API; return their slugs."""
    blocks = (S3Block, DaskBlock, CalrissianBlock, OgcProcessBlock)
    for block in blocks:
        block.register_type_and_schema()
    return [block.get_block_type_slug() for block in blocks]


def docker_job_template(image: str = IMAGE) -> dict:
    """prefect-docker's base job template with eoflows' defaults.

    The eoflows image (`make image` builds it under this name), never pulled when present, so a local build runs
    without a registry; containers removed when their run ends.
    """
    from deployments.docker_worker import EoflowsDockerWorker

    template = EoflowsDockerWorker.get_default_base_job_template()
    variables = template["variables"]["properties"]
    variables["image"]["default"] = image
    variables["image_pull_policy"]["default"] = "IfNotPresent"
    variables["auto_remove"]["default"] = True
    return template


def ensure_pools(image: str = IMAGE, namespace: str = "eoflows") -> list[str]:
    """Create or update the process pool, the Docker pool and the Kubernetes pool (eoflows' job templates)."""
    from deployments.docker_worker import WORKER_TYPE

    k8s = base_job_template(image, namespace)
    pools = [
        WorkPoolCreate(name=LOCAL_POOL, type="process", base_job_template=ProcessWorker.get_default_base_job_template(),
                       description="Runs eoflows flows on this machine (local Dask or a Dask Gateway)."),
        WorkPoolCreate(name=DOCKER_POOL, type=WORKER_TYPE, base_job_template=docker_job_template(image),
                       description="Runs eoflows flows in containers of the eoflows image (prefect-docker; a "
                       "missing image fails its run in one line)."),
        WorkPoolCreate(name=K8S_POOL, type="kubernetes", base_job_template=k8s,
                       description="Runs eoflows flows as Kubernetes Jobs with the eoflows image."),
    ]  # fmt: skip
    with get_client(sync_client=True) as client:
        for pool in pools:
            with contextlib.suppress(ObjectNotFound):
                if client.read_work_pool(pool.name).type != pool.type:  # made by an older eoflows: a type is for life
                    client.delete_work_pool(pool.name)  # its deployments move to the new pool in `deploy_all`
            client.create_work_pool(pool, overwrite=True)
    return [pool.name for pool in pools]


CRASH_DETECTION = "eoflows: mark runs that stopped beating Crashed"


def ensure_crash_detection() -> str:
    """Create (once) the automation that marks a flow run Crashed when its heartbeats stop; return its name.

    Prefect's zombie detection: a run whose process or machine died without reporting is Crashed after three
    missed heartbeats.
    """
    from prefect.automations import Automation
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.settings import get_current_settings

    try:
        return Automation.read(name=CRASH_DETECTION).name
    except (ObjectNotFound, ValueError):
        pass
    beat = get_current_settings().flows.heartbeat_frequency or 180
    ends = ("Completed", "Failed", "Cancelled", "Crashed")
    Automation(
        name=CRASH_DETECTION,
        description=f"Flow runs send a heartbeat every {beat} s (PREFECT_FLOWS_HEARTBEAT_FREQUENCY); a run that "
        "sent none for three beats and did not finish is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *(f"prefect.flow-run.{end}" for end in ends)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=dt.timedelta(seconds=3 * beat),
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message="No heartbeat for three beats: its process or machine ended without reporting",
            )
        ],  # fmt: skip
    ).create()
    return CRASH_DETECTION


def project_of(project: Path | None) -> Path:
    """The folder of the prefect.yaml to deploy: `project`, else the current folder when it has one, else eoflows'."""
    if project is None:
        here, own = Path.cwd(), Path(__file__).resolve().parents[1]
        project = here if (here / "prefect.yaml").is_file() else own
    return check_project(project.absolute())


def check_project(project: Path) -> Path:
    """`project` if it holds a prefect.yaml (checked before anything is registered)."""
    if not (project / "prefect.yaml").is_file():
        raise InputError(f"project {str(project)!r}: no prefect.yaml (run eoflows deploy from an eoflows checkout "
                         "or give --project)")  # fmt: skip
    return project


def pod_resources(package: Package) -> dict[str, str]:
    """The Kubernetes pool's job variables of `package`'s flow run: the largest minimum and maximum of its steps."""
    cores = [s.resources.cores for s in package.steps]
    ram = [s.resources.ram_mb for s in package.steps]
    return {"cpu_request": str(max(c[0] for c in cores)), "cpu_limit": str(max(c[1] for c in cores)),
            "memory_request": _quantity(max(r[0] for r in ram)),
            "memory_limit": _quantity(max(r[1] for r in ram))}  # fmt: skip


def _quantity(mib: int) -> str:
    """A Kubernetes memory quantity of `mib` MiB (in Gi when whole)."""
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def package_deployments(config: dict[str, Any], packages: dict[str, Package]) -> list[dict[str, Any]]:
    """The deployments of every package in `packages`, one per entry of prefect.yaml's `package_deployments`."""
    from flows.package_flows import attribute

    definitions = config.get("definitions") or {}
    deployments = []
    for name, package in packages.items():
        for template in definitions.get("package_deployments") or []:
            entry = {**definitions.get("package", {}), **copy.deepcopy(template)}
            entry |= {"entrypoint": f"flows.package_flows:{attribute(name)}", "tags": ["eoflows", name]}
            if entry["work_pool"]["name"] == K8S_POOL:
                entry["work_pool"]["job_variables"] = {**pod_resources(package), **entry["work_pool"]["job_variables"]}
            deployments.append(entry)
    return deployments


def deploy_all(project: Path) -> str:
    """Run `prefect --no-prompt deploy --all` on prefect.yaml with every installed package's deployments added.

    The expanded file is written beside prefect.yaml for the command's length (Prefect reads paths from there),
    and removed; its output is returned.
    """
    from eoflows.discovery import installed

    check_project(project)
    config = yaml.safe_load((project / "prefect.yaml").read_text())
    config["deployments"] = package_deployments(config, installed()) + list(config.get("deployments") or [])
    prefect = str(Path(sys.executable).with_name("prefect"))
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=".prefect-", dir=project) as expanded:
        yaml.safe_dump(config, expanded, sort_keys=False)
        expanded.flush()
        done = subprocess.run([prefect, "--no-prompt", "deploy", "--all", "--prefect-file", expanded.name],
                              cwd=project, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        tail = " ".join((done.stdout + done.stderr).split())[-1500:]
        raise RemoteRunError(f"prefect deploy in {str(project)!r} failed (status {done.returncode}): {tail}")
    return done.stdout

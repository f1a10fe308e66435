"""eoflows' image running Prefect flows and Dask workers, as a site runs them: the Docker work pool (prefect-docker,
the README's commands as written) and Dask workers in containers.

The image is built once per test run (tests/containers.py). Containers use the host's network
(`network_mode: host`, `docker run --network host`): they reach the test's servers (moto, the Prefect API) on
127.0.0.1, as they would a site's endpoints.
"""

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from eoflows import IMAGE
from eoflows.local.s3 import LocalS3
from eoflows.processes import free_port
from flows.package_flows import s2_indices
from tests.test_cwl import check_same_s2_publication
from tests.test_staging import upload_sample

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(1800)  # the first build of the image takes minutes


def test_the_docker_pool_as_the_readme_says(image: str, deployed: str, s3: LocalS3, sample_item: Path) -> None:
    """`make image`, `eoflows deploy`, `prefect deployment run 's2-indices/docker'`, `prefect worker start --pool
    eoflows-docker`: the run's container is of the built image, found in the engine (no pull, no job variable).

    Beside it, a run of an image that is not in the engine, on a registry that does not answer: Failed, one line.
    """
    assert image == IMAGE  # what `make image` builds is what the deployments run
    item = upload_sample(s3, sample_item, f"docker-pool-{uuid.uuid4().hex[:6]}")
    s3.storage().save("docker-pool-s3", overwrite=True)
    done = subprocess.run([str(BIN / "prefect"), "deployment", "run", "s2-indices/docker", "-p", f"item={item}",
                           "-p", "destination=s3://eoflows-results/docker-pool", "-p", 'products=["ndvi"]',
                           "-p", "storage=docker-pool-s3"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = uuid.UUID(re.search(r"UUID: (\S+)", done.stdout)[1])
    missing = f"127.0.0.1:{free_port()}/eoflows/missing:0"
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("s2-indices/docker")
        lost = client.create_flow_run_from_deployment(
            deployment.id, parameters={"item": item, "destination": "s3://eoflows-results/docker-missing"},
            job_variables={"image": missing},
        )  # fmt: skip
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    worker = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "eoflows-docker", "--run-once"],
                            capture_output=True, text=True, env=env, timeout=900)  # fmt: skip
    log = worker.stdout + worker.stderr
    with get_client(sync_client=True) as client:
        run, lost = client.read_flow_run(run_id), client.read_flow_run(lost.id)
        artifacts = {a.key for a in client.read_artifacts() if a.flow_run_id == run.id}
    assert run.state.is_completed(), f"{run.state}\n{log[-6000:]}"
    assert "s2-indices-products" in artifacts and not run.job_variables
    assert "Docker container '" in log and f"Pulling image {image!r}" not in log  # in a container, nothing pulled
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    assert fs.exists(f"eoflows-results/docker-pool/{run.id}/catalog.json")
    assert lost.state.type == StateType.FAILED, f"{lost.state}\n{log[-6000:]}"
    expected = rf"image {re.escape(repr(missing))} is not in the local engine and no registry answers \(.+\): run " \
        "make image or push it"  # fmt: skip
    assert re.fullmatch(expected, lost.state.message), lost.state.message
    assert f"Pulling image {missing!r}" in log and "Traceback" not in log, log[-6000:]  # tried, reported in one line
    assert not fs.exists("eoflows-results/docker-missing")


@pytest.fixture
def container_cluster(image: str, prefect_api: str) -> Iterator[tuple[str, list[str]]]:
    """A `dask scheduler` and two `dask worker` containers of the image; their address and the workers' names."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    names = [f"eoflows-test-{uuid.uuid4().hex[:8]}" for _ in range(3)]
    env = ["-e", f"PREFECT_API_URL={prefect_api}", "-e", "PREFECT_SERVER_ANALYTICS_ENABLED=false"]
    commands = [["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]] + [
        ["dask", "worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--name", name, "--no-dashboard"]
        for name in names[1:]
    ]
    try:
        for name, command in zip(names, commands, strict=True):
            subprocess.run(["docker", "run", "-d", "--rm", "--name", name, "--network", "host", *env, image, *command],
                           check=True, capture_output=True)  # fmt: skip
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, names[1:]
    finally:
        subprocess.run(["docker", "rm", "-f", *names], capture_output=True)


@pytest.mark.filterwarnings("ignore:Mismatched versions found")  # the image's Python is Debian's 3.11.2
def test_s2_indices_computes_on_dask_workers_in_containers(
    container_cluster: tuple[str, list[str]], s3: LocalS3, sample_item: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows on the containers' workers (by address), products equal to a run on a local cluster."""
    from distributed import Client

    address, names = container_cluster
    with Client(address) as client:
        workers = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
    assert sorted(workers) == sorted(names)
    item = upload_sample(s3, sample_item, f"dask-{uuid.uuid4().hex[:6]}")
    s3.storage().save("dask-s3", overwrite=True)
    common = {"item": item, "products": ["ndvi", "rgb"], "storage": "dask-s3"}
    local = s2_indices(destination="s3://eoflows-results/dask-local", run_id="local", **common)
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
    state = s2_indices(destination="s3://eoflows-results/dask-containers", run_id="containers", return_state=True,
                       **common)  # fmt: skip
    from tests.test_gateway import tables

    usage = tables(state)["compute-usage"]
    assert usage["window schedulers"] == address
    ran_on = set(str(usage["window workers"]).split(", "))
    assert ran_on and ran_on <= set(workers.values())  # every window ran in a container
    check_same_s2_publication(local, state.result(), s3, common["products"], item)

"""eoflows in containers of its image, the way the systems that run it do: stock cwltool with Docker, the Docker
work pool (prefect-docker), Dask workers.

The image is built once per test run (tests/containers.py). Containers use the host's network
(`cwltool --custom-net host`, `network_mode: host`, `docker run --network host`): they reach the test's servers
(moto, the Prefect API, HTTP) on 127.0.0.1, as they would a site's endpoints.
"""

import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import s3fs
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType

from eoflows import IMAGE
from eoflows.local.s3 import LocalS3
from eoflows.processes import free_port
from eoflows.samples.landsat import write_landsat
from flows.package_flows import s2_indices
from tasks.cwl.export import CwlOptions, export, to_yaml
from tasks.notebook import EXECUTED
from tasks.s2_indices import S2_INDICES
from tests.conftest import serve
from tests.containers import built_image, docker_available
from tests.test_cwl import check_same_s2_publication, equivalent_items
from tests.test_staging import upload_sample

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(1800)  # the first build of the image takes minutes


@pytest.fixture(scope="module")
def image() -> str:
    """The eoflows image of this checkout (built, or found built with nothing changed)."""
    docker_available()
    return built_image()


def test_the_exported_package_runs_in_the_image_with_stock_cwltool(
    image: str, s3: LocalS3, sample_item: Path, tmp_path: Path
) -> None:
    """Full mode, DockerRequirement under requirements, each step in a container, publishing to a folder.

    A container sees no host folder it is not given: the destination is a CWL `Directory`, mounted writable and
    written in place (InplaceUpdateRequirement); the products are the flow's, the output names the host's path.
    """
    item = upload_sample(s3, sample_item, f"docker-{uuid.uuid4().hex[:6]}")
    products = ["ndvi", "ndbi", "rgb"]
    s3.storage().save("docker-s3", overwrite=True)
    published = tmp_path / "published.v1"  # cwltool refuses spaces in staged names (without --relax-path-checks)
    published.mkdir()
    flow_uri = s2_indices(item=item, destination=str(published), products=products, storage="docker-s3",
                          run_id="flow")  # fmt: skip
    document = export(S2_INDICES, CwlOptions(mode="full", image=image, dask="hints"))
    tools = [g for g in document["$graph"] if g["class"] == "CommandLineTool"]
    assert tools and all({"class": "DockerRequirement", "dockerPull": image} in t["requirements"] for t in tools)
    job = {"item": item, "destination": {"class": "Directory", "path": str(published)}, "run_id": "cwl",
           "products": products, "aws_access_key_id": s3.access_key_id,
           "aws_secret_access_key": s3.secret_access_key, "aws_endpoint_url_s3": s3.endpoint_url}  # fmt: skip
    done = cwltool_in_docker(document, "s2-indices", job, tmp_path / "cwl")
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.count("--read-only=true") == 3 and done.stderr.count(f"    {image} \\") == 3  # 3 containers
    assert s3.secret_access_key not in done.stdout + done.stderr
    cwl_uri = json.loads(done.stdout)["catalog_uri"]
    assert cwl_uri == str(published / "cwl" / "catalog.json")  # the host's path, not the container's
    assert sorted(p.name for p in published.iterdir()) == ["cwl", "flow"]  # in place: nothing beside, no copy
    assert not list((tmp_path / "cwl" / "out").glob("*"))  # cwltool's output folder holds no second copy
    check_same_s2_publication(flow_uri, cwl_uri, s3, products, item)
    # a folder given as text is a path inside the container: refused there with a one-line error naming it
    job["destination"], job["run_id"] = str(published), "as-text"
    done = cwltool_in_docker(document, "s2-indices", job, tmp_path / "as-text")
    assert done.returncode != 0 and f"destination {str(published)!r}" in done.stderr
    assert not (published / "as-text").exists()


def cwltool_in_docker(document: dict, entry: str, job: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    """Stock cwltool with Docker (not --no-container) on `document`, containers on the host's network."""
    tmp_path.mkdir(exist_ok=True)
    path, job_file = tmp_path / "package.cwl", tmp_path / "job.yml"
    path.write_text(to_yaml(document))
    job_file.write_text(yaml.safe_dump(job))
    return subprocess.run([str(BIN / "cwltool"), "--enable-ext", "--custom-net", "host", "--outdir",
                           str(tmp_path / "out"), f"{path}#{entry}", str(job_file)],
                          capture_output=True, text=True, timeout=900)  # fmt: skip


def check_same_files(flow_uri: str, cwl_uri: str, s3: LocalS3) -> None:
    """Two publications hold byte-identical assets and equivalent STAC items (but the processing time).

    Executed notebooks are there in both, but record when and where they ran: compared by key alone.
    """
    a, b = equivalent_items(flow_uri, cwl_uri, s3)
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    for key in [k for k, asset in a.assets.items() if EXECUTED not in (asset.roles or [])]:
        ours, theirs = (fs.cat(x.assets[key].get_absolute_href()) for x in (a, b))
        assert ours == theirs, key


def test_burned_area_and_the_downsamples_run_in_the_image_with_stock_cwltool(
    image: str, s3: LocalS3, burn_pair: tuple[Path, Path], burn_server: str, tmp_path: Path
) -> None:
    """Items and COGs served over HTTP with range requests, published to S3: the same files as the flows'."""
    from flows.package_flows import burned_area, flow_of
    from flows.package_flows import downsample as downsample_flow
    from tasks.burned_area import BURNED_AREA
    from tasks.downsample import DOWNSAMPLE
    from tasks.downsample_notebook import DOWNSAMPLE_NOTEBOOK

    s3.storage().save("docker-s3", overwrite=True)
    credentials = {"aws_access_key_id": s3.access_key_id, "aws_secret_access_key": s3.secret_access_key,
                   "aws_endpoint_url_s3": s3.endpoint_url}  # fmt: skip
    pre, post = (f"{burn_server}/{p.name}" for p in burn_pair)
    band, _ = write_landsat(tmp_path / "landsat", width=300, height=290)
    with serve(band.parent) as landsat:
        cases = [
            (BURNED_AREA, burned_area, {"pre_item": pre, "post_item": post}),
            (DOWNSAMPLE, downsample_flow, {"url": f"{landsat}/{band.name}", "width": 120}),
            # notebook steps: papermill and the kernel in the image, the notebooks inside it
            (DOWNSAMPLE_NOTEBOOK, flow_of("downsample-notebook"), {"input_url": f"{landsat}/{band.name}"}),
        ]
        for package, flow, inputs in cases:
            run_in_docker_and_as_a_flow(image, package, flow, inputs, s3, credentials, tmp_path)


def run_in_docker_and_as_a_flow(image: str, package, flow, inputs: dict, s3: LocalS3, credentials: dict,
                                tmp_path: Path) -> None:  # fmt: skip
    destination = f"s3://eoflows-results/in-docker-{package.name}"
    flow_uri = flow(**inputs, destination=destination, run_id="flow", storage="docker-s3")
    document = export(package, CwlOptions(mode="full", image=image, dask="hints"))
    job = {**inputs, "destination": destination, "run_id": "cwl", **credentials}
    done = cwltool_in_docker(document, package.name, job, tmp_path / package.name)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stderr.count(f"    {image} \\") == 3  # each of the three steps in a container of the image
    cwl_uri = json.loads(done.stdout)["catalog_uri"]
    assert cwl_uri == f"{destination}/cwl/catalog.json"
    check_same_files(flow_uri, cwl_uri, s3)


def test_the_wrapped_package_runs_in_the_image_with_stock_cwltool(
    image: str, s3: LocalS3, sample_item: Path, tmp_path: Path
) -> None:
    """eoap-cwlwrap's wrapping (entry main, eoap URI records) with eoflows' stage-in and stage-out, in containers."""
    from tasks.cwl.extensions import STRING_FORMAT, _string_format_schema
    from tasks.cwl.wrap import wrap_package

    item = upload_sample(s3, sample_item, f"wrapped-{uuid.uuid4().hex[:6]}")
    s3.storage().save("docker-s3", overwrite=True)
    destination = "s3://eoflows-results/wrapped-in-docker"
    flow_uri = s2_indices(item=item, destination=destination, products=["ndvi"], storage="docker-s3", run_id="flow")
    job = {"input": {"value": item}, "destination": destination, "run_id": "cwl", "products": ["ndvi"],
           "aws_access_key_id": s3.access_key_id, "aws_secret_access_key": s3.secret_access_key,
           "aws_endpoint_url_s3": s3.endpoint_url}  # fmt: skip
    # the eoap string-format schema the wrapping imports from GitHub, offline here: a local copy of its types
    schema = tmp_path / "string_format.yaml"
    schema.write_text(_string_format_schema())
    document = yaml.safe_load(
        to_yaml(wrap_package(S2_INDICES, CwlOptions(image=image, dask="hints"))).replace(STRING_FORMAT, schema.as_uri())
    )
    done = cwltool_in_docker(document, "main", job, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout)["results"]["value"] == f"{destination}/cwl/catalog.json"
    check_same_s2_publication(flow_uri, f"{destination}/cwl/catalog.json", s3, ["ndvi"], item)


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

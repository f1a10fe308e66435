"""The CWL of eoflows' packages run by stock cwltool with Docker, in containers of its image, as platforms run it
(the Docker work pool and Dask workers in containers: tests/test_container_workers.py).

The image is built once per test run (tests/containers.py). Containers use the host's network
(`cwltool --custom-net host`, `network_mode: host`, `docker run --network host`): they reach the test's servers
(moto, the Prefect API, HTTP) on 127.0.0.1, as they would a site's endpoints.
"""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import s3fs
import yaml

from eoflows.local.s3 import LocalS3
from eoflows.samples.landsat import write_landsat
from flows.package_flows import s2_indices
from tasks.cwl.export import CwlOptions, export, to_yaml
from tasks.notebook import EXECUTED
from tasks.s2_indices import S2_INDICES
from tests.conftest import serve
from tests.test_cwl import check_same_s2_publication, equivalent_items
from tests.test_staging import upload_sample

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.timeout(1800)  # the first build of the image takes minutes


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

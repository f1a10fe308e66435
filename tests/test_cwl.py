"""CWL export: valid for cwltool, Calrissian's extension schema and the OGC rules; runs like the flow."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr
import yaml
from cwl_utils.parser import load_document_by_uri
from eoap_cwlwrap.types import URL_TYPE

from eoflows import __version__
from eoflows.cli import main
from eoflows.discovery import installed
from eoflows.errors import InputError
from eoflows.local.s3 import LocalS3
from eoflows.package import Role
from flows.package_flows import s2_indices
from tasks.cwl.check import check, cwltool_problems
from tasks.cwl.export import CwlOptions, export, job_template, to_yaml
from tasks.cwl.extensions import URI
from tasks.cwl.wrap import wrap_package
from tasks.data.stac_io import FsspecStacIO
from tasks.s2_indices import S2_INDICES
from tests.test_staging import upload_sample

PACKAGES = installed()

BIN = Path(sys.executable).parent


def write(tmp_path: Path, name: str, **options) -> Path:
    path = tmp_path / f"{name}.cwl"
    path.write_text(to_yaml(export(S2_INDICES, CwlOptions(**options))))
    return path


def cwltool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # the tools run `eoflows` from this environment
    return subprocess.run([str(BIN / "cwltool"), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {}), "PATH": path})  # fmt: skip


@pytest.mark.parametrize("package", sorted(PACKAGES))
@pytest.mark.parametrize("mode", ["app", "full"])
def test_exports_pass_cwltool_calrissian_and_ogc_checks(package: str, mode: str, tmp_path: Path) -> None:
    document = export(PACKAGES[package], CwlOptions(mode=mode))
    path = tmp_path / "package.cwl"
    path.write_text(to_yaml(document))
    assert check(path) == []  # whole document, each tool with the Dask requirement, eoap-validator
    hinted = tmp_path / "hinted.cwl"
    hinted.write_text(to_yaml(export(PACKAGES[package], CwlOptions(mode=mode, dask="hints"))))
    done = cwltool("--validate", str(hinted))  # stock cwltool, no extension schema
    assert done.returncode == 0, done.stderr[-2000:]
    tools = {p["id"]: p for p in document["$graph"]}
    for step in PACKAGES[package].steps:  # the Dask requirement exactly where a step declares Dask sizes
        if f"{package}-{step.name}" not in tools:  # app mode: the compute tool only
            continue
        tool = tools[f"{package}-{step.name}"]
        dask = [r for r in tool["requirements"] if r["class"] == "calrissian:DaskGatewayRequirement"]
        assert len(dask) == (step.dask is not None)
        for requirement in dask:
            assert set(requirement) == {"class", "workerCores", "workerCoresLimit", "workerMemory", "clusterMaxCores",
                                        "clusterMaxMemory"}  # fmt: skip
    for tool in (p for p in document["$graph"] if p["class"] == "CommandLineTool"):
        (res,) = [r for r in tool["requirements"] if r["class"] == "ResourceRequirement"]
        assert {"coresMin", "coresMax", "ramMin", "ramMax"} <= set(res)
        assert tool["baseCommand"][:3] == ["eoflows", "step", package]


def test_a_misspelt_dask_field_fails(tmp_path: Path) -> None:
    path = write(tmp_path, "app")
    path.write_text(path.read_text().replace("clusterMaxCores", "clusterMaxCore"))
    problems = " ".join(check(path))
    assert "invalid field 'clusterMaxCore'" in problems and "missing required field 'clusterMaxCores'" in problems


def test_the_entry_id_main_is_accepted_by_cwltool_but_flagged_by_ogc(tmp_path: Path) -> None:
    path = write(tmp_path, "main", entry_id="main")
    problems = check(path)
    assert problems and all(p.startswith("OGC SERVICE.PROCESS.ID") for p in problems)


def test_metadata_and_docs_come_from_the_declaration(tmp_path: Path) -> None:
    document = export(S2_INDICES, CwlOptions(mode="full"))
    assert document["s:softwareVersion"] == __version__ and document["cwlVersion"] == "v1.2"
    workflow = document["$graph"][0]
    assert (workflow["id"], workflow["label"], workflow["doc"]) == ("s2-indices", S2_INDICES.label,
                                                                    S2_INDICES.description)  # fmt: skip
    for node in workflow["inputs"] + workflow["outputs"] + workflow["steps"]:
        assert node.get("label") and node.get("doc"), node["id"]
    products = next(i for i in workflow["inputs"] if i["id"] == "products")
    assert products["doc"].startswith(S2_INDICES.step("compute").params[2].doc)
    secrets = [h for p in document["$graph"] for h in p.get("hints", []) if h["class"] == "cwltool:Secrets"]
    assert all(h["secrets"] == ["aws_access_key_id", "aws_secret_access_key"] for h in secrets) and secrets


def test_round_trip_with_cwl_utils_and_pack(tmp_path: Path) -> None:
    path = write(tmp_path, "full", mode="full", dask="hints")
    loaded = load_document_by_uri(f"{path}#s2-indices")
    assert loaded.id.endswith("#s2-indices") and len(loaded.steps) == 3
    packed = cwltool("--pack", f"{path}#s2-indices")
    assert packed.returncode == 0, packed.stderr[-2000:]
    packed_ids = {p["id"] for p in json.loads(packed.stdout)["$graph"]}
    assert len(packed_ids) == 4 and any(i.endswith("compute") for i in packed_ids)


def test_no_secret_in_documents_or_job_templates(s3: LocalS3) -> None:
    for mode in ("app", "full"):
        text = to_yaml(export(S2_INDICES, CwlOptions(mode=mode))) + yaml.safe_dump(job_template(S2_INDICES, mode))
        assert s3.secret_access_key not in text
        assert not any(key.startswith("aws_") for key in job_template(S2_INDICES, mode))
        for process in export(S2_INDICES, CwlOptions(mode=mode))["$graph"]:
            for parameter in process["inputs"]:
                if parameter["id"].startswith("aws_"):
                    assert "default" not in parameter


def store_of(item: pystac.Item) -> str:
    return item.assets["product"].get_absolute_href()


def test_cwltool_runs_give_what_the_flow_gives(s3: LocalS3, sample_item: Path, tmp_path: Path) -> None:
    """Full mode with cwltool --no-container, staged out to S3, against the Prefect flow on the same item."""
    item = upload_sample(s3, sample_item, f"cwl-{uuid.uuid4().hex[:6]}")
    products = ["ndvi", "ndbi", "rgb", "sir"]
    s3.storage().save("parity-s3", overwrite=True)
    flow_uri = s2_indices(item=item, destination="s3://eoflows-results/parity", products=products, storage="parity-s3",
                          run_id="flow")  # fmt: skip
    path = write(tmp_path, "full", mode="full", docker="hints", dask="hints")
    job = {"item": item, "destination": "s3://eoflows-results/parity", "run_id": "cwl", "products": products,
           "aws_access_key_id": s3.access_key_id, "aws_secret_access_key": s3.secret_access_key,
           "aws_endpoint_url_s3": s3.endpoint_url}  # fmt: skip
    (tmp_path / "job.yml").write_text(yaml.safe_dump(job))
    steps = tmp_path / "steps"  # each step's output folder (its HOME too), kept to look into
    steps.mkdir()
    (tmp_path / "tmp").mkdir()
    done = cwltool("--enable-ext", "--no-container", "--outdir", str(tmp_path / "out"), "--leave-tmpdir",
                   "--tmp-outdir-prefix", f"{steps}/", "--tmpdir-prefix", f"{tmp_path / 'tmp'}/",
                   f"{path}#s2-indices", str(tmp_path / "job.yml"))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert s3.secret_access_key not in done.stdout + done.stderr  # cwltool:Secrets kept it out of the logs
    assert sum((p / "catalog.json").is_file() for p in steps.iterdir()) == 2  # stage-in's and compute's outputs
    assert not list(steps.rglob(".prefect"))  # the steps kept Prefect's home out of their outputs (their HOME)
    cwl_uri = json.loads(done.stdout)["catalog_uri"]
    assert cwl_uri == "s3://eoflows-results/parity/cwl/catalog.json" and flow_uri.endswith("/parity/flow/catalog.json")
    check_same_s2_publication(flow_uri, cwl_uri, s3, products, item)


def equivalent_items(flow_uri: str, cwl_uri: str, s3: LocalS3) -> tuple[pystac.Item, pystac.Item]:
    """The items of two publications on S3, checked equivalent (but the processing time)."""
    io = FsspecStacIO(s3.storage())
    (a,) = pystac.Catalog.from_file(flow_uri, stac_io=io).get_items(recursive=True)
    (b,) = pystac.Catalog.from_file(cwl_uri, stac_io=io).get_items(recursive=True)
    drop = {"processing:datetime"}
    assert {k: v for k, v in a.properties.items() if k not in drop} == {
        k: v for k, v in b.properties.items() if k not in drop}  # fmt: skip
    assert (a.id, a.geometry, a.bbox, sorted(a.assets)) == (b.id, b.geometry, b.bbox, sorted(b.assets))
    return a, b


def check_same_s2_publication(flow_uri: str, cwl_uri: str, s3: LocalS3, products: list[str], item: str) -> None:
    """Two s2-indices publications (S3 or folders) hold the same arrays and equivalent STAC items (but the time)."""
    a, b = equivalent_items(flow_uri, cwl_uri, s3)
    options = s3.storage().s3fs_options()
    ours, theirs = (xr.open_zarr(store_of(x), consolidated=True,
                                 storage_options=options if store_of(x).startswith("s3://") else None)
                    for x in (a, b))  # fmt: skip
    assert sorted(ours.data_vars) == sorted(theirs.data_vars) == sorted(products)
    for name in products:
        np.testing.assert_array_equal(ours[name].values, theirs[name].values)
    assert a.get_single_link("derived_from").href == b.get_single_link("derived_from").href == item


def test_cwl_commands(tmp_path: Path) -> None:
    eoflows = str(BIN / "eoflows")
    done = subprocess.run([eoflows, "cwl", "export", "--all", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{name}{mode}.{ext}" for name in PACKAGES for mode in ("", "-full") for ext in ("cwl", "job.yml"))  # fmt: skip

    def validate(path: Path) -> subprocess.CompletedProcess:
        return subprocess.run([eoflows, "cwl", "validate", str(path)], capture_output=True, text=True)

    valid = validate(tmp_path / "s2-indices.cwl")
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert valid.stdout.strip().endswith("valid (cwltool, Calrissian DaskGatewayRequirement, OGC EOAP rules)")
    text = (tmp_path / "s2-indices.cwl").read_text()
    for name, changed, message in (
        ("misspelt.cwl", text.replace("workerMemory: 4G", "workerMemry: 4G"), "problems (listed above)"),
        ("garbled.cwl", text.replace("clusterMaxCores: 8", "clusterMaxCores: [8"), "not YAML"),
    ):
        broken = tmp_path / name
        broken.write_text(changed)
        invalid = validate(broken)
        assert invalid.returncode == 1, invalid.stdout + invalid.stderr
        (line,) = invalid.stderr.strip().splitlines()
        assert line.startswith(f"eoflows: error: CWL document '{broken}': ") and message in line
    job = yaml.safe_load((tmp_path / "s2-indices.job.yml").read_text())
    assert job["input"] == {"class": "Directory", "path": "staged/"}


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_app_packages_wrap_with_eoap_cwlwrap_and_pass_cwltool(package: str, tmp_path: Path) -> None:
    """eoap-cwlwrap wraps the app export with eoflows' stage tools; cwltool validates the result offline."""
    path = tmp_path / "wrapped.cwl"
    assert main(["cwl", "export", package, "--mode", "wrapped", "--dask", "hints", "-o", str(path)]) == 0
    assert cwltool_problems(str(path)) == []  # the eoap string-format schema it imports is answered locally
    wrapper, stage_in, *app, stage_out = yaml.safe_load(path.read_text())["$graph"]
    assert app == export(PACKAGES[package], CwlOptions(mode="app", dask="hints"))["$graph"]
    assert [s["run"] for s in wrapper["steps"]] == [f"#{package}-stage-in", f"#{package}", f"#{package}-stage-out"]
    ids = [i["id"] for i in wrapper["inputs"]]
    assert len(ids) == len(set(ids))  # the storage settings once, shared by the stage tools and the package
    (uri,) = [i for i in wrapper["inputs"] if i["type"] == URI == URL_TYPE]
    assert uri["id"] == "input" and uri["doc"] == PACKAGES[package].stage_in.by_role(Role.INPUT)[0].doc
    assert [o["type"] for o in wrapper["outputs"]] == [URI]
    full = {p["id"]: p for p in export(PACKAGES[package], CwlOptions(mode="full"))["$graph"]}
    for tool in (stage_in, stage_out):  # the full mode's stage tools, typed for eoap-cwlwrap
        assert tool["baseCommand"] == full[tool["id"]]["baseCommand"]


def test_the_wrapper_id_is_not_a_package_entry_id() -> None:
    with pytest.raises(InputError, match="entry id 'main': taken by eoap-cwlwrap"):
        wrap_package(S2_INDICES, CwlOptions(entry_id="main"))


def test_the_wrapped_package_validates_as_exported(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Dask requirement where Calrissian reads it, each tool checked too; no OGC rules (the entry is `main`)."""
    path = tmp_path / "wrapped.cwl"
    path.write_text(to_yaml(wrap_package(S2_INDICES)))
    assert main(["cwl", "validate", "--no-ogc", str(path)]) == 0
    assert capsys.readouterr().out.strip().endswith(f"{path}: valid (cwltool, Calrissian DaskGatewayRequirement)")


def test_the_wrapped_package_runs_with_cwltool(sample_item: Path, tmp_path: Path) -> None:
    """URI in -> eoflows stage-in -> app -> eoflows stage-out -> URI out, with cwltool --no-container."""
    path = tmp_path / "wrapped.cwl"
    path.write_text(to_yaml(wrap_package(S2_INDICES, CwlOptions(dask="hints"))))
    job = tmp_path / "job.yml"
    (tmp_path / "published").mkdir()  # a step publishes into an existing folder
    job.write_text(yaml.safe_dump({"input": {"value": str(sample_item)}, "destination": str(tmp_path / "published"),
                                   "run_id": "wrapped", "products": ["ndvi"]}))  # fmt: skip
    done = subprocess.run([str(BIN / "eoflows"), "cwl", "run", f"{path}#main", str(job), "--outdir",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    catalog = tmp_path / "published" / "wrapped" / "catalog.json"
    assert json.loads(done.stdout)["results"] == {"value": str(catalog)}
    (item,) = pystac.Catalog.from_file(str(catalog)).get_items(recursive=True)
    assert list(xr.open_zarr(store_of(item), consolidated=True).data_vars) == ["ndvi"]

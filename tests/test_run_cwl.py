"""The `run-cwl` flow: third-party and exported packages run locally with cwltool, and on a fake Kubernetes API."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pystac
import pytest
import xarray as xr
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from eoflows.errors import InputError, RemoteRunError
from eoflows.local.s3 import LocalS3
from flows.run_cwl import run_cwl
from tests.conftest import FIXTURES
from tests.fake_kubernetes import COMPLETE, OUTPUTS, USAGE, job_created, set_status, settings_for
from tests.test_s2_flow import artifacts_of

REVTOOL, SORTTOOL = FIXTURES / "cwl/calrissian_revtool.cwl", FIXTURES / "cwl/calrissian_sorttool.cwl"


def tables(state) -> dict[str, list[dict]]:
    return {a.key: json.loads(a.data) for a in artifacts_of(state).get("table", [])}


def markdown(state) -> dict[str, str]:
    return {a.key: a.data for a in artifacts_of(state).get("markdown", [])}


@pytest.fixture
def lines(tmp_path: Path) -> Path:
    path = tmp_path / "lines.txt"
    path.write_text("banana\napple\ncherry\n")
    return path


def test_third_party_tools_run_with_cwltool(lines: Path, tmp_path: Path) -> None:
    state = run_cwl(cwl=str(SORTTOOL), inputs={"reverse": True, "input": {"class": "File", "path": str(lines)}},
                    outdir=str(tmp_path / "out"), return_state=True)  # fmt: skip
    outputs = state.result()
    assert Path(outputs["output"]["path"]).read_text() == "cherry\nbanana\napple\n"
    assert Path(outputs["output"]["path"]).is_relative_to(tmp_path / "out")
    assert json.loads(markdown(state)["cwl-outputs"].split("```json\n")[1].split("```")[0]) == outputs
    (row,) = tables(state)["cwl-usage"]
    assert row["step"] == "calrissian_sorttool.cwl" and row["exit code"] == 0 and row["seconds"] >= 0

    job = tmp_path / "rev.yml"  # inputs as a YAML file, relative paths resolved against it by cwltool
    job.write_text(yaml.safe_dump({"input": {"class": "File", "path": str(lines)}}))
    outputs = run_cwl(cwl=str(REVTOOL), inputs=str(job), outdir=str(tmp_path / "out"))
    assert Path(outputs["output"]["path"]).read_text() == "ananab\nelppa\nyrrehc\n"


def test_an_eoflows_package_runs_by_name(sample_item: Path, tmp_path: Path) -> None:
    """`cwl=s2-indices` exports the package and cwltool runs its three tools (`eoflows step ...`)."""
    (tmp_path / "published").mkdir()
    inputs = {"item": str(sample_item), "destination": str(tmp_path / "published"), "run_id": "cwl",
              "products": ["ndvi", "rgb"]}  # fmt: skip
    state = run_cwl(cwl="s2-indices", inputs=inputs, outdir=str(tmp_path / "out"), return_state=True)
    outputs = state.result()
    assert outputs["catalog_uri"] == str(tmp_path / "published/cwl/catalog.json")
    (item,) = pystac.Catalog.from_file(outputs["catalog_uri"]).get_items(recursive=True)
    products = xr.open_zarr(item.assets["product"].get_absolute_href())
    assert {"ndvi", "rgb"} <= set(products.data_vars) and float(products.ndvi.max()) <= 1
    usage = {row["step"]: row for row in tables(state)["cwl-usage"]}
    assert {"stage-in", "compute", "stage-out"} <= set(usage) and all(r["exit code"] == 0 for r in usage.values())
    compute = usage["compute"]
    assert compute["cores"] == 2 and compute["RAM MB"] == 2048  # what the package declares for the step
    from tests.test_cwl_jobs import job_runs, log_of, states

    runs = job_runs(state.state_details.flow_run_id)  # each tool a task run, in the order they ran
    assert [r.name for r in runs] == ["stage-in", "compute", "stage-out"]
    assert all(states(r) == ["Pending", "Running", "Completed"] for r in runs)
    compute_log = log_of(runs[1])  # the tool's own standard error, in its task run's log
    assert "Computing ndvi, rgb of " in compute_log and "[job compute] completed success" in compute_log


def test_failures_name_what_is_wrong(lines: Path, tmp_path: Path) -> None:
    with pytest.raises(RemoteRunError, match=r"(?s)cwltool run of .*calrissian_revtool.cwl failed \(status \d\)"
                                             r".*missing\.txt"):  # fmt: skip
        run_cwl(cwl=str(REVTOOL), inputs={"input": {"class": "File", "path": str(tmp_path / "missing.txt")}},
                outdir=str(tmp_path / "out"))  # fmt: skip
    with pytest.raises(InputError, match=r"CWL document '.*nowhere.cwl'"):
        run_cwl(cwl=str(tmp_path / "nowhere.cwl"), inputs={})
    with pytest.raises(InputError, match=r"CWL document '.*calrissian_revtool.cwl#rev': no process 'rev'"):
        run_cwl(cwl=f"{REVTOOL}#rev", inputs={})
    bad = tmp_path / "bad.yml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match=r"CWL inputs '.*bad.yml': expected a mapping"):
        run_cwl(cwl=str(REVTOOL), inputs=str(bad))


async def test_calrissian_runs_through_the_flow_with_artifacts(k8s, lines: Path) -> None:
    settings = settings_for(k8s)
    await settings.save("kmock-calrissian", overwrite=True)
    run = asyncio.create_task(asyncio.to_thread(
        run_cwl, cwl=str(SORTTOOL), inputs={"reverse": False, "input": {"class": "File", "path": str(lines)}},
        runner="calrissian", calrissian="kmock-calrissian", return_state=True))  # fmt: skip
    name = await job_created(k8s)
    await set_status(k8s, name, COMPLETE)
    state = await asyncio.wait_for(run, 60)
    assert await state.aresult() == OUTPUTS
    usage = tables(state)["cwl-usage"]
    assert [r["step"] for r in usage] == [c["name"] for c in USAGE["children"]]
    assert usage[0]["cores"] == USAGE["children"][0]["cpus"] and usage[0]["exit code"] == 0
    posted = {r.resource.plural: r.data for r in k8s["post"]}
    assert posted["jobs"]["metadata"]["labels"]["eoflows.dev/flow-run-id"] == str(state.state_details.flow_run_id)
    assert [r.resource.plural for r in k8s["delete"]] == ["jobs", "configmaps"]


async def test_stopping_the_run_deletes_its_job(k8s, lines: Path, tmp_path: Path) -> None:
    """SIGTERM, as a worker sends when a flow run is cancelled: the Job and its ConfigMap are deleted."""
    await settings_for(k8s).save("kmock-calrissian", overwrite=True)
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({"reverse": False, "input": {"class": "File", "path": str(lines)}}))
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("eoflows")), "cwl", "run", str(SORTTOOL), str(job), "--runner", "calrissian",
        "--calrissian", "kmock-calrissian", stderr=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)  # fmt: skip
    name = await asyncio.wait_for(job_created(k8s), 120)
    process.send_signal(signal.SIGTERM)
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1 and "stopped by signal SIGTERM" in stderr.decode()
    assert sorted((r.resource.plural, r.name) for r in k8s["delete"]) == [("configmaps", name), ("jobs", name)]


def test_a_dry_run_renders_the_manifests_only(lines: Path) -> None:
    inputs = {"reverse": True, "input": {"class": "File", "path": str(lines)}}
    manifests = list(yaml.safe_load_all(run_cwl(cwl=str(SORTTOOL), inputs=inputs, runner="calrissian",
                                                 dry_run=True)["manifests"]))  # fmt: skip
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Job"]
    assert yaml.safe_load(manifests[0]["data"]["inputs.yml"]) == inputs
    assert yaml.safe_load(manifests[0]["data"]["package.cwl"])["baseCommand"] == "sort"


def test_credentials_come_from_the_block_and_are_left_nowhere(s3: LocalS3, sample_item: Path, tmp_path: Path) -> None:
    """run-cwl gives the document its S3 credentials from the storage block: no parameter, not on disk, no log."""
    s3.storage().save("run-cwl-s3", overwrite=True)
    path_before = os.environ["PATH"]
    inputs = {"item": str(sample_item), "destination": "s3://eoflows-results/run-cwl", "run_id": uuid.uuid4().hex,
              "products": ["ndvi"]}  # fmt: skip
    state = run_cwl(cwl="s2-indices", inputs=inputs, storage="run-cwl-s3", outdir=str(tmp_path / "out"),
                    return_state=True)  # fmt: skip
    outputs = state.result()
    assert outputs["catalog_uri"].startswith("s3://eoflows-results/run-cwl/")
    assert os.environ["PATH"] == path_before  # the tools had eoflows on PATH; this process keeps its own
    secret = s3.secret_access_key.encode()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file() and secret in p.read_bytes()]
    assert not list((tmp_path / "out").rglob(".eoflows-cwl"))  # no job copy left behind
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(state.state_details.flow_run_id)
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))
    assert s3.secret_access_key not in json.dumps(run.parameters) + " ".join(log.message for log in logs)


def test_credentials_are_never_flow_run_parameters(sample_item: Path) -> None:
    with pytest.raises(InputError, match=r"inputs \['aws_secret_access_key'\]: credentials are never flow-run"):
        run_cwl(cwl="s2-indices", inputs={"item": str(sample_item), "destination": "/tmp/x",
                                          "aws_secret_access_key": "s3cr3t"})  # fmt: skip


def test_settings_given_inline_are_refused_before_anything_runs(tmp_path: Path) -> None:
    """A block typed in (not saved) would keep its credentials in the flow run's parameters: refused, named."""
    from blocks.calrissian import CalrissianBlock
    from blocks.s3 import S3Block

    with pytest.raises(InputError, match=r"^storage: give a saved block \(or its name\), not inline settings"):
        run_cwl(str(tmp_path / "missing.cwl"), storage=S3Block(endpoint_url="http://127.0.0.1:9"))
    with pytest.raises(InputError, match=r"^calrissian: give a saved block"):
        run_cwl(str(FIXTURES / "cwl" / "calrissian_revtool.cwl"), runner="calrissian", calrissian=CalrissianBlock())
    assert not list(tmp_path.iterdir())


SCATTER_WORKFLOW = {
    "cwlVersion": "v1.0",
    "class": "Workflow",
    "doc": "Reverse the lines of each file, then sort them (a scatter; the tools in files of their own)",
    "requirements": [{"class": "ScatterFeatureRequirement"}],
    "inputs": {"files": "File[]", "reverse_sort": "boolean"},
    "outputs": {"sorted": {"type": "File[]", "outputSource": "sort/output"}},
    "steps": {
        "rev": {"run": "tools/revtool.cwl", "scatter": "input", "in": {"input": "files"}, "out": ["output"]},
        "sort": {"run": "tools/sorttool.cwl", "scatter": "input",
                 "in": {"input": "rev/output", "reverse": "reverse_sort"}, "out": ["output"]},
    },
}  # fmt: skip


def scatter_package(folder: Path) -> Path:
    """A workflow of our own in `folder`, running Calrissian's revtool and sorttool from files beside it."""
    (folder / "tools").mkdir(parents=True)
    for tool in (REVTOOL, SORTTOOL):  # copies: fixtures are never changed
        (folder / "tools" / tool.name.removeprefix("calrissian_")).write_text(tool.read_text())
    (folder / "workflow.cwl").write_text(yaml.safe_dump(SCATTER_WORKFLOW))
    return folder / "workflow.cwl"


def relative_job(folder: Path) -> Path:
    """A job file whose File paths are relative to it (../data/...), as cwltool resolves them."""
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "one.txt").write_text("b\na\nc\n")
    (folder / "data" / "two.txt").write_text("z\ny\n")
    (folder / "jobs").mkdir()
    job = {"files": [{"class": "File", "path": "../data/one.txt"}, {"class": "File", "location": "../data/two.txt"}],
           "reverse_sort": True}  # fmt: skip
    (folder / "jobs" / "job.yml").write_text(yaml.safe_dump(job))
    return folder / "jobs" / "job.yml"


def test_a_workflow_in_several_files_runs_with_its_job_paths_relative_to_the_job(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow, job = scatter_package(tmp_path / "package"), relative_job(tmp_path / "inputs")
    monkeypatch.chdir(tmp_path)  # neither the workflow's nor the job's folder
    outputs = run_cwl(cwl=str(workflow), inputs=str(job), outdir=str(tmp_path / "out"))
    assert [(f["basename"], Path(f["path"]).read_text()) for f in outputs["sorted"]] == [
        ("sorted-reversed-one.txt", "c\nb\na\n"),
        ("sorted-reversed-two.txt", "z\ny\n"),
    ]


def test_a_workflow_in_several_files_runs_from_s3(s3: LocalS3, tmp_path: Path) -> None:
    import s3fs

    workflow = scatter_package(tmp_path / "package")
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    prefix = f"eoflows-source/cwl-{uuid.uuid4().hex[:6]}"
    fs.put(str(workflow.parent) + "/", f"{prefix}/", recursive=True)
    s3.storage().save("cwl-documents", overwrite=True)
    inputs = {"files": [{"class": "File", "path": str(relative_job(tmp_path / "inputs").parent / "../data/one.txt")}],
              "reverse_sort": False}  # fmt: skip
    outputs = run_cwl(cwl=f"s3://{prefix}/workflow.cwl", inputs=inputs, storage="cwl-documents",
                      outdir=str(tmp_path / "out"))  # fmt: skip
    (result,) = outputs["sorted"]
    assert Path(result["path"]).read_text() == "a\nb\nc\n"


def test_calrissian_gets_the_workflow_packed_in_one_document(tmp_path: Path) -> None:
    """Calrissian's ConfigMap holds one file: the workflow and both tools, packed, and stock cwltool validates it."""
    workflow, job = scatter_package(tmp_path / "package"), relative_job(tmp_path / "inputs")
    config_map, _ = yaml.safe_load_all(run_cwl(cwl=str(workflow), inputs=str(job), runner="calrissian",
                                               dry_run=True)["manifests"])  # fmt: skip
    packed = tmp_path / "packed.cwl"
    packed.write_text(config_map["data"]["package.cwl"])
    ids = [p["id"] for p in yaml.safe_load(packed.read_text())["$graph"]]
    assert sorted(ids) == ["#main", "#revtool.cwl", "#sorttool.cwl"]
    done = subprocess.run([str(Path(sys.executable).with_name("cwltool")), "--validate", f"{packed}#main"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    files = yaml.safe_load(config_map["data"]["inputs.yml"])["files"]
    assert [f.get("path") or f.get("location") for f in files] == [
        str(tmp_path / "inputs" / "data" / "one.txt"),
        (tmp_path / "inputs" / "data" / "two.txt").as_uri(),
    ]

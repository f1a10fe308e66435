"""OGC API - Processes Part 2 on Prefect: CWL application packages deployed, run by a real worker, replaced and
undeployed; their bodies checked against the 2.0 draft's schemas, the rest against Part 1's."""

import http.server
import json
import socket
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path
from uuid import UUID

import pytest
from fastapi.testclient import TestClient
from prefect.client.orchestration import get_client

from deployments.processes_api import ServerSettings, create_app
from tests.ogc import SHARED, check, check_draft

BIN = Path(sys.executable).parent
TOKEN = "t0ken-for-tests"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def served(tmp_path: Path) -> str:
    """A web server of a CWL workflow in three files (revsort.cwl runs revtool.cwl and sorttool.cwl, Calrissian's
    test tools) and a text file; its base URL."""
    folder = tmp_path / "web"
    folder.mkdir()
    for name in ("revtool", "sorttool"):
        (folder / f"{name}.cwl").write_text((SHARED / f"fixtures/cwl/calrissian_{name}.cwl").read_text())
    (folder / "revsort.cwl").write_text(REVSORT)
    (folder / "lines.txt").write_text("abc\nxyz\nmno\n")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


REVSORT = """cwlVersion: v1.0
class: Workflow
id: revsort
label: Reverse and sort
doc: Reverse each line of a file, then sort the lines.
inputs:
  input: {type: File, doc: the text file}
  reverse_sort: {type: boolean, default: true, doc: sort in reverse order}
outputs:
  output: {type: File, outputSource: sorted/output, doc: the lines reversed and sorted}
steps:
  rev: {run: revtool.cwl, in: {input: input}, out: [output]}
  sorted: {run: sorttool.cwl, in: {input: rev/output, reverse: reverse_sort}, out: [output]}
"""


def test_a_cwl_workflow_in_several_files_is_deployed_by_href_run_replaced_and_undeployed(
    deployed: str, served: str, tmp_path: Path
) -> None:
    api = TestClient(create_app(ServerSettings(str(tmp_path / "results"), token=TOKEN)))
    package = {"executionUnit": {"href": f"{served}/revsort.cwl"}}  # (with `type` it would be a unit as well)
    check_draft("ogcapppkg", package)
    headers = {**BEARER, "Content-Type": "application/ogcapppkg+json"}
    refused = api.post("/processes", content=json.dumps(package), headers={"Content-Type": headers["Content-Type"]})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    made = api.post("/processes", content=json.dumps(package), headers=headers)
    assert made.status_code == 201, made.text
    check("processSummary", made.json())
    check_draft("processSummary", made.json())
    assert made.headers["Location"].endswith("/processes/revsort") and made.json()["mutable"] is True
    again = api.post("/processes", content=json.dumps(package), headers=headers)
    assert again.status_code == 409 and again.json()["type"].endswith("/duplicated-process")
    assert "revsort" in [p["id"] for p in api.get("/processes").json()["processes"]]
    described = api.get("/processes/revsort").json()
    check("process", described)
    assert described["title"] == "Reverse and sort" and described["inputs"]["input"]["minOccurs"] == 1
    assert described["inputs"]["reverse_sort"]["minOccurs"] == 0 and set(described["outputs"]) == {"output"}
    packed = api.get("/processes/revsort/package")
    assert packed.headers["content-type"] == "application/cwl+json"
    assert {p["class"] for p in packed.json()["$graph"]} == {"Workflow", "CommandLineTool"}  # self-contained
    check_draft("CWL", packed.json())

    bad = api.post("/processes/revsort/execution", json={"inputs": {"input": 3}})
    assert (
        bad.status_code == 400 and bad.json()["detail"] == "input 'input': expected a File reference (an href or a URL)"
    )
    job = api.post("/processes/revsort/execution", json={"inputs": {"input": {"href": f"{served}/lines.txt"}}},
                   headers={"Prefer": "respond-async"}).json()  # fmt: skip
    check("statusInfo", job)
    worker = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "eoflows-local", "--type", "process",
                             "--run-once"], capture_output=True, text=True, timeout=300)  # fmt: skip
    status = api.get(f"/jobs/{job['jobID']}").json()
    assert status["status"] == "successful", f"{status}\n{worker.stdout[-3000:]}"
    results = api.get(f"/jobs/{job['jobID']}/results").json()
    check("results", results)
    output = Path(results["output"]["href"].removeprefix("file://"))
    assert output.parent == tmp_path / "results" / job["jobID"]  # the results folder, a folder per job
    assert output.read_text().splitlines() == ["zyx", "onm", "cba"]  # reversed, sorted in reverse
    assert [j["jobID"] for j in api.get("/jobs", params={"processID": "revsort"}).json()["jobs"]] == [job["jobID"]]
    with get_client(sync_client=True) as client:
        names = {t.name for t in client.read_task_runs() if t.flow_run_id == UUID(job["jobID"])}
    assert {"rev", "sorted"} <= names  # each CWL step a task run of the job

    on_k8s = TestClient(create_app(ServerSettings(str(tmp_path / "results"), cwl="calrissian")))
    queued = on_k8s.post("/processes/revsort/execution", json={"inputs": {"input": f"{served}/lines.txt"}},
                         headers={"Prefer": "respond-async"}).json()  # fmt: skip
    with get_client(sync_client=True) as client:  # a run of the Calrissian deployment, given the packed document
        run = client.read_flow_run(queued["jobID"])
        assert client.read_deployment(run.deployment_id).name == "calrissian"
        assert run.parameters["cwl"] == packed.json() and run.parameters["inputs"]["input"]["class"] == "File"
    on_k8s.delete(f"/jobs/{queued['jobID']}")

    replaced = REVSORT.replace("label: Reverse and sort", "label: Reverse, then sort")
    inline = replaced.replace("revtool.cwl", f"{served}/revtool.cwl").replace("sorttool.cwl", f"{served}/sorttool.cwl")
    answer = api.put("/processes/revsort", content=inline, headers={**BEARER, "Content-Type": "application/cwl+yaml"})
    assert answer.status_code == 204, answer.text
    assert api.get("/processes/revsort").json()["title"] == "Reverse, then sort"
    for method in (api.put, api.delete):
        kept = method("/processes/downsample", headers=BEARER, **({"content": replaced} if method == api.put else {}))
        assert kept.status_code == 403 and kept.json()["type"].endswith("/immutable-process"), kept.text
    assert api.delete("/processes/revsort", headers=BEARER).status_code == 204
    assert api.get("/processes/revsort").status_code == 404
    assert api.get(f"/jobs/{job['jobID']}/results").json() == results  # its jobs and their results stay


@pytest.mark.parametrize(
    ("media", "body", "status", "detail"),
    [
        ("text/plain", "x", 400, "Content-Type 'text/plain': expected one of application/ogcapppkg+json"),
        (
            "application/ogcapppkg+json",
            json.dumps({"executionUnit": {"type": "docker", "image": "me/ndvi:1"}}),
            400,
            "executionUnit: only CWL is deployed here",
        ),
        (
            "application/cwl+yaml",
            "cwlVersion: v1.2\nclass: CommandLineTool\nid: t\ninputs: 3\n",
            400,
            "CWL document 'package.cwl': does not load",
        ),
        (
            "application/cwl+yaml",
            "cwlVersion: v1.2\n$graph:\n- {class: Workflow, id: a, inputs: [], outputs: [], "
            "steps: []}\n- {class: Workflow, id: b, inputs: [], outputs: [], steps: []}\n",
            400,
            "the CWL of the request: 2 workflows (a, b); pick one with w",
        ),
        (
            "application/cwl+yaml",
            (SHARED / "fixtures/cwl/eoepca-zoo-calrissian-runner_app-burned-area.1.0.cwl").read_text(),
            409,
            "process 'burned-area': an installed package",
        ),
    ],
)
def test_a_package_that_cannot_be_deployed_is_refused_naming_why(
    deployed: str, tmp_path: Path, media: str, body: str, status: int, detail: str
) -> None:
    api = TestClient(create_app(ServerSettings(str(tmp_path / "results"), token=TOKEN)))
    answer = api.post("/processes", content=body, headers={**BEARER, "Content-Type": media})
    assert answer.status_code == status, answer.text
    check("exception", answer.json())
    assert answer.json()["detail"].startswith(detail), answer.json()
    closed = TestClient(create_app(ServerSettings(str(tmp_path / "results"))))  # no token set: deploying is off
    assert closed.post("/processes", content=body, headers={**BEARER, "Content-Type": media}).status_code == 403


def test_a_cwl_href_is_read_within_a_time_and_a_size(tmp_path: Path) -> None:
    from eoflows.errors import InputError
    from tasks.cwl.extensions import http_text

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers
    with pytest.raises(InputError, match=r"cannot read it \(ReadTimeout"):
        http_text(f"http://127.0.0.1:{silent.getsockname()[1]}/wf.cwl", timeout=1)
    silent.close()
    (tmp_path / "big.cwl").write_text("#" * 3000)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with pytest.raises(InputError, match="larger than"):
        http_text(f"http://127.0.0.1:{server.server_port}/big.cwl", limit=1000)
    server.shutdown()
    server.server_close()

"""Calrissian delegation against a local HTTP server that speaks the Kubernetes API (kmock).

The tests drive the Job's status like the cluster would, and assert on the requests the server received.
"""

import asyncio
import json
import logging
from pathlib import Path
from uuid import UUID

import kubernetes_validate
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterTaskRunId,
    TaskRunFilter,
    TaskRunFilterName,
)
from prefect.client.schemas.objects import TaskRun
from prefect.logging.handlers import APILogHandler

from blocks.calrissian import CalrissianBlock
from deployments.kubernetes import KUBERNETES_VERSION, calrissian_manifests
from eoflows.errors import InputError, RemoteRunError
from flows.run_cwl import run_cwl
from tasks.cwl.documents import CwlDocument
from tasks.cwl.export import CwlOptions, export, to_yaml
from tasks.remote.calrissian import RemoteRunTimeout, render, run_on_calrissian
from tasks.s2_indices import S2_INDICES
from tests.conftest import FIXTURES
from tests.fake_kubernetes import (
    COMPLETE,
    JOBS,
    NS,
    OUTPUTS,
    PODS,
    STEPS_LOG,
    deleted,
    job_created,
    kind,
    set_status,
    settings_for,
)
from tests.test_run_cwl import markdown, tables

SECRET_VALUE = "wJalrXUtnFEMI-not-a-real-secret"


@pytest.fixture
def document(tmp_path: Path) -> CwlDocument:
    path = tmp_path / "s2-indices.cwl"
    path.write_text(to_yaml(export(S2_INDICES, CwlOptions(mode="full"))))
    return CwlDocument(path, "s2-indices")


async def test_a_completed_run_returns_outputs_and_cleans_up(k8s, document: CwlDocument, caplog) -> None:
    caplog.set_level(logging.INFO, logger="eoflows")
    run = asyncio.create_task(run_on_calrissian(document, {"item": "https://x/item.json"}, settings_for(k8s)))
    name = await job_created(k8s)
    await set_status(k8s, name, COMPLETE)
    assert await asyncio.wait_for(run, 20) == OUTPUTS
    forwarded = [r.getMessage() for r in caplog.records if r.getMessage().startswith("calrissian | ")]
    assert forwarded == [f"calrissian | {line}" for line in STEPS_LOG]  # streamed, outputs and usage not echoed
    posted = {kind(r.resource): r.data for r in k8s["post"]}
    job, config = posted[JOBS], posted["v1/configmaps"]
    for manifest in (job, config):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    assert "v1/secrets" not in posted  # no secret input, no Secret
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    for flag in (
        "--max-ram",
        "--max-cores",
        "--tmp-outdir-prefix",
        "--outdir",
        "--stdout",
        "--stderr",
        "--usage-report",
        "--pod-labels",
        "--pod-env-vars",
        "--pod-nodeselectors",
        "--pod-serviceaccount",
    ):
        assert flag in args, flag  # fmt: skip
    assert args[-2:] == ["/calrissian/config/package.cwl#s2-indices", "/calrissian/config/inputs.yml"]
    assert yaml.safe_load(config["data"]["inputs.yml"]) == {"item": "https://x/item.json"}
    assert "eoflows.dev/flow-run-id" in job["metadata"]["labels"]
    assert "eoflows.dev/flow-run-id" in yaml.safe_load(config["data"]["pod-labels.yml"])
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CALRISSIAN_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["RETRY_ATTEMPTS"]["value"] == "3"
    patched = list(k8s["patch", k8s.resource("v1/configmaps")])
    assert patched[0].data["metadata"]["ownerReferences"][0]["kind"] == "Job"
    assert sorted(deleted(k8s)) == sorted([(JOBS, name), ("v1/configmaps", name)])
    (job_delete,) = k8s["delete", k8s.resource(JOBS)]
    assert job_delete.params.get("propagationPolicy") == "Foreground" or job_delete.data == {
        "propagationPolicy": "Foreground"}  # fmt: skip


async def test_a_failed_pod_is_not_final_while_the_job_retries(k8s, document: CwlDocument) -> None:
    run = asyncio.create_task(run_on_calrissian(document, {}, settings_for(k8s, backoff_limit=2)))
    name = await job_created(k8s)
    await set_status(k8s, name, {"failed": 1, "active": 1})
    await asyncio.sleep(0.3)
    assert not run.done()
    await set_status(k8s, name, COMPLETE)
    assert await asyncio.wait_for(run, 20) == OUTPUTS


async def test_a_failed_job_raises_its_message_and_log_tail(k8s, document: CwlDocument) -> None:
    run = asyncio.create_task(run_on_calrissian(document, {}, settings_for(k8s)))
    name = await job_created(k8s)
    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
              "message": "Job has reached the specified backoff limit"}  # fmt: skip
    await set_status(k8s, name, {"failed": 1, "conditions": [failed]})
    expected = r"(?s)failed \(BackoffLimitExceeded: Job has reached the specified backoff limit\); last log lines:\n"
    with pytest.raises(RemoteRunError, match=expected + r".*\[step compute\] completed success"):
        await asyncio.wait_for(run, 20)
    assert (JOBS, name) in deleted(k8s) and ("v1/configmaps", name) in deleted(k8s)


async def test_a_stuck_job_times_out_and_is_cleaned_up(k8s, document: CwlDocument) -> None:
    run = asyncio.create_task(run_on_calrissian(document, {}, settings_for(k8s, timeout_seconds=1.5)))
    name = await job_created(k8s)
    with pytest.raises(RemoteRunTimeout, match=f"Calrissian Job {name}: no result after 1.5 s"):
        await asyncio.wait_for(run, 20)
    assert (JOBS, name) in deleted(k8s)


async def test_an_expired_watch_is_resumed(k8s, document: CwlDocument) -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                        "reason": "Expired", "message": "too old resource version"}}  # fmt: skip
    expired = []

    def once(request):
        if not expired:
            expired.append(request)
            return (gone,)
        return k8s._serve_watch(request)

    (k8s["get", k8s.resource(JOBS), k8s.params(watch="True")] ** 10) << once
    run = asyncio.create_task(run_on_calrissian(document, {}, settings_for(k8s)))
    name = await job_created(k8s)
    await set_status(k8s, name, COMPLETE)
    assert await asyncio.wait_for(run, 20) == OUTPUTS
    assert expired and len(k8s["get", k8s.resource(JOBS), k8s.params(watch="True")]) >= 2


async def test_cancelling_the_run_cleans_up(k8s, document: CwlDocument) -> None:
    run = asyncio.create_task(run_on_calrissian(document, {}, settings_for(k8s)))
    name = await job_created(k8s)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert sorted(deleted(k8s)) == sorted([(JOBS, name), ("v1/configmaps", name)])


async def test_credentials_go_to_an_owned_secret_only(k8s, document: CwlDocument, caplog) -> None:
    inputs = {"item": "s3://b/i.json", "aws_access_key_id": "AKIATEST", "aws_secret_access_key": SECRET_VALUE}
    run = asyncio.create_task(run_on_calrissian(document, inputs, settings_for(k8s)))
    name = await job_created(k8s)
    await set_status(k8s, name, COMPLETE)
    await asyncio.wait_for(run, 20)
    posted = {kind(r.resource): r.data for r in k8s["post"]}
    assert SECRET_VALUE in json.dumps(posted["v1/secrets"])
    assert SECRET_VALUE not in json.dumps(posted["v1/configmaps"]) + json.dumps(posted[JOBS]) + caplog.text
    assert posted[JOBS]["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "/calrissian/secret/inputs.yml"
    patched = list(k8s["patch", k8s.resource("v1/secrets")])
    assert patched[0].data["metadata"]["ownerReferences"][0]["name"] == name
    assert ("v1/secrets", name) in deleted(k8s)


async def test_an_oversized_step_is_refused_before_any_request(k8s, document: CwlDocument) -> None:
    with pytest.raises(InputError, match=r"CWL step 's2-indices-compute' asks for 2048 MiB, more than --max-ram 1G"):
        await run_on_calrissian(document, {}, settings_for(k8s, max_ram="1G"))
    with pytest.raises(InputError, match=r"asks for 2 cores, more than --max-cores 1"):
        await run_on_calrissian(document, {}, settings_for(k8s, max_cores=1))
    assert len(k8s) == 0


def test_manifests_validate_and_a_dry_run_shows_no_secret(document: CwlDocument) -> None:
    settings = CalrissianBlock(namespace=NS, dask_gateway_url="http://gateway:80",
                                  secret_env={"AWS_ACCESS_KEY_ID": "keys/id"})  # fmt: skip
    rendered = render(document, {"aws_secret_access_key": SECRET_VALUE}, settings, "eoflows-cwl-test", None)
    for manifest in rendered.documents:
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
    container = rendered.job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][container["args"].index("--dask-gateway-url") + 1] == "http://gateway:80"
    key = next(e for e in container["env"] if e["name"] == "AWS_ACCESS_KEY_ID")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "keys", "key": "id"}
    text = asyncio.run(run_on_calrissian(document, {"aws_secret_access_key": SECRET_VALUE}, settings,
                                         dry_run=True))["manifests"]  # fmt: skip
    assert SECRET_VALUE not in text and "kind: Secret" in text and "kind: Job" in text
    for manifest in calrissian_manifests(NS, storage_class="nfs"):
        kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)


def grants(roles: list[dict]) -> set[tuple[str, str]]:
    return {
        (res, verb) for role in roles for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]
    }


def test_what_calrissian_itself_documents_is_covered(document: CwlDocument) -> None:
    """Calrissian's own conformance Roles and example Job: our RBAC grants as much, our Job passes every flag."""
    theirs = list(yaml.safe_load_all((FIXTURES / "calrissian/calrissian_conformance_Roles.yaml").read_text()))
    ours = calrissian_manifests(NS, flows_namespace="flows")
    pods_role = [d for d in ours if d["kind"] == "Role" and d["metadata"]["name"] == "calrissian-pods"]
    assert grants([d for d in theirs if d["kind"] == "Role"]) <= grants(pods_role)
    bindings = {d["metadata"]["name"]: d["subjects"][0] for d in ours if d["kind"] == "RoleBinding"}
    assert bindings["calrissian-launcher"] == {
        "kind": "ServiceAccount",
        "name": "eoflows-flow-runner",
        "namespace": "flows",
    }
    assert bindings["calrissian-pods"]["namespace"] == NS
    launcher = [d for d in ours if d["kind"] == "Role" and d["metadata"]["name"] == "calrissian-launcher"]
    # the launcher follows the Job and watches the step pods it mirrors as task runs, with their logs
    assert {("jobs", "watch"), ("pods", "watch"), ("pods", "list"), ("pods/log", "get")} <= grants(launcher)
    (job,) = yaml.safe_load_all((FIXTURES / "calrissian/calrissian_CalrissianJob-revsort.yaml").read_text())
    their_flags = {a for a in job["spec"]["template"]["spec"]["containers"][0]["args"] if a.startswith("--")}
    rendered = render(document, {}, CalrissianBlock(namespace=NS), "eoflows-cwl-test")
    container = rendered.job["spec"]["template"]["spec"]["containers"][0]
    assert their_flags <= set(container["args"])
    assert {m["mountPath"] for m in job["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]} <= {
        m["mountPath"] for m in container["volumeMounts"]}  # fmt: skip


SORTTOOL = FIXTURES / "cwl/calrissian_sorttool.cwl"
GONE = {"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                    "reason": "Expired", "message": "too old resource version"}}  # fmt: skip


async def flow_with_step_pods(k8s) -> tuple[asyncio.Task, str, UUID]:
    """run-cwl on the fake cluster (in a thread, as a worker would run it): the task, its Job, its flow run id."""
    await settings_for(k8s).save("kmock-calrissian", overwrite=True)
    run = asyncio.create_task(asyncio.to_thread(
        run_cwl, cwl=str(SORTTOOL), inputs={"reverse": False, "input": {"class": "File", "path": "/data/lines.txt"}},
        runner="calrissian", calrissian="kmock-calrissian", return_state=True))  # fmt: skip
    name = await job_created(k8s)
    (job,) = [r.data for r in k8s["post", k8s.resource(JOBS)]]
    return run, name, UUID(job["metadata"]["labels"]["eoflows.dev/flow-run-id"])


async def task_run(flow_run_id: UUID, name: str, state: str, timeout: float = 20) -> TaskRun:
    """The flow run's task run `name` once it is in `state` (polling the Prefect API; fails after `timeout` s)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with get_client() as client:
        while True:
            of_flow_run = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            named = TaskRunFilter(name=TaskRunFilterName(any_=[name]))
            runs = await client.read_task_runs(flow_run_filter=of_flow_run, task_run_filter=named)
            if runs and runs[0].state and runs[0].state.name == state:
                return runs[0]
            assert asyncio.get_running_loop().time() < deadline, f"{name}: {[r.state for r in runs]}, not {state}"
            await asyncio.sleep(0.1)


async def history_and_log(run: TaskRun) -> tuple[list[str], str]:
    """The states a task run went through, and its log."""
    await APILogHandler.aflush()
    async with get_client() as client:
        states = await client.read_task_run_states(run.id)
        logs = await client.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[run.id])))
    return [s.name for s in sorted(states, key=lambda s: s.timestamp)], "\n".join(log.message for log in logs)


async def test_step_pods_are_task_runs_as_they_run(k8s, step_pods) -> None:
    run, name, flow_run_id = await flow_with_step_pods(k8s)
    crop = await step_pods.create("node_crop", cpu="500m", memory="512Mi")
    await task_run(flow_run_id, "node-crop", "Pending")
    await step_pods.run(crop, node="node-a")
    await task_run(flow_run_id, "node-crop", "Running")
    step_pods.write(crop, "cropping tile 1 of 2", "cropping tile 2 of 2")
    second = await step_pods.create("node_crop_2")
    await step_pods.run(second, node="node-b")
    await task_run(flow_run_id, "node-crop-2", "Running")
    await step_pods.end(crop)
    first = await task_run(flow_run_id, "node-crop", "Completed")
    step_pods.write(second, "cropping tile 3")
    await step_pods.end(second)
    await task_run(flow_run_id, "node-crop-2", "Completed")
    await set_status(k8s, name, COMPLETE)
    state = await asyncio.wait_for(run, 60)
    assert await state.aresult() == OUTPUTS
    states, log = await history_and_log(first)
    assert states == ["Pending", "Running", "Completed"]
    assert "cropping tile 1 of 2\ncropping tile 2 of 2" in log and "tile 3" not in log  # its own container's log
    assert {"cwl", "calrissian"} <= set(first.tags)
    timeline = markdown(state)["cwl-timeline"].splitlines()
    assert timeline[0] == "| step | state | start | end | seconds | cores | RAM MiB | node |"
    assert timeline[2].startswith("| node-crop | Completed |") and timeline[2].endswith("| 0.5 | 512 | node-a |")
    assert timeline[3].startswith("| node-crop-2 | Completed |") and timeline[3].endswith("| 1.0 | 256 | node-b |")
    usage = {row["step"]: row for row in tables(state)["cwl-usage"]}  # Calrissian's report, with each pod's node
    assert usage["node_crop"]["node"] == "node-a" and usage["node_crop_2"]["node"] == "node-b"
    assert usage["node_crop_3"]["node"] is None  # in the report, never seen as a pod


async def test_a_failed_step_pod_is_a_failed_task_run_that_the_flow_run_names(k8s, step_pods) -> None:
    run, name, flow_run_id = await flow_with_step_pods(k8s)
    rev = await step_pods.create("rev")
    await step_pods.run(rev)
    step_pods.write(rev, "rev: cannot open missing.txt: No such file or directory")
    await step_pods.end(rev, exit_code=1)
    failed = await task_run(flow_run_id, "rev", "Failed")
    assert failed.state.message == "exit code 1 (Error)"
    slow, stray = await step_pods.create("sort"), await step_pods.create("stray")
    await step_pods.run(slow)
    await step_pods.run(stray)
    await task_run(flow_run_id, "sort", "Running")
    await task_run(flow_run_id, "stray", "Running")
    await step_pods.delete(stray)
    deleted_pod = await task_run(flow_run_id, "stray", "Cancelled")
    assert deleted_pod.state.message == f"pod {stray} was deleted before it ended"
    condition = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "backoff"}
    await set_status(k8s, name, {"failed": 1, "conditions": [condition]})
    state = await asyncio.wait_for(run, 60)
    assert state.is_failed()
    async with get_client() as client:
        message = (await client.read_flow_run(flow_run_id)).state.message
    assert (
        "failed (BackoffLimitExceeded: backoff); step 'rev' failed (exit code 1 (Error)); last lines of its "
        "log:\nrev: cannot open missing.txt: No such file or directory\nlast lines of Calrissian's log:"
    ) in message
    _, log = await history_and_log(failed)
    assert "rev: cannot open missing.txt: No such file or directory" in log
    sort = await task_run(flow_run_id, "sort", "Cancelled")  # still running when the Job ended
    assert sort.state.message == "the Calrissian run ended before this pod did"


async def test_an_expired_pod_watch_is_resumed(k8s, step_pods) -> None:
    expired = []

    def once(request):
        if not expired:
            expired.append(request)
            return (GONE,)
        return k8s._serve_watch(request)

    watches = k8s["get", k8s.resource(PODS), k8s.params(watch="True")]
    (watches**10) << once
    run, name, flow_run_id = await flow_with_step_pods(k8s)
    while len(watches) < 2:  # expired, then watched again
        await asyncio.sleep(0.02)
    pod = await step_pods.create("rev")
    await step_pods.run(pod)
    await step_pods.end(pod)
    await task_run(flow_run_id, "rev", "Completed")
    await set_status(k8s, name, COMPLETE)
    assert (await asyncio.wait_for(run, 60)).is_completed() and expired


async def test_step_pods_are_listed_when_watching_them_is_not_allowed(k8s, step_pods) -> None:
    forbidden = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403, "reason": "Forbidden",
                 "message": "pods is forbidden: cannot watch resource pods"}  # fmt: skip
    (k8s["get", k8s.resource(PODS), k8s.params(watch="True")] ** 10) << 403 << forbidden
    run, name, flow_run_id = await flow_with_step_pods(k8s)
    pod = await step_pods.create("rev")
    await step_pods.run(pod)
    await task_run(flow_run_id, "rev", "Running")
    await step_pods.end(pod)
    await task_run(flow_run_id, "rev", "Completed")
    await set_status(k8s, name, COMPLETE)
    assert (await asyncio.wait_for(run, 60)).is_completed()
    assert len(k8s["get", k8s.resource(PODS), k8s.params(watch="True")]) == 1  # not retried: listed instead

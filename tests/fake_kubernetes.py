"""A local HTTP server that speaks the Kubernetes API (kmock), set up as a cluster running Calrissian Jobs.

The test drives each Job's status like the Job controller would; the Calrissian pod's log is a real-looking
log followed by the outputs JSON and a real Calrissian usage report (fixture). `StepPods` (fixture `step_pods`)
makes the pods Calrissian would make for each CWL job, moves them along and writes their logs.
"""

import asyncio
import json
import random
import re
import string
from datetime import UTC, datetime

import pytest
import yaml
from prefect_kubernetes.credentials import KubernetesClusterConfig

from blocks.calrissian import CalrissianBlock
from tasks.remote.calrissian import MARKS
from tests.conftest import FIXTURES

NS = "eoap"
JOBS, PODS = "batch/v1/jobs", "v1/pods"
USAGE = json.loads((FIXTURES / "calrissian/calrissian_usage.json").read_text())
OUTPUTS = {"catalog_uri": "s3://bucket/results/run/catalog.json"}
STEPS_LOG = ["calrissian 0.19.0", "INFO [workflow s2-indices] start", "INFO [step compute] completed success"]
LOG = "\n".join(
    [*STEPS_LOG, MARKS["outputs"], json.dumps(OUTPUTS), MARKS["usage"], json.dumps(USAGE), MARKS["end"], ""]
)


@pytest.fixture
def k8s(kmock):
    kmock["get", kmock.params(watch="True")] << kmock._serve_watch  # kubernetes_asyncio sends watch=True
    kmock.resources[JOBS] = {}

    def pods_by_labels(request):  # kmock ignores label selectors
        want = dict(kv.split("=", 1) for kv in request.params.get("labelSelector", "").split(",") if kv)
        items = [o.raw for (res, ns, _), o in kmock.objects.items()
                 if (res, ns) == (request.resource, request.namespace) and not o.deleted
                 and want.items() <= o.raw.get("metadata", {}).get("labels", {}).items()]  # fmt: skip
        return {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}

    kmock[kmock.action.LIST, kmock.resource(PODS)] << pods_by_labels
    # the log as the API server sends it: plain text, line by line (kmock.text() would send a JSON string)
    kmock["get", kmock.resource(PODS), kmock.subresource("log")] << tuple(
        f"{line}\n".encode() for line in LOG.splitlines()
    )
    return kmock


def settings_for(kmock, **changes) -> CalrissianBlock:
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "kmock",
                  "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
                  "users": [{"name": "kmock", "user": {"token": "test"}}],
                  "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}]}  # fmt: skip
    defaults = {"namespace": NS, "timeout_seconds": 20, "poll_seconds": 0.1,
                "cluster_config": KubernetesClusterConfig(config=kubeconfig, context_name="kmock")}  # fmt: skip
    return CalrissianBlock(**{**defaults, **changes})


async def job_created(kmock) -> str:
    """Wait for the Job, give it a pod as the Job controller would, wait for the watch; return its name."""
    while not len(kmock["post", kmock.resource(JOBS)]):
        await asyncio.sleep(0.02)
    name = list(kmock["post", kmock.resource(JOBS)])[0].data["metadata"]["name"]
    kmock.objects[kmock.resource(PODS), NS, f"{name}-x7k2p"] = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-x7k2p", "namespace": NS,
                                                        "labels": {"job-name": name}}}  # fmt: skip
    while not len(kmock["get", kmock.resource(JOBS), kmock.params(watch="True")]):
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    return name


async def set_status(kmock, name: str, status: dict) -> None:
    await kmock.patch(f"/apis/batch/v1/namespaces/{NS}/jobs/{name}/status", json={"status": status})


COMPLETE = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}


def kind(resource) -> str:
    return f"{resource.group}/{resource.version}/{resource.plural}".lstrip("/")


def deleted(kmock) -> list[tuple[str, str]]:
    return [(kind(r.resource), r.name) for r in kmock["delete"]]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class StepPods:
    """The pods Calrissian makes for the CWL jobs of a run, as it makes them, driven by the test.

    As Calrissian does: a pod per job named `<job>-pod-<8 letters>`, one container `<job>-container` (the job name
    made Kubernetes-safe), the labels it was given (the run's ConfigMap, `pod-labels.yml`), requests from the
    job's cores and RAM. The test moves a pod Pending -> Running -> Succeeded / Failed (watch events, as the
    kubelet would) and writes its log, which a follower receives as it is written.
    """

    def __init__(self, kmock) -> None:
        self.kmock, self.logs, self.started, self.ended = kmock, {}, {}, set()
        (kmock["get", kmock.resource(PODS), kmock.subresource("log")] ** 10) << self.log_of

    def labels(self) -> dict[str, str]:
        """The labels the run tells Calrissian to give its step pods."""
        (config,) = [r.data for r in self.kmock["post", self.kmock.resource("v1/configmaps")]]
        return yaml.safe_load(config["data"]["pod-labels.yml"])

    async def create(self, job: str, cpu: str = "1", memory: str = "256Mi") -> str:
        """A Pending pod for CWL job `job`; its name."""
        safe = re.sub(r"[^-a-z0-9]", "-", job.lower())
        name = f"{safe}-pod-{''.join(random.choices(string.ascii_lowercase, k=8))}"
        self.logs[name] = []
        container = {"name": f"{safe}-container", "image": "debian:stretch-slim", "command": ["/bin/sh", "-c"],
                     "resources": {"requests": {"cpu": cpu, "memory": memory}}}  # fmt: skip
        await self.kmock.post(f"/api/v1/namespaces/{NS}/pods", json={
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": self.labels()},
            "spec": {"containers": [container], "restartPolicy": "Never"}, "status": {"phase": "Pending"}})  # fmt: skip
        return name

    async def _status(self, name: str, phase: str, state: dict, **spec: str) -> None:
        status = {"name": name.rsplit("-pod-", 1)[0] + "-container", "image": "debian:stretch-slim", "imageID": "",
                  "ready": phase == "Running", "restartCount": 0, "state": state}  # fmt: skip
        body = {"spec": spec, "status": {"phase": phase, "containerStatuses": [status]}}
        await self.kmock.patch(f"/api/v1/namespaces/{NS}/pods/{name}", json=body)

    async def run(self, name: str, node: str = "node-a") -> None:
        """The pod is scheduled on `node` and its container starts."""
        self.started[name] = _now()
        await self._status(name, "Running", {"running": {"startedAt": self.started[name]}}, nodeName=node)

    def write(self, name: str, *lines: str) -> None:
        """Lines the container writes to its log."""
        self.logs[name].extend(lines)

    async def end(self, name: str, exit_code: int = 0) -> None:
        """The container ends with `exit_code` (Succeeded when 0, else Failed)."""
        self.ended.add(name)
        ended = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error",
                 "startedAt": self.started.get(name, _now()), "finishedAt": _now()}  # fmt: skip
        await self._status(name, "Succeeded" if exit_code == 0 else "Failed", {"terminated": ended})

    async def delete(self, name: str) -> None:
        """The pod is deleted (as Calrissian deletes the pods of a run it stops)."""
        self.ended.add(name)
        await self.kmock.delete(f"/api/v1/namespaces/{NS}/pods/{name}")

    def log_of(self, request):
        """The log of a step pod, as the API server sends it: followed while the container runs."""
        if request.name not in self.logs:  # not a step pod: the next reaction answers (the Calrissian pod's log)
            raise NotImplementedError  # (kmock: "matched, but nothing to respond with"; NotImplemented disables)
        return self._stream(request.name, str(request.params.get("follow", "")).lower() == "true")

    async def _stream(self, name: str, follow: bool):
        yield b""  # the headers go at once, the lines as they come
        sent = 0
        while True:
            lines = self.logs[name]
            for line in lines[sent:]:
                yield f"{line}\n".encode()
            sent = len(lines)
            if not follow or name in self.ended:
                return
            await asyncio.sleep(0.02)


@pytest.fixture
def step_pods(k8s) -> StepPods:
    """Calrissian's step pods, made and moved by the test."""
    return StepPods(k8s)

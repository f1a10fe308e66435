"""A local HTTP server that speaks the Kubernetes API (kmock), set up as a cluster running Calrissian Jobs.

The test drives each Job's status like the Job controller would; the Calrissian pod's log is a real-looking
log followed by the outputs JSON and a real Calrissian usage report (fixture).
"""

import asyncio
import json

import pytest
from prefect_kubernetes.credentials import KubernetesClusterConfig

from blocks.calrissian import CalrissianSettings
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


def settings_for(kmock, **changes) -> CalrissianSettings:
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "current-context": "kmock",
                  "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
                  "users": [{"name": "kmock", "user": {"token": "test"}}],
                  "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "kmock"}}]}  # fmt: skip
    defaults = {"namespace": NS, "timeout_seconds": 20, "poll_seconds": 0.1,
                "cluster_config": KubernetesClusterConfig(config=kubeconfig, context_name="kmock")}  # fmt: skip
    return CalrissianSettings(**{**defaults, **changes})


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

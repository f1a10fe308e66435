"""Deployments end to end on the session's real Prefect server: `eoflows deploy`, `prefect deployment run`,
a process worker, the S3 server; and the Kubernetes side checked against the real Kubernetes schemas."""

import asyncio
import importlib
import inspect
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import s3fs
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, FlowRunFilter
from prefect.client.schemas.schedules import CronSchedule
from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

from deployments.kubernetes import manifests, validate
from eoflows import IMAGE
from eoflows.local.s3 import LocalS3
from tests.test_staging import upload_sample

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=timeout)  # fmt: skip


def deployment(name: str):
    with get_client(sync_client=True) as client:
        return client.read_deployment_by_name(name)


def test_deployment_run_with_a_process_worker(deployed: str, s3: LocalS3, sample_item: Path) -> None:
    item = upload_sample(s3, sample_item, f"deployed-{uuid.uuid4().hex[:6]}")
    env = {**s3.env(), "PREFECT_WORKER_QUERY_SECONDS": "1"}
    watch = subprocess.Popen([str(BIN / "prefect"), "deployment", "run", "s2-indices/local", "-p", f"item={item}",
                              "-p", "destination=s3://eoflows-results/deployed", "-p", 'products=["ndvi", "rgb"]',
                              "--watch", "--watch-timeout", "300"], cwd=ROOT, env={**os.environ, **env},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    time.sleep(3)  # the run is scheduled before the worker polls
    worker = cli("prefect", "worker", "start", "--pool", "eoflows-local", "--type", "process", "--run-once", env=env)
    out, _ = watch.communicate(timeout=300)
    assert watch.returncode == 0, out + worker.stdout[-3000:] + worker.stderr[-3000:]
    run_id = next(line.split("/")[-1] for line in out.splitlines() if "/runs/flow-run/" in line).strip()
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]))
        )
    assert run.state.is_completed()
    (products,) = [a for a in artifacts if a.key == "s2-indices-products"]
    assert "| ndvi |" in products.data
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    published = fs.find(f"eoflows-results/deployed/{run_id}")
    assert f"eoflows-results/deployed/{run_id}/catalog.json" in published
    assert any(p.endswith("-processed.png") for p in published)


def test_prefect_yaml_repeats_nothing_the_flows_declare(deployed: str) -> None:
    """Descriptions, versions and parameter defaults come from the flows (the package declarations)."""
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    for entry in config["deployments"]:
        module, name = entry["entrypoint"].split(":")
        flow = getattr(importlib.import_module(module), name)
        defaults = {p.name: p.default for p in inspect.signature(flow.fn).parameters.values()}
        assert "version" not in entry and entry.get("description") != flow.description, entry["name"]
        assert all(defaults.get(k, object()) != v for k, v in (entry.get("parameters") or {}).items()), entry["name"]
        found = deployment(f"{flow.name}/{entry['name']}")
        assert (found.version, found.description) == (flow.version, entry.get("description", flow.description))


def test_a_bad_parameter_is_refused_before_any_worker_sees_it(deployed: str) -> None:
    done = cli("prefect", "deployment", "run", "s2-indices/local", "-p", "item=x", "-p", "destination=/tmp/x",
               "-p", 'products=["evi"]')  # fmt: skip
    assert done.returncode != 0
    assert "Validation failed for field 'products[0]'" in " ".join((done.stdout + done.stderr).split())
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(deployment_filter=None, flow_run_filter=FlowRunFilter())
    assert all(r.parameters.get("products") != ["evi"] for r in runs)


def test_credentials_in_run_cwl_inputs_are_refused_before_they_are_stored(deployed: str) -> None:
    done = cli("prefect", "deployment", "run", "run-cwl/local", "-p", "cwl=s2-indices",
               "-p", 'inputs={"item": "x", "aws_secret_access_key": "never-stored"}')  # fmt: skip
    assert done.returncode != 0 and "Validation failed for field 'inputs'" in " ".join(
        (done.stdout + done.stderr).split()
    )
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter())
    assert not any("never-stored" in json.dumps(r.parameters) for r in runs)


def test_ui_schedules_survive_a_redeploy(deployed: str) -> None:
    local = deployment("s2-indices/local")
    with get_client(sync_client=True) as client:
        client.create_deployment_schedules(local.id, [(CronSchedule(cron="0 6 * * *", timezone="UTC"), True)])
    done = cli("eoflows", "deploy", "--project", str(ROOT))
    assert done.returncode == 0, done.stderr
    schedules = deployment("s2-indices/local").schedules
    assert [s.schedule.cron for s in schedules] == ["0 6 * * *"]
    nightly = deployment("s2-indices/nightly-example").schedules
    assert [(s.schedule.cron, s.active) for s in nightly] == [("0 3 * * *", False)]  # from YAML, once, inactive


def test_parameters_are_enforced_and_documented(deployed: str) -> None:
    local = deployment("s2-indices/local")
    assert local.enforce_parameter_schema and local.entrypoint == "flows.package_flows:s2_indices"
    assert local.pull_steps == []
    properties = local.parameter_openapi_schema["properties"]
    assert {"item", "destination", "products", "storage", "dask", "run_id"} <= set(properties)
    assert all(p.get("description") for p in properties.values())


def test_the_docker_container_of_a_deployment(deployed: str) -> None:
    from prefect_docker.worker import DockerWorkerJobConfiguration

    dep = deployment("burned-area/docker")
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("eoflows-docker")
    assert pool.type == "eoflows-docker"  # deployments.docker_worker
    render = DockerWorkerJobConfiguration.from_template_and_values(pool.base_job_template, dep.job_variables)
    config = asyncio.run(render)
    assert (config.image, config.image_pull_policy, config.network_mode) == (IMAGE, "IfNotPresent", "host")
    assert config.auto_remove and dep.entrypoint == "flows.package_flows:burned_area" and dep.pull_steps == []


def test_the_kubernetes_job_of_a_deployment(deployed: str) -> None:
    dep = deployment("s2-indices/kubernetes")
    with get_client(sync_client=True) as client:
        pool = client.read_work_pool("eoflows-k8s")
        run = client.create_flow_run_from_deployment(dep.id, parameters={"item": "x", "destination": "s3://b/p"})
        flow = client.read_flow(dep.flow_id)
    render = KubernetesWorkerJobConfiguration.from_template_and_values(pool.base_job_template, dep.job_variables)
    config = asyncio.run(render)
    config.prepare_for_flow_run(run, dep, flow)
    job = config.job_manifest
    validate(job)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE
    assert container["resources"] == {
        "requests": {"cpu": "2", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "4Gi"},
    }
    assert container["envFrom"] == [{"secretRef": {"name": "eoflows-credentials", "optional": True}}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PREFECT__FLOW_RUN_ID"] == str(run.id)
    assert not any(k.startswith("AWS_") or "SECRET" in k or "PASSWORD" in k for k in env)
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert job["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_manifests_validate_and_hold_no_secret() -> None:
    docs = manifests("eo-test", "http://prefect.prefect:4200/api", api_key_secret="prefect-api")
    for doc in docs:
        validate(doc)
    assert [d["kind"] for d in docs] == ["Namespace", "ServiceAccount", "ServiceAccount", "Role", "RoleBinding",
                                         "Deployment"]  # fmt: skip
    worker = docs[-1]["spec"]["template"]["spec"]["containers"][0]
    key = next(e for e in worker["env"] if e["name"] == "PREFECT_API_KEY")
    assert key == {
        "name": "PREFECT_API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "prefect-api", "key": "PREFECT_API_KEY"}},
    }
    assert '"kind": "Secret"' not in json.dumps(docs)


def test_invalid_manifests_are_reported_with_the_field() -> None:
    doc = manifests("eo-test", "http://prefect:4200/api")[-1]
    doc["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = 3
    with pytest.raises(Exception, match=r"Deployment 'eoflows-worker': invalid at spec/template/spec/containers/0"):
        validate(doc)


def test_k8s_cli_prints_valid_yaml() -> None:
    done = cli("eoflows", "k8s", "manifests", "--namespace", "eo", "--api-url", "http://prefect:4200/api")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n---\n") == 5 and "namespace: eo" in done.stdout
    bad = cli("eoflows", "k8s", "manifests", "--api-url", "prefect:4200")
    assert bad.returncode == 1 and "Prefect API URL 'prefect:4200': expected http(s)://" in bad.stderr


def test_deploy_sets_up_the_detection_of_crashed_runs(deployed: str) -> None:
    from prefect.automations import Automation
    from prefect.events.schemas.automations import Posture

    from deployments.deploy import CRASH_DETECTION, ensure_crash_detection

    assert f"automations: {CRASH_DETECTION}" in deployed
    assert ensure_crash_detection() == CRASH_DETECTION  # a second deploy finds it, makes no second one
    automation = Automation.read(name=CRASH_DETECTION)
    trigger = automation.trigger
    assert trigger.posture == Posture.Proactive and trigger.after == {"prefect.flow-run.heartbeat"}
    assert {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed"} <= trigger.expect
    assert trigger.within.total_seconds() == 3 * 180 and automation.actions[0].state.value == "CRASHED"


@pytest.mark.parametrize(
    ("deployment", "settings"),
    [
        ("s2-indices/local", {"storage": "eoflows-s3-storage", "dask": "eoflows-dask-gateway"}),
        ("run-cwl/local", {"storage": "eoflows-s3-storage", "calrissian": "eoflows-calrissian"}),
        ("monitor/local", {"storage": "eoflows-s3-storage"}),
    ],
)
def test_settings_parameters_offer_the_saved_blocks_in_the_ui(deployed: str, deployment: str, settings: dict) -> None:
    """Settings are typed as their block or a name: the UI's run form shows a block picker, `-p` takes a name."""
    with get_client(sync_client=True) as client:
        schema = client.read_deployment_by_name(deployment).parameter_openapi_schema
    for name, slug in settings.items():
        options = schema["properties"][name]["anyOf"]
        (ref,) = [o["$ref"].split("/")[-1] for o in options if "$ref" in o]
        assert schema["definitions"][ref]["block_type_slug"] == slug and {"type": "string"} in options

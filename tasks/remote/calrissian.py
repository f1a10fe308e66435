"""Run a CWL document with Calrissian on Kubernetes: one Job, watched, logged, read back, always cleaned up.

What existing launchers get wrong, and what this one does instead:
- resources are checked before anything is created (a step asking more than --max-ram/--max-cores fails
  at once, naming the step and the numbers), so no run waits forever for room it can never have;
- the Job's ConfigMap (CWL, pod settings) and, only when inputs carry secrets, its Secret are
  owner-referenced to the Job and deleted with it, on success, failure, timeout and cancellation;
- a failed pod is final only when the Job says so (its `Failed` condition, after `backoffLimit` reruns);
- the Job is watched, the watch resumed when it expires (410 Gone), and polled when watching fails;
- Calrissian's log is followed into the Prefect run log, and its tail is in the error of a failed run;
- each step pod is a Prefect task run of its own while it runs (tasks.remote.step_pods: state, log, node,
  resources), a `cwl-timeline` shows them all, and a failed run names the step that failed with its log's end;
- Calrissian's own retries are bounded (RETRY_ATTEMPTS), not ~40 minutes of retry storm;
- outputs JSON and usage report are printed by the Job's container after Calrissian ends, so they come
  back through the pod log: no reader pod, no extra permission.
"""

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from blocks.calrissian import CalrissianBlock
from eoflows.errors import InputError, RemoteRunError
from eoflows.settings import CalrissianSettings
from eoflows.settings.calrissian import memory_mib
from tasks.cwl.documents import CwlDocument, resource_needs, secret_inputs
from tasks.cwl.outputs import report_outputs
from tasks.cwl.step_runs import StepRuns
from tasks.cwl.timeline import job_rows, report_timeline
from tasks.remote.step_pods import LABEL_RUN, PodMirror
from tasks.remote.watching import watch_until
from tasks.reporting import logger, report_table

CONFIG, SECRET = "/calrissian/config", "/calrissian/secret"
MARKS = {"outputs": "==> eoflows outputs <==", "usage": "==> eoflows usage <==", "end": "==> eoflows end <=="}
# Calrissian logs to a file on the output claim (--stderr); the container shows it live, then prints the
# outputs JSON and the usage report between markers, and exits with Calrissian's status.
SCRIPT = f"""mkdir -p "$(dirname "$EOFLOWS_LOG")" && touch "$EOFLOWS_LOG"
tail -n +1 -F "$EOFLOWS_LOG" & tailer=$!
calrissian "$@"; status=$?
sleep 1; kill $tailer 2>/dev/null
echo '{MARKS["outputs"]}'; cat "$EOFLOWS_OUTPUTS" 2>/dev/null; echo
echo '{MARKS["usage"]}'; cat "$EOFLOWS_USAGE" 2>/dev/null; echo
echo '{MARKS["end"]}'
exit $status
"""
LABEL_FLOW_RUN = "eoflows.dev/flow-run-id"


class RemoteRunTimeout(RemoteRunError, TimeoutError):
    """A delegated run did not finish in time (it has been stopped and cleaned up)."""


def check_fits(content: dict[str, Any], settings: CalrissianSettings) -> None:
    """Fail before creating anything when a step asks for more than Calrissian may ever give it."""
    max_ram = memory_mib(settings.max_ram)
    for process, cores, ram in resource_needs(content):
        if cores is not None and cores > settings.max_cores:
            raise InputError(f"CWL step {process!r} asks for {cores:g} cores, more than --max-cores "
                             f"{settings.max_cores} allows; raise max_cores or lower the step's coresMin")  # fmt: skip
        if ram is not None and ram > max_ram:
            raise InputError(f"CWL step {process!r} asks for {ram:g} MiB, more than --max-ram {settings.max_ram} "
                             f"({max_ram:g} MiB) allows; raise max_ram or lower the step's ramMin")  # fmt: skip


@dataclass(frozen=True)
class Rendered:
    """The objects of one Calrissian run."""

    name: str
    config_map: dict[str, Any]
    secret: dict[str, Any] | None
    job: dict[str, Any]

    @property
    def documents(self) -> list[dict[str, Any]]:
        """The manifests, in creation order."""
        return [d for d in (self.config_map, self.secret, self.job) if d is not None]

    def to_yaml(self) -> str:
        """The manifests as one YAML stream (secret values replaced: a dry run shows no credential)."""
        shown = [d if d is not self.secret else {**d, "stringData": {k: "<secret>" for k in d["stringData"]}}
                 for d in self.documents]  # fmt: skip
        return yaml.safe_dump_all(shown, sort_keys=False)


def render(document: CwlDocument, inputs: dict[str, Any], settings: CalrissianSettings, name: str,
           flow_run_id: str | None = None) -> Rendered:  # fmt: skip
    """The ConfigMap, optional Secret and Job of a run (pure: nothing is sent anywhere)."""
    ns = settings.namespace
    labels = {"app.kubernetes.io/managed-by": "eoflows", "app.kubernetes.io/name": "calrissian", LABEL_RUN: name,
              LABEL_FLOW_RUN: flow_run_id or "none"}  # fmt: skip
    has_secret = any(key in inputs for key in secret_inputs(document.content()))
    inputs_text = yaml.safe_dump(inputs, sort_keys=False)
    config = {
        "package.cwl": document.path.read_text(),
        "pod-labels.yml": yaml.safe_dump(
            {**settings.pod_labels, LABEL_RUN: name, LABEL_FLOW_RUN: flow_run_id or "none"}
        ),  # fmt: skip
        "pod-env-vars.yml": yaml.safe_dump(settings.pod_env),
        "pod-nodeselectors.yml": yaml.safe_dump(settings.node_selectors),
        **({} if has_secret else {"inputs.yml": inputs_text}),
    }
    meta = {"name": name, "namespace": ns, "labels": labels}
    config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": config}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque",
              "stringData": {"inputs.yml": inputs_text}} if has_secret else None  # fmt: skip
    out = f"{settings.output_path}/{name}"
    target = f"{CONFIG}/package.cwl" + (f"#{document.entry}" if document.entry else "")
    args = ["--max-ram", settings.max_ram, "--max-cores", str(settings.max_cores),
            "--tmp-outdir-prefix", f"{settings.tmpout_path}/{name}/", "--outdir", f"{out}/results/",
            "--stdout", f"{out}/outputs.json", "--stderr", f"{out}/calrissian.log",
            "--usage-report", f"{out}/usage.json",
            "--tool-logs-basepath", f"{out}/logs", "--pod-labels", f"{CONFIG}/pod-labels.yml",
            "--pod-env-vars", f"{CONFIG}/pod-env-vars.yml", "--pod-nodeselectors", f"{CONFIG}/pod-nodeselectors.yml",
            "--pod-serviceaccount", settings.service_account]  # fmt: skip
    if settings.dask_gateway_url:
        args += ["--dask-gateway-url", settings.dask_gateway_url]
    args += ["--enable-ext", target, f"{SECRET if has_secret else CONFIG}/inputs.yml"]
    env = [{"name": "CALRISSIAN_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
           {"name": "RETRY_ATTEMPTS", "value": str(settings.retry_attempts)},
           {"name": "CALRISSIAN_DELETE_PODS", "value": "false" if settings.keep_pods else "true"},
           {"name": "EOFLOWS_LOG", "value": f"{out}/calrissian.log"},
           {"name": "EOFLOWS_OUTPUTS", "value": f"{out}/outputs.json"},
           {"name": "EOFLOWS_USAGE", "value": f"{out}/usage.json"}]  # fmt: skip
    env += [{"name": var, "valueFrom": {"secretKeyRef": {"name": ref.split("/")[0], "key": ref.split("/")[1]}}}
            for var, ref in settings.secret_env.items()]  # fmt: skip
    claims = (("input-data", settings.input_claim, settings.input_path),
              ("tmpout", settings.tmpout_claim, settings.tmpout_path),
              ("output-data", settings.output_claim, settings.output_path))  # fmt: skip
    mounts = [{"name": "config", "mountPath": CONFIG, "readOnly": True}]
    volumes: list[dict[str, Any]] = [{"name": "config", "configMap": {"name": name}}]
    if has_secret:
        mounts.append({"name": "secret", "mountPath": SECRET, "readOnly": True})
        volumes.append({"name": "secret", "secret": {"secretName": name}})
    mounts += [{"name": vol, "mountPath": path} for vol, _, path in claims]
    volumes += [{"name": vol, "persistentVolumeClaim": {"claimName": claim}} for vol, claim, _ in claims]
    container = {"name": "calrissian", "image": settings.image, "command": ["sh", "-c", SCRIPT, "calrissian"],
                 "args": args, "env": env, "resources": settings.launcher_resources, "volumeMounts": mounts,
                 "securityContext": {"allowPrivilegeEscalation": False}}  # fmt: skip
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": {
        "backoffLimit": settings.backoff_limit,
        "template": {"metadata": {"labels": labels}, "spec": {
            "serviceAccountName": settings.service_account, "restartPolicy": "Never",
            "securityContext": {"runAsUser": settings.run_as_user, "runAsGroup": settings.run_as_group,
                                "fsGroup": settings.run_as_group},
            "containers": [container], "volumes": volumes}}}}  # fmt: skip
    return Rendered(name, config_map, secret, job)


def parse_log(text: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The outputs JSON and usage report printed after Calrissian's log (None when absent or unreadable)."""
    found: dict[str, Any] = {}
    for key, following in (("outputs", "usage"), ("usage", "end")):
        start, stop = text.rfind(MARKS[key]), text.rfind(MARKS[following])
        chunk = text[start + len(MARKS[key]) : stop].strip() if -1 < start < stop else ""
        try:
            found[key] = json.loads(chunk) if chunk else None
        except json.JSONDecodeError:
            found[key] = None
    return found["outputs"], found["usage"]


def k8s_name(name: str) -> str:
    """A job name as Calrissian makes it Kubernetes-safe for its pods (lower case, `-` for anything else)."""
    return re.sub(r"[^-a-z0-9]", "-", name.lower())


def usage_rows(usage: dict[str, Any], nodes: dict[str, str | None] | None = None) -> list[dict[str, Any]]:
    """One row per step pod of a Calrissian usage report (with the node it ran on, from `nodes` by pod step name)."""
    found = nodes or {}
    return [{"step": c.get("name"), "cores": c.get("cpus"), "RAM MB": round(c.get("ram_megabytes") or 0),
             "seconds": c.get("elapsed_seconds"), "exit code": c.get("exit_code"),
             **({"node": found.get(k8s_name(str(c.get("name"))))} if found else {})}
            for c in usage.get("children", [])]  # fmt: skip


def _final(status: Any) -> tuple[str, str, str] | None:
    for condition in (status.conditions or []) if status else []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return condition.type, condition.reason or "", condition.message or ""
    return None


@asynccontextmanager
async def _kubernetes(settings: CalrissianBlock) -> AsyncIterator[Any]:
    from kubernetes_asyncio import client, config

    if settings.cluster_config is not None:
        api = await settings.cluster_config.get_api_client()
    else:
        config.load_incluster_config()
        api = client.ApiClient()
    async with api:
        yield api


async def _wait(batch: Any, ns: str, name: str, settings: CalrissianSettings) -> tuple[str, str, str]:
    """Wait for the Job's final condition (tasks.remote.watching: resumed after 410 Gone, polled when failing)."""
    log, seen_failed = logger(), 0

    async def final(_kind: str, job: Any) -> tuple[str, str, str] | None:
        nonlocal seen_failed
        if job.metadata.name != name:
            return None
        status = job.status
        if status and (status.failed or 0) > seen_failed:
            seen_failed = status.failed
            log.warning("Calrissian pod attempt %d of Job %s failed; backoffLimit %d", seen_failed, name,
                        settings.backoff_limit)  # fmt: skip
        return _final(status)

    return await watch_until(batch.list_namespaced_job, ns, f"Job {name}", settings.poll_seconds, final,
                             field_selector=f"metadata.name={name}")  # fmt: skip


async def _pod_of(core: Any, ns: str, name: str) -> str | None:
    pods = await core.list_namespaced_pod(ns, label_selector=f"job-name={name}")
    return pods.items[-1].metadata.name if pods.items else None


async def _follow(core: Any, ns: str, name: str) -> None:
    """Forward the Calrissian pod's log to the run log as it comes, up to the outputs (best effort)."""
    from kubernetes_asyncio.client.exceptions import ApiException

    log = logger()
    try:
        while (pod := await _pod_of(core, ns, name)) is None:
            await asyncio.sleep(1)
        response = await core.read_namespaced_pod_log(pod, ns, follow=True, _preload_content=False)
        try:
            async for raw in response.content:
                line = raw.decode(errors="replace").rstrip("\n")
                if line.startswith(MARKS["outputs"]):
                    break
                log.info("calrissian | %s", line)
        finally:
            response.close()
    except (ApiException, OSError, TimeoutError) as exc:
        log.warning("Could not follow the log of Calrissian Job %s (%s); it is read again at the end", name, exc)


async def _cleanup(core: Any, batch: Any, ns: str, rendered: Rendered) -> None:
    from kubernetes_asyncio.client.exceptions import ApiException

    calls = [batch.delete_namespaced_job(rendered.name, ns, propagation_policy="Foreground"),
             core.delete_namespaced_config_map(rendered.name, ns)]  # fmt: skip
    if rendered.secret is not None:
        calls.append(core.delete_namespaced_secret(rendered.name, ns))
    for call in calls:
        try:
            await call
        except ApiException as exc:
            if exc.status != 404:
                logger().warning("Could not delete part of Calrissian run %s: %s", rendered.name, exc.reason)


async def _start(core: Any, batch: Any, ns: str, rendered: Rendered) -> None:
    """Create the run's ConfigMap, Secret (if any) and Job; the first two then owned by the Job."""
    await core.create_namespaced_config_map(ns, rendered.config_map)
    if rendered.secret is not None:
        await core.create_namespaced_secret(ns, rendered.secret)
    job = await batch.create_namespaced_job(ns, rendered.job)
    owner = [{"apiVersion": "batch/v1", "kind": "Job", "name": rendered.name, "uid": job.metadata.uid or "",
              "blockOwnerDeletion": True}]  # fmt: skip
    await core.patch_namespaced_config_map(rendered.name, ns, {"metadata": {"ownerReferences": owner}})
    if rendered.secret is not None:
        await core.patch_namespaced_secret(rendered.name, ns, {"metadata": {"ownerReferences": owner}})


def _failed(name: str, reason: str, message: str, text: str, runs: StepRuns) -> RemoteRunError:
    """The error of a failed Job: its condition, the step that failed with the end of its log, Calrissian's log."""
    tail = "\n".join(text.split(MARKS["outputs"])[0].splitlines()[-20:])
    step = runs.failure()
    where = f"{step}\nlast lines of Calrissian's log:\n" if step else "last log lines:\n"
    return RemoteRunError(f"Calrissian Job {name} failed ({reason}: {message}); {where}{tail}")


async def run_on_calrissian(document: CwlDocument, inputs: dict[str, Any], settings: CalrissianBlock,
                            dry_run: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run `document` with `inputs` on Calrissian; return its CWL outputs (`dry_run`: the manifests as YAML).

    Each step pod is a task run of its own while it runs (tasks.remote.step_pods); the run ends with a
    `cwl-timeline` of them.
    """
    check_fits(document.content(), settings)
    rendered = render(document, inputs, settings, f"eoflows-cwl-{secrets.token_hex(4)}", flow_run.get_id())
    if dry_run:
        return {"manifests": rendered.to_yaml()}
    from kubernetes_asyncio import client

    log, ns = logger(), settings.namespace
    async with _kubernetes(settings) as api:
        core, batch = client.CoreV1Api(api), client.BatchV1Api(api)
        follower: asyncio.Task | None = None
        watcher: asyncio.Task | None = None
        with StepRuns.of_this_run("calrissian") as runs:
            mirror = PodMirror(core, ns, rendered.name, runs, settings)
            try:
                await _start(core, batch, ns, rendered)
                log.info("Calrissian Job %s started in namespace %s (%s)", rendered.name, ns, document.target)
                follower = asyncio.create_task(_follow(core, ns, rendered.name))
                watcher = asyncio.create_task(mirror.watch())
                async with asyncio.timeout(settings.timeout_seconds):
                    kind, reason, message = await _wait(batch, ns, rendered.name, settings)
                await mirror.close(watcher)
                await asyncio.wait([follower], timeout=5)  # the log ends with the pod: let the last lines arrive
                pod = await _pod_of(core, ns, rendered.name)
                text = await core.read_namespaced_pod_log(pod, ns) if pod else ""
                if kind == "Failed":
                    raise _failed(rendered.name, reason, message, text, runs)
                outputs, usage = parse_log(text)
                if outputs is None:
                    raise RemoteRunError(f"Calrissian Job {rendered.name} completed without readable outputs JSON")
            except TimeoutError as exc:
                raise RemoteRunTimeout(f"Calrissian Job {rendered.name}: no result after "
                                       f"{settings.timeout_seconds:g} s; stopped and cleaned up") from exc  # fmt: skip
            finally:
                for task_ in (follower, watcher):
                    if task_ is not None:
                        task_.cancel()
                await asyncio.shield(asyncio.to_thread(runs.close, "the Calrissian run was stopped before this pod"))
                if not settings.keep_pods:
                    await asyncio.shield(_cleanup(core, batch, ns, rendered))
                else:
                    log.info("Keeping Calrissian Job %s and its pods (keep_pods)", rendered.name)
                report_timeline(runs.steps, f"Step pods of Calrissian run {rendered.name}")
    report_outputs(outputs, f"Outputs of Calrissian run {rendered.name}")
    if usage or runs.steps:
        rows = usage_rows(usage, {s.name: s.node for s in runs.steps}) if usage else job_rows(runs.steps)
        report_table("cwl-usage", f"Step pods of Calrissian run {rendered.name}", rows)
    log.info("Calrissian Job %s completed", rendered.name)
    return outputs


run_cwl_on_calrissian = task(run_on_calrissian, name="calrissian", cache_policy=NO_CACHE)

"""Kubernetes for eoflows: the work pool's base job template and the manifests users apply.

The job template is prefect-kubernetes' default with what eoflows needs: its image and namespace, a service
account for flow-run pods, credentials only by reference to a Secret (`envFrom`, optional), a non-root
security context, finished Jobs removed after an hour. It also moves `completions`/`parallelism`, which
the default puts inside the pod spec, to the Job spec where Kubernetes' schema has them.

```bash
eoflows k8s manifests --namespace eoflows --api-url http://prefect-server.prefect:4200/api | kubectl apply -f -
kubectl -n eoflows create secret generic eoflows-credentials --from-literal=AWS_ACCESS_KEY_ID=... ...
```
"""

import copy
from typing import Any

import kubernetes_validate
import yaml
from prefect_kubernetes.worker import KubernetesWorker

from eoflows import IMAGE
from eoflows.errors import InputError

KUBERNETES_VERSION = "1.30.0"
K8S_POOL = "eoflows-k8s"
WORKER_ACCOUNT = "eoflows-worker"
RUNNER_ACCOUNT = "eoflows-flow-runner"
CREDENTIALS_SECRET = "eoflows-credentials"
NON_ROOT = {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000}
CONTAINER_SECURITY = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def base_job_template(image: str = IMAGE, namespace: str = "eoflows") -> dict[str, Any]:
    """The base job template of the `eoflows-k8s` work pool."""
    template = copy.deepcopy(KubernetesWorker.get_default_base_job_template())
    props = template["variables"]["properties"]
    props["image"]["default"] = image
    props["namespace"]["default"] = namespace
    props["service_account_name"]["default"] = RUNNER_ACCOUNT
    props["finished_job_ttl"]["default"] = 3600
    props["backoff_limit"]["default"] = 0
    props["credentials_secret"] = {
        "title": "Credentials secret",
        "description": "Kubernetes Secret whose keys become environment variables of the flow-run pod "
        "(AWS_*, DASK_GATEWAY__*); optional. Values never appear in the job.",
        "type": "string",
        "default": CREDENTIALS_SECRET,
    }
    job = template["job_configuration"]["job_manifest"]
    spec = job["spec"]["template"]["spec"]
    for key in ("completions", "parallelism"):  # Job fields, not pod fields
        job["spec"][key] = spec.pop(key)
    spec["securityContext"] = dict(NON_ROOT)
    container = spec["containers"][0]
    container["envFrom"] = [{"secretRef": {"name": "{{ credentials_secret }}", "optional": True}}]
    container["securityContext"] = dict(CONTAINER_SECURITY)
    return template


def _meta(name: str, namespace: str | None = None) -> dict[str, Any]:
    meta = {"name": name, "labels": {"app.kubernetes.io/part-of": "eoflows"}}
    return {**meta, "namespace": namespace} if namespace else meta


def manifests(namespace: str, api_url: str, image: str = IMAGE, api_key_secret: str | None = None) -> list[dict]:
    """Namespace, service accounts, the worker's RBAC and the worker Deployment (secrets by reference only)."""
    if not api_url.startswith(("http://", "https://")):
        raise InputError(f"Prefect API URL {api_url!r}: expected http(s)://host[:port]/api")
    rules = [
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
    ]
    env = [
        {"name": "PREFECT_API_URL", "value": api_url},
        {"name": "PREFECT_INTEGRATIONS_KUBERNETES_OBSERVER_NAMESPACES", "value": namespace},
        {"name": "PREFECT_SERVER_ANALYTICS_ENABLED", "value": "false"},
    ]
    if api_key_secret:
        key_ref = {"name": api_key_secret, "key": "PREFECT_API_KEY"}
        env.append({"name": "PREFECT_API_KEY", "valueFrom": {"secretKeyRef": key_ref}})
    worker = {
        "name": "worker",
        "image": image,
        "command": ["prefect", "worker", "start", "--pool", K8S_POOL, "--type", "kubernetes", "--with-healthcheck"],
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        "securityContext": CONTAINER_SECURITY,
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 30, "periodSeconds": 30},
    }
    labels = {"app.kubernetes.io/name": "eoflows-worker"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(WORKER_ACCOUNT, namespace)},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(RUNNER_ACCOUNT, namespace)},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(WORKER_ACCOUNT, namespace),
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta(WORKER_ACCOUNT, namespace),
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": WORKER_ACCOUNT},
         "subjects": [{"kind": "ServiceAccount", "name": WORKER_ACCOUNT, "namespace": namespace}]},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta("eoflows-worker", namespace),
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": WORKER_ACCOUNT, "securityContext": NON_ROOT,
                                        "containers": [worker]}}}},
    ]  # fmt: skip


def validate(document: dict[str, Any]) -> None:
    """Validate a manifest against the Kubernetes JSON schema (offline, strict: unknown fields are errors)."""
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = "/".join(str(p) for p in exc.path)
        name = document.get("metadata", {}).get("name") or document.get("metadata", {}).get("generateName")
        raise InputError(f"{document.get('kind')} {name!r}: invalid at {where or '.'}: {exc.message}") from exc


def to_yaml(documents: list[dict[str, Any]]) -> str:
    """Documents as one multi-document YAML stream."""
    return yaml.safe_dump_all(documents, sort_keys=False)


def calrissian_manifests(namespace: str, storage_class: str | None = None, size: str = "10Gi",
                         flows_namespace: str = "eoflows") -> list[dict]:  # fmt: skip
    """What Calrissian runs need in a namespace: its service account, roles and RWX volume claims.

    `calrissian-sa` runs the Calrissian pod and its step pods (pods, pod logs, claims); `eoflows-flow-runner`
    of `flows_namespace` (the Prefect flow-run pods, see `manifests`) launches Calrissian Jobs with their
    ConfigMaps and Secrets in `namespace`.
    """
    from eoflows.settings import CalrissianSettings

    defaults = CalrissianSettings()
    rbac = "rbac.authorization.k8s.io/v1"
    roles = {
        "calrissian-pods": ((defaults.service_account, namespace), [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "patch", "delete", "list", "watch", "get"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["get", "list"]},
        ]),
        "calrissian-launcher": ((RUNNER_ACCOUNT, flows_namespace), [
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get", "list", "watch", "delete"]},
            {"apiGroups": [""], "resources": ["configmaps", "secrets"], "verbs": ["create", "get", "patch", "delete"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},  # step pods mirrored
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ]),
    }  # fmt: skip
    docs: list[dict] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(namespace)}]
    docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(defaults.service_account, namespace)})
    for role, ((account, home), rules) in roles.items():
        docs.append({"apiVersion": rbac, "kind": "Role", "metadata": _meta(role, namespace), "rules": rules})
        docs.append({"apiVersion": rbac, "kind": "RoleBinding", "metadata": _meta(role, namespace),
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                     "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": home}]})  # fmt: skip
    for claim in (defaults.input_claim, defaults.tmpout_claim, defaults.output_claim):
        spec = {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": size}}}
        docs.append({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(claim, namespace),
                     "spec": {**spec, **({"storageClassName": storage_class} if storage_class else {})}})  # fmt: skip
    return docs

"""`eoflows k8s`: Kubernetes manifests for running eoflows, validated against the real schemas (nothing applied)."""

import json

from cyclopts import App

app = App(name="k8s", help="Kubernetes manifests for running eoflows (offline: nothing is applied).")


@app.command(name="manifests")
def k8s_manifests(
    *, namespace: str = "eoflows", api_url: str, image: str | None = None, api_key_secret: str | None = None
) -> None:
    """Print the manifests of an eoflows namespace: service accounts, the worker's RBAC and Deployment.

    Args:
        namespace: Namespace to create and run in.
        api_url: Prefect API URL the worker reports to, e.g. http://prefect-server.prefect:4200/api.
        image: Worker image; default the image of this eoflows version.
        api_key_secret: Secret holding PREFECT_API_KEY (Prefect Cloud), referenced, never copied.
    """
    from deployments.kubernetes import manifests, to_yaml, validate
    from eoflows import IMAGE

    documents = manifests(namespace, api_url, image or IMAGE, api_key_secret)
    for document in documents:
        validate(document)
    print(to_yaml(documents), end="")


@app.command(name="calrissian-rbac")
def k8s_calrissian_rbac(
    *,
    namespace: str = "eoflows",
    storage_class: str | None = None,
    size: str = "10Gi",
    flows_namespace: str = "eoflows",
) -> None:
    """Print what Calrissian runs need in a namespace: service account, roles, bindings, RWX volume claims.

    Args:
        namespace: Namespace of the Calrissian Jobs and step pods.
        storage_class: Storage class of the claims (must support ReadWriteMany); empty: the default.
        size: Size of each claim.
        flows_namespace: Namespace of the Prefect flow-run pods that launch Calrissian (eoflows k8s manifests).
    """
    from deployments.kubernetes import calrissian_manifests, to_yaml, validate

    documents = calrissian_manifests(namespace, storage_class, size, flows_namespace)
    for document in documents:
        validate(document)
    print(to_yaml(documents), end="")


@app.command(name="job-template")
def k8s_job_template(*, namespace: str = "eoflows", image: str | None = None) -> None:
    """Print the base job template of the eoflows-k8s work pool (JSON), as `eoflows deploy` sets it.

    Args:
        namespace: Namespace of the jobs.
        image: Image of the jobs; default the image of this eoflows version.
    """
    from deployments.kubernetes import base_job_template
    from eoflows import IMAGE

    print(json.dumps(base_job_template(image or IMAGE, namespace), indent=2))

"""Calrissian settings as a Prefect block (the fields: `eoflows.settings.CalrissianSettings`), with a kubeconfig.

```python
from blocks.calrissian import CalrissianBlock

CalrissianBlock(namespace="eoap", max_ram="32G", max_cores=16,
                dask_gateway_url="http://traefik-dask-gateway.eoap:80",
                secret_env={"AWS_ACCESS_KEY_ID": "s3-keys/id", "AWS_SECRET_ACCESS_KEY": "s3-keys/secret"}
                ).save("eoap")
# then: prefect deployment run 'run-cwl/...' -p cwl=s2-indices -p calrissian=eoap -p inputs='{...}'
```
`eoflows k8s calrissian-rbac --namespace eoap` prints the service account, roles and volume claims it expects.
"""

from prefect.blocks.core import Block
from prefect_kubernetes.credentials import KubernetesClusterConfig
from pydantic import Field

from eoflows.settings import CalrissianSettings


class CalrissianBlock(Block, CalrissianSettings):
    """Namespace, image, volumes, limits and step-pod settings of Calrissian runs, and the cluster to reach."""

    _block_type_name = "eoflows Calrissian"
    _block_type_slug = "eoflows-calrissian"
    _description = "Where and how eoflows runs CWL with Calrissian on Kubernetes."

    cluster_config: KubernetesClusterConfig | None = Field(
        default=None, description="Kubeconfig to use; empty: the in-cluster service account."
    )

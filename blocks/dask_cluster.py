"""Dask settings as a Prefect block (the fields and their reading: `eoflows.settings.DaskSettings`).

```python
from blocks.dask_cluster import DaskBlock

DaskBlock(address="http://traefik-dask-gateway.ns.svc.cluster.local", auth="jupyterhub", api_token="...",
          image="ghcr.io/eoflows/eoflows:0.1.0", worker_memory="4 G", maximum=8).save("eoap")
# then: prefect deployment run 's2-indices/...' -p dask=eoap
```
Without a block, `DaskBlock.from_env()` reads what a container is given: the `gateway.*` dask
configuration (`DASK_GATEWAY__ADDRESS`, `DASK_GATEWAY__AUTH__TYPE`, ... or a gateway.yaml in /etc/dask),
Calrissian's `DASK_GATEWAY_URL`, and the cluster Calrissian procured for the step in `DASK_CLUSTER`.

Any other running Dask cluster (the Dask Kubernetes operator, Coiled, `dask scheduler` and `dask worker` by
hand) is named by its scheduler: `scheduler_address`, or Dask's own `DASK_SCHEDULER_ADDRESS`. eoflows connects
to it and leaves it running, as it does a Gateway cluster named in `DASK_CLUSTER`.
"""

from prefect.blocks.core import Block

from eoflows.settings import DaskSettings


class DaskBlock(Block, DaskSettings):
    """Which Dask cluster the Dask steps use: a Dask Gateway and the cluster to get from it, or a running one."""

    _block_type_name = "eoflows Dask cluster"
    _block_type_slug = "eoflows-dask-gateway"  # (the slug of saved blocks since the first release)
    _description = (
        "Dask Gateway address, authentication and cluster options, or the scheduler of a running Dask cluster, for "
        "the Dask steps of eoflows flows."
    )

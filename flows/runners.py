"""The one place that turns Dask settings into the task runner of a flow's Dask steps.

Four ways to get a cluster, chosen by the `dask` settings of the step (a saved block, or the environment):

1. none configured: a temporary `LocalCluster` of threads in the flow's process, sized to the machine;
2. a gateway: a new Dask Gateway cluster for this flow run, adaptive between `minimum` and `maximum` workers,
   shut down when the step ends, also when it fails or the run is cancelled;
3. a gateway and a cluster name (e.g. `DASK_CLUSTER`, the cluster Calrissian procured): that running cluster,
   neither created nor shut down;
4. a scheduler address (`DASK_SCHEDULER_ADDRESS`): that running Dask cluster, neither created nor shut down.

```python
from flows.runners import task_runner

with task_runner(settings) as runner:
    future = runner.submit(my_task, {"x": 1})
```
prefect-dask pitfalls avoided here: `cluster=<object>` is lost when Prefect copies the runner (use a cluster
class and keyword arguments), and a gateway cluster without `adapt_kwargs` gets no workers.
"""

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

import dask
from prefect_dask import DaskTaskRunner

from blocks.dask_cluster import DaskBlock
from tasks.windows import LOCAL_CLUSTER, NO_PROFILER


def local_task_runner() -> DaskTaskRunner:
    """A temporary `LocalCluster` in the flow's process: one worker of threads, dashboard on a free port.

    One more thread than cores, as the step's local threads (`tasks.windows`): each window also waits on files.
    Threads, not a worker process: the windows' compute is faster in the flow's process (README, "Benchmark"),
    and a worker process would start the science and Prefect anew and need the flow's API address to report its
    task runs. Work that needs isolation or more than this machine goes to a Dask Gateway.
    """
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO chatter drowns the run log
    return DaskTaskRunner(
        cluster_class=LOCAL_CLUSTER,
        cluster_kwargs={
            "n_workers": 1,
            "threads_per_worker": (os.cpu_count() or 1) + 1,
            "processes": False,
            "dashboard_address": "127.0.0.1:0",
            "silence_logs": logging.WARNING,
        },
    )


@contextmanager
def task_runner(settings: DaskBlock | None = None) -> Iterator[DaskTaskRunner]:
    """A started task runner for `settings` (see the module docstring); stopped, and its cluster released, on exit."""
    if settings is None or not settings.enabled:
        with dask.config.set(NO_PROFILER), local_task_runner() as runner:
            yield runner
        return
    if settings.scheduler_address:
        with DaskTaskRunner(address=settings.scheduler_address) as runner:
            yield runner
        return
    from tasks.remote.gateway import existing_cluster, new_cluster

    if settings.cluster_name:
        with existing_cluster(settings) as cluster:
            runner = DaskTaskRunner(address=cluster.scheduler_address, client_kwargs={"security": cluster.security})
            with runner:
                yield runner
        return
    runner = DaskTaskRunner(
        cluster_class=new_cluster,
        cluster_kwargs={"settings": settings},
        adapt_kwargs={"minimum": settings.minimum, "maximum": settings.maximum},
    )
    with runner:
        yield runner


def describe_cluster(runner: DaskTaskRunner, settings: DaskBlock | None) -> list[dict[str, object]]:
    """Rows for the cluster table artifact: which cluster, its options and its size."""
    client = runner.client
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    cluster = getattr(client, "cluster", None)
    rows: list[dict[str, object]] = [
        {"property": "backing", "value": settings.describe() if settings else "a local Dask cluster"},
        {"property": "cluster", "value": getattr(cluster, "name", None) or (settings and settings.cluster_name) or "-"},
        {"property": "scheduler", "value": info.get("address", "?")},
        {"property": "dashboard", "value": client.dashboard_link or "-"},
        {"property": "workers now", "value": len(workers)},
        {"property": "threads now", "value": sum(w.get("nthreads", 0) for w in workers.values())},
        {"property": "memory now (GiB)",
         "value": round(sum(w.get("memory_limit", 0) for w in workers.values()) / 2**30, 1)},
    ]  # fmt: skip
    if settings and settings.enabled and not settings.existing:
        rows.append({"property": "adaptive workers", "value": f"{settings.minimum} to {settings.maximum}"})
        rows += [{"property": f"option {k}", "value": str(v)} for k, v in settings.cluster_options().items()]
    return rows

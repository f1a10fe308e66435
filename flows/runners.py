"""The one place that turns Dask settings into the task runner of a flow's Dask steps.

```python
from flows.runners import task_runner

with task_runner() as runner:           # a LocalCluster sized to the machine
    future = runner.submit(my_task, {"x": 1})
```
"""

import logging
import os

from prefect.client.orchestration import get_client
from prefect_dask import DaskTaskRunner


def prefect_api_env() -> dict[str, str]:
    """`PREFECT_API_URL` of this process's Prefect API, for worker processes to report to the same one.

    Without `PREFECT_API_URL` set, Prefect serves a temporary API inside the flow process; a worker that does
    not know its address would start another one, and its task runs, logs and artifacts would be lost.
    """
    with get_client(sync_client=True) as client:
        return {"PREFECT_API_URL": str(client.api_url).rstrip("/")}


def local_task_runner() -> DaskTaskRunner:
    """A temporary `LocalCluster`: one worker process with a thread per core, dashboard on a free port."""
    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO chatter drowns the run log
    return DaskTaskRunner(
        cluster_class="distributed.LocalCluster",
        cluster_kwargs={
            "n_workers": 1,
            "threads_per_worker": os.cpu_count() or 1,
            "processes": True,
            "dashboard_address": "127.0.0.1:0",
            "silence_logs": logging.WARNING,
            "env": {"MALLOC_ARENA_MAX": "2", **prefect_api_env()},  # see tasks.executor.limit_malloc_arenas
        },
    )


def task_runner() -> DaskTaskRunner:
    """The task runner for a flow run's Dask steps."""
    return local_task_runner()


def describe_cluster(runner: DaskTaskRunner) -> list[dict[str, object]]:
    """Rows for the cluster table artifact: where the Dask steps run and with what."""
    client = runner.client
    info = client.scheduler_info(n_workers=-1)
    workers = info.get("workers", {})
    return [
        {"property": "scheduler", "value": info.get("address", "?")},
        {"property": "dashboard", "value": client.dashboard_link or "-"},
        {"property": "workers", "value": len(workers)},
        {"property": "threads", "value": sum(w.get("nthreads", 0) for w in workers.values())},
        {
            "property": "memory (GiB)",
            "value": round(sum(w.get("memory_limit", 0) for w in workers.values()) / 2**30, 1),
        },
    ]

"""Overhead of the Dask Gateway path against the local path, on the same small scene; windows spread on workers.

For each backing (a LocalCluster; a new cluster on a local dask-gateway-server): cluster up, first task on a
fresh worker, teardown, and the whole `s2-indices` flow on a 1098 x 1098 sample. Prints seconds and ratios.
Then the same flow on a gateway cluster of 1 and of 2 workers: how many windows each worker ran (2 cores
cannot show a speed-up; the spread is what scales out).

    .venv/bin/python bench/gateway_overhead.py      (part of `make bench`)
"""

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import json  # noqa: E402

from prefect import flow, task  # noqa: E402
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from eoflows.local.gateway import local_gateway  # noqa: E402
from eoflows.samples.s2_eopf import write_sample  # noqa: E402
from flows.package_flows import s2_indices  # noqa: E402
from flows.runners import task_runner  # noqa: E402


@task
def ping() -> int:
    return os.getpid()


@flow
def phases(settings) -> dict[str, float]:
    t0 = time.perf_counter()
    with task_runner(settings) as runner:
        runner.client  # noqa: B018 - cluster up, client connected
        t1 = time.perf_counter()
        runner.submit(ping, {}).result()
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    return {"cluster up": t1 - t0, "first task": t2 - t1, "teardown": t3 - t2}


def compute_usage(state) -> dict[str, str]:
    """The compute-usage table of a flow run, measure -> value."""
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
            key=ArtifactFilterKey(any_=["compute-usage"])))  # fmt: skip
    return {row["measure"]: str(row["value"]) for row in json.loads(artifact.data)}


def spread(gateway, item: Path, folder: Path) -> list[tuple[int, str, str]]:
    """(workers, windows per worker, compute wall s) of the flow on gateway clusters of 1 and 2 workers."""
    found = []
    for workers in (1, 2):
        gateway.settings(minimum=workers, maximum=workers).save("bench-spread", overwrite=True)
        state = s2_indices(item=str(item), destination=str(folder / f"spread-{workers}"), dask="bench-spread",
                           return_state=True)  # fmt: skip
        usage = compute_usage(state)
        found.append((workers, usage["windows per worker"], usage["wall time (s)"]))
    return found


def main() -> None:
    with prefect_test_harness(server_startup_timeout=120), tempfile.TemporaryDirectory() as folder:
        item = write_sample(Path(folder) / "sample", size=1098)
        env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        with local_gateway(env=env) as gateway:
            results = {}
            for label, settings in (("local", None), ("gateway", gateway.settings(maximum=2))):
                measured = phases(settings)
                block = None
                if settings is not None:
                    settings.save("bench-gateway", overwrite=True)
                    block = "bench-gateway"
                t0 = time.perf_counter()
                s2_indices(item=str(item), destination=str(Path(folder) / label), dask=block)
                measured["s2-indices flow (1098 px)"] = time.perf_counter() - t0
                results[label] = measured
            spreads = spread(gateway, item, Path(folder))
    print("\nDask backing overhead, same machine (gateway: dask-gateway-server, local backend)\n")
    print(f"{'phase':<28} {'local s':>9} {'gateway s':>10} {'ratio':>7}")
    for phase in results["local"]:
        local, gateway = results["local"][phase], results["gateway"][phase]
        print(f"{phase:<28} {local:>9.2f} {gateway:>10.2f} {gateway / local:>6.1f}x")
    print("\nWindows of one s2-indices run (1098 px) on gateway clusters of 1 and 2 workers\n")
    print(f"{'workers':<8} {'windows per worker':<20} {'compute s':>9}")
    for workers, per_worker, wall in spreads:
        print(f"{workers:<8} {per_worker:<20} {wall:>9}")


if __name__ == "__main__":
    main()

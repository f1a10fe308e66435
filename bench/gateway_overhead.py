"""Overhead of the Dask Gateway path against the local path, on the same small scene.

For each backing (a LocalCluster; a new cluster on a local dask-gateway-server): cluster up, first task on a
fresh worker, teardown, and the whole `s2-indices` flow on a 1098 x 1098 sample. Prints seconds and ratios.

    .venv/bin/python bench/gateway_overhead.py      (part of `make bench`)
"""

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect import flow, task  # noqa: E402
from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from eoflows.local.gateway import local_gateway  # noqa: E402
from eoflows.samples.s2_eopf import write_sample  # noqa: E402
from flows.runners import task_runner  # noqa: E402
from flows.s2_indices import s2_indices  # noqa: E402


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
    print("\nDask backing overhead, same machine (gateway: dask-gateway-server, local backend)\n")
    print(f"{'phase':<28} {'local s':>9} {'gateway s':>10} {'ratio':>7}")
    for phase in results["local"]:
        local, gateway = results["local"][phase], results["gateway"][phase]
        print(f"{phase:<28} {local:>9.2f} {gateway:>10.2f} {gateway / local:>6.1f}x")


if __name__ == "__main__":
    main()

"""The OGC API's job list and execute under load: a page of /jobs among 1,000 flow runs, 100 async executions.

A temporary Prefect server (SQLite), the `downsample/local` deployment, 1,000 flow runs of it (never run: no
worker), then through the API application (in process, a real Prefect API behind it): the first page of
`/jobs`, a page deep in the list and filtered pages (medians of 5; a duration filter, which Prefect has not,
reads up to 400 runs for a page), and 100 async `execute` requests in a row
(their rate and slowest). Targets: a page in well under a second; executions accepted at a steady rate.

    .venv/bin/python bench/ogc_jobs.py      (part of `make bench`)
"""

import os
import statistics
import tempfile
import time

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from fastapi.testclient import TestClient  # noqa: E402

from deployments.processes_api import PROCESS_TAG, TAG, ServerSettings, create_app  # noqa: E402
from eoflows.prefect_api import prefect_api  # noqa: E402

RUNS, EXECUTIONS, REPEATS = 1000, 100, 5


def timed(call, *args, **kwargs) -> float:
    t0 = time.perf_counter()
    answer = call(*args, **kwargs)
    seconds = time.perf_counter() - t0
    assert answer.status_code in (200, 201), answer.text
    return seconds


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="eoflows-bench-ogc-") as home:
        os.environ["PREFECT_HOME"] = home
        with prefect_api():
            from prefect import get_client

            from deployments.deploy import ensure_pools
            from flows.package_flows import flow_of

            ensure_pools()
            with get_client(sync_client=True) as client:
                flow_id = client.create_flow(flow_of("downsample"))
                deployment = client.create_deployment(flow_id, "local", entrypoint="flows.package_flows:downsample",
                                                      work_pool_name="eoflows-local")  # fmt: skip
                t0 = time.perf_counter()
                for n in range(RUNS):
                    client.create_flow_run_from_deployment(deployment, parameters={"url": f"/data/{n}.tif",
                                                                                   "destination": home},
                                                           tags=[TAG, PROCESS_TAG + "downsample"])  # fmt: skip
                made = time.perf_counter() - t0
            api = TestClient(create_app(ServerSettings(home)))
            pages = {
                "first page (10 jobs)": ("/jobs", {}),
                "page at offset 500": ("/jobs", {"offset": 500, "limit": 10}),
                "processID + status filter": ("/jobs", {"processID": "downsample", "status": "accepted"}),
                "datetime filter": ("/jobs", {"datetime": "2000-01-01T00:00:00Z/.."}),
                "minDuration filter, no match (reads 400 runs)": ("/jobs", {"minDuration": 1}),
                "one job": (f"/jobs/{api.get('/jobs').json()['jobs'][0]['jobID']}", {}),
            }
            rows = [(name, statistics.median(timed(api.get, path, params=params) for _ in range(REPEATS)))
                    for name, (path, params) in pages.items()]  # fmt: skip
            body = {"inputs": {"url": "/data/x.tif"}}
            latencies = [timed(api.post, "/processes/downsample/execution", json=body,
                               headers={"Prefer": "respond-async"}) for _ in range(EXECUTIONS)]  # fmt: skip
    print(f"[bench] {RUNS} flow runs made in {made:.1f} s ({RUNS / made:.0f}/s) on a temporary SQLite Prefect server")
    for name, seconds in rows:
        print(f"[bench] GET {name}: {seconds * 1000:.0f} ms (median of {REPEATS}; target < 1000 ms: "
              f"{seconds / 1.0:.2f} of it)")  # fmt: skip
    total = sum(latencies)
    print(f"[bench] {EXECUTIONS} async executions: {EXECUTIONS / total:.1f}/s, median "
          f"{statistics.median(latencies) * 1000:.0f} ms, slowest {max(latencies) * 1000:.0f} ms, last ten / first "
          f"ten {statistics.mean(latencies[-10:]) / statistics.mean(latencies[:10]):.2f} (1 = steady)")  # fmt: skip


if __name__ == "__main__":
    main()

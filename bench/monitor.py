"""Fan-out of the `monitor` flow: 20 small Sentinel-2 items through `s2-indices/local` on a process worker.

A STAC API (`rustac serve`) holds 20 items of one 120 x 120 px sample scene; the monitor runs the package's
deployment on each, 2 at a time (2 cores). Prints items per minute and, per item, the Prefect overhead:
its run time (created -> finished) minus its compute step, split into waiting for the worker, flow-run
start-up (process, imports, cluster) and the rest.

    .venv/bin/python bench/monitor.py      (part of `make bench`)
"""

import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
)
from prefect.settings import PREFECT_API_URL  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from eoflows.local.stac_api import api_item, local_stac_api  # noqa: E402
from eoflows.samples.s2_eopf import write_sample  # noqa: E402
from flows.monitor import monitor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ITEMS, CONCURRENT = 20, 2


def main() -> None:
    with prefect_test_harness(server_startup_timeout=120), tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_WORKER_QUERY_SECONDS": "1"}
        bin_dir = Path(sys.executable).parent
        subprocess.run([str(bin_dir / "eoflows"), "deploy", "--project", str(ROOT)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        scene = write_sample(Path(folder) / "scene", size=120, seed=3)
        start = dt.datetime(2025, 6, 1, 10, tzinfo=dt.UTC)
        items = [api_item(scene, Path(folder) / "items", f"S2-bench-{i:02d}", datetime=start + dt.timedelta(days=i))
                 for i in range(ITEMS)]  # fmt: skip
        worker = subprocess.Popen([str(bin_dir / "prefect"), "worker", "start", "--pool", "eoflows-local"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            with local_stac_api(items) as api:
                t0 = time.perf_counter()
                state = monitor(stac_api=api.url, package="s2-indices", collections=["sentinel-2-l2a"],
                                destination=str(Path(folder) / "out"), parameters={"products": ["ndvi", "rgb"]},
                                max_concurrent=CONCURRENT, return_state=True)  # fmt: skip
                wall = time.perf_counter() - t0
        finally:
            worker.terminate()
            worker.wait(30)
        counts = state.result()
        with get_client(sync_client=True) as client:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])))  # fmt: skip
            rows = []
            for run in runs:
                of_run = FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
                task_runs = client.read_task_runs(flow_run_filter=of_run, task_run_filter=TaskRunFilter())
                steps = {t.name: t for t in task_runs}
                first_step = min(t.start_time for t in steps.values() if t.start_time)
                rows.append({
                    "total": (run.end_time - run.created).total_seconds(),
                    "queued": (run.start_time - run.created).total_seconds(),
                    "start-up": (first_step - run.start_time).total_seconds(),
                    "compute": steps["compute"].total_run_time.total_seconds(),
                })  # fmt: skip
    assert counts["processed"] == ITEMS, counts
    mean = {k: statistics.mean(r[k] for r in rows) for k in rows[0]}
    print(f"\nmonitor fan-out: {ITEMS} items of 120 x 120 px through s2-indices/local, {CONCURRENT} at a time\n")
    print(f"  wall time                 {wall:7.1f} s")
    print(f"  items per minute          {ITEMS / wall * 60:7.1f}")
    print("  per item (mean):")
    print(f"    run time                {mean['total']:7.1f} s   (created -> finished)")
    print(f"    compute step            {mean['compute']:7.1f} s")
    print(f"    Prefect overhead        {mean['total'] - mean['compute']:7.1f} s   (run time - compute)")
    print(f"      waiting for a worker  {mean['queued']:7.1f} s")
    print(f"      flow-run start-up     {mean['start-up']:7.1f} s   (process, imports, until the first step)")
    other = mean["total"] - mean["compute"] - mean["queued"] - mean["start-up"]
    print(f"      rest                  {other:7.1f} s   (stage-in, stage-out, cluster, reporting)")


if __name__ == "__main__":
    main()

"""Fan-out of the `monitor` flow: 20 small Sentinel-2 items through `s2-indices/local` on a process worker.

A STAC API (`rustac serve`) holds 20 items of one 120 x 120 px sample scene; the monitor runs the package's
deployment on each, 2 at a time (2 cores), on the test server (SQLite) and on a server backed by PostgreSQL
(Prefect's production database, `eoflows.local.postgres`). Prints items per minute and, per item,
the Prefect overhead: its run time (created -> finished) minus its compute step, split into waiting for a
worker to take it, the run's process start (imports, loading the flow), flow-run start-up and the rest; and the
time a concurrency slot stays idle between two runs (the monitor seeing the end, taking the slot again,
creating the next run; on SQLite, also the client's retries of the 503s its "database is locked" gives).

    .venv/bin/python bench/monitor.py                       (part of `make bench`)
    .venv/bin/python bench/monitor.py --databases sqlite
"""

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from load import database, prefect_server  # noqa: E402  (bench/load.py: the same servers as the load benchmark)
from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import (  # noqa: E402
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
    TaskRunFilter,
)
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from eoflows.local.stac_api import api_item, local_stac_api  # noqa: E402
from eoflows.samples.s2_eopf import write_sample  # noqa: E402
from flows.monitor import monitor  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ITEMS, CONCURRENT = 20, 2


def fan_out(kind: str, folder: Path) -> dict[str, float]:
    """Run the monitor over ITEMS items on a server backed by `kind`; wall time and the mean of each part per item."""
    with prefect_api(kind, folder) as api_url:
        env = {**os.environ, "PREFECT_API_URL": api_url, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        bin_dir = Path(sys.executable).parent
        subprocess.run([str(bin_dir / "eoflows"), "deploy", "--project", str(ROOT)], env=env, check=True,
                       capture_output=True)  # fmt: skip
        scene = write_sample(folder / "scene", size=120, seed=3)
        start = dt.datetime(2025, 6, 1, 10, tzinfo=dt.UTC)
        items = [api_item(scene, folder / "items", f"S2-bench-{i:02d}", datetime=start + dt.timedelta(days=i))
                 for i in range(ITEMS)]  # fmt: skip
        worker = subprocess.Popen([str(bin_dir / "prefect"), "worker", "start", "--pool", "eoflows-local"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            with local_stac_api(items) as api:
                t0 = time.perf_counter()
                state = monitor(stac_api=api.url, package="s2-indices", collections=["sentinel-2-l2a"],
                                destination=str(folder / "out"), parameters={"products": ["ndvi", "rgb"]},
                                max_concurrent=CONCURRENT, return_state=True)  # fmt: skip
                wall = time.perf_counter() - t0
        finally:
            worker.terminate()
            worker.wait(30)
        counts = state.result()
        assert counts["processed"] == ITEMS, counts
        rows = [parts(client_run) for client_run in child_runs(state.state_details.flow_run_id)]
    return {"wall": wall, **{k: statistics.mean(r[k] for r in rows) for k in rows[0]}}


@contextmanager
def prefect_api(kind: str, folder: Path) -> Iterator[str]:
    """A Prefect API on `kind`: the test server (SQLite, as the tests use) or a server on PostgreSQL; its URL."""
    if kind == "sqlite":
        with prefect_test_harness(server_startup_timeout=120):
            yield PREFECT_API_URL.value()
        return
    home = folder / "home"
    home.mkdir(parents=True)
    with database(kind, folder) as url, prefect_server(url, home) as api_url:
        with temporary_settings({PREFECT_API_URL: api_url}):
            yield api_url


def child_runs(parent: object) -> list:
    """The flow runs the monitor started."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
        )


def parts(run: object) -> dict[str, float]:
    """Where one item's run time went, from its states and its task runs."""
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), task_run_filter=TaskRunFilter()
        )
        pending = min(s.timestamp for s in client.read_flow_run_states(run.id) if s.type.value == "PENDING")
    steps = {t.name: t for t in task_runs}
    first_step = min(t.start_time for t in steps.values() if t.start_time)
    return {
        "total": (run.end_time - run.created).total_seconds(),
        "picked up": (pending - run.created).total_seconds(),
        "process": (run.start_time - pending).total_seconds(),
        "start-up": (first_step - run.start_time).total_seconds(),
        "compute": steps["compute"].total_run_time.total_seconds(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"], choices=["postgresql", "sqlite"])
    parser.add_argument("--one", choices=["postgresql", "sqlite"], help=argparse.SUPPRESS)  # a child's database
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="eoflows-monitor-") as tmp:
            print(json.dumps(fan_out(args.one, Path(tmp))))
        return
    found = {}
    for kind in args.databases:
        # a process per server: Prefect keeps process-wide clients (the concurrency service's) bound to the first
        print(f"[bench] monitor over {ITEMS} items on {kind} ...", file=sys.stderr, flush=True)
        child = subprocess.run([sys.executable, __file__, "--one", kind], stdout=subprocess.PIPE, text=True, check=True)
        found[kind] = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"\nmonitor fan-out: {ITEMS} items of 120 x 120 px through s2-indices/local, {CONCURRENT} at a time, "
          f"one process worker, {os.cpu_count()} cores\n")  # fmt: skip
    kinds = list(found)
    print(f"  {'':40}" + "".join(f"{k:>12}" for k in kinds))

    def row(label: str, value, unit: str = "s", note: str = "") -> None:
        cells = "".join(f"{value(found[k]):12.1f}" for k in kinds)
        print(f"  {label:40}{cells} {unit}   {note}")

    row("wall time", lambda m: m["wall"])
    row("items per minute", lambda m: ITEMS / m["wall"] * 60, "")
    print("  per item (mean):")
    row("  run time", lambda m: m["total"], note="(created -> finished)")
    row("  compute step", lambda m: m["compute"])
    row("  Prefect overhead", lambda m: m["total"] - m["compute"], note="(run time - compute)")
    row("    until a worker takes it", lambda m: m["picked up"], note="(created -> Pending)")
    row("    the run's process", lambda m: m["process"], note="(Pending -> Running: process, imports, flow)")
    row("    flow-run start-up", lambda m: m["start-up"], note="(Running -> first step)")
    row("    rest", lambda m: m["total"] - m["compute"] - m["picked up"] - m["process"] - m["start-up"],
        note="(stage-in, stage-out, cluster, reporting)")  # fmt: skip
    row("  slot idle between runs", lambda m: m["wall"] * CONCURRENT / ITEMS - m["total"],
        note=f"(wall x {CONCURRENT} / {ITEMS} - run time: seeing the end, the slot, the next run)")  # fmt: skip


if __name__ == "__main__":
    main()

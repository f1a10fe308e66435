"""Load: 20 small `s2-indices/local` runs submitted at once, on a Prefect server backed by PostgreSQL and by SQLite.

For each database: a throwaway server (PostgreSQL from `eoflows.local.postgres`, or a SQLite file), `prefect
server start` on it, `eoflows deploy`, one process worker allowed all the runs at once (`--limit` = the number
of runs: the 2 cores are shared by every run, no queueing in the worker), then the runs are created together
(120 x 120 px sample item, ndvi and rgb, to a folder). Checks: exactly that many flow runs of the deployment,
each Completed once (one Running and one Completed state), one catalog.json per run. Prints runs per minute
(first created -> last Completed), p50/p95 of each run's created -> Completed, and the server log's lines
"database is locked".

    .venv/bin/python bench/load.py                 (part of `make bench`; exits 1 if a check fails)
    .venv/bin/python bench/load.py --runs 4 --databases postgresql
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

from prefect.client.orchestration import get_client  # noqa: E402
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId  # noqa: E402
from prefect.settings import PREFECT_API_URL, temporary_settings  # noqa: E402

from eoflows.local.postgres import local_postgres  # noqa: E402
from eoflows.processes import free_port, http_process  # noqa: E402
from eoflows.samples.s2_eopf import write_sample  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEPLOYMENT = "s2-indices/local"
PRODUCTS = ["ndvi", "rgb"]
LOCKED = "database is locked"


@dataclass(frozen=True)
class Load:
    """What one load run found: the runs, their fate, their timings and the server's lock errors."""

    database: str
    submitted: int
    found: int  # flow runs of the deployment on the server
    completed_once: int  # runs whose final state is Completed, with one Running and one Completed state
    states: dict[str, int]  # final state name -> runs
    catalogs: int  # runs with <destination>/<run id>/catalog.json
    extra_folders: int  # folders in the destination that belong to no run
    span_s: float  # first created -> last Completed
    run_s: list[float]  # each run's created -> Completed
    locked: int  # "database is locked" lines in the server log

    @property
    def ok(self) -> bool:
        """All runs found once, Completed once, and published."""
        n = self.submitted
        return self.found == self.completed_once == self.catalogs == n and self.extra_folders == 0

    @property
    def runs_per_minute(self) -> float:
        """Completed runs per minute over the span."""
        return self.completed_once / self.span_s * 60 if self.span_s else 0.0

    def percentile(self, q: int) -> float:
        """The q-th percentile of the runs' created -> Completed times (inclusive method)."""
        if len(self.run_s) < 2:
            return self.run_s[0] if self.run_s else float("nan")
        return statistics.quantiles(self.run_s, n=100, method="inclusive")[q - 1]


@contextmanager
def prefect_server(database_url: str, home: Path) -> Iterator[str]:
    """`prefect server start` on `database_url` (UI off), its log in `home`/server.log; yields its API URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_API_DATABASE_CONNECTION_URL": database_url}  # fmt: skip
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with http_process(command, f"{url}/health", "prefect server", timeout=180, stop_timeout=20, log=home / "server.log",
                      env=env):  # fmt: skip
        yield url


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """The SQLAlchemy URL of a new database of `kind` (postgresql or sqlite) in or for `folder`."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder / 'prefect.db'}"
        return
    with local_postgres("prefect") as pg:
        yield pg.url()


async def submit(deployment_id, runs: int, parameters: dict) -> list:
    """Create `runs` flow runs of the deployment at once; their ids."""
    async with get_client() as client:
        created = await asyncio.gather(*(client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
                                         for _ in range(runs)))  # fmt: skip
    return [run.id for run in created]


def load(kind: str, runs: int, item: Path, folder: Path, timeout: float = 900) -> Load:
    """Run `runs` s2-indices runs at once on a Prefect server backed by `kind` (postgresql or sqlite)."""
    home, destination = folder / "home", folder / "published"
    home.mkdir(parents=True)
    with ExitStack() as stack:
        url = stack.enter_context(prefect_server(stack.enter_context(database(kind, folder)), home))
        stack.enter_context(temporary_settings({PREFECT_API_URL: url}))
        env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        deploy = subprocess.run([str(BIN / "eoflows"), "deploy", "--project", str(ROOT)], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=600)  # fmt: skip
        if deploy.returncode != 0:
            raise RuntimeError(f"eoflows deploy failed: {deploy.stderr[-3000:]}")
        worker_log = stack.enter_context(open(home / "worker.log", "w"))
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "eoflows-local", "--type",
                                   "process", "--limit", str(runs)], env=env, stdout=worker_log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        stack.callback(worker.wait, 30)
        stack.callback(worker.terminate)
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        parameters = {"item": str(item), "destination": str(destination), "products": PRODUCTS}
        ids = asyncio.run(submit(deployment.id, runs, parameters))
        of_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while True:
                found = client.read_flow_runs(deployment_filter=of_deployment, limit=runs + 10)
                if all(r.state and r.state.is_final() for r in found) or time.monotonic() > deadline:
                    break
                time.sleep(1)  # polling the server, bounded by the deadline
            histories = {r.id: [s.type.value for s in client.read_flow_run_states(r.id)] for r in found}
    done = [r for r in found if r.state.is_completed() and histories[r.id].count("COMPLETED") == 1
            and histories[r.id].count("RUNNING") == 1]  # fmt: skip
    run_ids = {str(r.id) for r in found}
    published = {p.parent.name for p in destination.glob("*/catalog.json")}
    states: dict[str, int] = {}
    for r in found:
        states[r.state.name] = states.get(r.state.name, 0) + 1
    return Load(
        database=kind,
        submitted=len(set(ids)),
        found=len(found),
        completed_once=len(done),
        states=states,
        catalogs=len(published & {str(i) for i in ids}),
        extra_folders=len({p.name for p in destination.glob("*")} - run_ids) if destination.exists() else 0,
        span_s=(max(r.end_time for r in done) - min(r.created for r in found)).total_seconds() if done else 0.0,
        run_s=sorted((r.end_time - r.created).total_seconds() for r in done),
        locked=sum(LOCKED in line for line in (home / "server.log").read_text().splitlines()),
    )


def table(results: list[Load]) -> str:
    """The measurements as a small Markdown table."""
    rows = ["| database | completed once | states | catalogs | runs/min | p50 s | p95 s | \"database is locked\" |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    names = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
    for r in results:
        states = ", ".join(f"{k} {v}" for k, v in sorted(r.states.items()))
        rows.append(f"| {names.get(r.database, r.database)} | {r.completed_once}/{r.submitted} | {states} | "
                    f"{r.catalogs} | {r.runs_per_minute:.1f} | {r.percentile(50):.1f} | {r.percentile(95):.1f} | "
                    f"{r.locked} |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs submitted at once (default 20)")
    parser.add_argument("--databases", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"])
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="eoflows-load-") as tmp:
        item = write_sample(Path(tmp) / "scene", size=120, seed=3)
        for kind in args.databases:
            print(f"[bench] {args.runs} runs at once on {kind} ...", file=sys.stderr, flush=True)
            results.append(load(kind, args.runs, item, Path(tmp) / kind))
    print(f"\n{args.runs} {DEPLOYMENT} runs submitted at once (120 x 120 px, {' + '.join(PRODUCTS)}), "
          f"one process worker with --limit {args.runs}, {os.cpu_count()} cores\n")  # fmt: skip
    print(table(results))
    failed = [r.database for r in results if not r.ok]
    if failed:
        raise SystemExit(f"load check failed on {', '.join(failed)}: runs lost, duplicated or unpublished")


if __name__ == "__main__":
    main()

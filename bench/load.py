"""Load: 20 small `s2-indices/local` runs submitted at once, on a Prefect server backed by PostgreSQL and by SQLite.

For each database: a throwaway server (PostgreSQL from `eoflows.local.postgres`, or a SQLite file), `prefect
server start` on it, `eoflows deploy`, one process worker allowed all the runs at once (`--limit` = the number
of runs, so none waits in the worker; at a lower CPU priority than the server, see WORKER_NICENESS), then the
runs are created together (120 x 120 px sample item, ndvi and rgb, to a folder). Checks: every creation
answered, exactly those flow runs of the deployment on the server (none lost, none unasked), each Completed
once (one Running and one Completed state), one catalog.json per run. Prints runs per minute (first created
-> last Completed), p50/p95 of each run's created -> Completed, and the server log's lines "database is
locked" and tracebacks.

    .venv/bin/python bench/load.py                 (part of `make bench`; exits 1 if a check fails on PostgreSQL)
    .venv/bin/python bench/load.py --runs 4 --databases postgresql
"""

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import asyncpg  # noqa: E402
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
# The worker and its flow runs run at a lower CPU priority than the server and its database: on this one machine
# they stand for the separate machines of a deployment (without it, 20 runs on 2 cores starve the server until
# its database connections time out, measured: 5 s to connect, 500s, 2 runs Failed on PostgreSQL).
WORKER_NICENESS = 10


@dataclass(frozen=True)
class Load:
    """What one load run found: the runs, their fate, their timings and the server's errors."""

    database: str
    requested: int
    created: int  # creations the server answered with a flow run
    refused: int  # creations that failed (after the Prefect client's own retries)
    lost: int  # created runs the server no longer lists
    duplicated: int  # runs of the deployment nobody created, plus runs that ran (or completed) more than once
    completed_once: int  # runs whose final state is Completed, with one Running and one Completed state
    states: dict[str, int]  # final state name -> runs
    stored: int  # rows of the database's own flow_run table (which database the server used)
    catalogs: int  # created runs with <destination>/<run id>/catalog.json
    extra_folders: int  # folders in the destination that belong to no created run
    span_s: float  # first created -> last Completed
    run_s: list[float]  # each run's created -> Completed
    locked: int  # "database is locked" lines in the server log
    tracebacks: int  # tracebacks in the server log (errors it logged with their stack)

    @property
    def ok(self) -> bool:
        """Every requested run created, none lost or duplicated, each Completed once and published."""
        n = self.requested
        return (self.created, self.completed_once, self.catalogs) == (n, n, n) and not (
            self.lost or self.duplicated or self.extra_folders
        )

    @property
    def runs_per_minute(self) -> float:
        """Runs Completed once per minute over the span."""
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
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": database_url}  # fmt: skip
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


def stored_flow_runs(database_url: str) -> int:
    """The number of flow runs in the database itself, read without Prefect."""
    if database_url.startswith("sqlite"):
        with closing(sqlite3.connect(database_url.split(":///", 1)[1])) as db:
            return db.execute("SELECT count(*) FROM flow_run").fetchone()[0]

    async def count() -> int:
        connection = await asyncpg.connect(database_url.replace("postgresql+asyncpg:", "postgresql:", 1))
        try:
            return await connection.fetchval("SELECT count(*) FROM flow_run")
        finally:
            await connection.close()

    return asyncio.run(count())


async def submit(deployment_id: UUID, runs: int, parameters: dict) -> list[UUID | BaseException]:
    """Create `runs` flow runs of the deployment at once; the id of each, or the error that refused it."""
    async with get_client() as client:
        created = await asyncio.gather(*(client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
                                         for _ in range(runs)), return_exceptions=True)  # fmt: skip
    return [run if isinstance(run, BaseException) else run.id for run in created]


def load(kind: str, runs: int, item: Path, folder: Path, timeout: float = 900) -> Load:
    """Run `runs` s2-indices runs at once on a Prefect server backed by `kind` (postgresql or sqlite)."""
    home, destination = folder / "home", folder / "published"
    home.mkdir(parents=True)
    with ExitStack() as stack:
        database_url = stack.enter_context(database(kind, folder))
        url = stack.enter_context(prefect_server(database_url, home))
        stack.enter_context(temporary_settings({PREFECT_API_URL: url}))
        env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_WORKER_QUERY_SECONDS": "1"}
        deploy = subprocess.run([str(BIN / "eoflows"), "deploy", "--project", str(ROOT)], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=600)  # fmt: skip
        if deploy.returncode != 0:
            raise RuntimeError(f"eoflows deploy failed: {deploy.stderr[-3000:]}")
        worker_log = stack.enter_context(open(home / "worker.log", "w"))
        worker = subprocess.Popen([str(BIN / "prefect"), "worker", "start", "--pool", "eoflows-local", "--type",
                                   "process", "--limit", str(runs)], env=env, stdout=worker_log,
                                  stderr=subprocess.STDOUT, preexec_fn=lambda: os.nice(WORKER_NICENESS))  # fmt: skip
        stack.callback(worker.wait, 30)
        stack.callback(worker.terminate)
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        parameters = {"item": str(item), "destination": str(destination), "products": PRODUCTS}
        answers = asyncio.run(submit(deployment.id, runs, parameters))
        of_deployment = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
        deadline = time.monotonic() + timeout
        with get_client(sync_client=True) as client:
            while True:
                found = client.read_flow_runs(deployment_filter=of_deployment, limit=2 * runs + 10)
                if all(r.state and r.state.is_final() for r in found) or time.monotonic() > deadline:
                    break
                time.sleep(1)  # polling the server, bounded by the deadline
            histories = {r.id: [s.type.value for s in client.read_flow_run_states(r.id)] for r in found}
        stored = stored_flow_runs(database_url)
    for error in {f"{type(a).__name__}: {a}"[:300] for a in answers if isinstance(a, BaseException)}:
        print(f"[bench] {kind}: a creation was refused: {error}", file=sys.stderr)
    created = {a for a in answers if isinstance(a, UUID)}
    by_id = {r.id: r for r in found}
    twice = {i for i, states in histories.items() if states.count("RUNNING") > 1 or states.count("COMPLETED") > 1}
    done = [r for r in found if r.id in created and r.state.is_completed() and r.id not in twice]
    published = {p.parent.name for p in destination.glob("*/catalog.json")}
    log = (home / "server.log").read_text().splitlines()
    states: dict[str, int] = {}
    for r in found:
        states[r.state.name] = states.get(r.state.name, 0) + 1
    return Load(
        database=kind,
        requested=runs,
        created=len(created),
        refused=len(answers) - len(created),
        lost=len(created - set(by_id)),
        duplicated=len(set(by_id) - created) + len(twice),
        completed_once=len(done),
        states=states,
        stored=stored,
        catalogs=len(published & {str(i) for i in created}),
        extra_folders=len({p.name for p in destination.glob("*")} - {str(i) for i in created}),
        span_s=(max(r.end_time for r in done) - min(r.created for r in found)).total_seconds() if done else 0.0,
        run_s=sorted((r.end_time - r.created).total_seconds() for r in done),
        locked=sum(LOCKED in line for line in log),
        tracebacks=sum(line.startswith("Traceback") for line in log),
    )


def table(results: list[Load]) -> str:
    """The measurements as a small Markdown table."""
    rows = ["| database | created | Completed once | lost | duplicated | final states | catalogs | runs/min | p50 s "
            "| p95 s | \"database is locked\" | server tracebacks |", "|---" * 12 + "|"]  # fmt: skip
    names = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}
    for r in results:
        states = ", ".join(f"{k} {v}" for k, v in sorted(r.states.items()))
        rows.append(f"| {names.get(r.database, r.database)} | {r.created}/{r.requested} | {r.completed_once} | "
                    f"{r.lost} | {r.duplicated} | {states} | {r.catalogs} | {r.runs_per_minute:.1f} | "
                    f"{r.percentile(50):.1f} | {r.percentile(95):.1f} | {r.locked} | {r.tracebacks} |")  # fmt: skip
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs submitted at once (default 20)")
    parser.add_argument("--databases", nargs="+", default=["postgresql", "sqlite"], choices=["postgresql", "sqlite"])
    parser.add_argument("--logs", type=Path, help="a folder to keep the server and worker logs in")
    args = parser.parse_args()
    results: list[Load] = []
    with tempfile.TemporaryDirectory(prefix="eoflows-load-") as tmp:
        item = write_sample(Path(tmp) / "scene", size=120, seed=3)
        for kind in args.databases:
            print(f"[bench] {args.runs} runs at once on {kind} ...", file=sys.stderr, flush=True)
            try:
                results.append(load(kind, args.runs, item, Path(tmp) / kind))
                print(f"[bench] {results[-1]}", file=sys.stderr, flush=True)
            finally:
                if args.logs:
                    args.logs.mkdir(parents=True, exist_ok=True)
                    for log in (Path(tmp) / kind / "home").glob("*.log"):
                        shutil.copy(log, args.logs / f"{kind}-{log.name}")
    print(f"\n{args.runs} {DEPLOYMENT} runs submitted at once (120 x 120 px, {' + '.join(PRODUCTS)}), one process "
          f"worker with --limit {args.runs} at nice {WORKER_NICENESS}, {os.cpu_count()} cores\n")  # fmt: skip
    print(table(results))
    for r in results:
        if not r.ok:
            print(f"\n{r.database}: {r.requested - r.completed_once} of {r.requested} runs not created, not Completed "
                  "once or not published")  # fmt: skip
    if any(not r.ok for r in results if r.database == "postgresql"):  # SQLite's misses are a measurement
        raise SystemExit(1)


if __name__ == "__main__":
    main()

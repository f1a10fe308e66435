"""Load on Prefect's production backend: s2-indices deployment runs submitted at once to a Prefect server on a
throwaway PostgreSQL (`eoflows.local.postgres`), run by one process worker: all Completed once, all published.

The same procedure as `bench/load.py` (20 runs, PostgreSQL and SQLite), with fewer runs.
"""

from pathlib import Path

import pytest

from bench.load import load
from eoflows.samples.s2_eopf import write_sample

RUNS = 4


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Sentinel-2 L2A EOPF sample (120 px), as in the benchmark."""
    return write_sample(tmp_path_factory.mktemp("load-scene"), size=120, seed=3)


def test_runs_submitted_at_once_on_postgresql_complete_once_each(scene: Path, tmp_path: Path) -> None:
    found = load("postgresql", RUNS, scene, tmp_path / "postgresql", timeout=240)
    logs = (tmp_path / "postgresql" / "home" / "worker.log").read_text()[-3000:]
    assert (found.created, found.refused, found.lost, found.duplicated) == (RUNS, 0, 0, 0), found
    assert found.stored == RUNS, found  # in PostgreSQL's own flow_run table: the server used it
    assert found.states == {"Completed": RUNS}, f"{found}\n{logs}"
    assert found.completed_once == RUNS, found  # one Running and one Completed state each
    assert (found.catalogs, found.extra_folders) == (RUNS, 0), found
    assert found.ok and found.locked == 0 and len(found.run_s) == RUNS and found.runs_per_minute > 0

"""What a killed run leaves: its temporary Prefect server ends with it, the next run removes its work folder (and
the server's) and marks it Crashed; the terminal of a failed run gets one line."""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import pytest

from tasks.data.work_folders import LOCK, remove_stale, work_folder

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))
HOLD = """
import sys, time
from tasks.data.work_folders import work_folder
with work_folder("held", owner="run-1") as (folder, _):
    print(folder, flush=True)
    time.sleep(600)
"""


def test_work_folders_of_dead_processes_go_and_live_ones_stay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holders = [subprocess.Popen([sys.executable, "-c", HOLD], env=env, stdout=subprocess.PIPE, text=True)
               for _ in range(2)]  # fmt: skip
    dead, live = (Path(h.stdout.readline().strip()) for h in holders)
    holders[0].kill()
    holders[0].communicate()
    (tmp_path / "eoflows-not-a-work-folder").mkdir()  # no lock file: never touched
    with work_folder("mine") as (mine, stale):
        assert [(s.path, s.owner) for s in stale] == [(dead, "run-1")]
        assert not dead.exists() and (live / LOCK).is_file() and (mine / LOCK).is_file()
        assert remove_stale() == []  # this one and the live one are in use
    assert not mine.exists() and (tmp_path / "eoflows-not-a-work-folder").is_dir()
    holders[1].kill()
    holders[1].communicate()


def test_a_killed_run_leaves_nothing_running_and_the_next_run_cleans_up(sample_item: Path, tmp_path: Path) -> None:
    """No PREFECT_API_URL: `eoflows run` starts its own temporary server. SIGKILL it mid-run."""
    home, tmp = tmp_path / "prefect-home", tmp_path / "tmp"
    tmp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_"))}
    env.update({"PREFECT_HOME": str(home), "TMPDIR": str(tmp)})  # analytics not turned off: eoflows does it
    env["EOFLOWS_LOCAL_CLUSTER_FROM"] = "0"  # a local Dask cluster (threads of the run's process), however small
    run = subprocess.Popen([EOFLOWS, "run", "s2-indices", "--item", str(sample_item), "--destination",
                            str(tmp_path / "dest"), "--products", "ndvi"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    for line in run.stderr:  # computing: the work folder, the temporary server and the local Dask cluster exist
        if "Windows run on" in line:
            break
    (work,) = [p for p in tmp.glob("eoflows-s2-indices-*") if (p / LOCK).is_file()]
    owner = json.loads((work / LOCK).read_text())["owner"]
    children = psutil.Process(run.pid).children(recursive=True)
    commands = [" ".join(c.cmdline()) for c in children]
    assert len(commands) == 1 and "uvicorn" in commands[0], commands  # the server; the cluster is threads
    run.kill()
    run.communicate()
    _, alive = psutil.wait_procs(children, timeout=15)
    assert alive == [], [c.cmdline() for c in alive]  # the temporary server ended with its parent

    done = subprocess.run([EOFLOWS, "run", "s2-indices", "--item", str(tmp_path / "missing.json"), "--destination",
                           str(tmp_path / "dest")], env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == f"eoflows: error: STAC item '{tmp_path / 'missing.json'}': not found ([Errno 2] No such " \
                        f"file or directory: '{tmp_path / 'missing.json'}')"  # fmt: skip
    assert "Traceback" not in done.stderr and "telemetry" not in done.stderr.lower()
    assert sum("eoflows: error" in line or "ERROR" in line for line in lines) <= 2, done.stderr
    assert not work.exists() and f"Removed the work folder {work}" in done.stderr
    assert list(tmp.glob("eoflows-*")) == []  # nor the killed one's temporary server folder, nor the next run's
    with sqlite3.connect(home / "prefect.db") as db:
        (state,) = db.execute("SELECT state_type FROM flow_run WHERE id = ?", (owner,)).fetchone()
    assert state == "CRASHED"

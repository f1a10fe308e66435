"""Temporary work folders that do not outlive their run, even a killed one.

A work folder (`<tmp>/eoflows-<what>-XXXX/`) holds a lock file, `.eoflows-work`, locked (`flock`) by its process
for as long as the folder is in use and naming who uses it. The lock goes with the process, however it ends; so
when a folder's lock can be taken, its run is dead, and the next `work_folder` call removes the folder (a killed
run's intermediate products, or a cwltool job file that may hold credentials) and reports whose it was.
"""

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

LOCK = ".eoflows-work"
PREFIX = "eoflows-"


@dataclass(frozen=True)
class Stale:
    """A removed work folder of a dead run, and who had it (e.g. a flow run id)."""

    path: Path
    owner: str | None


def _take(folder: Path) -> Stale | None:
    """Remove `folder` if its lock can be taken (its process is gone); what was removed."""
    try:
        with open(folder / LOCK) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # in use
            owner = json.loads(lock.read() or "{}").get("owner")
            shutil.rmtree(folder)
            return Stale(folder, owner)
    except (OSError, ValueError):
        return None  # gone meanwhile, not ours to remove, or not a work folder


def remove_stale(root: Path | None = None) -> list[Stale]:
    """Remove the work folders of dead runs under `root` (default the temporary folder); what was removed."""
    base = Path(root or tempfile.gettempdir())
    return [s for folder in base.glob(f"{PREFIX}*") if (folder / LOCK).is_file() and (s := _take(folder))]


@contextmanager
def work_folder(what: str, owner: str | None = None) -> Iterator[tuple[Path, list[Stale]]]:
    """A new private work folder for `what`, locked while the block runs, removed after; and the stale ones removed.

    Args:
        what: Part of the folder's name, e.g. the package name.
        owner: Who uses it (a flow run id), told to the run that later finds the folder stale.
    """
    stale = remove_stale()
    with locked_folder(what, owner) as folder:
        yield folder, stale


@contextmanager
def locked_folder(what: str, owner: str | None = None) -> Iterator[Path]:
    """A new private folder `<tmp>/eoflows-<what>-XXXX/`, locked while the block runs and removed after.

    If its process is killed, the next `work_folder` (of any run on the machine) removes it.
    """
    folder = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{what}-"))  # mode 0700
    with open(folder / f"{LOCK}.new", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # taken before the lock file has its name: never seen unlocked
        lock.write(json.dumps({"owner": owner, "pid": os.getpid()}))
        lock.flush()
        os.rename(folder / f"{LOCK}.new", folder / LOCK)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

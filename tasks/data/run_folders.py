"""Destinations and their run folders: checked before any work, one writer each, rollback of exactly its writes.

A run publishes into DESTINATION/RUN_ID/. `claim_run_folder` first checks the destination in its own terms (a
local folder that can be created and written; an S3 bucket that exists and accepts a write; nothing else), then
claims the run folder for this attempt with a claim object created race-free: `.eoflows-claim`, written with an
exclusive create (a local `O_EXCL` open, an S3 `PutObject` with `If-None-Match: *`). So:

- a second writer of the same run folder is refused in seconds and never touches the first one's files;
- a folder holding `catalog.json` is published: refused; a folder with files but no claim is not ours: refused;
- a claim left by a dead attempt (its process is gone, on this machine; or it sent no heartbeat for `LEASE_S`)
  is taken over (a conditional replace, so two takers cannot both win) and the dead attempt's files removed;
- a failed attempt removes exactly what it wrote (`RunFolder.rollback`), and the claim goes when the run ends;
- except for a stopped attempt on S3: a request it sent may still land after its rollback (a PUT whose body has
  gone out completes even when the client gives up on the answer), so its claim stays, marked ended, and the next
  attempt at that run id takes it over at once and removes whatever landed.

The holder refreshes its claim every `HEARTBEAT_S` seconds while it holds it, so a long compute on another
machine is not taken for dead. A claim is re-entrant for the same token (the flow claims before its first step,
its stage-out step claims again with the flow run's token).
"""

import datetime as dt
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from fsspec import AbstractFileSystem

from eoflows.errors import EoflowsError, InputError, StageError, Stopped, root_cause
from eoflows.runtime import Deadline
from eoflows.settings import S3Settings
from tasks.data.names import check_run_id
from tasks.data.storage import filesystem, join, scheme
from tasks.reporting import logger

CLAIM = ".eoflows-claim"
LEASE_S = 900.0  # a claim with no heartbeat for this long is a dead attempt's
HEARTBEAT_S = 60.0


def stopping(error: BaseException) -> bool:
    """True when `error` stops the process: SIGTERM outside (`Stopped`) and inside a flow run, Ctrl-C."""
    if isinstance(error, Stopped | KeyboardInterrupt):
        return True
    if "prefect" not in sys.modules:  # no flow run in this process: no Prefect termination signal either
        return False
    from prefect.exceptions import TerminationSignal

    return isinstance(error, TerminationSignal)


def destination_uri(destination: str) -> str:
    """`destination` as a local absolute path or an s3:// URL; any other scheme is refused."""
    kind = scheme(destination)
    if kind == "file":
        return str(Path(destination.removeprefix("file://")).absolute())
    if kind == "s3" and destination.removeprefix("s3://").split("/")[0]:
        return destination.rstrip("/")
    raise InputError(f"destination {destination!r}: expected a local folder or an s3://bucket/prefix URL")


def check_existing_folder(destination: str) -> None:
    """Refuse a local `destination` that is not an existing folder (what a step, unlike a flow, publishes into).

    Inside a container, a host folder given as text does not exist, or is the container's own: creating it
    would publish where nobody looks, and the results would go with the container.
    """
    if scheme(destination) == "file" and not Path(destination_uri(destination)).is_dir():
        raise InputError(
            f"destination {destination!r}: no such folder; a step publishes into an existing folder (create it; "
            "in a container, mount it, or give it to the CWL package as a Directory)"
        )


def _check_local(root: Path, destination: str) -> list[Path]:
    """Make sure the local folder `root` exists (created if needed) and takes files; the folders created."""
    blocking = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise InputError(f"destination {destination!r}: {str(blocking)!r} is a file, not a folder")
    created = [p for p in (root, *root.parents) if not p.exists()]
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StageError(f"destination {destination!r}: cannot create the folder ({exc.strerror})") from exc
    if not os.access(root, os.W_OK | os.X_OK):
        raise StageError(f"destination {destination!r}: the folder is not writable by this user")
    return created


def _check_bucket(fs: AbstractFileSystem, uri: str) -> None:
    """The destination's bucket exists and this key may list it (eoflows never creates buckets)."""
    bucket = uri.removeprefix("s3://").split("/")[0]
    try:
        fs.call_s3("head_bucket", Bucket=bucket)
    except Exception as exc:
        cause = root_cause(exc)
        if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in str(cause) or "404" in str(cause):
            raise InputError(
                f"destination {uri!r}: bucket {bucket!r} does not exist (eoflows never creates buckets)"
            ) from None
        if isinstance(exc, PermissionError) or "403" in str(cause):
            raise StageError(
                f"destination {uri!r}: access to bucket {bucket!r} denied; check the S3 key and secret"
            ) from None
        what = "no answer in time about" if isinstance(cause, TimeoutError) else "cannot reach"
        raise StageError(f"destination {uri!r}: {what} bucket {bucket!r} ({type(cause).__name__}: {cause})") from exc


def _process_started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _owner(token: str) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC).isoformat()
    return {"token": token, "host": socket.gethostname(), "pid": os.getpid(),
            "process_started": _process_started(os.getpid()), "claimed": now, "heartbeat": now}  # fmt: skip


def alive(claim: dict[str, Any]) -> bool:
    """Whether the attempt holding `claim` may still be running."""
    if claim.get("ended"):
        return False
    if claim.get("host") == socket.gethostname():
        return _process_started(int(claim.get("pid", -1))) == claim.get("process_started")
    try:
        beat = dt.datetime.fromisoformat(str(claim.get("heartbeat")))
    except ValueError:
        return False
    return (dt.datetime.now(dt.UTC) - beat).total_seconds() < LEASE_S


@dataclass
class RunFolder:
    """DESTINATION/RUN_ID/ as claimed by one attempt: where it is, and what this attempt wrote there."""

    uri: str
    fs: AbstractFileSystem
    path: str  # the folder on `fs`
    token: str
    written: list[str] = field(default_factory=list)  # paths on `fs`, in the order written
    created: list[Path] = field(default_factory=list)  # local folders this attempt created, deepest first
    lost: threading.Event = field(default_factory=threading.Event)  # set when another attempt took the claim

    @property
    def local(self) -> bool:
        """True for a local folder."""
        return scheme(self.uri) == "file"

    def fs_path(self, *parts: str) -> str:
        """The path on `fs` of `parts` under the folder."""
        return self.fs._strip_protocol(join(self.uri, *parts))

    def will_write(self, fs_path: str) -> None:
        """Record that this attempt writes `fs_path` (before writing it, so a rollback also removes a partial one)."""
        self.written.append(fs_path)

    def published(self) -> bool:
        """True when the folder holds a catalog.json."""
        return self.fs.exists(self.fs_path("catalog.json"))

    def rollback(self) -> None:
        """Remove what this attempt wrote, nothing else, in one bulk delete (the original error matters more).

        On failure it stops there: the claim stays, names this attempt, and the next attempt at this run
        folder takes it over and removes what is left.
        """
        paths = [p for p in reversed(self.written) if not self.local or os.path.lexists(p)]
        self.written.clear()
        if paths:
            try:
                self.fs.rm(paths)
            except Exception as exc:
                logger().warning("Could not remove the %d files of a failed publish at %s (%s); the next attempt "
                                 "at this run id removes them", len(paths), self.uri, root_cause(exc))  # fmt: skip

    # the claim object
    def _claim_path(self) -> str:
        return self.fs_path(CLAIM)

    def read_claim(self) -> tuple[dict[str, Any] | None, str | None]:
        """The claim and its version (an S3 ETag; None locally), or (None, None) when there is none."""
        path = self._claim_path()
        try:
            if self.local:
                return json.loads(Path(path).read_text() or "{}"), None
            info = self.fs.info(path, refresh=True)
            return json.loads(self.fs.cat_file(path)), info.get("ETag")
        except (FileNotFoundError, json.JSONDecodeError):
            return None, None

    def create_claim(self) -> bool:
        """Create the claim exclusively; False when one exists."""
        try:
            self.fs.pipe_file(self._claim_path(), json.dumps(_owner(self.token)).encode(), mode="create")
            return True
        except FileExistsError:
            return False

    def replace_claim(self, seen: dict[str, Any], version: str | None, ended: bool = False) -> bool:
        """Replace the claim `seen` (version `version`) with ours (`ended`: marked so), only if it is still that one."""
        owner = _owner(self.token)
        body = json.dumps(owner | {"ended": owner["heartbeat"]} if ended else owner)
        if self.local:
            try:
                with open(self._claim_path(), "r+") as f:
                    fcntl.flock(f, fcntl.LOCK_EX)  # replacers and heartbeats of this file take turns
                    if json.loads(f.read() or "{}") != seen:
                        return False
                    f.seek(0)
                    f.truncate()
                    f.write(body)
            except (FileNotFoundError, json.JSONDecodeError):
                return False
            return True
        bucket, key = self._claim_path().split("/", 1)
        try:
            self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=body.encode(), IfMatch=version)
        except OSError as exc:
            if getattr(exc, "errno", None) == errno.EINVAL or isinstance(exc, FileNotFoundError):
                return False  # precondition failed: someone else replaced or removed it first
            raise
        return True

    def _ours(self) -> tuple[dict[str, Any], str | None] | None:
        """The claim and its version (`read_claim`) while it is this attempt's; None once it is not."""
        seen, version = self.read_claim()
        return (seen, version) if seen and seen.get("token") == self.token else None

    def heartbeat(self) -> None:
        """Refresh the claim's heartbeat if it is still ours; otherwise mark the claim lost."""
        ours = self._ours()
        if ours is None or not self.replace_claim(*ours):
            self.lost.set()

    def release(self) -> None:
        """Remove the claim if it is still ours, and the local folders this attempt created if left empty."""
        if self._ours():
            self.fs.rm(self._claim_path())
        for folder in self.created:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def end(self) -> None:
        """Mark the claim ended if it is still ours, and keep it: the next attempt takes it over at once."""
        if ours := self._ours():
            self.replace_claim(*ours, ended=True)


def _take(folder: RunFolder) -> bool:
    """Claim `folder`; True when this call made the claim (False: it already was ours)."""
    for _ in range(5):
        if folder.create_claim():
            return True
        seen, version = folder.read_claim()
        if seen is None:
            continue  # released meanwhile: try again
        if seen.get("token") == folder.token:
            return False
        if alive(seen):
            raise StageError(
                f"destination {folder.uri!r}: another run is writing there (claimed by pid {seen.get('pid')} on "
                f"{seen.get('host')} at {seen.get('claimed')}); choose another run_id"
            )
        if folder.replace_claim(seen, version):
            logger().warning("Run folder %s: taking over from a %s attempt (pid %s on %s, claimed %s)",
                             folder.uri, "stopped" if seen.get("ended") else "dead", seen.get("pid"),
                             seen.get("host"), seen.get("claimed"))  # fmt: skip
            for path in folder.fs.find(folder.path):
                if not path.endswith(f"/{CLAIM}"):
                    folder.fs.rm(path)
            return True
    raise StageError(f"destination {folder.uri!r}: the run folder's claim keeps changing; try again")


def _open(destination: str, run_id: str, storage: S3Settings | None, token: str) -> RunFolder:
    root = destination_uri(destination)
    uri = join(root, check_run_id(run_id))
    fs, _ = filesystem(root, storage)
    folder = RunFolder(uri, fs, fs._strip_protocol(uri), token)
    if folder.local:
        folder.created = _check_local(Path(uri), destination)
    else:
        _check_bucket(fs, root)
    return folder


@contextmanager
def claim_run_folder(destination: str, run_id: str, storage: S3Settings | None, token: str,
                     deadline: Deadline) -> Iterator[RunFolder]:  # fmt: skip
    """Check `destination`, claim its run folder for `token` until the block ends (see the module docstring).

    When the block ends with the process stopping, the rollback and release end by `deadline`.
    """
    folder = _open(destination, run_id, storage, token)
    try:
        made = _take(folder)
    except FileNotFoundError as exc:
        raise InputError(f"destination {folder.uri!r}: not found ({exc})") from exc
    except PermissionError as exc:
        what = "the folder is not writable" if folder.local else "writing refused; check the S3 key and secret"
        raise StageError(f"destination {folder.uri!r}: {what}") from exc
    except (OSError, EoflowsError) as exc:
        if isinstance(exc, EoflowsError):
            raise
        raise StageError(f"destination {folder.uri!r}: cannot write there ({exc})") from exc
    if made and folder.published():
        folder.release()
        raise StageError(f"destination {folder.uri!r}: already holds a published catalog; choose another run_id")
    if made and [p for p in folder.fs.find(folder.path) if not p.endswith(f"/{CLAIM}")]:
        folder.release()
        raise StageError(f"destination {folder.uri!r}: the folder holds files no eoflows run claims; "
                         "choose another run_id")  # fmt: skip
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_S):
            try:
                folder.heartbeat()
            except Exception as exc:  # a missed heartbeat is retried; the lease is many beats long
                logger().warning("Run folder %s: heartbeat failed (%s)", folder.uri, exc)

    beating = threading.Thread(target=beat, name="eoflows-claim-heartbeat", daemon=True)
    beating.start()
    try:
        yield folder
    except BaseException as exc:
        stop.set()
        # on a stop signal or Ctrl-C the clean-up ends by the deadline: the endpoint may be the thing that hangs
        stopped = stopping(exc)
        ending = folder.end if stopped and not folder.local else folder.release  # (see the module docstring)
        bounded(lambda: (folder.rollback(), made and ending()), folder, stopped, deadline)
        raise
    stop.set()
    if made:
        folder.release()


def bounded(cleanup: Callable[[], object], folder: RunFolder, stopping: bool, deadline: Deadline) -> None:
    """Run `cleanup`; when the process is stopping, give up at `deadline` (nested clean-ups share it).

    What is left, the next attempt removes.
    """
    if not stopping:
        try:
            cleanup()
        except Exception as exc:
            logger().warning("Run folder %s: clean-up failed (%s)", folder.uri, root_cause(exc))
        return
    worker = threading.Thread(target=cleanup, name="eoflows-run-folder-cleanup", daemon=True)
    worker.start()
    worker.join(deadline.remaining())
    if worker.is_alive():
        logger().warning("Run folder %s: clean-up unfinished when the run had to stop; the next attempt at this "
                         "run id removes what is left", folder.uri)  # fmt: skip


def new_token() -> str:
    """A token for an attempt that is not a Prefect flow run."""
    return uuid.uuid4().hex

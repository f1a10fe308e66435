"""Stage-in and stage-out: the folder shape every step and every CWL runner agrees on.

```
<folder>/catalog.json              catalog, links relative
<folder>/<item-id>/<item-id>.json  each item; assets next to it or absolute hrefs (Zarr read in place)
```
Stage-out publishes such a folder into DESTINATION/RUN_ID/, which it holds alone (`tasks.data.run_folders`):
data files first, then the items, `catalog.json` last. A folder destination gets a self-contained catalog
(relative links and asset hrefs: it can be moved or copied); S3 gets absolute ``s3://`` hrefs. A failed publish
removes exactly what it wrote, so a `catalog.json` at a destination always means a complete result. In a flow
publishing to S3, the step before stage-out may send its final files early (`EarlyUploads`, its runtime's
`uploads`), under the same claim and the same rollback.
"""

import datetime as dt
import queue
import secrets
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import wait as futures_wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pystac
from fsspec import AbstractFileSystem
from fsspec.asyn import AsyncFileSystem
from fsspec.callbacks import Callback
from pystac.layout import CustomLayoutStrategy

from eoflows.errors import EoflowsError, InputError, StageError
from eoflows.package import Destination, Resources, StagedDir, Step
from eoflows.runtime import Deadline, Runtime
from eoflows.settings import S3Settings
from tasks.data.names import file_name, inside
from tasks.data.run_folders import RunFolder, bounded, claim_run_folder, new_token, stopping
from tasks.data.stac_io import SOURCE_REL, FsspecStacIO, io_error
from tasks.data.storage import interruptible, join
from tasks.reporting import flow_run_id, logger, progress


def _item_href(item: pystac.Item, parent_dir: str) -> str:
    name = file_name(item.id)
    return join(parent_dir, name, f"{name}.json")


#: Where items go under a catalog's folder: <name>/<name>.json, the name made from the item id by `file_name`.
LAYOUT = CustomLayoutStrategy(item_func=_item_href)


def lay_out(catalog: pystac.Catalog, root: str) -> None:
    """Set the hrefs of `catalog` (at root/catalog.json) and its items (`LAYOUT`); `root` is a folder or URL.

    The root is given with a final slash: pystac would take a last part with a dot (a run id 2025.06.01) for
    a file name and lay the catalog out in its parent.
    """
    catalog.normalize_hrefs(root.rstrip("/") + "/", strategy=LAYOUT)


def write_catalog(items: list[pystac.Item], folder: Path, catalog_id: str, description: str) -> Path:
    """Write `items` as a self-contained catalog in `folder`; return the path of its catalog.json."""
    catalog = pystac.Catalog(id=catalog_id, description=description)
    for item in items:
        catalog.add_item(item)
    lay_out(catalog, str(folder.absolute()))
    for item in items:
        inside(folder, Path(item.get_self_href()), f"item {item.id!r}")
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return folder / "catalog.json"


def stage_items(items: list[pystac.Item], output: Path) -> Path:
    """Stage items read by `read_item` into `output`, asset hrefs made absolute (data stays where it is)."""
    for item in items:
        item.make_asset_hrefs_absolute()
    write_catalog(items, output, "catalog", "Staged input items")
    return output


def staged_items(folder: Path) -> list[pystac.Item]:
    """The items of the staged catalog in `folder`."""
    path = folder / "catalog.json"
    if not path.is_file():
        raise InputError(f"staged folder {str(folder)!r}: no catalog.json (expected a stage-in output folder)")
    try:
        items = list(pystac.Catalog.from_file(str(path)).get_items(recursive=True))
    except Exception as exc:
        raise InputError(f"staged catalog {str(path)!r}: cannot be read ({exc})") from exc
    if not items:
        raise InputError(f"staged catalog {str(path)!r}: holds no items")
    return items


def source_href(item: pystac.Item, otherwise: str | None = None) -> str:
    """Where a staged item came from (its `via` link); else `otherwise`, else the item's own location."""
    link = item.get_single_link(SOURCE_REL)
    return link.href if link else (otherwise or item.get_self_href() or item.id)


def default_run_id() -> str:
    """The Prefect flow run id inside a run, else a UTC timestamp with a random suffix."""
    return flow_run_id() or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


class _Advance(Callback):
    """fsspec progress callback: one `advance()` per file transferred."""

    def __init__(self, advance) -> None:
        super().__init__()
        self._advance = advance

    def relative_update(self, inc: int = 1) -> None:
        for _ in range(inc):
            self._advance()


def run_token() -> str:
    """Who claims a run folder: the Prefect flow run (its steps share the claim), else this one call."""
    return flow_run_id() or new_token()


def claim_destination(destination: str, runtime: Runtime, run_id: str | None = None,
                      storage: S3Settings | None = None):  # fmt: skip
    """Check the destination and claim its run folder before any work (a flow holds it for its whole run).

    Arguments as `stage_out`'s.
    """
    return claim_run_folder(destination, run_id or default_run_id(), storage, run_token(), runtime.deadline)


def stage_out(
    input: StagedDir,
    destination: Destination,
    runtime: Runtime,
    run_id: str | None = None,
    storage: S3Settings | None = None,
) -> str:
    """Publish a results catalog to a local folder or S3, catalog.json last; return the catalog URI.

    Args:
        input: Folder holding the results catalog (catalog.json, items and their assets).
        destination: Local folder or s3://bucket/prefix; results go to DESTINATION/RUN_ID/.
        run_id: Sub-folder of the destination for this run; default the Prefect flow run id (or a timestamp).
    """
    items = staged_items(input)
    catalog = pystac.Catalog.from_file(str(input / "catalog.json"))
    stac_files = {Path(item.get_self_href()).resolve() for item in items} | {(input / "catalog.json").resolve()}
    data = sorted(p for p in input.rglob("*") if p.is_file() and p.resolve() not in stac_files)
    log = logger()
    with claim_destination(destination, runtime, run_id, storage) as folder:
        if folder.published():
            raise StageError(f"destination {folder.uri!r}: already holds a published catalog; choose another run_id")
        try:
            early = _uploaded_early(folder, input, runtime.uploads)
            left = [p for p in data if p.relative_to(input) not in early]  # (files sent early are not written)
            log.info("Publishing %d files of %s to %s%s", len(left) + len(early), input, folder.uri,
                     f" ({len(early)} of them sent while computing)" if early else "")  # fmt: skip
            _publish(folder, input, catalog, left, FsspecStacIO(storage))
        except EoflowsError:
            raise
        except Exception as exc:
            raise io_error("destination", folder.uri, exc) from exc
    catalog_uri = join(folder.uri, "catalog.json")
    log.info("Published %s", catalog_uri)
    return catalog_uri


def _uploaded_early(folder: RunFolder, input: Path, uploads: "EarlyUploads | None") -> dict[Path, int]:
    """The files of `input` already put in `folder` by `uploads` while the step before ran (relative to `input`)."""
    if (
        not isinstance(uploads, EarlyUploads)
        or uploads.folder.uri != folder.uri
        or uploads.root.resolve() != input.resolve()
    ):
        return {}
    return {path.relative_to(uploads.root): size for path, size in uploads.wait().items()}


#: At most this many bytes of files in flight at once when uploading (s3fs reads a file of up to 100 MB whole).
UPLOAD_BUDGET = 256 * 2**20


class EarlyUploads:
    """Files of the published step's output sent to their final keys while that step still runs (remote folders).

    A flow holds its run folder from the start (`claim_destination`), so a step whose output stage-out publishes
    can hand over each file's bytes as soon as they are final (a window's encoded chunks) instead of writing
    them: they go to the key stage-out would give the file, recorded first in the folder's `written` (a failed
    run removes it), and stage-out then sends only the files written locally (metadata), the items, and
    `catalog.json` last. The upload overlaps the compute, and no byte of it crosses the local disk.
    At most `budget` bytes wait or travel at once: `put` holds the step back until the uploads make room.
    The first failed upload (each bounded by the S3 timeouts) fails the step: the next `put` raises it, and the
    uploads not started are dropped, so a stalled endpoint stops the run in one upload's time, not in one per file.
    """

    def __init__(self, folder: RunFolder, root: Path, deadline: Deadline, threads: int = 4,
                 budget: int = UPLOAD_BUDGET) -> None:  # fmt: skip
        self.folder, self.root, self.deadline, self.budget = folder, root, deadline, budget
        self._queue: queue.SimpleQueue[tuple[Future, bytes, str] | None] = queue.SimpleQueue()
        # daemon threads: a put stalled on a hung endpoint must not keep a stopped process alive
        self._threads = [threading.Thread(target=self._work, name="eoflows-early-upload", daemon=True)
                         for _ in range(threads)]  # fmt: skip
        for thread in self._threads:
            thread.start()
        self._futures: list[Future] = []
        self._room = threading.Condition()
        self._in_flight = 0  # bytes put and not yet sent
        self._failed: BaseException | None = None  # the first failed upload's error
        self.sizes: dict[Path, int] = {}  # each file sent, by its path under `root`, with its size

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            future, data, remote = job
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(self.folder.fs.pipe_file(remote, data))
                    except BaseException as exc:  # handed to whoever waits on it, and to the next put
                        future.set_exception(exc)
                        with self._room:
                            self._failed = self._failed or exc
            finally:
                with self._room:
                    self._in_flight -= len(data)
                    self._room.notify_all()

    def _shutdown(self) -> None:
        """No more uploads: those not started are cancelled, the threads end after the one they are on."""
        for future in self._futures:
            future.cancel()
        for _ in self._threads:
            self._queue.put(None)

    def put(self, path: Path, data: bytes) -> None:
        """Send `data` in the background as the file `path` under `root` (final: it is not written here)."""
        remote = self.folder.fs_path(*path.relative_to(self.root).parts)
        with self._room:  # (a signal still interrupts this wait: SIGTERM stops a run held here)
            self._room.wait_for(
                lambda: self._failed or self._in_flight == 0 or self._in_flight + len(data) <= self.budget
            )
            if self._failed is not None:
                raise io_error("destination", self.folder.uri, self._failed) from self._failed
            self._in_flight += len(data)
        self.sizes[path] = len(data)
        self.folder.will_write(remote)
        future: Future = Future()
        self._futures.append(future)
        self._queue.put((future, data, remote))

    def wait(self) -> dict[Path, int]:
        """Wait for every upload; the first failure is raised; the files put and their sizes."""
        try:
            for future in self._futures:
                future.result()
        finally:
            self._shutdown()
        return self.sizes

    def abandon(self, error: BaseException) -> None:
        """The run failed: drop the uploads not started, let those in flight end before the claim's rollback.

        When the process is stopping, that wait shares the clean-up deadline of the run folder's claim.
        """
        self._shutdown()
        bounded(lambda: futures_wait(self._futures), self.folder, stopping(error), self.deadline)


@contextmanager
def publishing_early(held: Any, root: Path, deadline: Deadline) -> Iterator[EarlyUploads | None]:
    """The uploads of the files of `root` (the output stage-out will publish) as they are made, while inside.

    Only where `held` is a claimed remote run folder (else None): a folder destination gets its files from
    stage-out, as does every step run alone (CWL). Stage-out waits for the uploads; on a failure before it,
    those in flight end first (see `EarlyUploads.abandon`), so that the claim's rollback removes them all.
    """
    if not isinstance(held, RunFolder) or held.local:
        yield None
        return
    uploads = EarlyUploads(held, root, deadline)
    try:
        yield uploads
    except BaseException as exc:
        uploads.abandon(exc)
        raise
    uploads.wait()  # (stage-out has waited already)


def upload_batch(files: list[Path], budget: int = UPLOAD_BUDGET) -> int:
    """How many of `files` to upload at once: as many of the largest as fit in `budget` bytes, 1 to 32.

    fsspec otherwise puts a batch of an eighth of the open-file limit at once (all the files of a full s2-indices
    tile, each read whole and copied for signing: gigabytes of memory).
    """
    largest = max((p.stat().st_size for p in files), default=1)
    return max(1, min(32, budget // max(largest, 1)))


def _publish(folder: RunFolder, input: Path, catalog: pystac.Catalog, data: list[Path], io: FsspecStacIO) -> None:
    """Data files first, then the items (hrefs rewritten to the run folder), catalog.json last."""
    items = list(catalog.get_items(recursive=True))
    remote = [folder.fs_path(*p.relative_to(input).parts) for p in data]
    with progress(len(data) + len(items) + 1, f"publishing to {folder.uri}") as advance:
        for path in remote:
            folder.will_write(path)
        if folder.local:
            for parent in sorted({str(Path(r).parent) for r in remote}):
                Path(parent).mkdir(parents=True, exist_ok=True)
        if data:
            _put(folder.fs, [str(p) for p in data], remote, callback=_Advance(advance), batch_size=upload_batch(data))
        _rewrite_hrefs(catalog, input.resolve(), folder.uri, folder.local)
        for item in items:
            folder.will_write(folder.fs._strip_protocol(item.get_self_href()))
            item.save_object(include_self_link=not folder.local, stac_io=io)
            advance()
        if folder.lost.is_set():
            raise StageError(f"destination {folder.uri!r}: another attempt took over the run folder; not published")
        folder.will_write(folder.fs_path("catalog.json"))
        catalog.save_object(include_self_link=not folder.local, stac_io=io)  # the publish step: last
        advance()


def _put(fs: AbstractFileSystem, local: list[str], remote: list[str], **options: Any) -> None:
    """`fs.put`, whose transfers stop when it is interrupted (SIGTERM, Ctrl-C).

    An async filesystem (S3) runs them on fsspec's event loop, which would go on starting the next batches after
    the interrupted call (files landing after the rollback, and a warning of coroutines never awaited at exit):
    they are cancelled.
    """
    if not isinstance(fs, AsyncFileSystem):
        fs.put(local, remote, **options)
        return
    interruptible(fs, fs._put(local, remote, **options))


@contextmanager
def removed_on_failure(folder: Path, what: str) -> Iterator[None]:
    """Remove a step's output `folder` when the block fails.

    A failed read or write (an `OSError`) becomes a `StageError` on `what`; any other error is a bug and stays
    what it is, so it shows as one (a traceback and its own exit status), not as bad input.
    """
    try:
        yield
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, OSError):
            raise StageError(f"{what}: {type(exc).__name__}: {exc}") from exc
        raise


def _rewrite_hrefs(catalog: pystac.Catalog, folder: Path, target: str, local: bool) -> None:
    """Lay the catalog out at `target`: relative hrefs in a folder, absolute ``s3://`` hrefs on S3.

    A folder is self-contained (it can be moved or copied); on S3 an item fetched alone (by a STAC API loader,
    say) still finds its data.
    """
    for item in catalog.get_items(recursive=True):
        for asset in item.assets.values():
            path = Path(asset.get_absolute_href() or asset.href)
            if path.is_absolute() and path.resolve().is_relative_to(folder):
                asset.href = join(target, *path.resolve().relative_to(folder).parts)
    lay_out(catalog, target)
    if local:
        catalog.catalog_type = pystac.CatalogType.SELF_CONTAINED
        for item in catalog.get_items(recursive=True):
            item.make_asset_hrefs_relative()
    else:
        catalog.catalog_type = pystac.CatalogType.ABSOLUTE_PUBLISHED


#: The stage-out step every package ends with: publish the results, the destination claimed for the whole run.
STAGE_OUT = Step(
    "stage-out", stage_out, Resources(cores=(1, 1), ram_mb=(1024, 1024)), network=True, hold=claim_destination
)

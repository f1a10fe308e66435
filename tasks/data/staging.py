"""Stage-in and stage-out: the folder shape every step and every CWL runner agrees on.

```
<folder>/catalog.json              catalog, links relative
<folder>/<item-id>/<item-id>.json  each item; assets next to it or absolute hrefs (Zarr read in place)
```
Stage-out publishes such a folder atomically: data files first, then the items (hrefs rewritten to the
destination), `catalog.json` last. A failed publish removes what it had uploaded, so a `catalog.json` at a
destination always means a complete result.
"""

import datetime as dt
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pystac
from fsspec.callbacks import Callback
from prefect.runtime import flow_run
from pystac.layout import CustomLayoutStrategy

from blocks.s3 import S3Storage
from eoflows.errors import EoflowsError, InputError, StageError
from eoflows.package import StagedDir
from tasks.data.names import check_run_id, file_name, inside
from tasks.data.stac_io import SOURCE_REL, FsspecStacIO, io_error
from tasks.data.storage import filesystem, join, scheme
from tasks.reporting import logger, progress


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


def source_href(item: pystac.Item) -> str:
    """Where a staged item came from (its `via` link), or its own location."""
    link = item.get_single_link(SOURCE_REL)
    return link.href if link else (item.get_self_href() or item.id)


def default_run_id() -> str:
    """The Prefect flow run id inside a run, else a UTC timestamp with a random suffix."""
    return flow_run.get_id() or f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


class _Advance(Callback):
    """fsspec progress callback: one `advance()` per file transferred."""

    def __init__(self, advance) -> None:
        super().__init__()
        self._advance = advance

    def relative_update(self, inc: int = 1) -> None:
        for _ in range(inc):
            self._advance()


def stage_out(input: StagedDir, destination: str, run_id: str | None = None, storage: S3Storage | None = None) -> str:
    """Publish a results catalog to a local folder or S3, catalog.json last; return the catalog URI.

    Args:
        input: Folder holding the results catalog (catalog.json, items and their assets).
        destination: Local folder or s3://bucket/prefix; results go to DESTINATION/RUN_ID/.
        run_id: Sub-folder of the destination for this run; default the Prefect flow run id (or a timestamp).
        storage: S3 endpoint and credentials (a block in flows, AWS_* environment variables otherwise).
    """
    if scheme(destination) not in ("file", "s3"):
        raise InputError(f"destination {destination!r}: expected a local folder or an s3://bucket/prefix URL")
    if scheme(destination) == "file":
        destination = str(Path(destination.removeprefix("file://")).absolute())
    target = join(destination, check_run_id(run_id) if run_id else default_run_id())
    catalog_uri = join(target, "catalog.json")
    items = staged_items(input)
    catalog = pystac.Catalog.from_file(str(input / "catalog.json"))
    stac_files = {Path(item.get_self_href()).resolve() for item in items} | {(input / "catalog.json").resolve()}
    data = sorted(p for p in input.rglob("*") if p.is_file() and p.resolve() not in stac_files)
    remote = [join(target, *p.relative_to(input).parts) for p in data]
    log = logger()
    fs, target_path = filesystem(target, storage)
    try:
        if fs.exists(fs._strip_protocol(catalog_uri)):
            raise StageError(f"destination {target!r}: already holds a published catalog; choose another run_id")
        existed = fs.exists(target_path)
    except EoflowsError:
        raise
    except Exception as exc:
        raise io_error("destination", target, exc) from exc
    log.info("Publishing %d files of %s to %s", len(data), input, target)
    try:
        with progress(len(data) + len(items) + 1, f"publishing to {target}") as advance:
            for parent in sorted({fs._parent(fs._strip_protocol(r)) for r in remote}):
                fs.makedirs(parent, exist_ok=True)
            if data:
                fs.put([str(p) for p in data], [fs._strip_protocol(r) for r in remote], callback=_Advance(advance))
            _rewrite_hrefs(catalog, input.resolve(), target)
            io = FsspecStacIO(storage)
            for item in catalog.get_items(recursive=True):
                item.save_object(include_self_link=True, stac_io=io)
                advance()
            catalog.save_object(include_self_link=True, stac_io=io)  # the publish step: last
            advance()
    except BaseException as exc:
        _remove(fs, target_path if not existed else [fs._strip_protocol(r) for r in remote])
        if isinstance(exc, EoflowsError) or not isinstance(exc, Exception):
            raise
        raise io_error("destination", target, exc) from exc
    log.info("Published %s", catalog_uri)
    return catalog_uri


@contextmanager
def removed_on_failure(folder: Path, what: str) -> Iterator[None]:
    """Remove a step's output `folder` when the block fails; an unexpected error becomes an EoflowsError on `what`."""
    try:
        yield
    except BaseException as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(exc, EoflowsError) or not isinstance(exc, Exception):
            raise
        raise EoflowsError(f"{what}: {type(exc).__name__}: {exc}") from exc


def _rewrite_hrefs(catalog: pystac.Catalog, folder: Path, target: str) -> None:
    """Point the catalog, its items and their local assets at `target` (absolute hrefs)."""
    for item in catalog.get_items(recursive=True):
        for asset in item.assets.values():
            local = Path(asset.get_absolute_href() or asset.href)
            if local.is_absolute() and local.resolve().is_relative_to(folder):
                asset.href = join(target, *local.resolve().relative_to(folder).parts)
    lay_out(catalog, target)
    catalog.catalog_type = pystac.CatalogType.ABSOLUTE_PUBLISHED


def _remove(fs, paths: str | list[str]) -> None:
    """Best-effort removal of what a failed publish wrote."""
    try:
        if isinstance(paths, str):
            if fs.exists(paths):
                fs.rm(paths, recursive=True)
        else:
            for path in paths:
                if fs.exists(path):
                    fs.rm(path)
    except Exception as exc:  # cleanup must not hide the original error
        logger().warning("Could not remove partial upload at %s: %s", paths, exc)

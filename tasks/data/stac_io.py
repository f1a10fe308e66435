"""Reading files, and reading and writing STAC JSON, anywhere fsspec reaches; errors name the file and the cause."""

import json
import socket
from pathlib import Path
from typing import Any

import pystac
from pystac.stac_io import StacIO

from eoflows.errors import EoflowsError, InputError, StageError, root_cause
from eoflows.settings import S3Settings
from tasks.data.storage import filesystem, interruptible, scheme

#: Link relation recording where an item was read from.
SOURCE_REL = "via"


def io_error(what: str, href: str, exc: BaseException) -> EoflowsError:
    """An eoflows error for a failed read or write of `href`, saying which of the usual causes it was."""
    text = str(exc).strip() or type(exc).__name__
    cause = root_cause(exc)
    if isinstance(cause, TimeoutError):
        return StageError(f"{what} {href!r}: no answer in time ({type(cause).__name__}: {cause})")
    if isinstance(cause, ConnectionError | socket.gaierror) or "Connect" in type(cause).__name__:
        return StageError(f"{what} {href!r}: cannot reach it ({type(cause).__name__}: {cause})")
    if isinstance(exc, FileNotFoundError):
        return InputError(f"{what} {href!r}: not found ({text})")
    if isinstance(exc, PermissionError):
        return StageError(f"{what} {href!r}: access denied ({text}); check the S3 key and secret")
    if isinstance(exc, IsADirectoryError | NotADirectoryError):
        return InputError(f"{what} {href!r}: not a file ({text})")
    return StageError(f"{what} {href!r}: cannot reach it ({type(exc).__name__}: {text})")


def read_bytes(href: str, storage: S3Settings | None = None, what: str = "file") -> bytes:
    """The content of `href` (path or URL)."""
    try:
        fs, path = filesystem(href, storage)
        with fs.open(path, "rb") as f:
            return f.read()
    except EoflowsError:
        raise
    except Exception as exc:  # fsspec backends raise OSError, aiohttp and botocore errors alike
        raise io_error(what, href, exc) from exc


def download(href: str, path: Path, storage: S3Settings | None = None, what: str = "file") -> None:
    """Copy the file at `href` (path or URL) to the local `path`."""
    try:
        fs, remote = filesystem(href, storage)
        fs.get(remote, str(path))
    except Exception as exc:
        raise io_error(what, href, exc) from exc


def read_json(href: str, storage: S3Settings | None = None, what: str = "JSON document") -> dict[str, Any]:
    """Parse the JSON object at `href`."""
    data = read_bytes(href, storage, what)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{what} {href!r}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{what} {href!r}: expected a JSON object, found {type(doc).__name__}")
    return doc


def read_item(href: str, storage: S3Settings | None = None) -> pystac.Item:
    """The STAC item at `href`, detached from its catalog, with a `via` link to where it came from.

    The item's self href is set to `href` so relative asset hrefs resolve. Its `root`, `parent` and `collection` links
    are dropped: they point into the source catalog or API, which pystac would otherwise fetch. The `via`
    link keeps the item's canonical address (its own `self` link when it has an absolute one).
    """
    doc = read_json(href, storage, "STAC item")
    if doc.get("type") != "Feature":
        raise InputError(f"STAC item {href!r}: not a STAC item (type is {doc.get('type')!r}, expected 'Feature')")
    links = [link for link in doc.get("links", []) if isinstance(link, dict)]
    canonical = next(
        (link["href"] for link in links if link.get("rel") == "self" and "://" in str(link.get("href"))), href
    )
    doc["links"] = [
        link for link in links if link.get("rel") not in ("self", "root", "parent", "collection", SOURCE_REL)
    ]
    try:
        item = pystac.Item.from_dict(doc, href=href, preserve_dict=False)
    except Exception as exc:
        raise InputError(f"STAC item {href!r}: not a valid STAC item ({exc})") from exc
    item.set_self_href(href)
    item.add_link(pystac.Link(SOURCE_REL, canonical, pystac.MediaType.JSON, "Source STAC item"))
    return item


class FsspecStacIO(StacIO):
    """pystac I/O through fsspec, so catalogs on S3 (with `S3Settings` credentials) read and write like files."""

    def __init__(self, storage: S3Settings | None = None) -> None:
        super().__init__()
        self.storage = storage

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        """Read a STAC document."""
        return read_bytes(str(source), self.storage, "STAC document").decode()

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        """Write a STAC document (parent folders are created as needed)."""
        from fsspec.asyn import AsyncFileSystem

        href = str(dest)
        try:
            fs, path = filesystem(href, self.storage)
            if scheme(href) == "file":  # object stores have no folders (and s3fs would create a missing bucket)
                fs.makedirs(fs._parent(path), exist_ok=True)
            if isinstance(fs, AsyncFileSystem):  # S3: a stopped publish's last item or catalog.json never lands late
                interruptible(fs, fs._pipe_file(path, txt.encode()))
                return
            with fs.open(path, "w") as f:
                f.write(txt)
        except Exception as exc:
            raise io_error("STAC document", href, exc) from exc

"""Files and Zarr stores at local paths, ``file://``, ``http(s)://`` or ``s3://`` URLs, through fsspec.

All remote I/O of eoflows goes through here, so credentials are applied in one place and never logged.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import fsspec
from fsspec import AbstractFileSystem

from eoflows.settings import S3Settings

if TYPE_CHECKING:
    import zarr

REMOTE_SCHEMES = ("http", "https", "s3")


#: ``s3://`` opens with `tasks.data.s3_filesystem.S3FileSystem`, imported on first use: s3fs (and aiohttp) take a
#: third of a second to import, which a step command asked for its help does not pay.
fsspec.register_implementation("s3", "tasks.data.s3_filesystem.S3FileSystem", clobber=True)


def scheme(url: str) -> str:
    """The URL scheme of `url`, ``file`` for local paths."""
    parsed = urlparse(str(url))
    return parsed.scheme if len(parsed.scheme) > 1 else "file"


def absolute_href(ref: str) -> str:
    """`ref` as an absolute href: a URL as it is, a local path made absolute (against the working folder)."""
    return ref if "://" in ref else str(Path(ref).absolute())


def is_remote(url: str) -> bool:
    """True for http(s) and s3 URLs."""
    return scheme(url) in REMOTE_SCHEMES


def storage_options(url: str, storage: S3Settings | None = None) -> dict[str, Any]:
    """fsspec options for `url`: S3 credentials for ``s3://``, nothing otherwise."""
    if scheme(url) == "s3":
        return (storage or S3Settings.from_env()).s3fs_options()
    return {}


def filesystem(url: str, storage: S3Settings | None = None) -> tuple[AbstractFileSystem, str]:
    """The filesystem serving `url` and the path of `url` on it; http(s) with the timeouts of `storage`."""
    options = http_options(storage) if scheme(url) in ("http", "https") else storage_options(url, storage)
    fs, path = fsspec.core.url_to_fs(str(url), **options)
    return fs, path


def http_options(storage: S3Settings | None = None) -> dict[str, Any]:
    """fsspec options of http(s) reads: the connect and read timeouts of `storage`.

    A server that accepts and never answers fails in seconds (aiohttp alone waits 5 minutes).
    """
    import aiohttp

    settings = storage or S3Settings.from_env()
    timeout = aiohttp.ClientTimeout(sock_connect=settings.connect_timeout, sock_read=settings.read_timeout)
    return {"client_kwargs": {"timeout": timeout}}


def iri(href: str) -> str:
    """`href` as an IRI: a local path becomes a ``file://`` URI (STAC links, browser links), URLs stay."""
    if scheme(href) != "file" or href.startswith("file://"):
        return href
    return Path(href).absolute().as_uri()


def join(base: str, *parts: str) -> str:
    """Join path parts onto a local path or a URL."""
    if scheme(base) == "file":
        return str(Path(base.removeprefix("file://")).joinpath(*parts))
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


def open_zarr_group(url: str, storage: S3Settings | None = None, mode: str = "r") -> "zarr.Group":
    """Open the Zarr group at `url` (local path or URL)."""
    return open_zarr_group_with(url, storage_options(url, storage), mode)


def open_zarr_group_with(url: str, options: dict[str, Any], mode: str = "r") -> "zarr.Group":
    """Open the Zarr group at `url` with explicit fsspec `options`."""
    import zarr  # a third of a second: when a step reads, not when it starts

    if is_remote(url):
        return zarr.open_group(url, mode=mode, storage_options=options)
    return zarr.open_group(url.removeprefix("file://"), mode=mode)


def interruptible(fs: AbstractFileSystem, coroutine: Any) -> Any:
    """Run an async filesystem's `coroutine` on its event loop and wait for it; cancelled if the wait is interrupted.

    fsspec's sync calls leave their coroutine running on the loop when the calling thread is interrupted
    (SIGTERM, Ctrl-C): what it writes would land after the rollback of a stopped publish.
    """
    import asyncio
    import warnings

    running = asyncio.run_coroutine_threadsafe(coroutine, fs.loop)
    try:
        return running.result()
    except BaseException:
        running.cancel()  # fsspec makes a coroutine per file up front: those not started are never awaited
        warnings.filterwarnings("ignore", "coroutine .* was never awaited", RuntimeWarning)
        raise

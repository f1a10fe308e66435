"""`eoflows verify`: check every chunk of published Zarr stores (their checksums), naming the corrupted ones."""

from pathlib import Path

from eoflows.errors import InputError


def stores(url: str) -> list[str]:
    """The Zarr stores `url` names: the store itself, or every `*.zarr` store in a local folder (a results folder)."""
    from tasks.data.storage import is_remote

    folder = Path(url.removeprefix("file://"))
    if is_remote(url) or (folder / "zarr.json").is_file():
        return [url]
    if not folder.is_dir():
        raise InputError(f"{url}: no such folder")
    found = sorted(str(path) for path in folder.rglob("*.zarr") if (path / "zarr.json").is_file())
    if not found:
        raise InputError(f"{url}: expected a Zarr store or a folder holding some, found no zarr.json")
    return found


def verify(*urls: str) -> None:
    """Decode every chunk of the Zarr stores at URLS (local, or s3:// with the AWS_* variables) and check its checksum.

    A URL is a store, or a local folder whose stores are all checked (a run's results). Prints each store and its
    chunk count; fails with the corrupted chunks named.

    Args:
        urls: Zarr stores or folders holding them.
    """
    from tasks.data.verify import verify_store

    if not urls:
        raise InputError("verify: give one or more Zarr stores or folders holding them")
    for url in urls:
        for store in stores(url):
            checked, corrupted = verify_store(store)
            if corrupted:
                shown = "; ".join(corrupted[:3]) + ("; ..." if len(corrupted) > 3 else "")
                raise InputError(f"{store}: {len(corrupted)} of {checked} chunks corrupted: {shown}")
            print(f"intact: {store} ({checked} chunks)")

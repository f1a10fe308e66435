"""Whether the chunks of a Zarr store are intact: every chunk of every array decoded once, its checksum checked.

s2-indices writes Zstandard frames with their content checksum (`tasks.data.products_store.CODECS`), so any
reader (zarr-python, GDAL) fails on a corrupted chunk when it reads it. `verify_store` reads each chunk once, one
at a time, and names the corrupted ones (`eoflows verify`):

    checked, corrupted = verify_store("s3://bucket/run/item/item.zarr")
"""

import itertools

from eoflows.settings import S3Settings
from tasks.data.storage import open_zarr_group


def verify_store(url: str, storage: S3Settings | None = None) -> tuple[int, list[str]]:
    """Decode every chunk of every array in the store at `url`; the chunks checked and the corrupted ones.

    Each corrupted chunk as "array chunk i.j: why". A chunk the store lacks reads as the fill value, as Zarr
    says, and is not corrupted.
    """
    import zarr  # a third of a second: when the command runs, not when it starts

    checked, corrupted = 0, []
    for path, array in open_zarr_group(url, storage).members(max_depth=None):
        if not isinstance(array, zarr.Array):  # a group
            continue
        for block in itertools.product(*(range(n) for n in array.cdata_shape)):
            checked += 1
            try:
                array.get_block_selection(block)
            except (RuntimeError, ValueError) as error:  # zstd's checksum or frame; crc32c's checksum
                corrupted.append(f"{path} chunk {'.'.join(map(str, block))}: {error}")
    return checked, corrupted

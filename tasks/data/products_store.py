"""The output Zarr (v3) store of `s2-indices`: one array per product on the 10 m grid, CF and GDAL CRS metadata.

The store's metadata and coordinates are written first by xarray (so `xarray.open_zarr` reads it back with
its CRS, coordinates and CF attributes). Windows running in the step's process write their chunks
straight into the store. Windows on Dask workers, which may not see the output folder (Gateway workers of a
Calrissian step, say), encode their chunks with the store's own codecs (an in-memory Zarr array of one chunk)
and send the bytes back for the step's process to write. Each window owns its chunks: no write needs a lock.
"""

import json
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import zarr
from pyproj import CRS
from zarr.codecs import ZstdCodec
from zarr.core.buffer import cpu
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.storage import MemoryStore

from eoflows import __version__
from tasks.data.grid import Grid
from tasks.data.sentinel2 import stac_band_name
from tasks.science.indices import COMPACT_NODATA, COMPACT_SCALE, COMPOSITES, INDICES, LONG_NAMES, Encoding

#: Zstandard frames with their content checksum (XXH64 of the chunk's bytes, checked by libzstd on every decode):
#: a corrupted chunk fails to read in zarr-python and GDAL alike. Zarr's `crc32c` codec did the same for zarr-python
#: only: GDAL (3.12) reads no array that has it. Blosc has no checksum; bit shuffle saved 3 % (README, "Reading the
#: outputs with other tools").
CODECS = (ZstdCodec(level=3, checksum=True),)


def grid_mapping(crs: str) -> dict[str, object]:
    """CF grid-mapping attributes of `crs` (plus the GDAL-style `spatial_ref` WKT)."""
    cf = CRS.from_user_input(crs).to_cf()
    return {**cf, "spatial_ref": cf["crs_wkt"]}


def gdal_crs(crs: str) -> dict[str, object]:
    """GDAL's `_CRS` attribute of a Zarr array: the CRS on the array itself (WKT, PROJJSON, EPSG URL)."""
    parsed = CRS.from_user_input(crs)
    attr: dict[str, object] = {"wkt": parsed.to_wkt(), "projjson": parsed.to_json_dict()}
    if (code := parsed.to_epsg()) is not None:
        attr["url"] = f"http://www.opengis.net/def/crs/EPSG/0/{code}"
    return attr


def create_store(path: str, grid: Grid, products: list[str], chunk: tuple[int, int], source_id: str,
                 encoding_name: Encoding = "float32") -> None:  # fmt: skip
    """Write the metadata and coordinates of a products store at `path` (data chunks come later).

    Indices are float32 (NaN: no data), or with the compact encoding int16 with CF `scale_factor` and
    `_FillValue` (`tasks.science.indices.compact`), which xarray and rioxarray decode to floats.
    """
    import dask.array as da  # lazy templates; dask and xarray take a second to import: here, not at a step's start
    import xarray as xr

    h, w = grid.height, grid.width
    coords = {
        "y": ("y", grid.y(), {"standard_name": "projection_y_coordinate", "units": "m", "axis": "Y"}),
        "x": ("x", grid.x(), {"standard_name": "projection_x_coordinate", "units": "m", "axis": "X"}),
        "band": ("band", np.array([1, 2, 3], np.uint8), {"long_name": "display channel: 1 red, 2 green, 3 blue"}),
        "spatial_ref": ((), 0, grid_mapping(grid.crs)),
    }
    variables, encoding = {}, {}
    for name in products:
        if name in INDICES:
            a, b = INDICES[name]
            data = da.empty((h, w), chunks=chunk, dtype=np.float32)
            attrs = {
                "long_name": LONG_NAMES[name],
                "units": "1",
                "comment": f"({stac_band_name(a)} - {stac_band_name(b)}) / ({stac_band_name(a)} + "
                f"{stac_band_name(b)}) of surface reflectance; NaN where an input is no data "
                "or the denominator is 0",
            }
            variables[name] = (("y", "x"), data, attrs)
            encoding[name] = {"chunks": chunk, "compressors": CODECS, "_FillValue": np.float32(np.nan)}
            if encoding_name == "compact":
                nodata = np.int16(COMPACT_NODATA)  # CF's _FillValue and the array's own fill value (GDAL, Zarr)
                encoding[name].update(dtype="int16", scale_factor=COMPACT_SCALE, add_offset=0.0, _FillValue=nodata,
                                      fill_value=nodata)  # fmt: skip
        else:
            bands = " ".join(stac_band_name(b) for b in COMPOSITES[name])
            data = da.empty((3, h, w), chunks=(3, *chunk), dtype=np.uint8)
            attrs = {
                "long_name": f"{LONG_NAMES[name]} ({bands})",
                "units": "1",
                "valid_range": [0, 255],
                "comment": "surface reflectance clipped to [0, 1], gamma 1.95 (red, green) and 1.85 (blue), "
                "scaled to 0-255; 0 where an input is no data",
            }
            variables[name] = (("band", "y", "x"), data, attrs)
            encoding[name] = {"chunks": (3, *chunk), "compressors": CODECS, "_FillValue": None}
    for _, _, attrs in variables.values():
        attrs["grid_mapping"] = "spatial_ref"  # CF readers (xarray, rioxarray)
        attrs["_CRS"] = gdal_crs(grid.crs)  # GDAL's Zarr driver, any single array
    ds = xr.Dataset(
        variables,
        coords=coords,
        attrs={
            "title": f"Sentinel-2 indices and composites of {source_id}",
            "source": source_id,
            "Conventions": "CF-1.8",
            "proj:code": grid.crs,
            "history": f"eoflows {__version__} s2-indices",
        },
    )
    ds.to_zarr(path, mode="w", compute=False, zarr_format=3, consolidated=False, encoding=encoding)


class Chunk(NamedTuple):
    """One encoded chunk of a product, ready to be written."""

    product: str
    coords: tuple[int, ...]
    data: bytes | None  # None: all fill value, nothing to store (as Zarr does)


def write_window(path: Path, results: Iterable[tuple[str, np.ndarray]], rows: slice, cols: slice) -> None:
    """Write one window of each (product, block) straight into the store at `path` (Zarr encodes)."""
    group = zarr.open_group(str(path), mode="r+")
    for name, block in results:
        group[name][..., rows, cols] = block


def chunk_templates(path: str, products: list[str]) -> dict[str, str]:
    """Per product, the array metadata (zarr.json) of the store at `path`, resized to a single chunk."""
    group = zarr.open_group(path, mode="r")
    templates = {}
    for name in products:
        meta = group[name].metadata.to_dict()
        meta["shape"] = list(meta["chunk_grid"]["configuration"]["chunk_shape"])
        templates[name] = json.dumps(meta)
    return templates


def encode_chunk(template: str, block: np.ndarray) -> bytes | None:
    """The stored bytes of a chunk holding `block` (padded with the fill value, like Zarr's edge chunks)."""
    chunks: dict = {"zarr.json": cpu.Buffer.from_bytes(template.encode())}
    array = zarr.open_array(MemoryStore(chunks), mode="r+")
    array[tuple(slice(0, n) for n in block.shape)] = block
    data = chunks.get(array.metadata.encode_chunk_key((0,) * block.ndim))
    return None if data is None else data.to_bytes()


def encode_window(
    templates: dict[str, str],
    results: Iterable[tuple[str, np.ndarray]],
    rows: slice,
    cols: slice,
    chunk: tuple[int, int],
) -> list[Chunk]:
    """Encode one window of each (product, block); the window must be one chunk of the store."""
    coords = (rows.start // chunk[0], cols.start // chunk[1])
    return [
        Chunk(name, (0,) * (block.ndim - 2) + coords, encode_chunk(templates[name], block)) for name, block in results
    ]


def chunk_path(path: Path, templates: dict[str, str], product: str, coords: tuple[int, ...]) -> Path:
    """The file of `product`'s chunk at `coords` (its grid indices; leading ones of a composite's bands first)."""
    return path / product / ArrayV3Metadata.from_dict(json.loads(templates[product])).encode_chunk_key(coords)


def write_chunks(path: Path, templates: dict[str, str], chunks: Iterable[Chunk]) -> int:
    """Write encoded chunks into the store at `path`; return the bytes written."""
    written = 0
    for product, coords, data in chunks:
        if data is None:
            continue
        target = chunk_path(path, templates, product, coords)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written += len(data)
    return written

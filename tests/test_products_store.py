"""The products store: both ways of writing a window give the same store, readable by xarray."""

from pathlib import Path

import numpy as np
import xarray as xr

from tasks.data.grid import Grid
from tasks.data.products_store import chunk_templates, create_store, encode_window, write_chunks, write_window

GRID = Grid("EPSG:32632", 499980.0, 5000040.0, 10.0, 70, 50)  # 50 rows, 70 columns: edge chunks are partial
CHUNK = (20, 30)


def windows():
    for r in range(0, GRID.height, CHUNK[0]):
        for c in range(0, GRID.width, CHUNK[1]):
            yield slice(r, min(r + CHUNK[0], GRID.height)), slice(c, min(c + CHUNK[1], GRID.width))


def test_encoded_chunks_equal_direct_writes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ndvi = rng.random((GRID.height, GRID.width), dtype=np.float32)
    ndvi[3:9, 40:60] = np.nan
    rgb = rng.integers(0, 256, (3, GRID.height, GRID.width), dtype=np.uint8)
    rgb[:, 20:40, 30:60] = 0  # a chunk that is all fill value: not stored at all
    direct, encoded = tmp_path / "direct.zarr", tmp_path / "encoded.zarr"
    for store in (direct, encoded):
        create_store(str(store), GRID, ["ndvi", "rgb"], CHUNK, "test")
    templates = chunk_templates(str(encoded), ["ndvi", "rgb"])
    for rows, cols in windows():
        blocks = [("ndvi", ndvi[rows, cols]), ("rgb", rgb[:, rows, cols])]
        write_window(direct, blocks, rows, cols)
        write_chunks(encoded, templates, encode_window(templates, blocks, rows, cols, CHUNK))
    files = lambda root: {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}  # noqa: E731
    assert files(direct) == files(encoded)  # byte for byte, the same chunk files
    ds = xr.open_zarr(encoded, consolidated=False)
    np.testing.assert_array_equal(ds.ndvi.values, ndvi)
    np.testing.assert_array_equal(ds.rgb.values, rgb)
    assert ds.ndvi.attrs["grid_mapping"] == "spatial_ref" and "crs_wkt" in ds.spatial_ref.attrs

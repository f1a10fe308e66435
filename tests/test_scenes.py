"""Reading a scene's band onto a window of the output grid (tasks.data.scenes.read_on_grid)."""

import numpy as np
import pytest
import rasterio
from rasterio.warp import Resampling, reproject

from tasks.data.grid import Grid
from tasks.data.scenes import Raster, aligned_shift, read_on_grid, window_transform
from tasks.science.indices import Coding

SRC = Grid("EPSG:32610", 600000.0, 4500000.0, 10.0, 300, 200)


@pytest.fixture(scope="module")
def raster(tmp_path_factory: pytest.TempPathFactory) -> Raster:
    values = np.random.default_rng(3).integers(1, 10000, (SRC.height, SRC.width), dtype=np.uint16)
    path = tmp_path_factory.mktemp("scene") / "b08.tif"
    profile = {"driver": "GTiff", "width": SRC.width, "height": SRC.height, "count": 1, "dtype": "uint16",
               "crs": SRC.crs, "transform": window_transform(SRC, slice(0, 1), slice(0, 1)), "nodata": 0,
               "tiled": True, "blockxsize": 64, "blockysize": 64}  # fmt: skip
    with rasterio.open(path, "w", **profile) as out:
        out.write(values, 1)
    return Raster(str(path), SRC, Coding("uint16", 1e-4, 0.0, 0))


def gdal(raster: Raster, grid: Grid, rows: slice, cols: slice) -> np.ndarray:
    """GDAL's own reprojection of the whole raster onto the window (nearest): what the fast path must equal."""
    with rasterio.open(raster.href) as src:
        data = src.read(1)
    out = np.zeros((rows.stop - rows.start, cols.stop - cols.start), np.uint16)
    reproject(data, out, src_transform=window_transform(SRC, slice(0, SRC.height), slice(0, SRC.width)),
              src_crs=SRC.crs, src_nodata=0, dst_transform=window_transform(grid, rows, cols), dst_crs=grid.crs,
              dst_nodata=0, resampling=Resampling.nearest)  # fmt: skip
    return out


@pytest.mark.parametrize(
    ("grid", "rows", "cols"),
    [
        (SRC, slice(0, 64), slice(64, 128)),  # the raster's own grid
        (Grid(SRC.crs, SRC.x0 + 50.0, SRC.y0 - 30.0, 10.0, 400, 400), slice(150, 230), slice(250, 330)),  # past edges
        (Grid(SRC.crs, SRC.x0 - 100.0, SRC.y0 + 20.0, 10.0, 400, 400), slice(0, 50), slice(0, 40)),  # before the origin
    ],
)
def test_on_the_same_pixels_a_window_is_read_as_it_is(raster: Raster, grid: Grid, rows: slice, cols: slice) -> None:
    assert aligned_shift(SRC, grid) is not None
    np.testing.assert_array_equal(read_on_grid(raster, grid, rows, cols), gdal(raster, grid, rows, cols))


def test_other_pixels_are_resampled() -> None:
    assert aligned_shift(SRC, Grid(SRC.crs, SRC.x0 + 5.0, SRC.y0, 10.0, 10, 10)) is None  # half a pixel off
    assert aligned_shift(SRC, Grid(SRC.crs, SRC.x0, SRC.y0, 20.0, 10, 10)) is None  # another pixel size
    assert aligned_shift(SRC, Grid("EPSG:32611", SRC.x0, SRC.y0, 10.0, 10, 10)) is None  # another CRS
    assert aligned_shift(SRC, Grid(SRC.crs, SRC.x0 + 30.0, SRC.y0 - 20.0, 10.0, 10, 10)) == (2, 3)


def test_a_shifted_grid_still_matches_gdal(raster: Raster) -> None:
    grid = Grid(SRC.crs, SRC.x0 + 5.0, SRC.y0 - 5.0, 10.0, 100, 100)  # not aligned: GDAL reprojects
    rows, cols = slice(10, 60), slice(20, 70)
    np.testing.assert_array_equal(read_on_grid(raster, grid, rows, cols), gdal(raster, grid, rows, cols))


def test_windows_of_http_and_s3_cogs_read_on_many_threads_at_once(raster: Raster, s3) -> None:
    """GDAL's own drivers (/vsicurl/, /vsis3/ with the S3 settings), each read on its own thread, as windows run."""
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path

    import s3fs

    from tests.conftest import serve

    s3fs.S3FileSystem(**s3.storage().s3fs_options()).put(raster.href, "eoflows-source/scenes/b08.tif")
    expected = Raster(raster.href, SRC, raster.coding).read(slice(0, SRC.height), slice(0, SRC.width))
    windows = [(slice(r, r + 50), slice(c, c + 60)) for r in range(0, SRC.height, 50) for c in range(0, SRC.width, 60)]
    with serve(Path(raster.href).parent) as url:
        for href, storage in ((f"{url}/b08.tif", None), ("s3://eoflows-source/scenes/b08.tif", s3.storage())):
            remote = Raster(href, SRC, raster.coding, storage=storage)
            with ThreadPoolExecutor(8) as pool:
                found = list(pool.map(remote.read, *zip(*(windows * 4), strict=True)))
            for (rows, cols), values in zip(windows * 4, found, strict=True):
                np.testing.assert_array_equal(values, expected[rows, cols], err_msg=href)


def test_gdal_reads_s3_with_the_settings_and_keeps_keys_out_of_its_options(s3) -> None:
    from tasks.data.scenes import gdal_source

    path, env = gdal_source("s3://eoflows-inputs/a/b.tif", s3.storage())
    assert path == "/vsis3/eoflows-inputs/a/b.tif"
    options = {k: v for k, v in env.items() if k != "session"}
    assert options["AWS_HTTPS"] == "NO" and options["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert options["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR" and options["GDAL_HTTP_MAX_RETRY"] == "1"
    assert s3.secret_access_key not in str(options)  # the keys go through rasterio's AWS session only
    credentials = env["session"].get_credential_options()
    assert credentials["AWS_S3_ENDPOINT"] == s3.endpoint_url.removeprefix("http://")
    assert credentials["AWS_SECRET_ACCESS_KEY"] == s3.secret_access_key
    assert gdal_source("https://example.org/b.tif", None)[0] == "/vsicurl/https://example.org/b.tif"

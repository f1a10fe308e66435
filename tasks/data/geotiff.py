"""GeoTIFFs with rasterio: opening a staged raster, resized reads and copies, tiled writing, COGs, gdalinfo.

Reads are decimated by GDAL (it uses a file's overviews when it has them and never holds the full image);
written rasters keep the source's CRS, nodata, tags and band descriptions.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from eoflows.errors import InputError
from tasks.data.grid import Grid

#: GDAL's names of NumPy data types (as gdalinfo prints them)
GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "float32": "Float32", "float64": "Float64"}  # fmt: skip
TILE = 512  # pixels per side of the tiles of the GeoTIFFs and COGs written here
CLASS_TAG = "CLASS_{}"  # band tag holding the name of a class: CLASS_<code>=<name>
Rgba = tuple[int, int, int, int]
WindowWriter = Callable[[np.ndarray, slice, slice], None]  # write(values, rows, cols)


@contextmanager
def open_raster(path: Path, what: str) -> Iterator[Any]:
    """The rasterio dataset of the raster at `path`; `what` names it in the error when it is not one."""
    import rasterio
    from rasterio.errors import RasterioIOError

    if path.stat().st_size == 0:
        raise InputError(f"{what}: an empty file (0 bytes)")
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{what}: not a GeoTIFF or other raster GDAL reads ({exc})") from exc
    with src:
        yield src


@dataclass(frozen=True)
class Footprint:
    """Where a raster lies: its WGS 84 bounding box and its projection (fields of the STAC projection extension)."""

    bbox: list[float]  # west, south, east, north in degrees
    epsg: int | None
    wkt2: str
    shape: list[int]  # rows, columns
    transform: list[float]
    bounds: list[float]  # in the raster's CRS


def footprint(src: Any, what: str) -> Footprint:
    """The footprint of an open raster; one without a CRS is refused."""
    from rasterio.warp import transform_bounds

    if src.crs is None:
        raise InputError(f"{what}: the raster has no CRS")
    bbox = list(transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21))
    return Footprint(bbox, src.crs.to_epsg(), src.crs.to_wkt(), [src.height, src.width], list(src.transform)[:6],
                     list(src.bounds))  # fmt: skip


def read_resized(src: Any, width: int, height: int, method: str, bands: list[int] | None = None) -> np.ma.MaskedArray:
    """Bands of `src` (all by default) read at width x height with GDAL's resampling `method` (masked nodata)."""
    from rasterio.enums import Resampling

    indexes = bands or list(range(1, src.count + 1))
    return src.read(indexes, out_shape=(len(indexes), height, width), resampling=Resampling[method], masked=True)


def write_resized(src: Any, path: Path, width: int, height: int, method: str) -> None:
    """A deflate GeoTIFF of `src` at width x height, geotransform scaled.

    CRS, nodata, dataset and band tags, band descriptions and colour tables are kept.
    """
    import rasterio
    from affine import Affine

    data = read_resized(src, width, height, method)
    profile = {**src.profile, "driver": "GTiff", "width": width, "height": height, "compress": "deflate",
               "transform": src.transform @ Affine.scale(src.width / width, src.height / height)}  # fmt: skip
    for key in ("blockxsize", "blockysize", "tiled", "interleave", "photometric"):
        profile.pop(key, None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data.filled(src.nodata) if src.nodata is not None else data.data)
        dst.update_tags(**src.tags())
        dst.descriptions = src.descriptions
        for band in range(1, src.count + 1):
            dst.update_tags(band, **src.tags(band))
            try:
                dst.write_colormap(band, src.colormap(band))
            except ValueError:
                continue  # no colour table on this band


def open_tiled(path: Path, grid: Grid, dtype: str, nodata: float, description: str,
               classes: Mapping[int, str] | None = None, colours: Mapping[int, Rgba] | None = None) -> Any:  # fmt: skip
    """A one-band tiled GeoTIFF on `grid`, open to write windows; uncompressed: data is encoded once (`to_cog`).

    Band 1 gets `description`; a classified band its colour table (`colours`: code -> RGBA) and the names of its
    `classes` as band tags (`CLASS_TAG`). GeoTIFF keeps GDAL category names only in a .aux.xml sidecar, which
    neither a COG nor a STAC asset carries; tags are in the file. `to_cog` keeps all three.
    """
    import rasterio
    from rasterio.transform import Affine

    dataset = rasterio.open(path, "w", driver="GTiff", dtype=dtype, count=1, width=grid.width, height=grid.height,
                            crs=grid.crs, transform=Affine(*grid.transform), nodata=nodata, tiled=True,
                            blockxsize=TILE, blockysize=TILE, BIGTIFF="IF_SAFER")  # fmt: skip
    dataset.set_band_description(1, description)
    if colours:
        dataset.write_colormap(1, dict(colours))
    if classes:
        dataset.update_tags(1, **{CLASS_TAG.format(code): name for code, name in classes.items()})
    return dataset


def write_window(dataset: Any, values: np.ndarray, rows: slice, cols: slice) -> None:
    """Write `values` into band 1 of an open dataset over a window of its grid."""
    from rasterio.windows import Window

    dataset.write(values, 1, window=Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start))


def to_cog(tiled: Path, cog: Path, overview_resampling: str) -> None:
    """Copy a tiled GeoTIFF to a Cloud Optimized GeoTIFF (512-pixel tiles, overviews, deflate).

    GDAL's COG driver keeps the nodata, band descriptions, band tags and colour table of `tiled`.
    """
    import rasterio.shutil

    rasterio.shutil.copy(str(tiled), str(cog), driver="COG", COMPRESS="DEFLATE", PREDICTOR="YES", BLOCKSIZE=TILE,
                         OVERVIEW_RESAMPLING=overview_resampling, BIGTIFF="IF_SAFER")  # fmt: skip


@contextmanager
def cog_writer(cog: Path, grid: Grid, dtype: str, nodata: float, description: str, overview_resampling: str,
               classes: Mapping[int, str] | None = None,
               colours: Mapping[int, Rgba] | None = None) -> Iterator[WindowWriter]:  # fmt: skip
    """Write a one-band COG on `grid` window by window: yields `write(values, rows, cols)`.

    Windows go into a tiled GeoTIFF beside `cog` (`open_tiled`: arguments as there), made the COG when the block
    ends (`to_cog`), and removed; a block that fails leaves no COG.
    """
    tiled = cog.with_name(f".{cog.name}.tiled.tif")
    dataset = open_tiled(tiled, grid, dtype, nodata, description, classes, colours)
    try:
        yield partial(write_window, dataset)
    finally:
        dataset.close()
    to_cog(tiled, cog, overview_resampling)
    tiled.unlink()


def overview(cog: Path, max_size: int = 1024) -> np.ndarray:
    """Band 1 of a COG decimated to fit in `max_size` pixels (read from its overviews)."""
    import rasterio

    with rasterio.open(cog) as src:
        step = max(1, -(-max(src.width, src.height) // max_size))
        return src.read(1, out_shape=(-(-src.height // step), -(-src.width // step)))


def gdalinfo(path: Path) -> dict[str, Any]:
    """What `gdalinfo -json -stats` says of a raster (driver, size, CRS, geotransform, corners, bands)."""
    import rasterio
    from rasterio.warp import transform

    with rasterio.open(path) as src:
        t, w, h = src.transform, src.width, src.height
        corners = {"upperLeft": t @ (0, 0), "lowerLeft": t @ (0, h), "lowerRight": t @ (w, h),
                   "upperRight": t @ (w, 0), "center": t @ (w / 2, h / 2)}  # fmt: skip
        xs, ys = transform(src.crs, "EPSG:4326", [c[0] for c in corners.values()], [c[1] for c in corners.values()])
        bands = []
        for index in range(1, src.count + 1):
            data = src.read(index, masked=True)
            stats = {} if data.count() == 0 else {
                "minimum": float(data.min()), "maximum": float(data.max()), "mean": float(data.mean()),
                "stdDev": float(data.std())}  # fmt: skip
            dtype = src.dtypes[index - 1]
            bands.append({"band": index, "block": list(src.block_shapes[index - 1][::-1]),
                          "type": GDAL_TYPES.get(dtype, dtype),
                          "colorInterpretation": src.colorinterp[index - 1].name.capitalize(),
                          "description": src.descriptions[index - 1] or "", "noDataValue": src.nodatavals[index - 1],
                          **stats, "metadata": {}})  # fmt: skip
        return {
            "description": str(path.name),
            "driver": src.driver,
            "driverLongName": {"GTiff": "GeoTIFF"}.get(src.driver, src.driver),
            "files": [path.name],
            "size": [w, h],
            "coordinateSystem": {"wkt": src.crs.to_wkt() if src.crs else "", "dataAxisToSRSAxisMapping": [1, 2]},
            "geoTransform": [t.c, t.a, t.b, t.f, t.d, t.e],
            "metadata": {"": src.tags(), "IMAGE_STRUCTURE": src.tags(ns="IMAGE_STRUCTURE")},
            "cornerCoordinates": {k: [round(v[0], 3), round(v[1], 3)] for k, v in corners.items()},
            "wgs84Extent": {"type": "Polygon", "coordinates": [[[xs[i], ys[i]] for i in (0, 1, 2, 3, 0)]]},
            "bands": bands,
        }

"""Sentinel-2 L2A scenes from STAC items of any common shape, read window by window onto any grid.

Items come as Earth Search v1 (asset keys `nir`, `swir22`, `scl`, one COG per band), Earth Search v0
(asset keys `B08`, `B12`, `SCL`) or EOPF Zarr (one `product` store). Band assets are found by their
`eo:bands` / `bands` names and common names first, asset keys second; the grid of each band comes from the
projection extension (asset, then item), else from the file itself; never from a fixed list of CRSs.

COGs are read by GDAL's own drivers: local paths as they are, http(s) through `/vsicurl/` and s3:// through
`/vsis3/` (the S3 settings as GDAL options of the reading thread), so a window only fetches the tiles it covers
and GDAL's cache keeps each file's size and header between the windows' opens. Not through fsspec
(`rasterio.open(..., opener=...)`): rasterio's Python opener crashed the process (a segmentation fault) when
windows on threads of one process read HTTP COGs at once.
"""

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pystac

from eoflows.errors import InputError
from eoflows.settings import S3Settings
from tasks.data.eopf import check_eopf_l2a, crs_of, is_zarr, open_array, open_source, proj_crs
from tasks.data.grid import Grid
from tasks.data.sentinel2 import SCL_GROUP, band_name, check_sentinel2_l2a
from tasks.data.stac_io import io_error
from tasks.data.storage import scheme
from tasks.reporting import logger
from tasks.science.burn import reflectance
from tasks.science.indices import Coding

# rasterio's in-memory datasets (reproject of arrays) warn before their transform is set; every grid read
# here is checked to be georeferenced, so that warning says nothing (a filter per call would race in threads)
warnings.filterwarnings("ignore", message="Dataset has no geotransform", module="rasterio")
COG_TYPES = ("image/tiff", "image/vnd.stac.geotiff")
#: Reflectance coding assumed for COG assets without `raster:bands` (Earth Search v0): DN / 10000.
DEFAULT_CODING = Coding("uint16", 1e-4, 0.0, 0)


@dataclass(frozen=True)
class Raster:
    """One band of one scene: a COG (or an array in a Zarr store), its native grid and how it decodes."""

    href: str
    grid: Grid
    coding: Coding
    path: str | None = None  # array path inside a Zarr store; None for a COG
    storage: S3Settings | None = field(default=None, repr=False)

    def read(self, rows: slice, cols: slice) -> np.ndarray:
        """Digital numbers over a window of the native grid."""
        if self.path is not None:
            return np.asarray(open_array(self.href, self.path, self.storage)[rows, cols])
        import rasterio
        from rasterio.windows import Window

        window = Window(cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start)
        path, options = gdal_source(self.href, self.storage)
        with rasterio.Env(**options), rasterio.open(path) as src:
            return src.read(1, window=window)


#: GDAL options of every remote read: no listing of the file's folder for side-car files (one request less per
#: open; the items say what there is).
REMOTE_OPTIONS = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}


def gdal_source(href: str, storage: S3Settings | None) -> tuple[str, dict[str, Any]]:
    """The path GDAL opens `href` by, and the `rasterio.Env` keyword arguments of that read."""
    kind = scheme(href)
    if kind == "s3":
        from rasterio.session import AWSSession

        settings = storage or S3Settings.from_env()
        env = {"session": AWSSession(**settings.gdal_session()), **REMOTE_OPTIONS, **settings.gdal_options()}
        return "/vsis3/" + href.removeprefix("s3://"), env
    if kind in ("http", "https"):  # the timeouts of S3 reads (GDAL_HTTP_*), as fsspec's http reads have them
        timeouts = {k: v for k, v in (storage or S3Settings.from_env()).gdal_options().items() if "_HTTP_" in k}
        return "/vsicurl/" + href, {**REMOTE_OPTIONS, **timeouts}
    return href.removeprefix("file://"), {}


def _grid(proj: dict[str, Any], crs: str, where: str) -> Grid | None:
    transform, shape = proj.get("proj:transform"), proj.get("proj:shape")
    if not transform or not shape:
        return None
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    if b or d or e != -a:
        raise InputError(f"{where}: proj:transform {transform} is not a north-up grid with square pixels")
    return Grid(crs, c, f, a, int(shape[1]), int(shape[0]))


def item_crs(item: pystac.Item, asset: pystac.Asset | None, href: str) -> str | None:
    """``EPSG:<code>`` (or WKT) of an asset or its item, from the projection extension; None when absent."""
    for props in (asset.extra_fields if asset else {}, item.properties):
        if crs := proj_crs(props, href, wkt=True):
            return crs
    return None


def _asset_bands(asset: pystac.Asset) -> list[str]:
    bands = asset.extra_fields.get("bands") or asset.extra_fields.get("eo:bands") or []
    found = []
    for b in bands:
        for name in (b.get("name"), b.get("eo:common_name"), b.get("common_name")):
            if name and (ours := band_name(str(name))):
                found.append(ours)
                break
    return found


def _is_cog(asset: pystac.Asset) -> bool:
    kind = (asset.media_type or "").lower()
    return any(kind.startswith(t) for t in COG_TYPES) or asset.href.lower().endswith((".tif", ".tiff"))


def _is_scl(key: str, asset: pystac.Asset) -> bool:
    return key.lower() == "scl" or "scene classification" in (asset.title or "").lower()


def find_asset(item: pystac.Item, band: str, href: str) -> tuple[str, pystac.Asset]:
    """The single-band COG asset of `band` (``b08`` or ``scl``): by band metadata first, then by key."""
    cogs = {k: a for k, a in item.assets.items() if _is_cog(a)}
    if band == "scl":
        found = [(k, a) for k, a in cogs.items() if _is_scl(k, a)]
    else:
        found = [(k, a) for k, a in cogs.items() if _asset_bands(a) == [band]]
        found = found or [(k, a) for k, a in cogs.items() if band_name(k) == band and not _asset_bands(a)]
    if not found:
        raise InputError(
            f"STAC item {href!r}: no COG asset for band {band.upper()} (assets: {', '.join(sorted(item.assets))})"
        )
    return min(found, key=lambda ka: ("data" not in (ka[1].roles or []), ka[0]))


def _coding(asset: pystac.Asset, key: str, href: str, scl: bool) -> Coding:
    bands = asset.extra_fields.get("raster:bands") or asset.extra_fields.get("bands") or [{}]
    info = {k.removeprefix("raster:"): v for k, v in bands[0].items()}
    info.update({k.removeprefix("raster:"): v for k, v in asset.extra_fields.items() if k.startswith("raster:")})
    nodata = info.get("nodata", asset.extra_fields.get("nodata", 0))
    dtype = str(info.get("data_type") or ("uint8" if scl else "uint16"))
    if scl:
        return Coding(dtype, 1.0, 0.0, None if nodata is None else int(nodata))
    if "scale" not in info:
        logger().warning("Asset %r of %s has no raster:scale/offset: reading it as reflectance = DN / 10000", key, href)
        return DEFAULT_CODING._replace(dtype=dtype, nodata=None if nodata is None else int(nodata))
    return Coding(dtype, float(info["scale"]), float(info.get("offset", 0.0)), None if nodata is None else int(nodata))


def _file_grid(asset_href: str, storage: S3Settings | None, where: str) -> Grid:
    import rasterio

    try:
        path, options = gdal_source(asset_href, storage)
        with rasterio.Env(**options), rasterio.open(path) as src:
            t = src.transform
            if t.b or t.d or t.e != -t.a:
                raise InputError(f"{where}: not a north-up grid with square pixels")
            epsg = src.crs.to_epsg() if src.crs else None
            crs = f"EPSG:{epsg}" if epsg else (src.crs.to_wkt() if src.crs else None)
            if crs is None:
                raise InputError(f"{where}: no CRS in the item nor in the file")
            return Grid(crs, t.c, t.f, t.a, src.width, src.height)
    except InputError:
        raise
    except Exception as exc:
        raise io_error(where, asset_href, exc) from exc


@dataclass(frozen=True)
class Scene:
    """The bands of one acquisition that a computation needs, keyed by band name (``b08``, ``b12``, ``scl``)."""

    item_id: str
    href: str  # where the item came from
    bands: dict[str, Raster]

    def footprint(self, band: str) -> Grid:
        """The native grid of `band`."""
        return self.bands[band].grid


def open_scene(item: pystac.Item, href: str, bands: list[str], storage: S3Settings | None = None) -> Scene:
    """Plan reading `bands` (and ``scl`` if listed) of a Sentinel-2 L2A item of any supported shape."""
    check_sentinel2_l2a(item.properties, item.collection_id, href)
    product = item.assets.get("product")
    if product is not None and is_zarr(product):
        return _eopf_scene(item, href, bands, storage)
    rasters = {}
    for band in bands:
        key, asset = find_asset(item, band, href)
        asset_href = asset.get_absolute_href() or asset.href
        where = f"asset {key!r} of STAC item {href!r}"
        crs = item_crs(item, asset, href)
        grid = _grid(asset.extra_fields, crs, where) if crs else None
        if grid is None and crs and band != "scl":
            grid = _grid(item.properties, crs, where) if item.properties.get("proj:shape") else None
        grid = grid or _file_grid(asset_href, storage, where)
        rasters[band] = Raster(asset_href, grid, _coding(asset, key, href, band == "scl"), None, storage)
    return Scene(item.id, href, rasters)


def _eopf_scene(item: pystac.Item, href: str, bands: list[str], storage: S3Settings | None) -> Scene:
    reflectance = [b for b in bands if b != "scl"]
    source = open_source(item, href, reflectance, storage)
    rasters = {}
    for band in reflectance:
        src = source.bands[band]
        g = source.grid
        grid = Grid(g.crs, g.x0, g.y0, g.res * src.factor, g.width // src.factor, g.height // src.factor)
        rasters[band] = Raster(source.store, grid, src.coding, src.path, storage)
    if "scl" in bands:
        store = check_eopf_l2a(item, href)
        try:
            array = open_array(store, f"{SCL_GROUP}/scl", storage)
        except KeyError as exc:
            raise InputError(f"product {store!r}: no scene classification at {SCL_GROUP}/scl") from exc
        g, (height, width) = source.grid, array.shape
        res = g.res * g.width / width
        crs = crs_of(item, {}, href)
        rasters["scl"] = Raster(store, Grid(crs, g.x0, g.y0, res, width, height), Coding("uint8", 1, 0, 0),
                                f"{SCL_GROUP}/scl", storage)  # fmt: skip
    return Scene(item.id, href, rasters)


def window_transform(grid: Grid, rows: slice, cols: slice):
    """The affine transform of a window of `grid`."""
    from affine import Affine

    return Affine(grid.res, 0, grid.x0 + cols.start * grid.res, 0, -grid.res, grid.y0 - rows.start * grid.res)


def aligned_shift(src: Grid, grid: Grid) -> tuple[int, int] | None:
    """(rows, columns) of `grid`'s origin in `src` when both share CRS, pixel size and pixel edges, else None."""
    if src.crs != grid.crs or src.res != grid.res:
        return None
    rows, cols = (src.y0 - grid.y0) / src.res, (grid.x0 - src.x0) / src.res
    return (round(rows), round(cols)) if abs(rows - round(rows)) < 1e-6 and abs(cols - round(cols)) < 1e-6 else None


def read_on_grid(raster: Raster, grid: Grid, rows: slice, cols: slice, resampling: str = "nearest") -> np.ndarray:
    """`raster`'s digital numbers resampled onto a window of `grid` (its no-data value where it has none).

    Only the part of the raster under the window (plus a two-pixel margin) is read; on the same pixels (same CRS,
    pixel size and edges), the window itself, without GDAL's reprojection.
    """
    from rasterio.warp import Resampling, reproject, transform_bounds

    height, width = rows.stop - rows.start, cols.stop - cols.start
    nodata = raster.coding.nodata if raster.coding.nodata is not None else 0
    out = np.full((height, width), nodata, np.dtype(raster.coding.dtype))
    left, top = grid.x0 + cols.start * grid.res, grid.y0 - rows.start * grid.res
    bounds = (left, top - height * grid.res, left + width * grid.res, top)
    src = raster.grid
    if src.crs != grid.crs:
        bounds = transform_bounds(grid.crs, src.crs, *bounds, densify_pts=21)
    c0 = max(math.floor((bounds[0] - src.x0) / src.res) - 2, 0)
    c1 = min(math.ceil((bounds[2] - src.x0) / src.res) + 2, src.width)
    r0 = max(math.floor((src.y0 - bounds[3]) / src.res) - 2, 0)
    r1 = min(math.ceil((src.y0 - bounds[1]) / src.res) + 2, src.height)
    if c0 >= c1 or r0 >= r1:
        return out
    shift = aligned_shift(src, grid)
    if shift is not None:  # the same pixels: a window of the raster as it is, no resampling
        r0, c0 = max(rows.start + shift[0], 0), max(cols.start + shift[1], 0)
        r1, c1 = min(rows.stop + shift[0], src.height), min(cols.stop + shift[1], src.width)
        if r0 < r1 and c0 < c1:
            y, x = r0 - rows.start - shift[0], c0 - cols.start - shift[1]
            out[y : y + r1 - r0, x : x + c1 - c0] = raster.read(slice(r0, r1), slice(c0, c1))
        return out
    data = raster.read(slice(r0, r1), slice(c0, c1))
    reproject(data, out, src_transform=window_transform(src, slice(r0, r1), slice(c0, c1)), src_crs=src.crs,
              src_nodata=nodata, dst_transform=window_transform(grid, rows, cols), dst_crs=grid.crs,
              dst_nodata=nodata, resampling=Resampling[resampling])  # fmt: skip
    return out


def read_reflectance(raster: Raster, grid: Grid, rows: slice, cols: slice, resampling: str = "nearest") -> np.ndarray:
    """`raster` decoded to reflectance (float32, NaN for no data) over a window of `grid` (`read_on_grid`)."""
    coding = raster.coding
    return reflectance(read_on_grid(raster, grid, rows, cols, resampling), coding.scale, coding.offset, coding.nodata)


def overlap(a: Grid, b: Grid) -> float:
    """Fraction of grid `a`'s area that grid `b` covers (b's bounds brought to a's CRS)."""
    from rasterio.warp import transform_bounds

    bb = b.bbox if a.crs == b.crs else transform_bounds(b.crs, a.crs, *b.bbox, densify_pts=21)
    ab = a.bbox
    w = max(0.0, min(ab[2], bb[2]) - max(ab[0], bb[0]))
    h = max(0.0, min(ab[3], bb[3]) - max(ab[1], bb[1]))
    return w * h / ((ab[2] - ab[0]) * (ab[3] - ab[1]))

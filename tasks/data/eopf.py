"""Sentinel-2 L2A products in the EOPF Zarr layout: check an item, find its bands, grid and CRS.

Bands are found through the item's band assets (by band name or `eo:common_name`, hrefs inside the
product store) and otherwise at their EOPF group path in the `product` store; the CRS comes from
`proj:code` (falling back to `proj:epsg`, then the store's own `stac_discovery` metadata); scale and offset
from the arrays' CF attributes, else the assets' `raster:scale` / `raster:offset`.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import pystac

from eoflows.errors import InputError
from eoflows.settings import S3Settings
from tasks.data.grid import Grid
from tasks.data.sentinel2 import BANDS, band_name, band_path, check_sentinel2_l2a
from tasks.data.storage import open_zarr_group, open_zarr_group_with, storage_options
from tasks.science.indices import Coding

if TYPE_CHECKING:
    import zarr


@dataclass(frozen=True)
class BandSource:
    """Where one band is read from and how it decodes."""

    band: str
    path: str  # array path inside the store
    coding: Coding
    factor: int  # output pixels per input pixel, per axis


@dataclass(frozen=True)
class EopfSource:
    """What the compute step reads: the product store, its bands, the 10 m output grid and its chunking."""

    item_id: str
    store: str
    grid: Grid
    chunk: tuple[int, int]
    bands: dict[str, BandSource]
    storage: S3Settings | None = None

    def read(self, band: str, rows: slice, cols: slice) -> np.ndarray:
        """Digital numbers of `band` over an output-grid window (rows, cols at 10 m)."""
        src = self.bands[band]
        f = src.factor
        array = open_array(self.store, src.path, self.storage)
        try:
            return array[rows.start // f : -(-rows.stop // f), cols.start // f : -(-cols.stop // f)]
        except (RuntimeError, ValueError) as exc:  # a codec's error: the stored chunk is damaged
            raise InputError(
                f"product {self.store!r}: band {band} cannot be decoded in rows {rows.start}-{rows.stop}, columns "
                f"{cols.start}-{cols.stop} of the 10 m grid (a damaged chunk: {exc})"
            ) from exc


def missing_chunks(source: EopfSource) -> dict[str, tuple[int, int]]:
    """Per band: chunks absent from the store, and chunks in all (absent ones read as the fill value, as Zarr says)."""
    counts = {}
    for band, src in source.bands.items():
        array = open_array(source.store, src.path, source.storage)
        counts[band] = (array.nchunks - array.nchunks_initialized, array.nchunks)
    return counts


def is_zarr(asset: pystac.Asset) -> bool:
    """True for an asset that is a Zarr store or array."""
    return "zarr" in (asset.media_type or "") or asset.href.rstrip("/").endswith(".zarr")


def check_eopf_l2a(item: pystac.Item, href: str) -> str:
    """Check that `item` is a Sentinel-2 L2A EOPF product; return the href of its Zarr product store."""
    check_sentinel2_l2a(item.properties, item.collection_id, href)
    product = item.assets.get("product")
    if product is None or not is_zarr(product):
        zarrs = [k for k, a in item.assets.items() if is_zarr(a) and "data" in (a.roles or [])]
        raise InputError(
            f"STAC item {href!r}: no EOPF Zarr 'product' asset (found assets {sorted(item.assets)}"
            + (f"; Zarr assets {zarrs}" if zarrs else "")
            + ")"
        )
    return product.get_absolute_href() or product.href


def _asset_band(asset: pystac.Asset) -> str | None:
    bands = asset.extra_fields.get("bands") or asset.extra_fields.get("eo:bands") or []
    if len(bands) != 1:
        return None
    b = bands[0]
    return band_name(str(b.get("name", ""))) or band_name(str(b.get("eo:common_name") or b.get("common_name") or ""))


def band_assets(item: pystac.Item, store: str) -> dict[str, pystac.Asset]:
    """Band name -> the finest single-band asset of the item that lies inside `store`."""
    found: dict[str, pystac.Asset] = {}
    prefix = store.rstrip("/") + "/"
    for asset in item.assets.values():
        band = _asset_band(asset)
        href = asset.get_absolute_href() or asset.href
        if band is None or not href.startswith(prefix):
            continue
        gsd = asset.extra_fields.get("gsd") or BANDS[band].resolution
        if band not in found or gsd < (found[band].extra_fields.get("gsd") or 1e9):
            found[band] = asset
    return found


def proj_crs(props: dict[str, Any], href: str, wkt: bool = False) -> str | None:
    """``EPSG:<code>`` of projection-extension properties (`proj:code`, `proj:epsg`; `proj:wkt2` if `wkt`)."""
    code = props.get("proj:code") or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None)
    code = code or (props.get("proj:wkt2") if wkt else None)
    if not code:
        return None
    from pyproj import CRS  # its database: when an item is read, not when a step starts
    from pyproj.exceptions import CRSError

    try:
        epsg = CRS.from_user_input(code).to_epsg()
    except CRSError as exc:
        raise InputError(f"STAC item {href!r}: unknown CRS {code!r} ({exc})") from exc
    return f"EPSG:{epsg}" if epsg else str(code)


def crs_of(item: pystac.Item, root_attrs: dict[str, Any], href: str) -> str:
    """The CRS of the product as ``EPSG:<code>``."""
    discovered = (root_attrs.get("stac_discovery") or {}).get("properties") or {}
    for props in (item.properties, discovered):
        if crs := proj_crs(props, href):
            return crs
    raise InputError(f"STAC item {href!r}: no CRS (no proj:code or proj:epsg in the item or the product metadata)")


@lru_cache(maxsize=32)
def _group(store: str, options: str) -> "zarr.Group":
    return open_zarr_group_with(store, json.loads(options))


def open_array(store: str, path: str, storage: S3Settings | None = None) -> "zarr.Array":
    """An array of a store (the store's metadata is opened once per process and set of credentials)."""
    import zarr  # a third of a second: when a step reads, not when it starts

    group = _group(store, json.dumps(storage_options(store, storage), sort_keys=True))
    node = group[path]
    if not isinstance(node, zarr.Array):
        raise KeyError(path)
    return node


def _grid_of(group: "zarr.Group", array: "zarr.Array", crs: str, where: str) -> Grid:
    height, width = array.shape
    if "x" in group and "y" in group:
        x, y = np.asarray(group["x"][:2], dtype=np.float64), np.asarray(group["y"][:2], dtype=np.float64)
        res = float(x[1] - x[0]) if width > 1 else float(array.attrs.get("proj:transform", [10])[0])
        return Grid(crs, float(x[0] - res / 2), float(y[0] + res / 2), res, width, height)
    transform = array.attrs.get("proj:transform")
    if transform:
        return Grid(crs, float(transform[2]), float(transform[5]), float(transform[0]), width, height)
    raise InputError(f"{where}: no x/y coordinates and no proj:transform; cannot place it on a grid")


def _coding(array: "zarr.Array", asset: pystac.Asset | None, where: str) -> Coding:
    if array.dtype.kind not in "ui" or array.dtype.itemsize > 2:
        raise InputError(f"{where}: data type {array.dtype}; expected 8- or 16-bit integer digital numbers")
    attrs, extra = array.attrs, (asset.extra_fields if asset else {})
    scale = attrs.get("scale_factor", extra.get("raster:scale"))
    offset = attrs.get("add_offset", extra.get("raster:offset", 0.0 if "scale_factor" in attrs else None))
    if scale is None or offset is None:
        raise InputError(f"{where}: no scale/offset (no CF scale_factor/add_offset, no raster:scale/raster:offset)")
    nodata = extra.get("nodata", attrs.get("_FillValue", array.fill_value))
    return Coding(str(array.dtype), float(scale), float(offset), None if nodata is None else int(nodata))


def open_source(item: pystac.Item, href: str, bands: list[str], storage: S3Settings | None = None,
                grid_band: str | None = None) -> EopfSource:  # fmt: skip
    """Plan reading `bands` of the L2A product of `item`: arrays, codings, grid, chunking.

    The grid and chunking are those of `grid_band` (only its metadata is read), by default the finest of `bands`.
    """
    import zarr

    store = check_eopf_l2a(item, href)
    try:
        root = open_zarr_group(store, storage)
    except FileNotFoundError as exc:
        raise InputError(f"product {store!r} of STAC item {href!r}: no Zarr store there") from exc
    except Exception as exc:
        raise InputError(f"product {store!r} of STAC item {href!r}: cannot open it as Zarr ({exc})") from exc
    crs = crs_of(item, dict(root.attrs), href)
    assets = band_assets(item, store)
    paths = {
        b: (assets[b].get_absolute_href() or "")[len(store.rstrip("/")) + 1 :] if b in assets else band_path(b)
        for b in dict.fromkeys([*bands, *([grid_band] if grid_band else [])])  # in order: the first missing named
    }
    arrays: dict[str, zarr.Array] = {}
    for band, path in paths.items():
        try:
            node = root[path]
        except KeyError:
            node = None
        if not isinstance(node, zarr.Array) or node.ndim != 2:
            raise InputError(f"product {store!r}: band {band} missing (no 2-D array at {path!r})")
        arrays[band] = node
    finest = grid_band or min(bands, key=lambda b: (-arrays[b].shape[1], b))
    parent = paths[finest].rsplit("/", 1)[0]
    grid = _grid_of(root[parent], arrays[finest], crs, f"product {store!r}, group {parent!r}")
    sources = {}
    for band in bands:
        arr = arrays[band]
        factor = grid.width // arr.shape[1]
        if arr.shape[0] * factor != grid.height or arr.shape[1] * factor != grid.width:
            raise InputError(
                f"product {store!r}: band {band} has shape {arr.shape}, not a whole fraction of the "
                f"{grid.height} x {grid.width} grid of {finest}"
            )
        sources[band] = BandSource(
            band, paths[band], _coding(arr, assets.get(band), f"product {store!r}, band {band}"), factor
        )
    chunk = arrays[finest].chunks
    return EopfSource(item.id, store, grid, (int(chunk[0]), int(chunk[1])), sources, storage)

"""The STAC items eoflows writes, built with pystac's extension classes so declarations and fields always agree.

- `staged_raster_item`: a raster that stage-in fetched (downsample), its file next to the item;
- `derived_item`: what every output item starts from: the place and time of its input, the input's common
  metadata, projection, processing, and a `derived_from` link;
- `indices_item`, `burned_area_item`, `downsampled_item`: each package's products as assets, hrefs relative
  to the item (the products sit next to it), with their sizes, bands and classes.
"""

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pystac
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.grid import CODE_PATTERN, GridExtension
from pystac.extensions.processing import ProcessingExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension, Statistics
from pystac.extensions.sat import OrbitState, SatExtension
from pystac.extensions.xarray_assets import XarrayAssetsExtension

from eoflows import __version__
from tasks.data.geotiff import GDAL_TYPES, Footprint
from tasks.data.grid import Grid
from tasks.data.sentinel2 import BANDS, stac_band_name
from tasks.data.stac_io import SOURCE_REL
from tasks.data.storage import iri
from tasks.science.burn import SEVERITY, SEVERITY_NODATA, SEVERITY_PALETTE, SEVERITY_SOURCE
from tasks.science.indices import COMPACT_NODATA, COMPACT_SCALE, COMPOSITES, INDICES, LONG_NAMES, Encoding

# The Zarr media type of the STAC Zarr best practice (vnd.zarr, with the format version; the older vnd+zarr and
# x-zarr forms are deprecated there). odc-stac 0.5 recognises only the deprecated application/[x-]zarr.
ZARR = "application/vnd.zarr; version=3"
THUMBNAIL = ["thumbnail", "overview"]  # roles of a quicklook or browse image
#: Common metadata of an input item that still describes a product derived from it.
COMMON = ("start_datetime", "end_datetime", "platform", "constellation", "instruments", "mission", "gsd")
ORBIT_STATES = {s.value for s in OrbitState}
DATETIME_SOURCE = "datetime_source"  # where a staged raster's datetime was found (said in the output's lineage)
NUMPY_TYPES = {gdal: numpy for numpy, gdal in GDAL_TYPES.items()}  # gdalinfo's type names -> STAC data types


def stored_size(path: Path, sent: Mapping[Path, int] | None = None) -> int:
    """Bytes of a file, or of every file under a folder (a Zarr store or array).

    `sent`: files sent to the destination without being written here (their paths here and sizes), counted too.
    """
    if path.is_file():
        return path.stat().st_size
    local = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return local + sum(size for file, size in (sent or {}).items() if file.is_relative_to(path))


def add_asset(item: pystac.Item, key: str, path: Path, title: str, media_type: str, roles: list[str],
              description: str | None = None, folder: Path | None = None,
              sent: Mapping[Path, int] | None = None) -> pystac.Asset:  # fmt: skip
    """Add the product at `path` in the item's `folder` (default: next to it) as asset `key`, with its size.

    `sent`: its files sent to the destination without being written here (`stored_size`).
    """
    href = f"./{path.relative_to(folder or path.parent).as_posix()}"
    asset = pystac.Asset(href, title, description, media_type=media_type, roles=roles)
    item.add_asset(key, asset)
    FileExtension.ext(asset, add_if_missing=True).size = stored_size(path, sent)
    return asset


def _processing(item: pystac.Item, lineage: str) -> None:
    ProcessingExtension.ext(item, add_if_missing=True).apply(
        lineage=lineage, software={"eoflows": __version__}, processing_datetime=dt.datetime.now(dt.UTC)
    )


def _carry(source: pystac.Item, item: pystac.Item) -> None:
    """The input's common metadata, cloud cover, grid cell and orbit, each with its extension declared."""
    props = source.properties
    item.properties.update({k: props[k] for k in COMMON if k in props})
    if props.get("eo:cloud_cover") is not None:
        EOExtension.ext(item, add_if_missing=True).cloud_cover = float(props["eo:cloud_cover"])
    if isinstance(props.get("grid:code"), str) and CODE_PATTERN.fullmatch(props["grid:code"]):
        GridExtension.ext(item, add_if_missing=True).code = props["grid:code"]
    if isinstance(props.get("sat:relative_orbit"), int):
        SatExtension.ext(item, add_if_missing=True).relative_orbit = props["sat:relative_orbit"]
    if props.get("sat:orbit_state") in ORBIT_STATES:
        SatExtension.ext(item, add_if_missing=True).orbit_state = OrbitState(props["sat:orbit_state"])


def derived_item(source: pystac.Item, item_id: str, grid: Grid, source_href: str, lineage: str) -> pystac.Item:
    """A new item over the same place and time as `source`, on `grid`, linked back to `source_href`."""
    item = pystac.Item(item_id, source.geometry, source.bbox, source.datetime, {})
    _carry(source, item)
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=grid.crs, shape=[grid.height, grid.width], transform=grid.transform, bbox=grid.bbox
    )
    _processing(item, lineage)
    item.add_link(pystac.Link("derived_from", iri(source_href), pystac.MediaType.JSON, f"Input item {source.id}"))
    return item


def indices_item(source: pystac.Item, href: str, grid: Grid, out_id: str, products: list[str], store: Path,
                 quicklook: tuple[Path, str], encoding: Encoding = "float32",
                 sent: Mapping[Path, int] | None = None) -> pystac.Item:  # fmt: skip
    """The item of an s2-indices products store (one asset per product, and the store) and its quicklook.

    `quicklook`: the PNG and its title (what it shows); `sent`: the store's chunks sent to the destination
    without being written here (paths and sizes).
    """
    out = derived_item(source, out_id, grid, href, f"eoflows s2-indices: {', '.join(products)} from {source.id}")
    for name in products:
        roles = ["data", "index"] if name in INDICES else ["visual"]
        asset = add_asset(out, name, store / name, LONG_NAMES[name], ZARR, roles, folder=store.parent, sent=sent)
        # each array asset says where it lies, as loaders (odc-stac, stackstac) read it from the asset
        ProjectionExtension.ext(asset).apply(code=grid.crs, shape=[grid.height, grid.width], transform=grid.transform)
        if name in INDICES and encoding == "compact":
            bands = [RasterBand.create(nodata=COMPACT_NODATA, data_type=DataType.INT16, scale=COMPACT_SCALE,
                                       offset=0.0)]  # fmt: skip
        elif name in INDICES:
            bands = [RasterBand.create(nodata=NoDataStrings.NAN, data_type=DataType.FLOAT32, scale=1.0, offset=0.0)]
        else:
            EOExtension.ext(asset, add_if_missing=True).bands = [
                Band.create(stac_band_name(b), BANDS[b].common_name) for b in COMPOSITES[name]
            ]
            bands = [RasterBand.create(data_type=DataType.UINT8, scale=1.0, offset=0.0) for _ in COMPOSITES[name]]
        RasterExtension.ext(asset, add_if_missing=True).bands = bands
    product = add_asset(out, "product", store, "All products", ZARR, ["data", "metadata"],
                        "Zarr v3 store with one array per product", sent=sent)  # fmt: skip
    XarrayAssetsExtension.ext(product, add_if_missing=True).open_kwargs = {
        "engine": "zarr", "chunks": {}, "consolidated": True
    }  # fmt: skip
    add_asset(out, "thumbnail", quicklook[0], quicklook[1], pystac.MediaType.PNG, THUMBNAIL)
    return out


def burned_area_item(pre: pystac.Item, post: pystac.Item, pre_href: str, post_href: str, out_id: str, grid: Grid,
                     paths: dict[str, Path], thumbnail: Path, nir: str, classes: tuple[int, ...],
                     stats: dict[str, Any]) -> pystac.Item:  # fmt: skip
    """The item of the dNBR COG (with its `stats`), the severity COG when in `paths`, and the quicklook."""
    lineage = f"eoflows burned-area: dNBR = NBR({pre.id}) - NBR({post.id}), NBR = ({nir} - B12) / ({nir} + B12)"
    if classes:
        lineage += f", SCL classes {list(classes)} masked"
    out = derived_item(post, out_id, grid, post_href, lineage)
    if pre is not post:
        out.add_link(pystac.Link("derived_from", iri(pre_href), pystac.MediaType.JSON, f"Input item {pre.id}"))
    if pre.datetime and post.datetime:
        out.common_metadata.start_datetime = min(pre.datetime, post.datetime)
        out.common_metadata.end_datetime = max(pre.datetime, post.datetime)
    dnbr = add_asset(out, "dnbr", paths["dnbr"], "Burned area intensity (dNBR)", pystac.MediaType.COG, ["data"],
                     "dNBR = NBR pre-event - NBR post-event")  # fmt: skip
    RasterExtension.ext(dnbr, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=NoDataStrings.NAN,
            data_type=DataType.FLOAT32,
            scale=1.0,
            offset=0.0,
            statistics=Statistics.create(
                minimum=stats.get("minimum"),
                maximum=stats.get("maximum"),
                mean=stats.get("mean"),
                stddev=stats.get("stddev"),
                valid_percent=stats.get("valid percent"),
            ),
        )  # fmt: skip
    ]
    if "severity" in paths:
        severity = add_asset(out, "severity", paths["severity"], "Burn severity classes (USGS)", pystac.MediaType.COG,
                             ["data"], SEVERITY_SOURCE)  # fmt: skip
        RasterExtension.ext(severity, add_if_missing=True).bands = [
            RasterBand.create(nodata=SEVERITY_NODATA, data_type=DataType.UINT8)
        ]
        ClassificationExtension.ext(severity, add_if_missing=True).classes = [
            Classification.create(
                code,
                description=name,
                name=name.replace(", ", "-").replace(" ", "-"),
                color_hint="{:02X}{:02X}{:02X}".format(*SEVERITY_PALETTE[code][:3]),
            )  # the COG's
            for code, name, _ in SEVERITY
        ]
    add_asset(out, "thumbnail", thumbnail, "Quicklook (dNBR by severity class)", pystac.MediaType.PNG,
              THUMBNAIL)  # fmt: skip
    return out


def _projection(item: pystac.Item, code: str | None, wkt2: str | None, shape: list[int], transform: list[float],
                bbox: list[float] | None = None) -> None:  # fmt: skip
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code=code, wkt2=None if code else wkt2, shape=shape, transform=transform, bbox=bbox
    )


def staged_raster_item(name: str, path: Path, source: str, where: Footprint, acquired: dt.datetime,
                       acquired_from: str) -> pystac.Item:  # fmt: skip
    """The item of a raster fetched from `source` to `path` (its asset, next to the item).

    Its datetime is `acquired`, found in `acquired_from` (kept as `DATETIME_SOURCE`).
    """
    west, south, east, north = where.bbox
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    geometry = {"type": "Polygon", "coordinates": [ring]}
    item = pystac.Item(name, geometry, where.bbox, acquired, {DATETIME_SOURCE: acquired_from})
    _projection(item, f"EPSG:{where.epsg}" if where.epsg else None, where.wkt2, where.shape, where.transform,
                where.bounds)  # fmt: skip
    add_asset(item, "data", path, path.name, pystac.MediaType.GEOTIFF, ["data"])  # relative: found wherever mounted
    item.add_link(pystac.Link(SOURCE_REL, source, "image/tiff", "Where the raster was fetched from"))
    return item


def downsampled_item(staged: pystac.Item, name: str, tif: Path, png: Path, met: Path, info: dict[str, Any],
                     source: str, method: str) -> pystac.Item:  # fmt: skip
    """The item of a downsampled raster (`info`: its gdalinfo), its browse image and metadata."""
    out = pystac.Item(name, staged.geometry, staged.bbox, staged.datetime, {})
    proj = ProjectionExtension.ext(staged)
    _projection(out, proj.code, proj.wkt2, info["size"][::-1], [info["geoTransform"][i] for i in (1, 2, 0, 4, 5, 3)])
    found_in = staged.properties.get(DATETIME_SOURCE, "the staged item")
    _processing(out, f"eoflows downsample: {source} to {info['size'][0]} pixels wide, {method} resampling; "
                     f"datetime (acquisition) from {found_in}")  # fmt: skip
    data = add_asset(out, "data", tif, "Downsampled raster", pystac.MediaType.GEOTIFF, ["data"])
    RasterExtension.ext(data, add_if_missing=True).bands = [
        RasterBand.create(
            nodata=b["noDataValue"],
            data_type=DataType(NUMPY_TYPES.get(b["type"], b["type"].lower())),
            statistics=Statistics.create(minimum=b["minimum"], maximum=b["maximum"], mean=b["mean"], stddev=b["stdDev"])
            if "minimum" in b
            else None,
        )  # fmt: skip
        for b in info["bands"]
    ]
    add_asset(out, "thumbnail", png, "Browse image", pystac.MediaType.PNG, THUMBNAIL)
    add_asset(out, "metadata", met, "Metadata (gdalinfo -json)", pystac.MediaType.JSON, ["metadata"])
    out.add_link(pystac.Link("derived_from", iri(source), "image/tiff", "Input raster"))
    return out

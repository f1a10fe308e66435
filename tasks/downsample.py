"""The steps of `downsample`: fetch a GeoTIFF, write a small copy, a browse PNG and its metadata, as STAC.

The original application shells out to `gdalwarp -ts 100 0`, `convert -resize 250x250` and `gdalinfo -json`,
after an artificial CPU-stress step that changes nothing in the product (left out here). This does the same
with rasterio: decimated reads (GDAL uses the file's overviews when it has them, and never holds the full
image), resampling by the kind of band (nearest for bit-flag bands such as Landsat QA_PIXEL, where averaging
would invent flags; average for measurements), and `gdalinfo -json`'s content built from rasterio's view.
"""

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pystac

from blocks.s3 import S3Storage
from eoflows import __version__
from eoflows.errors import EoflowsError, InputError
from eoflows.package import OutputDir, StagedDir
from tasks.data.png import png_bytes
from tasks.data.stac_io import io_error
from tasks.data.stac_items import PROCESSING_SCHEMA
from tasks.data.staging import removed_on_failure, staged_items, write_catalog
from tasks.data.storage import filesystem
from tasks.reporting import logger

Resampling = Literal["auto", "nearest", "mode", "average", "bilinear", "cubic"]
FLAG_NAMES = ("QA", "BQA", "FLAG", "MASK", "CLOUD")
#: GDAL's names of NumPy data types (as gdalinfo prints them)
GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "float32": "Float32", "float64": "Float64"}  # fmt: skip


def stage_in_url(url: str, output: OutputDir, storage: S3Storage | None = None) -> Path:
    """Download a GeoTIFF into a staged catalog folder (an item describing it, the file next to the item).

    Args:
        url: http(s) URL, local path or s3:// URI of a GeoTIFF (a Landsat band, for instance).
        output: Folder that receives catalog.json and NAME/NAME.json with the file (NAME: the file name).
        storage: S3 endpoint and credentials (a block in flows, AWS_* environment variables otherwise).
    """
    href = url if "://" in url else str(Path(url).absolute())
    name = Path(href.split("?")[0]).stem
    if not name:
        raise InputError(f"url {url!r}: no file name in it")
    folder = output / name
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / Path(href.split("?")[0]).name
    logger().info("Downloading %s", href)
    try:
        fs, path = filesystem(href, storage)
        fs.get(path, str(local))
    except EoflowsError:
        raise
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise io_error("url", url, exc) from exc
    try:
        item = raster_item(name, local, href)
    except Exception:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    write_catalog([item], output, "catalog", "Staged input")
    return output


def _open(path: Path, what: str):
    import rasterio
    from rasterio.errors import RasterioIOError

    if path.stat().st_size == 0:
        raise InputError(f"{what}: an empty file (0 bytes)")
    try:
        return rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"{what}: not a GeoTIFF or other raster GDAL reads ({exc})") from exc


def raster_item(name: str, path: Path, source: str) -> pystac.Item:
    """A STAC item for the raster at `path` (footprint, projection), its asset relative to the item."""
    from rasterio.warp import transform_bounds

    with _open(path, f"url {source!r}") as src:
        if src.crs is None:
            raise InputError(f"url {source!r}: the raster has no CRS")
        bbox = list(transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21))
        epsg = src.crs.to_epsg()
        props: dict[str, Any] = {"proj:code": f"EPSG:{epsg}" if epsg else None, "proj:shape": [src.height, src.width],
                                 "proj:transform": list(src.transform)[:6], "proj:bbox": list(src.bounds)}  # fmt: skip
        if epsg is None:
            props["proj:wkt2"] = src.crs.to_wkt()
    geometry = {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]],
                                                    [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]}  # fmt: skip
    item = pystac.Item(name, geometry, bbox, dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC), props,
                       stac_extensions=["https://stac-extensions.github.io/projection/v2.0.0/schema.json"])  # fmt: skip
    item.add_asset("data", pystac.Asset(str(path.absolute()), path.name, media_type=pystac.MediaType.GEOTIFF,
                                        roles=["data"]))  # fmt: skip
    item.add_link(pystac.Link("via", source, "image/tiff", "Where the raster was fetched from"))
    return item


def is_flag_band(name: str, dtype: str, description: str | None) -> bool:
    """True for an integer band of bit flags or classes (by its name or description), where averaging is wrong."""
    words = f"{name} {description or ''}".upper().replace("-", "_")
    return np.dtype(dtype).kind in "ui" and any(f"_{w}" in f"_{words}" for w in FLAG_NAMES)


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """(width, height) of `target_width` pixels wide, aspect kept (as `gdalwarp -ts W 0`)."""
    return target_width, max(1, round(height * target_width / width))


def fit_size(width: int, height: int, box: int) -> tuple[int, int]:
    """(width, height) fitting in box x box, aspect kept (as `convert -resize BOXxBOX`)."""
    scale = min(box / width, box / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def browse_image(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Grey + alpha uint8 picture: valid values stretched between their 2nd and 98th percentiles."""
    grey = np.zeros(values.shape, np.uint8)
    if valid.any():
        low, high = np.percentile(values[valid], (2, 98))
        scaled = (values.astype(np.float64) - low) / (high - low if high > low else 1.0)
        grey = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    return np.dstack([grey, np.where(valid, 255, 0).astype(np.uint8)])


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


def downsample(
    input: StagedDir,
    output: OutputDir,
    width: int = 100,
    browse_size: int = 250,
    resampling: Resampling = "auto",
) -> Path:
    """Write a GeoTIFF `width` pixels wide, a browse PNG and the metadata JSON of a staged raster, as STAC.

    Args:
        input: Stage-in folder (catalog.json and the item of the raster, the file next to it).
        output: Folder that receives NAME_downsampled/ (.TIF, .browse.png, .met.json, item) and catalog.json.
        width: Width of the downsampled GeoTIFF in pixels (the height keeps the aspect ratio).
        browse_size: The browse PNG fits in browse_size x browse_size pixels (aspect kept).
        resampling: auto (nearest for bit-flag bands such as QA_PIXEL, average otherwise) or a GDAL method.
    """
    import rasterio
    from affine import Affine
    from rasterio.enums import Resampling as GdalResampling

    if width < 1 or browse_size < 1:
        raise InputError(f"width {width}, browse_size {browse_size}: both must be at least 1 pixel")
    (item,) = staged_items(input)[:1]
    source_path = Path(item.assets["data"].get_absolute_href())
    via = item.get_single_link("via")
    source = via.href if via else str(source_path)
    name = f"{item.id}_downsampled"
    folder = output / name
    log = logger()
    with _open(source_path, f"staged raster {str(source_path)!r}") as src:
        if width > src.width:
            raise InputError(f"width {width}: larger than the input's {src.width} pixels ({source}); "
                             "downsample only makes rasters smaller")  # fmt: skip
        flags = [is_flag_band(item.id, src.dtypes[i], src.descriptions[i]) for i in range(src.count)]
        method = resampling if resampling != "auto" else ("nearest" if all(flags) else "average")
        out_w, out_h = scaled_size(src.width, src.height, width)
        log.info("Downsampling %s (%d x %d, %s) to %d x %d with %s resampling%s", source, src.width, src.height,
                 src.dtypes[0], out_w, out_h, method, " (bit-flag band)" if all(flags) else "")  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        with removed_on_failure(folder, f"downsample of {source}"):
            data = src.read(out_shape=(src.count, out_h, out_w), resampling=GdalResampling[method], masked=True)
            profile = {**src.profile, "driver": "GTiff", "width": out_w, "height": out_h, "compress": "deflate",
                       "transform": src.transform @ Affine.scale(src.width / out_w, src.height / out_h)}  # fmt: skip
            for key in ("blockxsize", "blockysize", "tiled", "interleave", "photometric"):
                profile.pop(key, None)
            tif = folder / f"{name}.TIF"
            with rasterio.open(tif, "w", **profile) as dst:
                dst.write(data.filled(src.nodata) if src.nodata is not None else data.data)
                dst.update_tags(**src.tags())
                dst.descriptions = src.descriptions
            b_w, b_h = fit_size(src.width, src.height, browse_size)
            browse = src.read(1, out_shape=(b_h, b_w), resampling=GdalResampling[method], masked=True)
            png = folder / f"{name}.browse.png"
            png.write_bytes(png_bytes(browse_image(browse.data, ~np.ma.getmaskarray(browse))))
            info = gdalinfo(tif)
            met = folder / f"{name}.met.json"
            met.write_text(json.dumps(info, indent=2))
            result = downsampled_item(item, name, tif, png, met, info, source, method)
            write_catalog([result], output, "processing-results", f"downsample results of {item.id}")
    log.info("Wrote %s (%d x %d), its browse image and metadata", tif.name, out_w, out_h)
    return output


def downsampled_item(item: pystac.Item, name: str, tif: Path, png: Path, met: Path, info: dict, source: str,
                     method: str) -> pystac.Item:  # fmt: skip
    """The STAC item of the downsampled raster, browse image and metadata (asset hrefs relative to it)."""
    out = pystac.Item(name, item.geometry, item.bbox, item.datetime, {
        "proj:code": item.properties.get("proj:code"), "proj:shape": info["size"][::-1],
        "proj:transform": [info["geoTransform"][i] for i in (1, 2, 0, 4, 5, 3)],
        "processing:software": {"eoflows": __version__},
        "processing:lineage": f"eoflows downsample: {source} to {info['size'][0]} pixels wide, {method} resampling",
        "processing:datetime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")},
        stac_extensions=["https://stac-extensions.github.io/projection/v2.0.0/schema.json", PROCESSING_SCHEMA,
                         "https://stac-extensions.github.io/raster/v2.0.0/schema.json"])  # fmt: skip
    numpy_types = {gdal: numpy for numpy, gdal in GDAL_TYPES.items()}
    bands = [{"name": f"band{b['band']}", "data_type": numpy_types.get(b["type"], b["type"]),
              **({"nodata": b["noDataValue"]} if b["noDataValue"] is not None else {}),
              **({"statistics": {"minimum": b["minimum"], "maximum": b["maximum"], "mean": b["mean"],
                                 "stddev": b["stdDev"]}} if "minimum" in b else {})}
             for b in info["bands"]]  # fmt: skip
    out.add_asset("data", pystac.Asset(f"./{tif.name}", "Downsampled raster", media_type=pystac.MediaType.GEOTIFF,
                                       roles=["data"], extra_fields={"bands": bands}))  # fmt: skip
    out.add_asset("thumbnail", pystac.Asset(f"./{png.name}", "Browse image", media_type=pystac.MediaType.PNG,
                                            roles=["thumbnail", "overview"]))  # fmt: skip
    out.add_asset("metadata", pystac.Asset(f"./{met.name}", "Metadata (gdalinfo -json)",
                                           media_type=pystac.MediaType.JSON, roles=["metadata"]))  # fmt: skip
    out.add_link(pystac.Link("derived_from", source, "image/tiff", "Input raster"))
    return out

"""`downsample`, its steps and its declaration: fetch a GeoTIFF, write a small copy, a browse PNG, its metadata.

The original application shells out to `gdalwarp -ts 100 0`, `convert -resize 250x250` and `gdalinfo -json`,
after an artificial CPU-stress step that changes nothing in the product (left out here). This does the same
with rasterio: decimated reads (GDAL uses the file's overviews when it has them, and never holds the full
image), resampling by the kind of band (nearest for bit-flag bands such as Landsat QA_PIXEL, where averaging
would invent flags; average for measurements), and `gdalinfo -json`'s content built from rasterio's view.
"""

import datetime as dt
import json
from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np

from eoflows import __version__
from eoflows.errors import InputError
from eoflows.package import Feed, OutputDir, Package, Resources, StagedDir, Step
from eoflows.settings import S3Settings
from tasks.data.acquisition import acquired
from tasks.data.geotiff import footprint, gdalinfo, open_raster, read_resized, write_resized
from tasks.data.item_folder import ItemFolder
from tasks.data.names import file_name
from tasks.data.png import png_bytes
from tasks.data.stac_io import download
from tasks.data.stac_items import downsampled_item, staged_raster_item
from tasks.data.staging import STAGE_OUT, source_href, staged_items
from tasks.data.storage import absolute_href
from tasks.reporting import logger
from tasks.science.quicklook import browse_image
from tasks.science.resampling import auto_method, fit_size, is_flag_band, scaled_size

Resampling = Literal["auto", "nearest", "mode", "average", "bilinear", "cubic"]


def stage_in_url(url: str, output: OutputDir, storage: S3Settings | None = None) -> Path:
    """Download a GeoTIFF into a staged catalog folder (an item describing it, the file next to the item).

    Args:
        url: http(s) URL, local path or s3:// URI of a GeoTIFF (a Landsat band, for instance).
        output: Folder that receives catalog.json and NAME/NAME.json with the file (NAME: the file name).
    """
    href = absolute_href(url)
    remote_name = Path(href.split("?")[0]).name
    name = Path(remote_name).stem
    if not name or name in (".", ".."):
        raise InputError(f"url {url!r}: no file name in it")
    folder = ItemFolder.of(output, name, f"staged folder of url {url!r}")
    logger().info("Downloading %s", href)
    with folder.writing(f"stage-in of {url}") as path:
        local = path / file_name(remote_name)
        download(href, local, storage, "url")
        with open_raster(local, f"url {href!r}") as src:
            where, tags = footprint(src, f"url {href!r}"), src.tags()
        fetched = dt.datetime.fromtimestamp(local.stat().st_mtime, dt.UTC)
        when, found_in = acquired(tags, remote_name, fetched)
        logger().info("Acquired %s (from %s)", when.isoformat(), found_in)
        item = staged_raster_item(name, local, href, where, when, found_in)
    folder.write_catalog(item, "Staged input", catalog_id="catalog")
    return output


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
    if width < 1 or browse_size < 1:
        raise InputError(f"width {width}, browse_size {browse_size}: both must be at least 1 pixel")
    (item,) = staged_items(input)[:1]
    source_path = Path(item.assets["data"].get_absolute_href())
    source = source_href(item, str(source_path))
    out_id = f"{item.id}_downsampled"
    folder = ItemFolder.of(output, out_id, f"output of item {item.id!r}")
    log = logger()
    with open_raster(source_path, f"staged raster {str(source_path)!r}") as src:
        if width > src.width:
            raise InputError(f"width {width}: larger than the input's {src.width} pixels ({source}); "
                             "downsample only makes rasters smaller")  # fmt: skip
        flags = [is_flag_band(item.id, src.dtypes[i], src.descriptions[i]) for i in range(src.count)]
        method = resampling if resampling != "auto" else auto_method(flags)
        out_w, out_h = scaled_size(src.width, src.height, width)
        log.info("Downsampling %s (%d x %d, %s) to %d x %d with %s resampling%s", source, src.width, src.height,
                 src.dtypes[0], out_w, out_h, method, " (bit-flag band)" if all(flags) else "")  # fmt: skip
        with folder.writing(f"downsample of {source}"):
            tif = folder.file(".TIF")
            write_resized(src, tif, out_w, out_h, method)
            browse = read_resized(src, *fit_size(src.width, src.height, browse_size), method, bands=[1])[0]
            png = folder.file(".browse.png")
            png.write_bytes(png_bytes(browse_image(browse.data, ~np.ma.getmaskarray(browse))))
            info = gdalinfo(tif)
            met = folder.file(".met.json")
            met.write_text(json.dumps(info, indent=2))
            result = downsampled_item(item, out_id, tif, png, met, info, source, method)
            folder.write_catalog(result, f"downsample results of {item.id}")
    log.info("Wrote %s (%d x %d), its browse image and metadata", tif.name, out_w, out_h)
    return output


DOWNSAMPLE = Package(
    name="downsample",
    label="Downsampled raster, browse image and metadata",
    description=(
        "Download a GeoTIFF (a Landsat band), write a copy a given number of pixels wide (aspect kept, "
        "nearest resampling for bit-flag bands, average otherwise), a browse PNG and its gdalinfo-style "
        "metadata JSON with a STAC item, and publish them to a folder or S3."
    ),
    stage_in=Step("stage-in", stage_in_url, Resources(cores=(1, 1), ram_mb=(512, 512)), network=True),
    compute=Step("compute", downsample, Resources(cores=(1, 1), ram_mb=(1024, 2048))),
    stage_out=replace(STAGE_OUT, resources=Resources(cores=(1, 1), ram_mb=(512, 512))),
    version=__version__,
    feed=Feed(("url",), asset=True),
    examples={
        "url": "https://landsatlook.usgs.gov/data/collection02/level-2/standard/oli-tirs/2021/044/033/"
        "LC08_L2SP_044033_20210329_20210408_02_T1/LC08_L2SP_044033_20210329_20210408_02_T1_QA_PIXEL.TIF",
        "destination": "s3://eoflows/downsample",
    },
)

"""`s2-indices`, its steps and its declaration: stage in a Sentinel-2 L2A EOPF item, compute indices, composites.

Compute is one pass: the output grid is cut into windows that match the input chunks, and each window
reads its chunks of every needed band once, computes all requested products with one kernel
(`tasks.science.indices.compute_products`) and writes them into their own output chunks, while other windows run
on the task runner's Dask cluster (or local threads). Nothing ever holds a whole band.
"""

import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from eoflows import __version__
from eoflows.errors import InputError
from eoflows.package import DaskSizes, Feed, OutputDir, Package, Resources, StagedDir, Step
from eoflows.runtime import Runtime
from eoflows.settings import DaskSettings, S3Settings
from tasks.data.eopf import EopfSource, check_eopf_l2a, missing_chunks, open_source
from tasks.data.item_folder import ItemFolder
from tasks.data.png import png_bytes
from tasks.data.stac_io import read_item
from tasks.data.stac_items import indices_item, stored_size
from tasks.data.staging import (
    STAGE_OUT,
    source_href,
    stage_items,
    staged_items,
)
from tasks.data.storage import absolute_href
from tasks.reporting import logger
from tasks.science.indices import (
    COMPOSITES,
    INDICES,
    LONG_NAMES,
    PRODUCTS,
    Encoding,
    Product,
    bands_for,
    compact,
    iter_products,
)
from tasks.science.quicklook import Sampling, assemble, product_piece
from tasks.windows import Tile, report_usage, run_windows, tiles

if TYPE_CHECKING:
    from tasks.data.products_store import Chunk

QUICKLOOK_BANDS = COMPOSITES["rgb"]
GRID_BAND = "b04"  # the products' grid: 10 m (20 m bands repeated 2 x 2, as the original application does)


def quicklook_of(products: list[str]) -> str | None:
    """What the quicklook shows: natural colour (None) when the products read B04, B03, B02 anyway, else a product.

    The first product, then: no band is read for the picture alone (ndmir alone would read three more 10 m bands).
    """
    return None if set(QUICKLOOK_BANDS) <= set(bands_for(products)) else products[0]


def bands_read(products: list[str]) -> list[str]:
    """The bands a compute of `products` reads (with the natural colour quicklook's when it shows it)."""
    shown = set(QUICKLOOK_BANDS) if quicklook_of(products) is None else set()
    return sorted(set(bands_for(products)) | shown)


def stage_in_eopf(item: str, output: OutputDir, storage: S3Settings | None = None) -> Path:
    """Stage a Sentinel-2 L2A EOPF STAC item into a local catalog folder (the Zarr product is read in place).

    Args:
        item: URL, local path or s3:// URI of a Sentinel-2 L2A STAC item with an EOPF Zarr 'product' asset.
        output: Folder that receives catalog.json and <item-id>/<item-id>.json.
    """
    href = absolute_href(item)
    stac_item = read_item(href, storage)
    check_eopf_l2a(stac_item, href)
    logger().info("Staging Sentinel-2 L2A item %s from %s", stac_item.id, href)
    return stage_items([stac_item], output)


@dataclass(frozen=True)
class IndicesWindow:
    """What one window of the compute sends back to the step: chunks, quicklook piece, bytes decoded and made."""

    chunks: list["Chunk"]  # none when the window wrote them itself
    position: tuple[int, int]  # where the piece goes in the quicklook
    piece: np.ndarray
    read: int  # input bytes decoded
    raw: int  # output bytes computed, before encoding


def process_window(
    source: EopfSource,
    templates: dict[str, str],
    products: list[str],
    sampling: Sampling,
    store: Path | None,
    encoding: Encoding,
    window: Tile,
) -> "IndicesWindow":
    """Read and compute one window; write its chunks into `store`, or return them encoded when None."""
    from tasks.data.products_store import encode_window, write_window

    rows, cols = window
    needed, shown = bands_read(products), quicklook_of(products)
    dn = {b: source.read(b, rows, cols) for b in needed}
    codings = {b: source.bands[b].coding for b in needed}
    factors = {b: source.bands[b].factor for b in needed}
    raw, picture = 0, None

    def counted():
        nonlocal raw, picture
        for name, block in iter_products(products, dn, codings, factors):
            if name == shown:  # sampled now: an index's block is reused for the next index
                picture = sampling.sample(rows, cols, block)
            block = compact(block) if encoding == "compact" and name in INDICES else block
            raw += block.nbytes
            yield name, block

    if store is None:
        chunks = encode_window(templates, counted(), rows, cols, source.chunk)
    else:
        write_window(store, counted(), rows, cols)
        chunks = []
    if picture is None:
        position, piece = sampling.piece(rows, cols, dn, codings, factors, QUICKLOOK_BANDS)
    else:
        position, piece = picture[0], product_piece(picture[1])
    return IndicesWindow(chunks, position, piece, sum(a.nbytes for a in dn.values()), raw)


def _check_chunks(source: EopfSource, strict: bool) -> str:
    """Count the chunks the product misses per band: an error if `strict`, else a warning; "" when none."""
    missing = {band: counts for band, counts in sorted(missing_chunks(source).items()) if counts[0]}
    if not missing:
        return ""
    text = ", ".join(f"{band} {absent} of {total}" for band, (absent, total) in missing.items())
    if strict:
        raise InputError(f"product {source.store!r}: chunks missing ({text}); strict: not computed")
    logger().warning("Product %s misses chunks (%s): their pixels read as no data (NaN, 0 in composites) in every "
                     "product using those bands", source.store, text)  # fmt: skip
    return text


def compute_indices(
    input: StagedDir,
    output: OutputDir,
    runtime: Runtime,
    products: list[Product] = list(PRODUCTS),
    strict: bool = False,
    encoding: Encoding = "float32",
    storage: S3Settings | None = None,
    dask: DaskSettings | None = None,
) -> Path:
    """Compute Sentinel-2 spectral indices and colour composites of a staged L2A item, in one pass.

    Args:
        input: Stage-in folder (catalog.json and the item of a Sentinel-2 L2A EOPF product).
        output: Folder that receives the products store, the quicklook, the item and its catalog.json.
        products: Indices (ndvi ndwi ndmir nbr ndwi2 mndwi ndbi) and composites (rgb vea civ law sir fcu atp).
        strict: Fail when the product misses chunks of a band; by default they read as no data, with a warning.
        encoding: Indices as float32 (NaN: no data), or compact: int16 steps of 1e-4 with CF scale_factor and
            _FillValue -32768 (about half the size; xarray and rioxarray read floats, within 5e-5).
    """
    import zarr  # zarr (a third of a second): when the step runs, not when its command parses or shows help

    from tasks.data.products_store import chunk_path, chunk_templates, create_store, write_chunks

    products = list(dict.fromkeys(products))
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown or not products:
        raise InputError(f"products {unknown or products}: expected one or more of {', '.join(PRODUCTS)}")
    log = logger()
    item = staged_items(input)[0]
    href = source_href(item)
    source = open_source(item, item.get_self_href() or href, bands_read(products), storage, grid_band=GRID_BAND)
    missing = _check_chunks(source, strict)
    grid = source.grid
    out_id = f"{item.id}-processed"
    folder = ItemFolder.of(output, out_id, f"output of item {item.id!r}")
    store = folder.file(".zarr")
    windows = tiles(grid.height, grid.width, source.chunk)  # one per input chunk of the finest band
    sampling = Sampling.fit(grid.height, grid.width)
    log.info("Computing %s of %s on a %d x %d grid (%s), %d windows of %d x %d", ", ".join(products), item.id,
             grid.width, grid.height, grid.crs, len(windows), *source.chunk)  # fmt: skip
    t0 = time.perf_counter()
    with folder.writing(f"compute of {item.id} (product {source.store})"):
        create_store(str(store), grid, products, source.chunk, item.id, encoding)
        templates = chunk_templates(str(store), products)
        pieces, decoded = [], {"read": 0, "raw": 0}

        uploads = runtime.uploads  # a flow publishing to S3: each window's chunks go there now, not to the disk

        def write(result: IndicesWindow) -> None:
            if uploads is None:
                write_chunks(store, templates, result.chunks)
            else:
                for product, coords, data in result.chunks:
                    if data is not None:
                        uploads.put(chunk_path(store, templates, product, coords), data)
            pieces.append((result.position, result.piece))
            decoded["read"] += result.read
            decoded["raw"] += result.raw

        with runtime.windows.place(dask, grid.height * grid.width) as place:
            log.info("Windows run on %s", place.where)
            # local threads write their chunks themselves; Dask workers (maybe on other machines) send them back, as
            # do all windows when the chunks go straight to S3
            writes_here = not place.remote and uploads is None
            job = partial(process_window, source, templates, products, sampling, store if writes_here else None,
                          encoding)  # fmt: skip
            usage = run_windows(place, job, windows, write, f"computing {len(products)} products")
        with warnings.catch_warnings():  # consolidated metadata is not (yet) in the Zarr v3 spec; xarray reads it
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.consolidate_metadata(str(store))
        quicklook = folder.file(".png")
        quicklook.write_bytes(png_bytes(assemble(sampling, pieces)))
        shown = quicklook_of(products)
        title = f"Quicklook ({'natural colour' if shown is None else LONG_NAMES[shown]})"
        sent = uploads.sizes if uploads is not None else {}
        result = indices_item(item, href, grid, out_id, products, store, (quicklook, title), encoding, sent)
        folder.write_catalog(result, f"s2-indices results of {item.id}")
    wall = time.perf_counter() - t0
    size = stored_size(store, sent)
    log.info("Wrote %d products (%.1f MB) in %.1f s", len(products), size / 1e6, wall)
    report_usage(f"Usage of the compute step for {item.id}", usage, wall, {
        "input decoded (MB)": round(decoded["read"] / 1e6, 1),
        "output raw (MB)": round(decoded["raw"] / 1e6, 1),
        "output stored (MB)": round(size / 1e6, 1),
        "missing input chunks": missing or "none",
    })  # fmt: skip
    return output


S2_INDICES = Package(
    name="s2-indices",
    label="Sentinel-2 indices and colour composites",
    description=(
        "Compute 7 spectral indices (ndvi, ndwi, ndmir, nbr, ndwi2, mndwi, ndbi) and 7 colour composites "
        "(rgb, vea, civ, law, sir, fcu, atp) of a Sentinel-2 L2A EOPF Zarr product as one Zarr store, with a "
        "quicklook and a STAC item, and publish them to a folder or S3."
    ),
    stage_in=Step("stage-in", stage_in_eopf, Resources(cores=(1, 1), ram_mb=(512, 512)), network=True),
    compute=Step(
        "compute",
        compute_indices,
        Resources(cores=(2, 2), ram_mb=(2048, 4096)),
        dask=DaskSizes(),
        network=True,
        uploads_early=True,
    ),
    stage_out=STAGE_OUT,
    version=__version__,
    feed=Feed(("item",)),
    examples={
        "item": "https://stac.core.eopf.eodc.eu/collections/sentinel-2-l2a/items/"
        "S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515",
        "destination": "s3://eoflows/results",
    },
)

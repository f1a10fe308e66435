"""The steps of `s2-indices`: stage in a Sentinel-2 L2A EOPF item, compute indices and composites.

Compute is one pass: the output grid is cut into windows that match the input chunks, and each window
reads its chunks of every needed band once, computes all requested products with one kernel
(`tasks.science.indices.compute_products`) and writes them into their own output chunks, while other windows run
on the task runner's Dask cluster (or local threads). Nothing ever holds a whole band.
"""

import resource
import time
import warnings
from concurrent.futures import as_completed
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pystac
import zarr

from blocks.dask_gateway import DaskGatewaySettings
from blocks.s3 import S3Storage
from eoflows.errors import InputError
from eoflows.package import OutputDir, StagedDir
from tasks.data.eopf import EopfSource, check_l2a, open_source
from tasks.data.products_store import chunk_templates, create_store, encode_window, write_chunks, write_window
from tasks.data.sentinel2 import BANDS, stac_band_name
from tasks.data.stac_io import read_item
from tasks.data.stac_items import derived_item
from tasks.data.staging import removed_on_failure, source_href, stage_items, staged_items, write_catalog
from tasks.executor import chunk_executor
from tasks.reporting import logger, progress, report_table
from tasks.science.indices import (
    COMPOSITES,
    INDICES,
    LONG_NAMES,
    PRODUCTS,
    Product,
    bands_for,
    compute_products,
    iter_products,
)
from tasks.science.quicklook import Sampling, assemble, png_bytes

QUICKLOOK_BANDS = COMPOSITES["rgb"]


def stage_in_eopf(item: str, output: OutputDir, storage: S3Storage | None = None) -> Path:
    """Stage a Sentinel-2 L2A EOPF STAC item into a local catalog folder (the Zarr product is read in place).

    Args:
        item: URL, local path or s3:// URI of a Sentinel-2 L2A STAC item with an EOPF Zarr 'product' asset.
        output: Folder that receives catalog.json and <item-id>/<item-id>.json.
        storage: S3 endpoint and credentials (a block in flows, AWS_* environment variables otherwise).
    """
    href = item if "://" in item else str(Path(item).absolute())
    stac_item = read_item(href, storage)
    check_l2a(stac_item, href)
    logger().info("Staging Sentinel-2 L2A item %s from %s", stac_item.id, href)
    return stage_items([stac_item], output)


class Window(NamedTuple):
    """Rows and columns of the 10 m output grid."""

    rows: slice
    cols: slice


def plan_windows(height: int, width: int, chunk: tuple[int, int]) -> list[Window]:
    """Windows of the output grid, one per input chunk of the finest band."""
    return [
        Window(slice(r, min(r + chunk[0], height)), slice(c, min(c + chunk[1], width)))
        for r in range(0, height, chunk[0])
        for c in range(0, width, chunk[1])
    ]


def process_window(
    source: EopfSource,
    templates: dict[str, str],
    products: list[str],
    window: Window,
    sampling: Sampling,
    store: Path | None = None,
) -> dict:
    """Read and compute one window; write its chunks into `store`, or return them encoded when None.

    Also returns the window's quicklook piece and what it cost.
    """
    t0, cpu0 = time.perf_counter(), time.thread_time()
    needed = sorted(set(bands_for(products)) | set(QUICKLOOK_BANDS))
    dn = {b: source.read(b, window.rows, window.cols) for b in needed}
    codings = {b: source.bands[b].coding for b in needed}
    factors = {b: source.bands[b].factor for b in needed}
    raw = 0

    def counted():
        nonlocal raw
        for name, block in iter_products(products, dn, codings, factors):
            raw += block.nbytes
            yield name, block

    if store is None:
        chunks = encode_window(templates, counted(), window.rows, window.cols, source.chunk)
    else:
        write_window(store, counted(), window.rows, window.cols)
        chunks = []
    r, c, position = sampling.local(window.rows, window.cols)
    ys, xs = np.arange(window.rows.stop - window.rows.start)[r], np.arange(window.cols.stop - window.cols.start)[c]
    sampled = {b: dn[b][(ys // factors[b])[:, None], xs // factors[b]] for b in QUICKLOOK_BANDS}
    rgb = compute_products(["rgb"], sampled, codings, dict.fromkeys(sampled, 1))["rgb"]
    valid = np.logical_and.reduce([sampled[b] != codings[b].nodata for b in QUICKLOOK_BANDS])
    return {
        "chunks": chunks,
        "position": position,
        "piece": np.concatenate([rgb, (valid * 255).astype(np.uint8)[None]]),
        "read": sum(a.nbytes for a in dn.values()),
        "raw": raw,
        "seconds": time.perf_counter() - t0,
        "cpu": time.thread_time() - cpu0,
    }


def compute_indices(
    input: StagedDir,
    output: OutputDir,
    products: list[Product] = list(PRODUCTS),
    storage: S3Storage | None = None,
    dask: DaskGatewaySettings | None = None,
) -> Path:
    """Compute Sentinel-2 spectral indices and colour composites of a staged L2A item, in one pass.

    Args:
        input: Stage-in folder (catalog.json and the item of a Sentinel-2 L2A EOPF product).
        output: Folder that receives the products store, the quicklook, the item and its catalog.json.
        products: Indices (ndvi ndwi ndmir nbr ndwi2 mndwi ndbi) and composites (rgb vea civ law sir fcu atp).
        storage: S3 endpoint and credentials (a block in flows, AWS_* environment variables otherwise).
        dask: Dask Gateway to run on (a block in flows; the dask-gateway configuration and Calrissian's
            DASK_CLUSTER otherwise); none: the flow's local Dask cluster, or local threads.
    """
    products = list(dict.fromkeys(products))
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown or not products:
        raise InputError(f"products {unknown or products}: expected one or more of {', '.join(PRODUCTS)}")
    log = logger()
    item = staged_items(input)[0]
    href = source_href(item)
    source = open_source(
        item, item.get_self_href() or href, sorted(set(bands_for(products)) | set(QUICKLOOK_BANDS)), storage
    )
    grid = source.grid
    out_id = f"{item.id}-processed"
    folder = output / out_id
    store = folder / f"{out_id}.zarr"
    folder.mkdir(parents=True, exist_ok=True)
    windows = plan_windows(grid.height, grid.width, source.chunk)
    sampling = Sampling.fit(grid.height, grid.width)
    log.info(
        "Computing %s of %s on a %d x %d grid (%s), %d windows of %d x %d",
        ", ".join(products),
        item.id,
        grid.width,
        grid.height,
        grid.crs,
        len(windows),
        *source.chunk,
    )
    t0 = time.perf_counter()
    with removed_on_failure(folder, f"compute of {item.id} (product {source.store})"):
        create_store(str(store), grid, products, source.chunk, item.id)
        described = f"computing {len(products)} products"
        with chunk_executor(dask) as (executor, where, remote), progress(len(windows), described) as advance:
            log.info("Windows run on %s", where)
            templates = chunk_templates(str(store), products)
            # local threads write their chunks themselves; Dask workers (maybe on other machines) send them back
            sink = None if remote else store
            futures = [executor.submit(process_window, source, templates, products, w, sampling, sink) for w in windows]
            done = []
            try:
                for future in as_completed(futures):  # write each window's chunks as it comes back
                    result = future.result()
                    write_chunks(store, templates, result.pop("chunks"))
                    done.append(result)
                    advance()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        with warnings.catch_warnings():  # consolidated metadata is not (yet) in the Zarr v3 spec; xarray reads it
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            zarr.consolidate_metadata(str(store))
        quicklook = folder / f"{out_id}.png"
        quicklook.write_bytes(png_bytes(assemble(sampling, [(d["position"], d["piece"]) for d in done])))
        result = products_item(item, href, source, out_id, products, store, quicklook)
        write_catalog([result], output, "processing-results", f"s2-indices results of {item.id}")
    wall = time.perf_counter() - t0
    size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file())
    log.info("Wrote %d products (%.1f MB) in %.1f s", len(products), size / 1e6, wall)
    report_table(
        "compute-usage",
        f"Usage of the compute step for {item.id}",
        [
            {"measure": "wall time (s)", "value": round(wall, 2)},
            {"measure": "CPU time in windows (s)", "value": round(sum(d["cpu"] for d in done), 2)},
            {"measure": "windows", "value": len(windows)},
            {"measure": "input decoded (MB)", "value": round(sum(d["read"] for d in done) / 1e6, 1)},
            {"measure": "output raw (MB)", "value": round(sum(d["raw"] for d in done) / 1e6, 1)},
            {"measure": "output stored (MB)", "value": round(size / 1e6, 1)},
            {
                "measure": "peak RSS of the step process (MB)",
                "value": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            },
            {"measure": "windows ran on", "value": where},
            {"measure": "window workers", "value": ", ".join(sorted({d.get("worker", "this process") for d in done}))},
            {"measure": "window schedulers", "value": ", ".join(sorted({d.get("scheduler", "-") for d in done}))},
        ],
    )
    return output


def products_item(
    item: pystac.Item, href: str, source: EopfSource, out_id: str, products: list[str], store: Path, quicklook: Path
) -> pystac.Item:
    """The STAC item describing the products store and quicklook (asset hrefs relative to the item)."""
    out = derived_item(item, out_id, source.grid, href, f"eoflows s2-indices: {', '.join(products)} from {item.id}")
    zarr_type = "application/vnd.zarr"
    for name in products:
        size = sum(f.stat().st_size for f in (store / name).rglob("*") if f.is_file())
        if name in INDICES:
            bands = [{"name": name, "description": LONG_NAMES[name], "data_type": "float32", "nodata": "nan"}]
            roles = ["data", "index"]
        else:
            bands = [
                {"name": stac_band_name(b), "eo:common_name": BANDS[b].common_name, "data_type": "uint8"}
                for b in COMPOSITES[name]
            ]
            roles = ["visual"]
        out.add_asset(
            name,
            pystac.Asset(
                f"./{store.name}/{name}",
                LONG_NAMES[name],
                media_type=zarr_type,
                roles=roles,
                extra_fields={"bands": bands, "file:size": size},
            ),
        )
    out.add_asset(
        "product",
        pystac.Asset(
            f"./{store.name}",
            "All products",
            "Zarr v3 store with one array per product",
            media_type=zarr_type,
            roles=["data", "metadata"],
            extra_fields={
                "xarray:open_dataset_kwargs": {"engine": "zarr", "chunks": {}, "consolidated": True},
                "file:size": sum(f.stat().st_size for f in store.rglob("*") if f.is_file()),
            },
        ),
    )
    out.add_asset(
        "thumbnail",
        pystac.Asset(
            f"./{quicklook.name}",
            "Quicklook (natural colour)",
            media_type=pystac.MediaType.PNG,
            roles=["thumbnail", "overview"],
            extra_fields={"file:size": quicklook.stat().st_size},
        ),
    )
    out.stac_extensions += ["https://stac-extensions.github.io/file/v2.1.0/schema.json"]
    return out

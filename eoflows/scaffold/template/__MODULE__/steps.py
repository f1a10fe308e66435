"""__NAME__: the steps and the declaration of the package.

Stage-in and stage-out are eoflows' own (`STAGE_IN`: a STAC item staged into a folder; `STAGE_OUT`: the results
published to a folder or S3, catalog.json last). The compute step is the application: the normalised difference
(A - B) / (A + B) of two bands of a Sentinel-2 L2A item whose bands are COGs, computed window by window where
the runtime places the windows (threads, or the flow's Dask cluster), written as a Cloud Optimized GeoTIFF with a
STAC item describing it.
"""

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from __MODULE__.science import normalised_difference
from eoflows.api import (
    STAGE_IN,
    STAGE_OUT,
    DaskSettings,
    DaskSizes,
    Feed,
    Grid,
    InputError,
    ItemFolder,
    OutputDir,
    Package,
    Resources,
    Runtime,
    S3Settings,
    Scene,
    StagedDir,
    Step,
    Tile,
    add_asset,
    cog_writer,
    derived_item,
    logger,
    open_scene,
    read_reflectance,
    report_usage,
    run_windows,
    source_href,
    staged_items,
    tiles,
)

WINDOW = 512  # output pixels per window side (the COG's tile size)
COG = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass(frozen=True)
class Job:
    """What every window shares (sent once to each Dask worker)."""

    scene: Scene
    grid: Grid
    band_a: str
    band_b: str


def window_difference(job: Job, window: Tile) -> tuple[Tile, np.ndarray]:
    """The normalised difference over one window of the output grid (read from the COGs, only that window)."""
    rows, cols = window
    a = read_reflectance(job.scene.bands[job.band_a], job.grid, rows, cols)
    b = read_reflectance(job.scene.bands[job.band_b], job.grid, rows, cols)
    return window, normalised_difference(a, b)


def compute(
    input: StagedDir,
    output: OutputDir,
    runtime: Runtime,
    band_a: str = "b08",
    band_b: str = "b12",
    storage: S3Settings | None = None,
    dask: DaskSettings | None = None,
) -> Path:
    """Compute the normalised difference (A - B) / (A + B) of two bands of a Sentinel-2 L2A item as a COG.

    Args:
        input: Stage-in folder (catalog.json and the staged item).
        output: Folder that receives ITEM-__NAME__/ (the COG and its STAC item) and catalog.json.
        band_a: Band A, a Sentinel-2 band name (b01 ... b12, b8a); b08 (NIR) and b12 (SWIR) give NBR.
        band_b: Band B, on the grid of band A (resampled if its resolution differs).
    """
    if band_a == band_b:
        raise InputError(f"band_b {band_b!r}: the same band as band_a (the difference would be 0 everywhere)")
    items = staged_items(input)
    if len(items) != 1:
        raise InputError(f"staged folder {str(input)!r}: holds {len(items)} items, expected one")
    (item,) = items
    href = source_href(item)
    scene = open_scene(item, href, [band_a, band_b], storage)
    grid = scene.footprint(band_a)
    out_id = f"{item.id}-__NAME__"
    folder = ItemFolder.of(output, out_id, f"output of item {item.id!r}")
    formula = f"({band_a} - {band_b}) / ({band_a} + {band_b})"
    windows = tiles(grid.height, grid.width, (WINDOW, WINDOW))
    log = logger()
    log.info("Computing %s of %s on its %d x %d grid, %d windows", formula, item.id, grid.width, grid.height,
             len(windows))  # fmt: skip
    cog = folder.file(".tif")
    started = time.perf_counter()
    with folder.writing(f"compute of {item.id}"):
        with (
            cog_writer(cog, grid, "float32", np.nan, formula, "AVERAGE") as write,
            runtime.windows.place(dask, grid.height * grid.width) as place,
        ):
            usage = run_windows(place, partial(window_difference, Job(scene, grid, band_a, band_b)), windows,
                                lambda done: write(done[1], *done[0]), f"computing {formula}")  # fmt: skip
        result = derived_item(item, out_id, grid, href, f"__NAME__: {formula} of {item.id}")
        add_asset(result, "data", cog, f"Normalised difference {formula}", COG, ["data"])
        folder.write_catalog(result, f"__NAME__ results of {item.id}")
    wall = time.perf_counter() - started
    report_usage(
        f"Usage of the compute step for {out_id}", usage, wall, {"COG (MB)": round(cog.stat().st_size / 1e6, 2)}
    )
    return output


PACKAGE = Package(
    name="__NAME__",
    label="__TITLE__",
    description="Compute the normalised difference of two bands of a Sentinel-2 L2A item (COGs) as a Cloud "
    "Optimized GeoTIFF with its STAC item, and publish them to a folder or S3.",
    stage_in=STAGE_IN,
    compute=Step("compute", compute, Resources(cores=(1, 2), ram_mb=(1024, 2048)), dask=DaskSizes(), network=True),
    stage_out=STAGE_OUT,
    examples={
        "item": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_33TWL_20250703_0_L2A",
        "destination": "s3://my-bucket/__NAME__",
    },
    feed=Feed(("item",)),
    api=">=1.0,<2",
)

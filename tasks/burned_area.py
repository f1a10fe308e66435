"""`burned-area`, its steps and its declaration: stage in a pre- and a post-event Sentinel-2 item, compute dNBR.

Compute reads both scenes window by window onto the post-event NIR grid (20 m bands and a pre-event scene on
another grid are resampled per window, only the tiles under the window are fetched), computes dNBR and
severity classes per window on the task runner's Dask cluster (or local threads), writes the windows into a
tiled GeoTIFF as they come back, then converts it to a COG with overviews. Nothing ever holds a whole band.
"""

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
import pystac

from eoflows import __version__
from eoflows.errors import InputError
from eoflows.package import DaskSizes, Feed, OutputDir, Package, Resources, StagedDir, Step
from eoflows.runtime import Placement, Runtime
from eoflows.settings import DaskSettings, S3Settings
from tasks.data.geotiff import WindowWriter, cog_writer, overview
from tasks.data.grid import Grid
from tasks.data.item_folder import ItemFolder
from tasks.data.png import png_bytes
from tasks.data.scenes import Scene, open_scene, overlap, read_on_grid, read_reflectance
from tasks.data.sentinel2 import SCL_CLASSES, check_sentinel2_l2a
from tasks.data.stac_io import read_item
from tasks.data.stac_items import burned_area_item
from tasks.data.staging import STAGE_OUT, source_href, stage_items, staged_items
from tasks.data.storage import absolute_href
from tasks.reporting import logger
from tasks.science.burn import (
    CLOUD_SHADOW_SNOW,
    DNBR_DESCRIPTION,
    SEVERITY,
    SEVERITY_DESCRIPTION,
    SEVERITY_NODATA,
    SEVERITY_PALETTE,
    Moments,
    classify,
    colour,
    dnbr,
    masked,
    nbr,
    summary,
)
from tasks.windows import Tile, Usage, report_usage, run_windows, tiles

EVENT = "eoflows:event"  # property of a staged item: "pre", "post" or "pre post"
NirBand = Literal["B08", "B8A"]
Resampling = Literal["nearest", "bilinear", "cubic", "average"]
WINDOW = 1024  # output pixels per window side (a multiple of the COG's 512-pixel tiles)


def _bbox_overlap(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def stage_in_pair(pre_item: str, post_item: str, output: OutputDir, storage: S3Settings | None = None) -> Path:
    """Stage a pre- and a post-event Sentinel-2 L2A STAC item into one catalog folder (data read in place).

    Args:
        pre_item: URL, local path or s3:// URI of the STAC item before the event.
        post_item: URL, local path or s3:// URI of the STAC item after the event.
        output: Folder that receives catalog.json and <item-id>/<item-id>.json for both items.
    """
    hrefs = {"pre": absolute_href(pre_item), "post": absolute_href(post_item)}
    items = {event: read_item(href, storage) for event, href in hrefs.items()}
    for event, item in items.items():
        check_sentinel2_l2a(item.properties, item.collection_id, f"{event}_item {hrefs[event]}")
    pre, post = items["pre"], items["post"]
    if pre.bbox and post.bbox and not _bbox_overlap(pre.bbox, post.bbox):
        raise InputError(f"pre_item {pre_item!r} and post_item {post_item!r} do not overlap "
                         f"(bbox {pre.bbox} and {post.bbox})")  # fmt: skip
    log = logger()
    if pre.id == post.id:
        log.warning("pre_item and post_item are the same item (%s): dNBR will be 0 wherever there is data", pre.id)
        post.properties[EVENT] = "pre post"
        staged = [post]
    else:
        if pre.datetime and post.datetime and pre.datetime >= post.datetime:
            log.warning("pre_item %s (%s) is not earlier than post_item %s (%s)", pre.id, pre.datetime, post.id,
                        post.datetime)  # fmt: skip
        pre.properties[EVENT], post.properties[EVENT] = "pre", "post"
        staged = [pre, post]
    log.info("Staging pre-event item %s and post-event item %s", pre.id, post.id)
    return stage_items(staged, output)


def staged_pair(folder: Path) -> tuple[pystac.Item, pystac.Item]:
    """The pre- and post-event items of a stage-in folder."""
    items = staged_items(folder)
    found = {e: i for i in items for e in str(i.properties.get(EVENT, "")).split()}
    if set(found) != {"pre", "post"}:
        raise InputError(f"staged folder {str(folder)!r}: expected a pre- and a post-event item ({EVENT} property)")
    return found["pre"], found["post"]


def plan_windows(grid: Grid) -> list[Tile]:
    """Windows (rows, cols) covering `grid`: WINDOW pixels a side, or halves of a smaller grid (multiples of 256)."""
    size = min(WINDOW, max(256, -(-max(grid.height, grid.width) // 512) * 256))
    return tiles(grid.height, grid.width, (size, size))


@dataclass(frozen=True)
class BurnJob:
    """What every window of one computation shares (sent once to each Dask worker)."""

    pre: Scene
    post: Scene
    grid: Grid  # the output grid
    nir: str  # b08 or b8a
    classes: tuple[int, ...]  # SCL classes masked
    resampling: str
    severity: bool


def scene_nbr(job: BurnJob, scene: Scene, rows: slice, cols: slice) -> np.ndarray:
    """NBR of one scene over a window of the output grid (NaN for no data and masked classes)."""
    bands = {}
    for band in (job.nir, "b12"):
        bands[band] = read_reflectance(scene.bands[band], job.grid, rows, cols, job.resampling)
    scl = read_on_grid(scene.bands["scl"], job.grid, rows, cols, "nearest") if job.classes else None
    return nbr(*(masked(bands[b], scl, job.classes) for b in (job.nir, "b12")))


@dataclass(frozen=True)
class BurnWindow:
    """What one window of the compute sends back to the step."""

    window: Tile
    dnbr: np.ndarray
    severity: np.ndarray | None  # the classes, when asked for
    moments: Moments  # of the window's dNBR


def burn_window(job: BurnJob, window: Tile) -> BurnWindow:
    """dNBR (and severity classes) of one window of the output grid."""
    rows, cols = window
    values = dnbr(scene_nbr(job, job.pre, rows, cols), scene_nbr(job, job.post, rows, cols))
    return BurnWindow(window, values, classify(values) if job.severity else None, Moments.of(values))


def compute_burned_area(
    input: StagedDir,
    output: OutputDir,
    runtime: Runtime,
    nir: NirBand = "B08",
    mask_clouds: bool = False,
    mask_classes: list[int] = [],
    severity: bool = True,
    resampling: Resampling = "nearest",
    storage: S3Settings | None = None,
    dask: DaskSettings | None = None,
) -> Path:
    """Compute burned area intensity (dNBR = NBR pre - NBR post) of a staged pre/post pair as a COG.

    Args:
        input: Stage-in folder (catalog.json, the pre- and the post-event Sentinel-2 L2A items).
        output: Folder that receives the dNBR COG, the severity COG, the quicklook, the item and catalog.json.
        nir: NIR band of NBR: B08 (10 m, as the original application) or B8A (20 m narrow NIR; the output is then
            on the 20 m grid).
        mask_clouds: Set no data where either scene's SCL says no data, defective, dark area, cloud shadow,
            cloud, cirrus or snow (classes 0 1 2 3 8 9 10 11).
        mask_classes: Further SCL classes (0-11) set to no data in either scene.
        severity: Also write the USGS burn severity classes (uint8 COG, 0 = no data).
        resampling: How 20 m bands and a pre-event scene on another grid are brought to the output grid.
    """
    bad = [c for c in mask_classes if c not in SCL_CLASSES]
    if bad:
        raise InputError(f"mask_classes {bad}: SCL classes are integers 0-11 ({', '.join(map(str, SCL_CLASSES))})")
    classes = tuple(sorted(set(mask_classes) | (set(CLOUD_SHADOW_SNOW) if mask_clouds else set())))
    nir_band = nir.lower()
    bands = [nir_band, "b12", *(["scl"] if classes else [])]
    pre_item, post_item = staged_pair(input)
    pre_href, post_href = source_href(pre_item), source_href(post_item)
    pre = open_scene(pre_item, pre_href, bands, storage)
    post = pre if pre_item is post_item else open_scene(post_item, post_href, bands, storage)
    grid = post.footprint(nir_band)
    covered = overlap(grid, pre.footprint(nir_band))
    if covered == 0:
        raise InputError(f"pre-event item {pre_href!r} does not overlap the grid of post-event item {post_href!r}")
    log = logger()
    out_id = f"{post_item.id}-burned-area"
    folder = ItemFolder.of(output, out_id, f"output of item {post_item.id!r}")
    windows = plan_windows(grid)
    log.info("Computing dNBR (%s, %s) of %s -> %s on the %d x %d grid of %s (%s, %g m), %d windows%s",
             nir, resampling, pre_item.id, post_item.id, grid.width, grid.height, post_item.id, grid.crs, grid.res,
             len(windows), f", masking SCL classes {list(classes)}" if classes else "")  # fmt: skip
    if covered < 0.999:
        log.warning("The pre-event scene covers %.0f%% of the post-event grid; the rest is no data", covered * 100)
    t0 = time.perf_counter()
    paths = {key: folder.file(f"-{key}.tif") for key in ("dnbr", "severity") if severity or key == "dnbr"}
    with folder.writing(f"compute of dNBR {pre_item.id} -> {post_item.id}"):
        job = BurnJob(pre, post, grid, nir_band, classes, resampling, severity)
        with _cog_writers(job, paths) as writers, runtime.windows.place(dask, grid.height * grid.width) as place:
            log.info("Windows run on %s", place.where)
            usage, moments = _write_windows(place, job, windows, writers)  # statistics as the windows come back
        thumbnail = folder.file(".png")
        thumbnail.write_bytes(png_bytes(colour(overview(paths["dnbr"]))))  # dNBR by severity class
        stats = summary(moments, grid.width * grid.height)
        result = burned_area_item(pre_item, post_item, pre_href, post_href, out_id, grid, paths, thumbnail, nir,
                                  classes, stats)  # fmt: skip
        folder.write_catalog(result, f"burned-area results of {pre_item.id} -> {post_item.id}")
    wall = time.perf_counter() - t0
    report_usage(f"Usage of the compute step for {out_id}", usage, wall, {
        "burned (dNBR >= 0.1) share of valid pixels": stats["burned share"],
        "mean dNBR": stats["mean"],
        "output stored (MB)": round(sum(p.stat().st_size for p in folder.path.iterdir()) / 1e6, 1),
    })  # fmt: skip
    log.info("Wrote dNBR of %s in %.1f s (mean %s)", out_id, wall, stats["mean"])
    return output


@contextmanager
def _cog_writers(job: BurnJob, paths: dict[str, Path]) -> Iterator[dict[str, WindowWriter]]:
    """A window writer per output COG of `paths` (dnbr, and severity when asked); the COGs are made at the end."""
    with ExitStack() as stack:
        writers = {"dnbr": stack.enter_context(cog_writer(paths["dnbr"], job.grid, "float32", np.nan, DNBR_DESCRIPTION,
                                                          "AVERAGE"))}  # fmt: skip
        if job.severity:
            writers["severity"] = stack.enter_context(
                cog_writer(
                    paths["severity"],
                    job.grid,
                    "uint8",
                    SEVERITY_NODATA,
                    SEVERITY_DESCRIPTION,
                    "MODE",
                    {code: name for code, name, _ in SEVERITY},
                    SEVERITY_PALETTE,
                )  # fmt: skip
            )
        yield writers


def _write_windows(
    place: Placement, job: BurnJob, windows: list[Tile], writers: dict[str, WindowWriter]
) -> tuple[Usage, Moments]:
    """Run every window and hand it to the COG `writers` as it comes back; the usage and the dNBR moments."""
    moments = Moments()

    def write(result: BurnWindow) -> None:
        nonlocal moments
        values = {"dnbr": result.dnbr, "severity": result.severity}
        for name, writer in writers.items():
            writer(values[name], *result.window)
        moments += result.moments

    return run_windows(place, partial(burn_window, job), windows, write, "computing dNBR"), moments


BURNED_AREA = Package(
    name="burned-area",
    label="Burned area intensity (dNBR)",
    description=(
        "Compute the burned area intensity dNBR = NBR pre - NBR post (NBR = (NIR - SWIR2) / (NIR + SWIR2)) of a "
        "pre- and a post-event Sentinel-2 L2A scene as a Cloud Optimized GeoTIFF, with USGS burn severity "
        "classes, a quicklook and a STAC item, and publish them to a folder or S3."
    ),
    stage_in=Step("stage-in", stage_in_pair, Resources(cores=(1, 1), ram_mb=(512, 512)), network=True),
    compute=Step(
        "compute", compute_burned_area, Resources(cores=(2, 2), ram_mb=(2048, 4096)), dask=DaskSizes(), network=True
    ),
    stage_out=STAGE_OUT,
    version=__version__,
    feed=Feed(("pre_item", "post_item")),
    examples={
        "pre_item": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_10TFK_20210713_0_L2A",
        "post_item": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2A_10TFK_20210718_0_L2A",
        "destination": "s3://eoflows/burned-area",
    },
)

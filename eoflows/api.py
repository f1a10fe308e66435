"""The public API of eoflows for application packages: what a package imports, and nothing else.

Its version is `API_VERSION`; a package states the range it needs (`Package(api=">=1.0,<2")`) and discovery
refuses a package whose range this eoflows does not meet, in one line naming both. Within a major version,
names are only added. The guide (docs/your-own-package.md) explains each of them; the package made by
`eoflows new package NAME` uses them.

- Declaring a package: `Package`, `Step`, `Resources`, `DaskSizes`, `Feed`; the roles of step parameters
  (`StagedDir`, `OutputDir`, `Destination`, `Runtime`) and the settings a step may ask for (`S3Settings`,
  `DaskSettings`).
- Reusable steps: `STAGE_IN` (`stage_in_item`: any STAC item -> a staged folder, assets of any media type
  downloaded on request) and `STAGE_OUT` (`stage_out`: a folder or S3, the run folder claimed, rolled back on
  failure, catalog.json last).
- Reading input: `staged_items`, `source_href`, `open_scene` (the bands of a Sentinel-2 L2A item of any shape),
  `read_reflectance` / `read_on_grid` (a window of a band on an output `Grid`).
- Array work by windows: `tiles` (a grid cut into windows), `run_windows` (on the runtime's placement: threads, the
  flow's Dask cluster, a Gateway; `Runtime(Threads())` runs a step by hand), `cog_writer` (a COG written window
  by window), `Usage` and `report_usage`.
- Writing output: `ItemFolder` (a step's item folder, removed on failure, catalog.json last), `derived_item`,
  `add_asset`, `report_table`, `logger`.
- Notebook steps (API 1.1): `notebook_step` (a Jupyter notebook with a papermill ``parameters`` cell as a step),
  `NotebookError`.
- Errors: `InputError` (bad input: one line naming it), `StageError`.
"""

from eoflows import API_VERSION
from eoflows.errors import InputError, StageError
from eoflows.package import (
    DaskSizes,
    Destination,
    Feed,
    OutputDir,
    Package,
    Resources,
    Role,
    StagedDir,
    Step,
)
from eoflows.runtime import Placement, Runtime
from eoflows.settings import DaskSettings, S3Settings
from tasks.data.geotiff import cog_writer
from tasks.data.grid import Grid
from tasks.data.item_folder import ItemFolder
from tasks.data.scenes import Raster, Scene, open_scene, read_on_grid, read_reflectance
from tasks.data.stac_items import add_asset, derived_item
from tasks.data.stage_in import STAGE_IN, stage_in_item
from tasks.data.staging import STAGE_OUT, source_href, stage_out, staged_items
from tasks.notebook import NotebookError, notebook_step
from tasks.reporting import logger, report_table
from tasks.windows import Threads, Tile, Usage, report_usage, run_windows, tiles

__all__ = [
    "API_VERSION",
    "DaskSettings",
    "DaskSizes",
    "Destination",
    "Feed",
    "Grid",
    "InputError",
    "ItemFolder",
    "OutputDir",
    "NotebookError",
    "Package",
    "Placement",
    "Raster",
    "Resources",
    "Role",
    "Runtime",
    "S3Settings",
    "STAGE_IN",
    "STAGE_OUT",
    "Scene",
    "StageError",
    "StagedDir",
    "Step",
    "Threads",
    "Tile",
    "Usage",
    "add_asset",
    "cog_writer",
    "derived_item",
    "logger",
    "notebook_step",
    "open_scene",
    "read_on_grid",
    "read_reflectance",
    "report_table",
    "report_usage",
    "run_windows",
    "source_href",
    "stage_in_item",
    "stage_out",
    "staged_items",
    "tiles",
]

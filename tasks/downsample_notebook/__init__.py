"""`downsample-notebook`: the `downsample` package written as the seed system wrote it, as two Jupyter notebooks.

The seed (downsample-landsat) is a CWL workflow whose steps are papermill-parameterised notebooks. Here the same
notebooks' parameters cells declare the steps (`tasks.notebook`): `stage_in.ipynb` takes `input_url`,
`downsample_landsat.ipynb` the seed's `min_spin_time` and `max_spin_time` (a pause, to simulate work). Their
results are the `downsample` package's for the same input (with its default width and browse size), and each
executed notebook is published with them.
"""

from dataclasses import replace
from pathlib import Path

from eoflows import __version__
from eoflows.package import Feed, Package, Resources
from tasks.data.staging import STAGE_OUT
from tasks.notebook import notebook_step

HERE = Path(__file__).parent

DOWNSAMPLE_NOTEBOOK = Package(
    name="downsample-notebook",
    label="Downsampled raster, browse image and metadata (notebook steps)",
    description=(
        "Download a GeoTIFF (a Landsat band) and write a copy 100 pixels wide, a browse PNG and its gdalinfo-style "
        "metadata JSON with a STAC item, each step a Jupyter notebook run with papermill and published with the "
        "results; publish them to a folder or S3."
    ),
    stage_in=notebook_step(
        "stage-in",
        HERE / "stage_in.ipynb",
        Resources(cores=(1, 1), ram_mb=(512, 1024)),
        network=True,
        required=("input_url",),
    ),  # fmt: skip
    compute=notebook_step("compute", HERE / "downsample_landsat.ipynb", Resources(cores=(1, 1), ram_mb=(1024, 2048))),
    stage_out=replace(STAGE_OUT, resources=Resources(cores=(1, 1), ram_mb=(512, 512))),
    version=__version__,
    feed=Feed(("input_url",), asset=True),
    examples={
        "input_url": "https://landsatlook.usgs.gov/data/collection02/level-2/standard/oli-tirs/2021/044/033/"
        "LC08_L2SP_044033_20210329_20210408_02_T1/LC08_L2SP_044033_20210329_20210408_02_T1_QA_PIXEL.TIF",
        "destination": "s3://eoflows/downsample-notebook",
    },
)

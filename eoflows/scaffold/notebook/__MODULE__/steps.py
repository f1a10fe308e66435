"""__NAME__: the declaration of the package, whose compute step is the notebook `compute.ipynb`.

eoflows reads the notebook's cell tagged ``parameters``: each variable there is an input of the package (the
Prefect flow's form, `eoflows run` and `eoflows step` options, CWL inputs), typed by its annotation
(``threshold: float = 0.2``), a ``# type: float`` comment or its default, documented by its trailing comment.
eoflows fills `input_dir` (the staged folder: catalog.json and the STAC item) and `output_dir` (where the
notebook writes its results, their STAC items and catalog.json). Stage-in and stage-out are eoflows' own.
"""

from pathlib import Path

from eoflows.api import STAGE_IN, STAGE_OUT, Feed, Package, Resources, notebook_step

HERE = Path(__file__).parent

PACKAGE = Package(
    name="__NAME__",
    label="__TITLE__",
    description="__TITLE__: the notebook compute.ipynb run on a STAC item staged in, its results and the executed "
    "notebook published to a folder or S3.",
    stage_in=STAGE_IN,
    compute=notebook_step(
        "compute", HERE / "compute.ipynb", Resources(cores=(1, 2), ram_mb=(1024, 2048)), network=True
    ),  # fmt: skip
    stage_out=STAGE_OUT,
    examples={
        "item": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_33TWL_20250703_0_L2A",
        "destination": "s3://my-bucket/__NAME__",
    },
    feed=Feed(("item",)),
    api=">=1.1,<2",
)

"""`burned-area`: pre- and post-event Sentinel-2 L2A items -> burned area intensity (dNBR) COG + STAC.

```
eoflows run burned-area --pre-item https://.../S2B_10TFK_20210713_0_L2A \
    --post-item https://.../S2A_10TFK_20210718_0_L2A --destination s3://bucket/results
```
"""

from eoflows.package import DaskSizes, Feed, Package, Resources, Step
from flows.build import package_flow
from tasks.burned_area import compute_burned_area, stage_in_pair
from tasks.data.staging import claim_destination, stage_out

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
        "compute", compute_burned_area, Resources(cores=(2, 2), ram_mb=(2048, 2048)), dask=DaskSizes(), network=True
    ),
    stage_out=Step(
        "stage-out", stage_out, Resources(cores=(1, 1), ram_mb=(1024, 1024)), network=True, hold=claim_destination
    ),
    feed=Feed(("pre_item", "post_item")),
    examples={
        "pre_item": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2B_10TFK_20210713_0_L2A",
        "post_item": "https://earth-search.aws.element84.com/v1/collections/sentinel-2-l2a/items/S2A_10TFK_20210718_0_L2A",
        "destination": "s3://eoflows/burned-area",
    },
)

burned_area = package_flow(BURNED_AREA)

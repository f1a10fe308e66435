"""`s2-indices`: Sentinel-2 L2A EOPF Zarr item -> 7 spectral indices and 7 colour composites (Zarr) + STAC.

```
eoflows run s2-indices --item https://.../items/S2A_MSIL2A_... --destination s3://bucket/results
```
"""

from eoflows.package import DaskSizes, Feed, Package, Resources, Step
from flows.build import package_flow
from tasks.data.staging import claim_destination, stage_out
from tasks.s2_indices import compute_indices, stage_in_eopf

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
        "compute", compute_indices, Resources(cores=(2, 2), ram_mb=(2048, 2048)), dask=DaskSizes(), network=True
    ),
    stage_out=Step(
        "stage-out", stage_out, Resources(cores=(1, 1), ram_mb=(1024, 1024)), network=True, hold=claim_destination
    ),
    feed=Feed(("item",)),
    examples={
        "item": "https://stac.core.eopf.eodc.eu/collections/sentinel-2-l2a/items/"
        "S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515",
        "destination": "s3://eoflows/results",
    },
)

s2_indices = package_flow(S2_INDICES)

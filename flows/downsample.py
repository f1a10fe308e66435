"""`downsample`: a GeoTIFF URL (a Landsat band) -> a GeoTIFF `width` pixels wide, a browse PNG, its metadata + STAC.

```
eoflows run downsample --url https://.../LC08_L2SP_..._QA_PIXEL.TIF --destination s3://bucket/prefix
```
"""

from eoflows.package import Feed, Package, Resources, Step
from flows.build import package_flow
from tasks.data.staging import claim_destination, stage_out
from tasks.downsample import downsample, stage_in_url

DOWNSAMPLE = Package(
    name="downsample",
    label="Downsampled raster, browse image and metadata",
    description=(
        "Download a GeoTIFF (a Landsat band), write a copy a given number of pixels wide (aspect kept, "
        "nearest resampling for bit-flag bands, average otherwise), a browse PNG and its gdalinfo-style "
        "metadata JSON with a STAC item, and publish them to a folder or S3."
    ),
    stage_in=Step("stage-in", stage_in_url, Resources(cores=(1, 1), ram_mb=(512, 512)), network=True),
    compute=Step("compute", downsample, Resources(cores=(1, 1), ram_mb=(1024, 1024))),
    stage_out=Step(
        "stage-out", stage_out, Resources(cores=(1, 1), ram_mb=(512, 512)), network=True, hold=claim_destination
    ),
    feed=Feed(("url",), asset=True),
    examples={
        "url": "https://landsatlook.usgs.gov/data/collection02/level-2/standard/oli-tirs/2021/044/033/"
        "LC08_L2SP_044033_20210329_20210408_02_T1/LC08_L2SP_044033_20210329_20210408_02_T1_QA_PIXEL.TIF",
        "destination": "s3://eoflows/downsample",
    },
)

downsample_flow = package_flow(DOWNSAMPLE)

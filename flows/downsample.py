"""`downsample`: a GeoTIFF URL (a Landsat band) -> a GeoTIFF `width` pixels wide, a browse PNG, its metadata + STAC.

```
eoflows run downsample --url https://.../LC08_L2SP_..._QA_PIXEL.TIF --destination s3://bucket/prefix
```
"""

from flows.build import package_flow
from tasks.downsample import DOWNSAMPLE

downsample_flow = package_flow(DOWNSAMPLE)

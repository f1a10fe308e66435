"""`s2-indices`: Sentinel-2 L2A EOPF Zarr item -> 7 spectral indices and 7 colour composites (Zarr) + STAC.

```
eoflows run s2-indices --item https://.../items/S2A_MSIL2A_... --destination s3://bucket/results
```
"""

from flows.build import package_flow
from tasks.s2_indices import S2_INDICES

s2_indices = package_flow(S2_INDICES)

"""`burned-area`: pre- and post-event Sentinel-2 L2A items -> burned area intensity (dNBR) COG + STAC.

```
eoflows run burned-area --pre-item https://.../S2B_10TFK_20210713_0_L2A \
    --post-item https://.../S2A_10TFK_20210718_0_L2A --destination s3://bucket/results
```
"""

from flows.build import package_flow
from tasks.burned_area import BURNED_AREA

burned_area = package_flow(BURNED_AREA)

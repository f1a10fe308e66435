"""A synthetic Landsat 8 Collection 2 Level-2 scene: a surface reflectance band and its QA_PIXEL, as COGs.

```
DEST/LC08_L2SP_044033_20210329_20210408_02_T1_SR_B5.TIF     uint16 DN (reflectance = DN * 2.75e-5 - 0.2), 0 = fill
DEST/LC08_L2SP_044033_20210329_20210408_02_T1_QA_PIXEL.TIF  uint16 bit flags (bit 0 fill, 3 cloud, 6 clear, 7 water)
```
UTM 10N, 30 m pixels, the tilted swath of a real scene (fill corners), the landscape of the other samples.
"""

from pathlib import Path

import numpy as np

from eoflows.errors import InputError
from eoflows.samples.landscape import Cover, ground, smooth_field

SCENE = "LC08_L2SP_044033_20210329_20210408_02_T1"
EPSG, X0, Y0, RES = 32610, 460785.0, 4264215.0, 30.0
SCALE, OFFSET = 2.75e-5, -0.2
#: QA_PIXEL values of Collection 2 (fill; clear land; clear water; cloud, high confidence)
QA = {"fill": 1, "clear": 21824, "water": 21952, "cloud": 22280}
NIR = {Cover.WATER: 0.02, Cover.URBAN: 0.22, Cover.SOIL: 0.25, Cover.STUBBLE: 0.28, Cover.CROP: 0.38,
       Cover.FOREST: 0.32}  # fmt: skip


def write_landsat(dest: Path, width: int = 781, height: int = 771, seed: int = 3) -> tuple[Path, Path]:
    """Write the SR_B5 (NIR) band and QA_PIXEL of a synthetic scene into `dest`; return both paths."""
    import rasterio
    from rasterio.transform import Affine

    if min(width, height) < 50:
        raise InputError(f"sample size {width} x {height}: at least 50 pixels a side")
    dest.mkdir(parents=True, exist_ok=True)
    n = max(width, height)
    cover, vigour = ground(n, seed)
    cover, vigour = cover[:height, :width], vigour[:height, :width]
    rng = np.random.default_rng(seed)
    nir = np.vectorize(NIR.get, otypes=[np.float32])(cover) * np.where(cover == Cover.CROP, vigour, 1)
    clouds = smooth_field(n, n / 10, rng)[:height, :width] > 1.3
    nir = np.where(clouds, 0.45, nir) + rng.normal(0, 0.004, nir.shape).astype(np.float32)
    y, x = np.mgrid[0:height, 0:width]
    tilt = 0.2  # the swath of a descending pass: fill triangles at the four corners
    fill = (x < tilt * (height - y)) | (x > width - tilt * y)
    dn = np.clip(np.rint((nir - OFFSET) / SCALE), 1, 65535).astype(np.uint16)
    dn[fill] = 0
    qa = np.full((height, width), QA["clear"], np.uint16)
    qa[cover == Cover.WATER] = QA["water"]
    qa[clouds] = QA["cloud"]
    qa[fill] = QA["fill"]
    profile = {"driver": "COG", "count": 1, "width": width, "height": height, "crs": f"EPSG:{EPSG}",
               "transform": Affine(RES, 0, X0, 0, -RES, Y0), "compress": "deflate", "blocksize": 256}  # fmt: skip
    paths = (dest / f"{SCENE}_SR_B5.TIF", dest / f"{SCENE}_QA_PIXEL.TIF")
    for path, data, nodata, resampling, description in (
        (paths[0], dn, 0, "average", "Surface reflectance, band 5 (NIR)"),
        (paths[1], qa, 1, "nearest", "Pixel quality assessment (bit flags)"),
    ):
        with rasterio.open(path, "w", **profile, dtype="uint16", nodata=nodata, overview_resampling=resampling) as dst:
            dst.write(data, 1)
            dst.set_band_description(1, description)
            dst.update_tags(SCENE=SCENE, SYNTHETIC="eoflows sample")
    return paths

"""`eoflows sample`: synthetic sample products and their STAC items, made here (no network needed)."""

from pathlib import Path
from typing import Literal

from cyclopts import App

app = App(name="sample", help="Write synthetic sample products and their STAC items (no network needed).")


@app.command(name="s2")
def sample_s2(dest: Path, *, size: int = 1098, seed: int = 1) -> None:
    """Write a synthetic Sentinel-2 L2A product (EOPF Zarr) and its STAC item into DEST; print the item path.

    Args:
        dest: Folder to write <id>.zarr and <id>.json into.
        size: Pixels per side at 10 m (a multiple of 6; 10980 is a full tile).
        seed: Date seed: the same ground, different clouds and acquisition date.
    """
    from eoflows.samples.s2_eopf import write_sample

    print(write_sample(dest, size=size, seed=seed))


@app.command(name="burned-area")
def sample_burned_area(dest: Path, *, size: int = 1098, seed: int = 7, layout: Literal["v1", "v0"] = "v1") -> None:
    """Write a synthetic pre-/post-fire pair of Sentinel-2 L2A scenes (COGs) and their items; print both paths.

    Args:
        dest: Folder to write <id>/*.tif, <id>.json for both dates and burn-scar.json into.
        size: Pixels per side at 10 m (even; 10980 is a full tile).
        seed: Ground and clouds seed.
        layout: Item shape: v1 (Earth Search v1 asset keys nir, swir22, scl) or v0 (B08, B12, SCL).
    """
    from eoflows.samples.burn_pair import write_pair

    pre, post = write_pair(dest, size=size, seed=seed, layout=layout)
    print(pre)
    print(post)


@app.command(name="landsat")
def sample_landsat(dest: Path, *, width: int = 781, height: int = 771, seed: int = 3) -> None:
    """Write a synthetic Landsat 8 Collection 2 scene (SR_B5 and QA_PIXEL COGs) into DEST; print both paths.

    Args:
        dest: Folder to write the two GeoTIFFs into.
        width: Pixels per row (30 m; a full scene is about 7800).
        height: Rows (a full scene is about 7700).
        seed: Landscape seed.
    """
    from eoflows.samples.landsat import write_landsat

    for path in write_landsat(dest, width=width, height=height, seed=seed):
        print(path)

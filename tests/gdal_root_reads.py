"""Reads of eoflows' Zarr outputs by GDAL and odc-stac, run in the Debian trixie root of tests/test_gdal_reads.py.

    python3 gdal_root_reads.py OUT ITEMS ARRAY...

Runs under the root's Python 3.13 with only the rasterio (GDAL >= 3.11) and odc-stac wheels: no eoflows, no Zarr
library. Each ARRAY (a Zarr array folder, as QGIS or `gdalinfo` open it) is read whole through GDAL into
OUT/gdal-<n>.npy, or its error is kept. Each item JSON of the comma-separated ITEMS is loaded with
`odc.stac.load` (every product band, the Zarr media type renamed for odc-stac 0.5) into OUT/odc-<n>-<band>.npy.
OUT/report.json says what happened.
"""

import json
import sys
from pathlib import Path

import numpy as np


def gdal_read(path: str, dest: Path) -> dict[str, object]:
    """Read the array at `path` with GDAL into `dest`; its grid, or the error."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            np.save(dest, src.read())
            return {"file": dest.name, "crs": src.crs.to_epsg(), "transform": list(src.transform)[:6]}
    except rasterio.errors.RasterioError as error:
        return {"error": str(error)}


def odc_load(item_path: str, out: Path, n: int) -> dict[str, str]:
    """Load every product band of the item at `item_path` with odc-stac; the file of each band."""
    import odc.stac
    import pystac

    item = pystac.Item.from_file(item_path)
    for asset in item.assets.values():  # odc-stac 0.5 knows only application/[x-]zarr (README)
        if asset.media_type == "application/vnd.zarr; version=3":
            asset.media_type = "application/zarr"
    (parsed,) = odc.stac.parse_items([item])
    bands = [f"{key}.{index}" for key, index in parsed.bands if key != "product"]  # the whole store is no raster
    loaded = odc.stac.load([item], bands=bands)
    files = {}
    for band in bands:
        files[band] = f"odc-{n}-{band}.npy"
        np.save(out / files[band], loaded[band].values[0])
    return files


def main(out: Path, items: str, arrays: list[str]) -> None:
    """Read every array with GDAL and load every item with odc-stac; write OUT/report.json."""
    import rasterio

    report = {
        "gdal": rasterio.__gdal_version__,
        "reads": {path: gdal_read(path, out / f"gdal-{n}.npy") for n, path in enumerate(arrays)},
        "loads": {path: odc_load(path, out, n) for n, path in enumerate(filter(None, items.split(",")))},
    }
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2], sys.argv[3:])

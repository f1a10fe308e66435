"""GDAL (>= 3.11) reads every array s2-indices writes, and odc-stac loads its item, in a Debian trixie root.

GDAL reads Zarr v3 from 3.11 on; Debian trixie's own GDAL (python3-gdal, gdal-bin) is 3.10.3, and rasterio >= 1.5
(its wheels bundle GDAL 3.12) needs Python >= 3.12. So the root is Debian trixie from Debian's packages (image/base.sh
with EOFLOWS_BASE_SUITE=trixie: CPython 3.13), with the rasterio and odc-stac wheels installed on the host for its
python3 (image/wheelhouse.py --site), both cached in EOFLOWS_IMAGE_CACHE like the image's (minutes the first time,
then seconds; the `trixie` fixture); the reads run there with no network (tests/gdal_root_reads.py).
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pystac
import zarr

from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.steps import alone

READS = Path(__file__).with_name("gdal_root_reads.py")


def read_in_root(trixie: tuple[str, Path], data: Path, out: Path, items: list[Path], arrays: list[Path]) -> dict:
    """Run tests/gdal_root_reads.py in the trixie root on `items` and `arrays` (under `data`); its report."""
    base, site = trixie
    inside = [f"/data/{path.relative_to(data)}" for path in arrays]
    command = ["docker", "run", "--rm", "--network", "none", "--user", f"{os.getuid()}:{os.getgid()}",
               "-v", f"{data}:/data:ro", "-v", f"{out}:/out", "-v", f"{site}:/site:ro", "-v", f"{READS}:/reads.py:ro",
               "-e", "PYTHONPATH=/site", base, "python3", "/reads.py", "/out",
               ",".join(f"/data/{item.relative_to(data)}" for item in items), *inside]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((out / "report.json").read_text())
    report["reads"] = {path: report["reads"][name] for path, name in zip(arrays, inside, strict=True)}
    report["loads"] = dict(zip(items, report["loads"].values(), strict=True))
    return report


def product_arrays(item: pystac.Item) -> dict[str, Path]:
    """The array folder of each product asset of an s2-indices item."""
    return {key: Path(a.get_absolute_href()) for key, a in item.assets.items() if a.roles != ["data", "metadata"]
            and a.media_type and "zarr" in a.media_type}  # fmt: skip


def test_gdal_reads_every_array_and_odc_stac_loads_the_item(
    trixie: tuple[str, Path], sample_item: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    staged = stage_in_eopf(str(sample_item), tmp_path / "staged")
    items = []
    for encoding in ("float32", "compact"):
        out = compute_indices(staged, data / encoding, alone(), encoding=encoding)
        (item,) = pystac.Catalog.from_file(str(out / "catalog.json")).get_items(recursive=True)
        items.append(item)
    arrays = {path: key for item in items for key, path in product_arrays(item).items()}
    assert len(arrays) == 28  # 7 indices and 7 composites, in each encoding
    damaged = data / "damaged" / "ndvi"  # a copy of an array with one corrupted chunk
    shutil.copytree(next(path for path, key in arrays.items() if key == "ndvi"), damaged)
    chunk = damaged / "c" / "1" / "1"
    stored = bytearray(chunk.read_bytes())
    stored[len(stored) // 2] ^= 0x10  # one flipped bit
    chunk.write_bytes(bytes(stored))
    (tmp_path / "out").mkdir()

    report = read_in_root(trixie, data, tmp_path / "out", [Path(items[0].get_self_href())], [*arrays, damaged])

    assert tuple(int(part) for part in report["gdal"].split(".")[:2]) >= (3, 11), report["gdal"]
    epsg = int(items[0].properties["proj:code"].removeprefix("EPSG:"))
    for path, key in arrays.items():
        read = report["reads"][path]
        assert "error" not in read, f"GDAL {report['gdal']} cannot read {key} of {path.parent.name}: {read}"
        assert (read["crs"], read["transform"]) == (epsg, items[0].properties["proj:transform"]), key
        stored_values = zarr.open_array(str(path), mode="r")[:]
        assert np.array_equal(np.load(tmp_path / "out" / read["file"]).reshape(stored_values.shape), stored_values,
                              equal_nan=True), key  # fmt: skip
    assert "error" in report["reads"][damaged]  # the zstd checksum: GDAL notices the corrupted chunk too

    (loaded,) = report["loads"].values()
    assert len(loaded) == 7 + 7 * 3  # every band of every product asset
    for band, file in loaded.items():
        key, index = band.rsplit(".", 1)
        stored_values = zarr.open_array(str(product_arrays(items[0])[key]), mode="r")[:]
        expected = stored_values if stored_values.ndim == 2 else stored_values[int(index) - 1]
        assert np.array_equal(np.load(tmp_path / "out" / file), expected, equal_nan=True), band

"""Synthetic Sentinel-2 L2A samples: EOPF layout, an item shaped like real EOPF items, deterministic."""

import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import xarray as xr
import zarr

from eoflows.errors import InputError
from eoflows.samples.s2_eopf import write_sample
from tests.conftest import FIXTURES, SMALL

REAL_EOPF = FIXTURES / "stac" / "eopf-zarr_S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515.json"


def store_of(item: Path) -> Path:
    return item.with_suffix(".zarr")


def test_layout_follows_eopf(sample_item: Path) -> None:
    root = zarr.open_group(store_of(sample_item), mode="r")
    assert root.metadata.zarr_format == 2
    expected = {
        "measurements/reflectance/r10m": (["b02", "b03", "b04", "b08"], SMALL),
        "measurements/reflectance/r20m": (["b05", "b06", "b07", "b8a", "b11", "b12"], SMALL // 2),
        "measurements/reflectance/r60m": (["b01", "b09"], SMALL // 6),
    }
    for group, (bands, size) in expected.items():
        for band in bands:
            arr = root[f"{group}/{band}"]
            assert (arr.dtype, arr.shape, arr.fill_value) == (np.dtype("uint16"), (size, size), 0)
            assert arr.attrs["scale_factor"] == 1e-4 and arr.attrs["add_offset"] == -0.1
            assert arr.chunks == (SMALL // 3 // (SMALL // size),) * 2
            codec = arr.metadata.compressor
            assert (codec.cname, codec.clevel, codec.shuffle) == ("zstd", 3, 2)  # bit shuffle
        assert root[f"{group}/x"].dtype == np.int64
    scl = root["conditions/mask/l2a_classification/r20m/scl"]
    assert scl.dtype == np.uint8 and set(np.unique(scl[:])) <= set(range(12))
    props = root.attrs["stac_discovery"]["properties"]
    assert props["proj:epsg"] == 32632 and props["product:type"] == "S02MSIL2A"
    assert (store_of(sample_item) / ".zmetadata").is_file()


def test_reference_application_reads_it_with_default_decoding(sample_item: Path) -> None:
    tree = xr.open_datatree(store_of(sample_item), engine="zarr", chunks={})
    b04 = tree["measurements/reflectance/r10m"]["b04"]
    assert b04.dtype == np.float64
    values = b04.values
    assert np.isnan(values[0, 0])  # the no-data corner
    assert 0 < np.nanmedian(values) < 0.5


def test_item_has_the_shape_of_a_real_eopf_item(sample_item: Path) -> None:
    ours = json.loads(sample_item.read_text())
    real = json.loads(REAL_EOPF.read_text())
    for key in ("product", "SR_10m", "SR_20m", "B02_10m", "B08_10m", "B11_20m", "B12_20m", "B8A_20m", "SCL_20m"):
        assert key in ours["assets"] and key in real["assets"]
        assert set(real["assets"][key]) - {"description"} <= set(ours["assets"][key]) | {"description"}, key
    band = ours["assets"]["B08_10m"]
    assert band["href"].endswith(".zarr/measurements/reflectance/r10m/b08")
    assert band["bands"][0]["eo:common_name"] == "nir" and band["raster:scale"] == 1e-4
    assert ours["assets"]["product"]["type"] == real["assets"]["product"]["type"] == "application/vnd.zarr"
    assert ours["properties"]["proj:code"] == "EPSG:32632" and "proj:epsg" not in ours["properties"]
    item = pystac.Item.from_file(str(sample_item))
    assert item.geometry["type"] == "Polygon" and item.datetime is not None
    assert Path(item.assets["product"].get_absolute_href()) == store_of(sample_item)
    assert 0 <= item.properties["eo:cloud_cover"] <= 100


def test_landscape_not_noise(sample_item: Path) -> None:
    root = zarr.open_group(store_of(sample_item), mode="r")
    b08 = root["measurements/reflectance/r10m/b08"][:].astype(float)
    valid = b08 > 0
    # neighbouring pixels are alike (land cover patches), unlike independent noise
    corr = np.corrcoef(b08[:-1][valid[:-1] & valid[1:]], b08[1:][valid[:-1] & valid[1:]])[0, 1]
    assert corr > 0.8
    scl = root["conditions/mask/l2a_classification/r20m/scl"][:]
    assert {4, 5, 6, 9} <= set(np.unique(scl))  # vegetation, bare/urban, water, clouds


def test_deterministic_for_a_seed(tmp_path: Path) -> None:
    a = write_sample(tmp_path / "a", size=60, seed=3)
    b = write_sample(tmp_path / "b", size=60, seed=3)
    c = write_sample(tmp_path / "c", size=60, seed=4)
    read = lambda item: zarr.open_group(store_of(item), mode="r")["measurements/reflectance/r10m/b04"][:]  # noqa: E731
    np.testing.assert_array_equal(read(a), read(b))
    assert not np.array_equal(read(a), read(c))
    assert a.name == b.name != c.name  # another seed is another acquisition date


@pytest.mark.parametrize("size", [59, 100, 0])
def test_bad_size_is_refused(tmp_path: Path, size: int) -> None:
    with pytest.raises(InputError, match=f"sample size {size}: expected a multiple of 6"):
        write_sample(tmp_path, size=size)

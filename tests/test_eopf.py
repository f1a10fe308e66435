"""Reading Sentinel-2 L2A EOPF items: checks, band resolution, CRS, scale and offset, the real EOPF item."""

import json
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import zarr

from eoflows.errors import InputError
from tasks.data.eopf import check_eopf_l2a, open_source
from tests.conftest import FIXTURES, SMALL

STAC = FIXTURES / "stac"
REAL_EOPF = STAC / "eopf-zarr_S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515.json"
REMOTE_STORE = (
    "https://objects.eodc.eu:443/e05ab01a9d56408d82ac32d69a5aae2a:202511-s02msil2a-eu/13/products/cpm_v262/"
    "S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515.zarr"
)
BANDS = ["b02", "b03", "b04", "b08", "b11", "b12"]


def real_item_on(store: Path, tmp_path: Path) -> Path:
    """A copy of the real EOPF Sample Service item whose hrefs point into a local store."""
    text = REAL_EOPF.read_text()
    assert REMOTE_STORE in text
    path = tmp_path / REAL_EOPF.name
    path.write_text(text.replace(REMOTE_STORE, str(store)))
    return path


def item_of(path: Path) -> pystac.Item:
    return pystac.Item.from_file(str(path))


def test_sample_resolves_bands_grid_and_codings(sample_item: Path) -> None:
    source = open_source(item_of(sample_item), str(sample_item), BANDS)
    assert source.grid.crs == "EPSG:32632"
    assert (source.grid.width, source.grid.height, source.grid.res) == (SMALL, SMALL, 10.0)
    assert (source.grid.x0, source.grid.y0) == (499980.0, 5000040.0)
    assert source.chunk == (SMALL // 3, SMALL // 3)
    assert source.bands["b11"].path == "measurements/reflectance/r20m/b11" and source.bands["b11"].factor == 2
    assert source.bands["b08"].coding == ("uint16", 1e-4, -0.1, 0)
    window = source.read("b11", slice(0, 122), slice(122, 244))
    assert window.shape == (61, 61)


def test_real_eopf_item_with_local_store(sample_item: Path, tmp_path: Path) -> None:
    store = sample_item.with_suffix(".zarr")
    path = real_item_on(store, tmp_path)
    item = item_of(path)
    assert "proj:epsg" not in item.properties  # projection v2: only proj:code
    assert check_eopf_l2a(item, str(path)) == str(store)
    source = open_source(item, str(path), BANDS)
    assert source.grid.crs == "EPSG:32632"
    assert source.bands["b12"].coding.scale == 1e-4


def test_bands_are_found_through_their_assets(sample_item: Path, tmp_path: Path) -> None:
    """A store that keeps b11 under another name: the band asset (common name swir16) says where."""
    store = tmp_path / "moved.zarr"
    shutil.copytree(sample_item.with_suffix(".zarr"), store)
    group = store / "measurements/reflectance/r20m"
    (group / "b11").rename(group / "swir_1")
    zarr.consolidate_metadata(str(store))
    doc = json.loads(sample_item.read_text())
    doc["assets"]["B11_20m"]["href"] = f"{store}/measurements/reflectance/r20m/swir_1"
    doc["assets"]["product"]["href"] = str(store)
    path = tmp_path / "item.json"
    path.write_text(json.dumps(doc))
    source = open_source(item_of(path), str(path), BANDS)
    assert source.bands["b11"].path == "measurements/reflectance/r20m/swir_1"
    del doc["assets"]["B11_20m"]  # without the asset, the EOPF path is tried and is missing
    path.write_text(json.dumps(doc))
    with pytest.raises(InputError, match=r"band b11 missing \(no 2-D array at 'measurements/reflectance/r20m/b11'\)"):
        open_source(item_of(path), str(path), BANDS)


def test_scale_from_raster_fields_when_the_array_has_no_cf_attributes(sample_copy: Path) -> None:
    store = sample_copy.with_suffix(".zarr")
    arr = zarr.open_array(store / "measurements/reflectance/r10m/b08", mode="r+")
    attrs = dict(arr.attrs)
    for key in ("scale_factor", "add_offset"):
        attrs.pop(key)
    arr.attrs.clear()
    arr.attrs.update(attrs)
    zarr.consolidate_metadata(str(store))
    doc = json.loads(sample_copy.read_text())
    doc["assets"]["B08_10m"]["raster:scale"], doc["assets"]["B08_10m"]["raster:offset"] = 2e-4, -0.2
    sample_copy.write_text(json.dumps(doc))
    source = open_source(item_of(sample_copy), str(sample_copy), BANDS)
    assert source.bands["b08"].coding[1:3] == (2e-4, -0.2)
    del doc["assets"]["B08_10m"]["raster:scale"]
    sample_copy.write_text(json.dumps(doc))
    with pytest.raises(InputError, match="band b08: no scale/offset"):
        open_source(item_of(sample_copy), str(sample_copy), BANDS)


def test_crs_falls_back_to_epsg_then_store_metadata(sample_copy: Path) -> None:
    doc = json.loads(sample_copy.read_text())
    del doc["properties"]["proj:code"]
    doc["properties"]["proj:epsg"] = 32633
    sample_copy.write_text(json.dumps(doc))
    assert open_source(item_of(sample_copy), "x", BANDS).grid.crs == "EPSG:32633"
    del doc["properties"]["proj:epsg"]
    sample_copy.write_text(json.dumps(doc))
    assert open_source(item_of(sample_copy), "x", BANDS).grid.crs == "EPSG:32632"  # stac_discovery


@pytest.mark.parametrize(
    ("fixture", "message"),
    [
        ("landsat-c2l2-sr_LE07_L2SP_044033_20210329_20210424_02_T1_SR.json", "not a Sentinel-2 product"),
        ("earth-search-v1_S2A_33TWL_20230815_0_L2A.json", "no EOPF Zarr 'product' asset"),
    ],
)
def test_items_of_other_kinds_are_refused(fixture: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        check_eopf_l2a(item_of(STAC / fixture), fixture)


def test_level_1c_is_refused(sample_copy: Path) -> None:
    doc = json.loads(sample_copy.read_text())
    doc["properties"].update({"processing:level": "L1C", "product:type": "S02MSIL1C"})
    with pytest.raises(InputError, match=r"not a Level-2A product \(level L1C, product:type 'S02MSIL1C'"):
        check_eopf_l2a(pystac.Item.from_dict(doc), "x")


def test_a_product_href_that_is_not_zarr(sample_copy: Path, tmp_path: Path) -> None:
    doc = json.loads(sample_copy.read_text())
    doc["assets"]["product"]["href"] = str(tmp_path / "nothing.zarr")
    with pytest.raises(InputError, match="no Zarr store there|cannot open it as Zarr"):
        open_source(pystac.Item.from_dict(doc), "x", BANDS)


def test_bands_read_in_windows_decode_like_the_whole_array(sample_item: Path) -> None:
    source = open_source(item_of(sample_item), str(sample_item), BANDS)
    full = zarr.open_group(sample_item.with_suffix(".zarr"), mode="r")["measurements/reflectance/r20m/b12"][:]
    part = source.read("b12", slice(122, 244), slice(0, 122))
    np.testing.assert_array_equal(part, full[61:122, 0:61])

"""What eoflows publishes, read by the ecosystem's own clients (pystac, rioxarray, pyproj) rather than our code."""

import json
import shutil
from pathlib import Path

import numpy as np
import pystac
import pytest
import rioxarray  # noqa: F401 - the .rio accessor
import xarray as xr
import zarr
from pyproj import CRS

from eoflows.local.s3 import LocalS3
from eoflows.testing.stac_schemas import validate_with_pystac
from flows.artifacts import products_markdown
from tasks.data.staging import stage_out
from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.steps import alone


@pytest.fixture(scope="module")
def s2_results(sample_item: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An s2-indices compute output folder with an index and a composite (read only)."""
    base = tmp_path_factory.mktemp("s2-clients")
    return compute_indices(
        stage_in_eopf(str(sample_item), base / "staged"), base / "out", alone(), products=["ndvi", "rgb"]
    )


def test_a_published_folder_is_self_contained_and_can_be_moved(s2_results: Path, tmp_path: Path) -> None:
    uri = stage_out(s2_results, str(tmp_path / "dest"), alone(), run_id="r1")
    stac = [p for p in (tmp_path / "dest" / "r1").rglob("*.json") if not any(s.endswith(".zarr") for s in p.parts)]
    texts = [p.read_text() for p in stac]
    assert texts and not any(str(tmp_path) in text for text in texts)  # no absolute path of the destination
    (item_json,) = [json.loads(t) for t in texts if json.loads(t)["type"] == "Feature"]
    assert all(a["href"].startswith("./") for a in item_json["assets"].values())
    assert all(link["href"].startswith(("./", "../", "file://")) for link in item_json["links"])  # IRIs or relative
    shutil.move(tmp_path / "dest" / "r1", tmp_path / "moved")
    catalog = pystac.Catalog.from_file(str(tmp_path / "moved" / "catalog.json"))
    (item,) = catalog.get_items(recursive=True)
    moved = Path(item.assets["ndvi"].get_absolute_href())
    assert moved.is_relative_to(tmp_path / "moved") and moved.is_dir()
    assert Path(uri).parent == tmp_path / "dest" / "r1"


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray 0.19 with affine 3
def test_every_array_carries_its_crs_and_every_asset_its_grid(s2_results: Path) -> None:
    (item,) = pystac.Catalog.from_file(str(s2_results / "catalog.json")).get_items(recursive=True)
    store = Path(item.assets["product"].get_absolute_href())
    code = item.properties["proj:code"]
    for name in ("ndvi", "rgb"):
        asset = item.assets[name].to_dict()
        assert asset["type"] == "application/vnd.zarr; version=3"  # radiantearth/stac-best-practices, Zarr
        assert (asset["proj:code"], asset["proj:shape"]) == (code, item.properties["proj:shape"])
        assert asset["proj:transform"] == item.properties["proj:transform"]
        assert all({"data_type", "scale", "offset"} <= set(band) for band in asset["raster:bands"])
        gdal = zarr.open_array(str(store / name), mode="r").attrs["_CRS"]  # GDAL's Zarr driver reads this one
        assert CRS.from_wkt(gdal["wkt"]) == CRS.from_user_input(code) == CRS.from_json_dict(gdal["projjson"])
        array = xr.open_zarr(store, consolidated=True)[name]
        assert array.rio.crs == CRS.from_user_input(code)
        assert list(array.rio.transform())[:6] == asset["proj:transform"]
    values = xr.open_zarr(store, consolidated=True).ndvi.values
    assert np.isfinite(values).mean() > 0.9


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray 0.19 with affine 3
def test_odc_stac_reads_the_grid_and_location_of_every_zarr_asset(s2_results: Path) -> None:
    """odc-stac's own parser finds each Zarr asset's grid (proj fields) equal to the array's, and its store.

    odc-stac 0.5 selects raster assets by media type and knows only the deprecated application/[x-]zarr, so the
    assets are named in its configuration; its pixel reads go through GDAL, and the rasterio wheels bundle GDAL
    3.10, which reads no Zarr v3 (codec "bytes"): `odc.stac.load` needs GDAL >= 3.11 (README, "Reading the outputs").
    """
    import odc.stac

    (item,) = pystac.Catalog.from_file(str(s2_results / "catalog.json")).get_items(recursive=True)
    store = Path(item.assets["product"].get_absolute_href())
    (parsed,) = odc.stac.parse_items([item], cfg={"assets": {"ndvi": {}, "rgb": {}}})
    for name in ("ndvi", "rgb"):
        source = parsed[name]
        array = xr.open_zarr(store, consolidated=True)[name]
        assert source.geobox.crs == array.rio.crs and source.geobox.shape == array.rio.shape
        assert source.geobox.affine == array.rio.transform()
        assert Path(source.uri) == store / name and (Path(source.uri) / "zarr.json").is_file()


def test_product_links_work_from_a_browser(s2_results: Path, s3: LocalS3, tmp_path: Path) -> None:
    """Links of the products artifact: file:// for folders, https through a public URL for S3, else plain text."""
    uri = stage_out(s2_results, str(tmp_path / "dest"), alone(), run_id="r1")
    text = products_markdown(uri)
    assert f"]({Path(uri).as_uri()})" in text and "](/" not in text  # no bare path the UI resolves to its host
    uri = stage_out(s2_results, "s3://eoflows-results/links", alone(), run_id="r1", storage=s3.storage())
    assert "](s3://" not in products_markdown(uri, s3.storage()) and f"`{uri}`" in products_markdown(uri, s3.storage())
    public = s3.storage().model_copy(update={"public_url": s3.endpoint_url + "/"})
    text = products_markdown(uri, public)
    href = f"{s3.endpoint_url}/eoflows-results/links/r1/catalog.json"
    assert f"]({href})" in text and "](s3://" not in text


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rioxarray 0.19 with affine 3
def test_the_compact_encoding_reads_back_as_floats_everywhere(s2_results: Path, sample_item: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """int16 + CF scale_factor/_FillValue: xarray and rioxarray decode floats within 1e-4 of the float32 run."""
    out = compute_indices(stage_in_eopf(str(sample_item), tmp_path / "staged"), tmp_path / "out", alone(),
                          products=["ndvi", "rgb"], encoding="compact")  # fmt: skip
    (item,) = pystac.Catalog.from_file(str(out / "catalog.json")).get_items(recursive=True)
    (full,) = pystac.Catalog.from_file(str(s2_results / "catalog.json")).get_items(recursive=True)
    store, full_store = (Path(i.assets["product"].get_absolute_href()) for i in (item, full))
    assert item.assets["ndvi"].to_dict()["raster:bands"] == [
        {"nodata": -32768, "data_type": "int16", "scale": 0.0001, "offset": 0.0}
    ]
    assert zarr.open_array(str(store / "ndvi"), mode="r").dtype == np.int16
    ours, float32 = (xr.open_zarr(s, consolidated=True).ndvi.values for s in (store, full_store))
    assert np.array_equal(np.isnan(ours), np.isnan(float32)) and np.isnan(float32).any()
    assert np.nanmax(np.abs(ours - float32)) <= 1e-4
    rio = xr.open_zarr(store, consolidated=True).ndvi.rio  # rioxarray reads the same grid
    assert rio.crs == CRS.from_user_input(item.properties["proj:code"])
    np.testing.assert_array_equal(xr.open_zarr(store).rgb.values, xr.open_zarr(full_store).rgb.values)
    size = {s: sum(f.stat().st_size for f in (s / "ndvi").rglob("*") if f.is_file()) for s in (store, full_store)}
    assert size[store] < 0.75 * size[full_store]  # int16 chunks: smaller, even compressed
    validate_with_pystac(stage_out(out, str(tmp_path / "dest"), alone(), run_id="compact"))  # the vendored schemas

"""Output STAC items: every extension field they carry is declared, from a real input item and real files."""

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from affine import Affine

from tasks.data.geotiff import footprint, gdalinfo
from tasks.data.grid import Grid
from tasks.data.stac_items import burned_area_item, derived_item, downsampled_item, indices_item, staged_raster_item
from tests.conftest import FIXTURES

EARTH_SEARCH = FIXTURES / "stac/earth-search-v1_S2B_33TWL_20230820_0_L2A.json"
GRID = Grid("EPSG:32633", 600000.0, 5000040.0, 10.0, 40, 30)
PREFIXES = {"projection": "proj", "xarray-assets": "xarray"}  # extension names whose field prefix differs


def declared(item: dict[str, Any]) -> set[str]:
    """Field prefixes of the extensions the item declares."""
    names = {re.sub(r"^https://stac-extensions.github.io/([^/]+)/.*$", r"\1", uri) for uri in item["stac_extensions"]}
    return {PREFIXES.get(name, name) for name in names}


def used(node: Any) -> set[str]:
    """Field prefixes (`raster` of `raster:bands`) used anywhere in a properties or assets tree."""
    if isinstance(node, dict):
        return {k.split(":")[0] for k in node if ":" in k} | {p for v in node.values() for p in used(v)}
    if isinstance(node, list):
        return {p for v in node for p in used(v)}
    return set()


def check(item: pystac.Item) -> dict[str, Any]:
    as_dict = item.to_dict(transform_hrefs=False)
    assert used([as_dict["properties"], as_dict["assets"]]) == declared(as_dict)
    assert len(set(as_dict["stac_extensions"])) == len(as_dict["stac_extensions"])
    return as_dict


def test_derived_items_declare_what_they_carry_from_their_input() -> None:
    source = pystac.Item.from_file(str(EARTH_SEARCH))
    source.properties.update({"sat:relative_orbit": 22, "sat:orbit_state": "descending"})  # as EOPF items have
    out = check(derived_item(source, "out", GRID, str(EARTH_SEARCH), "a lineage"))
    props = out["properties"]
    assert {"proj", "processing", "eo", "grid", "sat"} <= declared(out)
    assert props["grid:code"] == source.properties["grid:code"]
    assert props["eo:cloud_cover"] == source.properties["eo:cloud_cover"] and props["sat:relative_orbit"] == 22
    assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [30, 40]
    assert props["processing:lineage"] == "a lineage" and props["platform"] == source.properties["platform"]
    assert not any(k.startswith(("s2:", "view:", "mgrs:")) for k in props)  # input-only metadata stays behind


def test_a_malformed_grid_code_is_left_behind() -> None:
    source = pystac.Item.from_file(str(EARTH_SEARCH))
    source.properties["grid:code"] = "not a grid code"
    out = check(derived_item(source, "out", GRID, str(EARTH_SEARCH), "lineage"))
    assert "grid" not in declared(out)


def test_indices_item_assets(tmp_path: Path) -> None:
    store = tmp_path / "out.zarr"
    for name in ("ndvi", "rgb"):
        (store / name / "c").mkdir(parents=True)
        (store / name / "c" / "0").write_bytes(b"x" * 10)
    (store / "zarr.json").write_text("{}")
    quicklook = tmp_path / "out.png"
    quicklook.write_bytes(b"png")
    source = pystac.Item.from_file(str(EARTH_SEARCH))
    item = check(
        indices_item(source, "src.json", GRID, "out", ["ndvi", "rgb"], store, (quicklook, "Quicklook (natural colour)"))
    )
    assets = item["assets"]
    assert assets["ndvi"]["href"] == "./out.zarr/ndvi" and assets["ndvi"]["file:size"] == 10
    assert assets["ndvi"]["raster:bands"] == [{"nodata": "nan", "data_type": "float32", "scale": 1.0, "offset": 0.0}]
    assert [b["common_name"] for b in assets["rgb"]["eo:bands"]] == ["red", "green", "blue"]
    assert assets["product"]["file:size"] == 22 and assets["product"]["xarray:open_kwargs"]["engine"] == "zarr"
    assert assets["thumbnail"]["href"] == "./out.png" and assets["thumbnail"]["file:size"] == 3


def test_burned_area_item_assets(tmp_path: Path) -> None:
    pre, post = (pystac.Item.from_file(str(FIXTURES / f"stac/earth-search-v1_{s}_0_L2A.json"))
                 for s in ("S2A_33TWL_20230815", "S2B_33TWL_20230820"))  # fmt: skip
    paths = {name: tmp_path / f"{name}.tif" for name in ("dnbr", "severity")}
    for path in [*paths.values(), tmp_path / "q.png"]:
        path.write_bytes(b"data")
    item = check(burned_area_item(pre, post, "pre.json", "post.json", "out", GRID, paths, tmp_path / "q.png", "B08",
                                  (8, 9), {"mean": 0.25, "minimum": -0.5, "maximum": 1.0}))  # fmt: skip
    dnbr = item["assets"]["dnbr"]
    assert dnbr["raster:bands"][0]["statistics"] == {"mean": 0.25, "minimum": -0.5, "maximum": 1.0}
    assert dnbr["raster:bands"][0]["nodata"] == "nan"
    classes = item["assets"]["severity"]["classification:classes"]
    assert [c["value"] for c in classes] == list(range(1, 8)) and classes[3]["name"] == "low-severity"
    assert item["properties"]["start_datetime"] < item["properties"]["end_datetime"]
    derived = {link["href"] for link in item["links"] if link["rel"] == "derived_from"}
    assert derived == {(Path.cwd() / "pre.json").as_uri(), (Path.cwd() / "post.json").as_uri()}  # IRIs
    assert "SCL classes [8, 9] masked" in item["properties"]["processing:lineage"]


def test_staged_and_downsampled_raster_items(tmp_path: Path) -> None:
    tif = tmp_path / "band.tif"
    with rasterio.open(tif, "w", driver="GTiff", width=20, height=10, count=1, dtype="uint16", nodata=0,
                       crs="EPSG:32610", transform=Affine(30, 0, 500000, 0, -30, 4200000)) as dst:  # fmt: skip
        dst.write(np.arange(200, dtype=np.uint16).reshape(1, 10, 20))
    with rasterio.open(tif) as src:
        where = footprint(src, "band")
    acquired = dt.datetime(2021, 3, 29, tzinfo=dt.UTC)
    staged = staged_raster_item("band", tif, "https://example.org/band.tif", where, acquired, "the file name")
    assert check(staged)["properties"]["proj:code"] == "EPSG:32610"
    png, met = tmp_path / "b.png", tmp_path / "b.json"
    png.write_bytes(b"png")
    info = gdalinfo(tif)
    met.write_text(json.dumps(info))
    out = check(downsampled_item(staged, "band_downsampled", tif, png, met, info, "https://example.org/band.tif",
                                 "average"))  # fmt: skip
    (band,) = out["assets"]["data"]["raster:bands"]
    assert band["data_type"] == "uint16" and band["nodata"] == 0 and band["statistics"]["maximum"] == 199
    assert out["properties"]["proj:shape"] == [10, 20] and out["properties"]["proj:transform"][:3] == [30, 0, 500000]

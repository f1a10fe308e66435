"""`burned-area`: sample COGs over HTTP and S3, real Earth Search items, EOPF items, a Dask Gateway, bad input."""

import json
import math
import shutil
import uuid
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

from eoflows.errors import EoflowsError, InputError
from eoflows.local.s3 import LocalS3
from eoflows.samples.burn_pair import write_pair
from flows.package_flows import burned_area
from tasks.burned_area import compute_burned_area, stage_in_pair
from tasks.data.scenes import find_asset, open_scene
from tasks.data.stac_io import FsspecStacIO
from tasks.data.storage import filesystem
from tests.conftest import FIXTURES
from tests.steps import alone
from tests.test_eopf import real_item_on
from tests.test_s2_flow import artifacts_of
from tests.test_staging import upload_sample

V1_PAIR = [FIXTURES / f"stac/earth-search-v1_{sid}_0_L2A.json" for sid in ("S2A_33TWL_20230815", "S2B_33TWL_20230820")]


def scar_mean(dnbr: np.ndarray, folder: Path) -> float:
    """Mean dNBR over the pixels the sample burnt (burn-scar.tif, 20 m, brought to 10 m)."""
    with rasterio.open(folder / "burn-scar.tif") as src:
        burnt = np.repeat(np.repeat(src.read(1).astype(bool), 2, 0), 2, 1)
    return float(np.nanmean(dnbr[burnt]))


def outputs(item: pystac.Item, folder: Path, storage=None) -> dict[str, np.ndarray]:
    """The published rasters of a result item (fetched into `folder`), checked to be valid COGs."""
    found = {}
    for key in ("dnbr", "severity"):
        href = item.assets[key].get_absolute_href()
        fs, path = filesystem(href, storage)
        local = folder / Path(path).name
        fs.get(path, str(local))
        assert cog_validate(str(local))[0], href
        with rasterio.open(local) as src:
            found[key] = src.read(1)
    return found


def test_http_pair_published_to_s3_with_a_burn_where_the_sample_put_it(
    s3: LocalS3, burn_pair: tuple[Path, Path], burn_server: str, tmp_path: Path, always_a_cluster: str
) -> None:
    s3.storage().save("burn-s3", overwrite=True)
    pre, post = (f"{burn_server}/{p.name}" for p in burn_pair)
    state = burned_area(pre_item=pre, post_item=post, destination="s3://eoflows-results/burn", run_id=uuid.uuid4().hex,
                        storage="burn-s3", dask=always_a_cluster, return_state=True)  # fmt: skip
    uri = state.result()
    (item,) = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(s3.storage())).get_items(recursive=True)
    rasters = outputs(item, tmp_path, s3.storage())
    scar = json.loads((burn_pair[0].parent / "burn-scar.json").read_text())
    assert scar_mean(rasters["dnbr"], burn_pair[0].parent) == pytest.approx(scar["dnbr"], abs=0.03)
    assert {link.href for link in item.get_links("derived_from")} == {pre, post}
    assert item.properties["proj:code"] == "EPSG:32633" and item.properties["proj:shape"] == [732, 732]
    assert item.properties["start_datetime"] < item.properties["end_datetime"] == post_end(burn_pair[1])
    assert item.assets["dnbr"].extra_fields["raster:bands"][0]["nodata"] == "nan"
    assert len(item.assets["severity"].extra_fields["classification:classes"]) == 7
    assert rasters["severity"][np.isnan(rasters["dnbr"])].max() == 0
    found = artifacts_of(state)
    assert {"compute-usage", "dask-cluster"} <= {a.key for a in found["table"]}


def post_end(post: Path) -> str:
    return json.loads(post.read_text())["properties"]["datetime"]


def test_a_dask_gateway_reads_s3_inputs_and_gives_the_same_result(
    gateway, s3: LocalS3, burn_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    gateway.settings().save("burn-gateway", overwrite=True)
    s3.storage().save("burn-s3", overwrite=True)
    pre = upload_sample(s3, burn_pair[0], "burn-pair")  # the whole folder: both items and their COGs
    post = f"{pre.rsplit('/', 1)[0]}/{burn_pair[1].name}"
    common = {"pre_item": pre, "post_item": post, "destination": str(tmp_path), "severity": False, "storage": "burn-s3"}
    local = burned_area(**common, run_id="local")
    remote = burned_area(**common, run_id="gateway", dask="burn-gateway")
    a, b = (next(pystac.Catalog.from_file(u).get_items(recursive=True)) for u in (local, remote))
    assert "severity" not in a.assets and a.get_single_link("derived_from").href.startswith("s3://eoflows-source/")
    with (
        rasterio.open(a.assets["dnbr"].get_absolute_href()) as x,
        rasterio.open(b.assets["dnbr"].get_absolute_href()) as y,
    ):
        np.testing.assert_array_equal(x.read(1), y.read(1))


def test_a_pre_event_scene_in_another_crs_is_reprojected_onto_the_post_grid(
    burn_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Pre in UTM 32N (the neighbouring zone), post in 33N: the output is on post's grid, the scar where it was."""
    from affine import Affine
    from rasterio.warp import reproject, transform_bounds

    source = json.loads(burn_pair[0].read_text())
    folder = tmp_path / "pre-32n"
    folder.mkdir()
    for key, asset in source["assets"].items():
        with rasterio.open(burn_pair[0].parent / asset["href"]) as src:
            left, bottom, right, top = transform_bounds(src.crs, "EPSG:32632", *src.bounds)
            res = src.res[0]
            transform = Affine(res, 0, left, 0, -res, top)
            width, height = math.ceil((right - left) / res), math.ceil((top - bottom) / res)
            profile = {**src.profile, "driver": "GTiff", "crs": "EPSG:32632", "transform": transform, "width": width,
                       "height": height, "tiled": True, "blockxsize": 256, "blockysize": 256}  # fmt: skip
            with rasterio.open(folder / f"{key}.tif", "w", **profile) as dst:
                reproject(rasterio.band(src, 1), rasterio.band(dst, 1), resampling=rasterio.enums.Resampling.nearest)
        asset.update({"href": str(folder / f"{key}.tif"), "proj:shape": [height, width],
                      "proj:transform": list(transform)[:6]})  # fmt: skip
    source["properties"]["proj:epsg"] = 32632
    pre = tmp_path / "pre-32n.json"
    pre.write_text(json.dumps(source))
    stage_in_pair(str(pre), str(burn_pair[1]), tmp_path / "in")
    compute_burned_area(tmp_path / "in", tmp_path / "out", alone())
    (tif,) = (tmp_path / "out").glob("*/*-dnbr.tif")
    with rasterio.open(tif) as src:
        values = src.read(1)
        assert src.crs.to_epsg() == 32633 and src.shape == (732, 732) and src.transform.c == 499980
    assert scar_mean(values, burn_pair[0].parent) == pytest.approx(0.5, abs=0.06)
    assert np.isfinite(values).mean() > 0.8


def fixture_pair(tmp_path: Path, sample: tuple[Path, Path]) -> tuple[Path, Path]:
    """Copies of the real Earth Search v1 items, their band assets pointed at the sample's COGs."""
    copies = []
    for fixture, ours in zip(V1_PAIR, sample, strict=True):  # pre Aug 15, post Aug 20
        theirs = json.loads(fixture.read_text())
        sample_item = json.loads(ours.read_text())
        for key in ("nir", "nir08", "swir22", "scl"):
            mine = sample_item["assets"][key]
            theirs["assets"][key].update(href=str(ours.parent / mine["href"]), **{
                k: mine[k] for k in ("proj:shape", "proj:transform")})  # fmt: skip
        path = tmp_path / fixture.name
        path.write_text(json.dumps(theirs))
        copies.append(path)
    return copies[0], copies[1]


def test_real_items_and_the_v0_shape(burn_pair: tuple[Path, Path], sample_item: Path, tmp_path: Path) -> None:
    """The real v1 pair and EOPF item resolve their bands; v0 items (B08, B12, SCL) give the same pixels."""
    item = pystac.Item.from_file(str(V1_PAIR[0]))
    assert [find_asset(item, b, "x")[0] for b in ("b08", "b8a", "b12", "scl")] == ["nir", "nir08", "swir22", "scl"]
    scene = open_scene(item, "x", ["b08", "b12"])
    assert scene.bands["b12"].grid.res == 20 and scene.bands["b08"].grid.width == 10980
    assert scene.bands["b08"].coding.scale == 1e-4 and scene.bands["b08"].coding.offset == -0.1
    eopf = real_item_on(sample_item.with_suffix(".zarr"), tmp_path)
    scene = open_scene(pystac.Item.from_file(str(eopf)), str(eopf), ["b08", "b12", "scl"])
    assert {b: r.path for b, r in scene.bands.items()} == {
        "b08": "measurements/reflectance/r10m/b08", "b12": "measurements/reflectance/r20m/b12",
        "scl": "conditions/mask/l2a_classification/r20m/scl"}  # fmt: skip
    assert scene.bands["b12"].grid.res == 20 and scene.bands["scl"].grid.width == 183
    results = {}
    for name, pair in (("fixture", fixture_pair(tmp_path, burn_pair)),
                       ("v0", write_pair(tmp_path / "v0", size=732, seed=7, layout="v0"))):  # fmt: skip
        stage_in_pair(str(pair[0]), str(pair[1]), tmp_path / name / "in")
        compute_burned_area(tmp_path / name / "in", tmp_path / name / "out", alone(), mask_clouds=True)
        (tif,) = (tmp_path / name / "out").glob("*/*-dnbr.tif")
        with rasterio.open(tif) as src:
            results[name] = src.read(1)
    v0_item = json.loads(next((tmp_path / "v0").glob("S2B*.json")).read_text())
    assert "B08" in v0_item["assets"] and "raster:bands" not in v0_item["assets"]["B08"]
    # v0 items carry no scale/offset: DN / 10000, so NBR differs, but the same pixels are valid and burnt
    np.testing.assert_array_equal(np.isnan(results["fixture"]), np.isnan(results["v0"]))
    assert scar_mean(results["fixture"], burn_pair[0].parent) == pytest.approx(0.5, abs=0.03)
    assert scar_mean(results["v0"], tmp_path / "v0") > 0.3


def test_eopf_items_as_pre_and_post(sample_item: Path, tmp_path: Path) -> None:
    from eoflows.samples.s2_eopf import write_sample

    post = write_sample(tmp_path / "post", size=366, seed=2)
    stage_in_pair(str(sample_item), str(post), tmp_path / "in")
    compute_burned_area(tmp_path / "in", tmp_path / "out", alone(), nir="B8A", resampling="bilinear")
    (tif,) = (tmp_path / "out").glob("*/*-dnbr.tif")
    with rasterio.open(tif) as src:
        values = src.read(1)
        assert src.crs.to_epsg() == 32632 and src.res == (20.0, 20.0) and values.shape == (183, 183)  # B8A grid
    assert 0.5 < np.isfinite(values).mean() < 1 and abs(float(np.nanmedian(values))) < 0.1  # same ground, no fire


def edited(path: Path, tmp_path: Path, change) -> Path:
    data = json.loads(path.read_text())
    change(data)
    for asset in data["assets"].values():
        asset["href"] = str(path.parent / asset["href"])
    out = tmp_path / f"edited-{path.name}"
    out.write_text(json.dumps(data))
    return out


def test_bad_input_fails_clearly_and_publishes_nothing(burn_pair: tuple[Path, Path], tmp_path: Path, caplog) -> None:
    pre, post = burn_pair
    dest = tmp_path / "published"

    def run(a: Path, b: Path, **kw) -> None:
        burned_area(pre_item=str(a), post_item=str(b), destination=str(dest), run_id="x", **kw)

    def far_away(d: dict) -> None:  # 200 km east, in the item and in its grids
        d["bbox"] = [b + 2.5 if i % 2 == 0 else b for i, b in enumerate(d["bbox"])]
        for asset in d["assets"].values():
            asset["proj:transform"][2] += 200_000

    with pytest.raises(InputError, match=r"pre_item .* and post_item .* do not overlap"):
        run(edited(pre, tmp_path, far_away), post)
    landsat = FIXTURES / "stac/landsat-c2l2-sr_LE07_L2SP_044033_20210329_20210424_02_T1_SR.json"
    with pytest.raises(InputError, match=r"pre_item .*landsat.*: not a Sentinel-2 product"):
        run(landsat, post)
    with pytest.raises(InputError, match=r"STAC item .*: no COG asset for band B12"):
        run(pre, edited(post, tmp_path, lambda d: d["assets"].pop("swir22")))
    with pytest.raises(InputError, match=r"mask_classes \[12\]"):
        run(pre, post, mask_classes=[12])
    broken = tmp_path / "broken"
    shutil.copytree(post.parent, broken)
    (broken / post.stem / "B12.tif").write_bytes(b"not a tiff")
    with pytest.raises(EoflowsError, match=r"compute of dNBR .*B12.tif"):
        run(pre, broken / post.name)
    assert not dest.exists()
    uri = burned_area(pre_item=str(post), post_item=str(post), destination=str(dest), run_id="same")
    assert "pre_item and post_item are the same item" in caplog.text
    (item,) = pystac.Catalog.from_file(uri).get_items(recursive=True)
    with rasterio.open(item.assets["dnbr"].get_absolute_href()) as src:
        values = src.read(1)
    assert np.nanmax(np.abs(values)) == 0 and len(item.get_links("derived_from")) == 1

"""`downsample`: sizes, georeferencing, resampling by band kind, metadata, HTTP and S3 sources, CWL parity."""

import datetime as dt
import json
import uuid
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from PIL import Image

from eoflows.errors import EoflowsError, InputError
from eoflows.local.s3 import LocalS3
from eoflows.samples.landsat import QA, write_landsat
from flows.package_flows import downsample as downsample_flow
from flows.run_cwl import run_cwl
from tasks.data.geotiff import gdalinfo
from tasks.data.stac_io import FsspecStacIO
from tasks.data.staging import stage_out
from tasks.data.storage import filesystem
from tasks.downsample import downsample, stage_in_url
from tests.conftest import serve
from tests.steps import alone


@pytest.fixture(scope="module")
def landsat(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """SR_B5 and QA_PIXEL of a small synthetic scene (781 x 771)."""
    return write_landsat(tmp_path_factory.mktemp("landsat"))


def run_steps(url: str, tmp_path: Path, storage=None, **options) -> Path:
    stage_in_url(url, tmp_path / "in", storage)
    downsample(tmp_path / "in", tmp_path / "out", **options)
    (tif,) = (tmp_path / "out").glob("*/*.TIF")
    return tif


def test_outputs_keep_georeferencing_and_resample_by_band_kind(landsat: tuple[Path, Path], tmp_path: Path) -> None:
    band, qa = landsat
    tifs = {kind: run_steps(str(path), tmp_path / kind) for kind, path in (("band", band), ("qa", qa))}
    for kind, source in (("band", band), ("qa", qa)):
        tif = tifs[kind]
        with rasterio.open(source) as src, rasterio.open(tif) as out:
            assert (out.width, out.height) == (100, round(771 * 100 / 781)) and out.crs == src.crs
            assert out.nodata == src.nodata and out.dtypes == src.dtypes
            assert out.transform.a == pytest.approx(30 * 781 / 100) and out.transform.e == pytest.approx(-30 * 771 / 99)
            assert (out.transform.c, out.transform.f) == (src.transform.c, src.transform.f)
            values, original = out.read(1), src.read(1)
        if kind == "qa":  # nearest: only flag values that exist, no averaged flags
            assert set(np.unique(values)) <= set(QA.values()) and QA["water"] in values
        else:  # average: new values, same mean reflectance
            assert not set(np.unique(values)) <= set(np.unique(original))
            assert values[values > 0].mean() == pytest.approx(original[original > 0].mean(), rel=0.02)
        with Image.open(tif.with_name(tif.stem + ".browse.png")) as browse:
            assert browse.size == (250, 247) and browse.mode == "LA"
        met = json.loads(tif.with_name(tif.stem + ".met.json").read_text())
        with rasterio.open(tif) as out:
            assert met["size"] == [out.width, out.height] and met["driver"] == "GTiff"
            assert met["geoTransform"] == [out.transform.c, out.transform.a, 0.0, out.transform.f, 0.0, out.transform.e]
            assert met["coordinateSystem"]["wkt"] == out.crs.to_wkt()
            data = out.read(1, masked=True)
            assert met["bands"][0]["type"] == "UInt16" and met["bands"][0]["noDataValue"] == out.nodata
            assert (met["bands"][0]["minimum"], met["bands"][0]["maximum"]) == (float(data.min()), float(data.max()))
        assert met == gdalinfo(tif)
        item = pystac.Item.from_file(str(tif.with_name(tif.stem + ".json")))
        assert item.properties["proj:code"] == "EPSG:32610" and item.properties["proj:shape"] == [99, 100]
        (band,) = item.assets["data"].extra_fields["raster:bands"]
        assert band["statistics"]["maximum"] == met["bands"][0]["maximum"]
        assert {"thumbnail", "metadata"} <= set(item.assets)


def test_http_to_s3_and_the_exported_cwl_give_the_same_files(
    s3: LocalS3, landsat: tuple[Path, Path], tmp_path: Path
) -> None:
    qa = landsat[1]
    s3.storage().save("downsample-s3", overwrite=True)
    with serve(qa.parent) as url:
        run_id = uuid.uuid4().hex
        uri = downsample_flow(url=f"{url}/{qa.name}", destination="s3://eoflows-results/downsample", run_id=run_id,
                              storage="downsample-s3")  # fmt: skip
        (tmp_path / "cwl").mkdir()  # a step publishes into an existing folder
        outputs = run_cwl(cwl="downsample", inputs={"url": f"{url}/{qa.name}", "destination": str(tmp_path / "cwl"),
                                                    "run_id": "cwl"}, outdir=str(tmp_path / "cwltool"))  # fmt: skip
    name = f"{qa.stem}_downsampled"
    assert uri == f"s3://eoflows-results/downsample/{run_id}/catalog.json"
    (item,) = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(s3.storage())).get_items(recursive=True)
    assert item.id == name and item.get_single_link("derived_from").href == f"{url}/{qa.name}"
    fs, _ = filesystem(uri, s3.storage())
    cwl_folder = Path(outputs["catalog_uri"]).parent / name
    for suffix in (".TIF", ".browse.png", ".met.json"):
        published = fs.cat(f"eoflows-results/downsample/{run_id}/{name}/{name}{suffix}")
        assert published == (cwl_folder / f"{name}{suffix}").read_bytes(), suffix


def test_s3_source(s3: LocalS3, landsat: tuple[Path, Path], tmp_path: Path) -> None:
    fs, _ = filesystem("s3://eoflows-source/", s3.storage())
    fs.put(str(landsat[0]), f"eoflows-source/landsat/{landsat[0].name}")
    tif = run_steps(f"s3://eoflows-source/landsat/{landsat[0].name}", tmp_path, s3.storage(), width=50)
    with rasterio.open(tif) as out:
        assert out.width == 50


def test_bad_input_is_refused_clearly_and_nothing_is_published(landsat: tuple[Path, Path], tmp_path: Path) -> None:
    (tmp_path / "empty.TIF").write_bytes(b"")
    (tmp_path / "text.TIF").write_text("not an image")
    with serve(tmp_path) as url:
        with pytest.raises(InputError, match=r"url '.*/missing.TIF': not found"):
            stage_in_url(f"{url}/missing.TIF", tmp_path / "a")
        with pytest.raises(InputError, match=r"url '.*/empty.TIF': an empty file \(0 bytes\)"):
            stage_in_url(f"{url}/empty.TIF", tmp_path / "b")
        with pytest.raises(InputError, match=r"url '.*/text.TIF': not a GeoTIFF"):
            stage_in_url(f"{url}/text.TIF", tmp_path / "c")
    assert [p.relative_to(tmp_path) for f in "abc" for p in (tmp_path / f).glob("*/*")] == []  # no partial download
    stage_in_url(str(landsat[1]), tmp_path / "in")
    with pytest.raises(InputError, match=r"width 1000: larger than the input's 781 pixels"):
        downsample(tmp_path / "in", tmp_path / "out", width=1000)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    downsample(tmp_path / "in", tmp_path / "out")
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(EoflowsError, match=r"destination '.*a-file': '.*a-file' is a file, not a folder"):
        stage_out(tmp_path / "out", str(blocker), alone(), run_id="run")
    assert blocker.read_text() == "x"


def test_the_item_datetime_is_the_acquisition_and_says_where_it_was_found(
    landsat: tuple[Path, Path], tmp_path: Path
) -> None:
    """From the file's tags, else the product id in its name, else the fetch time (and the item says which)."""
    sr_b5, _ = landsat
    tagged, unnamed = tmp_path / "tagged.tif", tmp_path / "scene.tif"
    for copy in (tagged, unnamed):
        copy.write_bytes(sr_b5.read_bytes())
    with rasterio.open(tagged, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
        dst.update_tags(TIFFTAG_DATETIME="2021:03:30 18:42:07")
    expected = {
        sr_b5: ("2021-03-29T00:00:00Z", "the product id in the file name"),
        tagged: ("2021-03-30T18:42:07Z", "the raster's metadata tags"),
    }
    for source, (when, found_in) in expected.items():
        staged = stage_in_url(str(source), tmp_path / f"staged-{source.stem}")
        (item,) = pystac.Catalog.from_file(str(staged / "catalog.json")).get_items(recursive=True)
        assert (item.to_dict()["properties"]["datetime"], item.properties["datetime_source"]) == (when, found_in)
    out = downsample(stage_in_url(str(unnamed), tmp_path / "staged-unnamed"), tmp_path / "out")
    (item,) = pystac.Catalog.from_file(str(out / "catalog.json")).get_items(recursive=True)
    assert "datetime (acquisition) from the time it was fetched" in item.properties["processing:lineage"]
    assert abs((item.datetime - dt.datetime.now(dt.UTC)).total_seconds()) < 600


def test_a_classified_raster_keeps_its_colours_and_class_names(tmp_path: Path) -> None:
    from affine import Affine

    from tasks.data.geotiff import write_resized

    source = tmp_path / "classes.tif"
    with rasterio.open(source, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8", nodata=0,
                       crs="EPSG:32633", transform=Affine(10, 0, 600000, 0, -10, 5000040)) as dst:  # fmt: skip
        dst.write(np.repeat(np.arange(1, 5, dtype=np.uint8), 16)[None, None, :].repeat(64, axis=1))
        dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (26, 152, 80, 255), 2: (255, 255, 191, 255)})
        dst.update_tags(1, CLASS_1="unburned", CLASS_2="low severity")
        dst.set_band_description(1, "classes")
    with rasterio.open(source) as src:
        write_resized(src, tmp_path / "small.tif", 16, 16, "mode")
    with rasterio.open(tmp_path / "small.tif") as out:
        assert out.colormap(1)[1] == (26, 152, 80, 255) and out.colormap(1)[2] == (255, 255, 191, 255)
        assert out.tags(1)["CLASS_2"] == "low severity" and out.descriptions == ("classes",)
        assert set(np.unique(out.read(1))) <= {1, 2, 3, 4}


def test_a_staged_folder_works_wherever_it_is_mounted(landsat: tuple[Path, Path], tmp_path: Path) -> None:
    """A CWL runner mounts each step's input at a path of its own: the staged item's file is found relatively."""
    stage_in_url(str(landsat[1]), tmp_path / "staged")
    (tmp_path / "staged").rename(tmp_path / "mounted")
    downsample(tmp_path / "mounted", tmp_path / "out", width=50)
    (tif,) = (tmp_path / "out").glob("*/*.TIF")
    with rasterio.open(tif) as out:
        assert out.width == 50

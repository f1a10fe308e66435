"""The burned-area COGs as rasterio, rio-cogeo and rio-tiler (TiTiler's reader) see them."""

import io
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from PIL import Image
from rasterio.enums import Resampling
from rasterio.transform import from_bounds
from rasterio.warp import reproject, transform_bounds
from rio_cogeo.cogeo import cog_validate
from rio_tiler.io import Reader

from tasks.burned_area import compute_burned_area, stage_in_pair
from tasks.data.geotiff import CLASS_TAG
from tasks.science.burn import DNBR_DESCRIPTION, SEVERITY, SEVERITY_DESCRIPTION, SEVERITY_NODATA, SEVERITY_PALETTE
from tests.steps import alone

# rasterio 1.4's calculate_default_transform multiplies affine 3 matrices with `*`: rio-tiler's zoom levels see the
# warning as a failure (and fall back to the TMS's zooms) when warnings are errors
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul instead of `\\*` mul:PendingDeprecationWarning")
BURNED_CLASSES = [code for code, _, lower in SEVERITY if lower >= 0.1]  # low to high severity


@pytest.fixture(scope="module")
def result(burn_pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> pystac.Item:
    """The item of a burned-area run of the sample pair (dNBR and severity COGs next to it)."""
    work = tmp_path_factory.mktemp("cog-clients")
    stage_in_pair(str(burn_pair[0]), str(burn_pair[1]), work / "in")
    compute_burned_area(work / "in", work / "out", alone())
    (item,) = pystac.Catalog.from_file(str(work / "out" / "catalog.json")).get_items(recursive=True)
    return item


def cog(item: pystac.Item, key: str) -> str:
    return item.assets[key].get_absolute_href()


def test_rasterio_reads_descriptions_colour_table_and_class_names(result: pystac.Item) -> None:
    with rasterio.open(cog(result, "dnbr")) as src:
        assert src.descriptions == (DNBR_DESCRIPTION,) and np.isnan(src.nodata)
    with rasterio.open(cog(result, "severity")) as src:
        assert src.descriptions == (SEVERITY_DESCRIPTION,) and src.nodata == SEVERITY_NODATA
        assert src.colorinterp == (rasterio.enums.ColorInterp.palette,)
        table, tags, values = src.colormap(1), src.tags(1), np.unique(src.read(1))
    assert {code: table[code] for code in SEVERITY_PALETTE} == SEVERITY_PALETTE
    assert table[SEVERITY_NODATA][3] == 0 and all(table[code][3] == 255 for code, _, _ in SEVERITY)
    assert len({table[code] for code, _, _ in SEVERITY}) == len(SEVERITY)  # one colour per class
    assert set(values) <= set(SEVERITY_PALETTE) and len(values) > 4  # every written value has its colour
    prefix = CLASS_TAG.format("")
    names = {int(k.removeprefix(prefix)): v for k, v in tags.items() if k.startswith(prefix)}
    declared = {c["value"]: c["description"] for c in result.assets["severity"].extra_fields["classification:classes"]}
    assert names == declared and len(names) == len(SEVERITY)  # the file and the item name the same classes
    hints = {c["value"]: c["color_hint"] for c in result.assets["severity"].extra_fields["classification:classes"]}
    assert hints == {code: "{:02X}{:02X}{:02X}".format(*table[code][:3]) for code in hints}  # and colour them alike


@pytest.mark.parametrize("key", ["dnbr", "severity"])
def test_cogs_are_valid(result: pystac.Item, key: str) -> None:
    assert cog_validate(cog(result, key)) == (True, [], [])


def scar(folder: Path) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """The pixels the sample burnt (burn-scar.tif, 20 m, brought to 10 m) and their WGS 84 bounds."""
    with rasterio.open(folder / "burn-scar.tif") as src:
        burnt = src.read(1).astype(bool)
        rows, cols = np.nonzero(burnt)
        xs, ys = src.xy([rows.min(), rows.max() + 1], [cols.min(), cols.max() + 1], offset="ul")
        bounds = transform_bounds(src.crs, "EPSG:4326", min(xs), min(ys), max(xs), max(ys))
    return np.repeat(np.repeat(burnt, 2, 0), 2, 1), bounds


def on_tile(cog: str, bounds: tuple[float, float, float, float], size: int) -> np.ndarray:
    """Band 1 of a COG at full resolution reprojected (nearest) onto a Web Mercator tile: what the tile should show."""
    out = np.zeros((size, size), np.uint8)
    with rasterio.open(cog) as src:
        reproject(src.read(1), out, src_transform=src.transform, src_crs=src.crs, src_nodata=src.nodata,
                  dst_transform=from_bounds(*bounds, size, size), dst_crs="EPSG:3857", dst_nodata=src.nodata,
                  resampling=Resampling.nearest)  # fmt: skip
    return out


def test_rio_tiler_shows_the_metadata_and_renders_the_scar_in_colour(
    result: pystac.Item, burn_pair: tuple[Path, Path]
) -> None:
    burnt, (west, south, east, north) = scar(burn_pair[0].parent)
    severity = cog(result, "severity")
    with Reader(severity) as reader:
        info = reader.info()
        assert info.band_descriptions == [("b1", SEVERITY_DESCRIPTION)]
        assert info.colormap and {code: tuple(info.colormap[code]) for code in SEVERITY_PALETTE} == SEVERITY_PALETTE
        names = {code: info.band_metadata[0][1].get(CLASS_TAG.format(code)) for code, _, _ in SEVERITY}
        assert names == {code: name for code, name, _ in SEVERITY}
        zooms = [z for z in range(reader.minzoom, reader.maxzoom + 1)
                 if reader.tms.tile(west, north, z) == reader.tms.tile(east, south, z)]  # fmt: skip
        assert zooms, f"no tile of zooms {reader.minzoom}-{reader.maxzoom} holds the scar {west, south, east, north}"
        lat = (south + north) / 2
        tile = reader.tms.tile((west + east) / 2, lat, max(zooms))  # the deepest tile that holds the whole scar
        image = reader.tile(tile.x, tile.y, tile.z)
        png = image.render(img_format="PNG", colormap=reader.colormap)
        tile_bounds, cell = reader.tms.xy_bounds(tile), reader.tms.matrix(tile.z).cellSize
    classes = image.data[0]
    assert (classes == on_tile(severity, tile_bounds, classes.shape[0])).mean() > 0.95  # overviews (MODE) differ
    with rasterio.open(severity) as src:
        scar_burned = np.isin(src.read(1)[burnt], BURNED_CLASSES).sum() * abs(src.transform.a * src.transform.e)
    burned = np.isin(classes, BURNED_CLASSES)
    ground = (cell * np.cos(np.radians(lat))) ** 2  # m2 of a tile pixel: Web Mercator metres shrink by cos(lat)
    assert burned.sum() * ground > 0.9 * scar_burned > 0  # all of the scar is in the tile
    table = np.zeros((256, 4), np.uint8)
    for code, rgba in SEVERITY_PALETTE.items():
        table[code] = rgba
    rendered = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    np.testing.assert_array_equal(rendered, table[classes])  # each class in its colour, no data transparent


def test_rio_tiler_statistics_match_the_item_and_the_full_resolution(result: pystac.Item) -> None:
    declared = result.assets["dnbr"].extra_fields["raster:bands"][0]["statistics"]
    with rasterio.open(cog(result, "dnbr")) as src:
        full = src.read(1)
    with Reader(cog(result, "dnbr")) as reader:
        assert reader.info().band_descriptions == [("b1", DNBR_DESCRIPTION)]
        stats = reader.statistics()["b1"]  # max_size 1024: the 732-pixel grid at full resolution
        coarse = reader.statistics(max_size=256)["b1"]  # from the overview (AVERAGE), resampled to 256 pixels
    assert "mean" in declared  # today the item declares only the mean: minimum and maximum are checked against NumPy
    numpy = {"minimum": np.nanmin(full), "maximum": np.nanmax(full), "mean": np.nanmean(full, dtype=np.float64)}
    found = {"minimum": stats.min, "maximum": stats.max, "mean": stats.mean}
    for key, value in found.items():
        assert value == pytest.approx(declared.get(key, numpy[key]), abs=1e-4), key  # the item rounds to 4 decimals
    assert stats.count == np.isfinite(full).sum()
    assert coarse.mean == pytest.approx(declared["mean"], abs=0.01)
    assert np.nanmin(full) <= coarse.min < coarse.max <= np.nanmax(full)

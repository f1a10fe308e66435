"""Quicklook sampling and assembly from windows."""

from pathlib import Path

import numpy as np
import pystac
import xarray as xr
from PIL import Image

from tasks.data.png import png_bytes
from tasks.s2_indices import bands_read, compute_indices, quicklook_of, stage_in_eopf
from tasks.science.quicklook import Sampling, assemble, product_piece
from tests.steps import alone


def test_a_full_size_quicklook_fits_in_1024_pixels() -> None:
    sampling = Sampling.fit(10980, 10980)
    assert (sampling.step, sampling.height, sampling.width) == (11, 999, 999)
    rows, cols, position = sampling.local(slice(1830, 3660), slice(0, 1830))
    assert position == (167, 0) and rows.start == 167 * 11 - 1830 and rows.step == 11 and cols.start == 0


def test_windows_assemble_into_the_decimated_image() -> None:
    """Sampling each window on its own gives the same image as sampling the whole grid."""
    grid = np.random.default_rng(0).integers(0, 255, (4, 50, 70), dtype=np.uint8)
    sampling = Sampling.fit(50, 70, max_size=16)
    pieces = []
    for r0 in range(0, 50, 20):
        for c0 in range(0, 70, 30):
            rows, cols = slice(r0, min(r0 + 20, 50)), slice(c0, min(c0 + 30, 70))
            r, c, position = sampling.local(rows, cols)
            pieces.append((position, grid[:, rows, cols][:, r, c]))
    image = assemble(sampling, pieces)
    expected = np.moveaxis(grid[:, :: sampling.step, :: sampling.step], 0, -1)
    np.testing.assert_array_equal(image, expected)
    assert png_bytes(image)[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_product_piece_shows_an_index_in_grey_and_a_composite_as_it_is() -> None:
    index = np.array([[-1.0, 0.0, 1.0, np.nan]], np.float32)
    piece = product_piece(index)
    assert piece.shape == (4, 1, 4) and list(piece[0, 0]) == [0, 128, 255, 0] and list(piece[3, 0]) == [255] * 3 + [0]
    composite = np.array([[[0, 9]], [[0, 8]], [[0, 7]]], np.uint8)
    assert product_piece(composite)[:, 0].tolist() == [[0, 9], [0, 8], [0, 7], [0, 255]]


def test_the_quicklook_reads_no_band_for_itself(sample_item: Path, tmp_path: Path) -> None:
    """ndmir alone reads B11 and B12 only and shows ndmir; with B02-B04 read anyway, natural colour."""
    assert bands_read(["ndmir"]) == ["b11", "b12"] and quicklook_of(["ndmir", "nbr"]) == "ndmir"
    assert bands_read(["rgb", "ndvi"]) == ["b02", "b03", "b04", "b08"] and quicklook_of(["ndvi", "rgb"]) is None
    out = compute_indices(
        stage_in_eopf(str(sample_item), tmp_path / "staged"), tmp_path / "out", alone(), products=["ndmir"]
    )
    (item,) = pystac.Catalog.from_file(str(out / "catalog.json")).get_items(recursive=True)
    thumbnail = item.assets["thumbnail"]
    assert thumbnail.title == "Quicklook (Normalized Difference Moisture Index (SWIR 1, SWIR 2))"
    image = np.asarray(Image.open(thumbnail.get_absolute_href()))
    ndmir = xr.open_zarr(item.assets["product"].get_absolute_href()).ndmir.values
    step = -(-max(ndmir.shape) // 1024)
    expected = product_piece(ndmir[::step, ::step])
    np.testing.assert_array_equal(np.moveaxis(image, -1, 0), expected)
    assert (item.properties["proj:shape"], ndmir.shape) == ([366, 366], (366, 366))  # the 10 m grid, as always

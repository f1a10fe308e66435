"""Quicklook sampling and assembly from windows."""

import numpy as np

from tasks.data.png import png_bytes
from tasks.science.quicklook import Sampling, assemble


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

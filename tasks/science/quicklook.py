"""Quicklooks: a decimated RGBA image assembled from the windows of a computation, written as PNG."""

import io
import math
from typing import NamedTuple

import numpy as np
from PIL import Image


class Sampling(NamedTuple):
    """Every `step`-th pixel of the full grid, on both axes, from the origin."""

    step: int
    height: int  # of the quicklook
    width: int

    @classmethod
    def fit(cls, height: int, width: int, max_size: int = 1024) -> "Sampling":
        """The sampling that fits a height x width grid in `max_size` pixels on its long side."""
        step = max(1, math.ceil(max(height, width) / max_size))
        return cls(step, math.ceil(height / step), math.ceil(width / step))

    def local(self, rows: slice, cols: slice) -> tuple[slice, slice, tuple[int, int]]:
        """Sampled positions inside a window (as local slices) and where they land in the quicklook."""
        r0, c0 = -(-rows.start // self.step), -(-cols.start // self.step)
        return (
            slice(r0 * self.step - rows.start, rows.stop - rows.start, self.step),
            slice(c0 * self.step - cols.start, cols.stop - cols.start, self.step),
            (r0, c0),
        )


def assemble(sampling: Sampling, pieces: list[tuple[tuple[int, int], np.ndarray]]) -> np.ndarray:
    """The (height, width, 4) uint8 quicklook from (position, (4, h, w) piece) pairs."""
    image = np.zeros((sampling.height, sampling.width, 4), np.uint8)
    for (r0, c0), piece in pieces:
        h, w = piece.shape[1:]
        image[r0 : r0 + h, c0 : c0 + w] = np.moveaxis(piece, 0, -1)
    return image


def png_bytes(image: np.ndarray) -> bytes:
    """PNG encoding of an RGB(A) uint8 image."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()

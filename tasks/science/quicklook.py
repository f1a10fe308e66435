"""Quicklooks: a decimated RGBA image assembled from the windows of a computation (NumPy only)."""

import math
from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np

from tasks.science.indices import Coding, compute_products


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

    def sample(self, rows: slice, cols: slice, block: np.ndarray) -> tuple[tuple[int, int], np.ndarray]:
        """Where a window lands in the quicklook, and the sampled pixels of its (..., y, x) output `block`."""
        r, c, position = self.local(rows, cols)
        return position, block[..., r, c]

    def piece(
        self,
        rows: slice,
        cols: slice,
        dn: Mapping[str, np.ndarray],
        codings: Mapping[str, Coding],
        factors: Mapping[str, int],
        bands: Sequence[str],
    ) -> tuple[tuple[int, int], np.ndarray]:
        """Where a window lands in the quicklook, and its (4, h, w) piece.

        The piece is the natural colour of the (red, green, blue) `bands` from the window's digital numbers
        `dn` (at native resolution, `factors` output pixels each), opaque where every band has data.
        """
        r, c, position = self.local(rows, cols)
        ys, xs = np.arange(rows.stop - rows.start)[r], np.arange(cols.stop - cols.start)[c]
        sampled = {b: dn[b][(ys // factors[b])[:, None], xs // factors[b]] for b in bands}
        rgb = compute_products(["rgb"], sampled, codings, dict.fromkeys(sampled, 1))["rgb"]
        valid = np.logical_and.reduce([sampled[b] != codings[b].nodata for b in bands])
        return position, np.concatenate([rgb, (valid * 255).astype(np.uint8)[None]])


def product_piece(values: np.ndarray) -> np.ndarray:
    """The (4, h, w) quicklook piece of sampled product values, opaque where there is data.

    An index (y, x) as grey from -1 (black) to 1 (white), NaN transparent; a composite (3, y, x) as it is,
    transparent where every channel is 0 (no data).
    """
    if values.ndim == 2:
        valid = np.isfinite(values)
        grey = np.rint((np.clip(np.where(valid, values, -1), -1, 1) + 1) * 127.5).astype(np.uint8)
        return np.stack([grey, grey, grey, (valid * 255).astype(np.uint8)])
    return np.concatenate([values, (values.any(axis=0) * 255).astype(np.uint8)[None]])


def assemble(sampling: Sampling, pieces: list[tuple[tuple[int, int], np.ndarray]]) -> np.ndarray:
    """The (height, width, 4) uint8 quicklook from (position, (4, h, w) piece) pairs."""
    image = np.zeros((sampling.height, sampling.width, 4), np.uint8)
    for (r0, c0), piece in pieces:
        h, w = piece.shape[1:]
        image[r0 : r0 + h, c0 : c0 + w] = np.moveaxis(piece, 0, -1)
    return image


def browse_image(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Grey + alpha uint8 picture: valid values stretched between their 2nd and 98th percentiles."""
    grey = np.zeros(values.shape, np.uint8)
    if valid.any():
        low, high = np.percentile(values[valid], (2, 98))
        scaled = (values.astype(np.float64) - low) / (high - low if high > low else 1.0)
        grey = np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)
    return np.dstack([grey, np.where(valid, 255, 0).astype(np.uint8)])

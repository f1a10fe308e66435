"""North-up pixel grids: the output grid of a computation and the native grid of each band read."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: upper-left corner, pixel size, shape, CRS."""

    crs: str  # e.g. "EPSG:32632"
    x0: float
    y0: float
    res: float
    width: int
    height: int

    @property
    def transform(self) -> list[float]:
        """Affine transform as in the STAC projection extension (6 terms)."""
        return [self.res, 0.0, self.x0, 0.0, -self.res, self.y0]

    @property
    def bbox(self) -> list[float]:
        """[xmin, ymin, xmax, ymax] in the grid's CRS."""
        return [self.x0, self.y0 - self.res * self.height, self.x0 + self.res * self.width, self.y0]

    def x(self) -> np.ndarray:
        """Pixel-centre x coordinates."""
        return self.x0 + self.res * (np.arange(self.width) + 0.5)

    def y(self) -> np.ndarray:
        """Pixel-centre y coordinates."""
        return self.y0 - self.res * (np.arange(self.height) + 0.5)

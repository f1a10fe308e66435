"""Burned area intensity: NBR, dNBR and USGS burn severity classes (NumPy only).

NBR = (NIR - SWIR2) / (NIR + SWIR2) on surface reflectance; dNBR = NBR_pre - NBR_post (positive where
vegetation burned), float32 with NaN where either date has no data, a masked scene class, or a zero
denominator. Severity classes are those of the USGS FIREMON table (Key & Benson 2006), as republished by
UN-SPIDER's burn severity recommended practice, on unscaled dNBR.
"""

import math
from dataclasses import dataclass
from typing import Final

import numpy as np

from tasks.science.indices import normalized_difference

#: Severity classes: (code, name, lower dNBR bound of the class), in order; 0 is no data.
SEVERITY: Final = (
    (1, "enhanced regrowth, high", -np.inf),
    (2, "enhanced regrowth, low", -0.25),
    (3, "unburned", -0.1),
    (4, "low severity", 0.1),
    (5, "moderate-low severity", 0.27),
    (6, "moderate-high severity", 0.44),
    (7, "high severity", 0.66),
)
SEVERITY_NODATA: Final = 0
#: Band descriptions of the dNBR and the severity rasters.
DNBR_DESCRIPTION: Final = "dNBR (NBR pre-event - NBR post-event)"
SEVERITY_DESCRIPTION: Final = "burn severity class (USGS dNBR thresholds, 0 = no data)"
#: dNBR from which a pixel counts as burned: the lower bound of the low severity class.
BURNED: Final = SEVERITY[3][2]
SEVERITY_SOURCE: Final = (
    "Key, C. H., Benson, N. C. (2006). Landscape Assessment (LA): Sampling and analysis methods. USDA Forest "
    "Service RMRS-GTR-164-CD (FIREMON), as republished by UN-SPIDER (burn severity recommended practice); "
    "thresholds in dNBR x 1000: -251, -101, 99, 269, 439, 659"
)
#: SCL classes masked by `mask_clouds`: no data, saturated/defective, dark area, cloud shadows, clouds
#: (medium, high probability), thin cirrus, snow.
CLOUD_SHADOW_SNOW: Final = (0, 1, 2, 3, 8, 9, 10, 11)


def reflectance(dn: np.ndarray, scale: float, offset: float, nodata: float | None) -> np.ndarray:
    """Surface reflectance (float32) of digital numbers, NaN where `dn` is `nodata` (or NaN)."""
    out = dn.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if nodata is not None and not np.isnan(nodata):
        out[dn == nodata] = np.nan
    return out


def masked(values: np.ndarray, scl: np.ndarray | None, classes: tuple[int, ...]) -> np.ndarray:
    """`values` with NaN where the scene classification is one of `classes` (unchanged without SCL)."""
    if scl is None or not classes:
        return values
    return np.where(np.isin(scl, classes), np.float32(np.nan), values)


def nbr(nir: np.ndarray, swir: np.ndarray) -> np.ndarray:
    """Normalized burn ratio, NaN where an input is NaN or NIR + SWIR2 is zero (as every normalized index)."""
    return normalized_difference(nir, swir)


def dnbr(pre_nbr: np.ndarray, post_nbr: np.ndarray) -> np.ndarray:
    """Differenced NBR, pre minus post (float32, NaN where either is NaN)."""
    return (pre_nbr - post_nbr).astype(np.float32, copy=False)


def classify(values: np.ndarray) -> np.ndarray:
    """USGS burn severity class codes (uint8, 1..7) of dNBR values; 0 where dNBR is NaN."""
    bounds = np.array([lower for _, _, lower in SEVERITY[1:]], np.float32)
    classes = (np.searchsorted(bounds, values, side="right") + 1).astype(np.uint8)
    classes[np.isnan(values)] = SEVERITY_NODATA
    return classes


#: Colour table of the severity classes, RGBA: ColorBrewer RdYlGn greens (regrowth) to reds, purple for high
#: severity; no data transparent. The quicklook and the severity COG share it.
SEVERITY_PALETTE: Final = {
    SEVERITY_NODATA: (0, 0, 0, 0),
    1: (26, 152, 80, 255),
    2: (145, 207, 96, 255),
    3: (217, 239, 139, 255),
    4: (254, 224, 139, 255),
    5: (252, 141, 89, 255),
    6: (215, 48, 39, 255),
    7: (122, 4, 121, 255),
}


def colour(values: np.ndarray) -> np.ndarray:
    """RGBA (h, w, 4) uint8 picture of dNBR values coloured by severity class, transparent where NaN."""
    table = np.zeros((256, 4), np.uint8)
    for code, rgba in SEVERITY_PALETTE.items():
        table[code] = rgba
    return table[classify(values)]


@dataclass(frozen=True)
class Moments:
    """Sums over the valid dNBR values of some windows: one window's (`of`), merged with `+`, then `summary`."""

    total: float = 0.0
    squares: float = 0.0
    count: int = 0
    burned: int = 0
    low: float = math.inf
    high: float = -math.inf

    @classmethod
    def of(cls, values: np.ndarray) -> "Moments":
        """The moments of the valid (not NaN) values of one window."""
        valid = values[~np.isnan(values)].astype(np.float64)
        if not valid.size:
            return cls()
        return cls(float(valid.sum()), float((valid * valid).sum()), int(valid.size), int((valid >= BURNED).sum()),
                   float(valid.min()), float(valid.max()))  # fmt: skip

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.total + other.total, self.squares + other.squares, self.count + other.count,
                       self.burned + other.burned, min(self.low, other.low), max(self.high, other.high))  # fmt: skip


def summary(moments: Moments, pixels: int) -> dict[str, float | int | None]:
    """Statistics of the valid dNBR values of a grid of `pixels` pixels, from their `moments`.

    Mean, minimum, maximum and standard deviation (rounded to 4 decimals), valid pixels, their percentage of
    the grid, and the burned share (dNBR >= `BURNED`) of the valid pixels; None where no pixel is valid.
    """
    count = moments.count
    if not count:
        return {"mean": None, "minimum": None, "maximum": None, "stddev": None, "valid pixels": 0,
                "valid percent": 0.0, "burned share": None}  # fmt: skip
    mean = moments.total / count
    stddev = max(moments.squares / count - mean * mean, 0.0) ** 0.5
    return {"mean": round(mean, 4), "minimum": round(moments.low, 4), "maximum": round(moments.high, 4),
            "stddev": round(stddev, 4), "valid pixels": count, "valid percent": round(100 * count / pixels, 2),
            "burned share": round(moments.burned / count, 4)}  # fmt: skip

"""A synthetic landscape at 10 m: land cover, surface reflectance per Sentinel-2 band, clouds and shadows.

Deterministic NumPy only. The land (lakes, a meandering river, wooded hills, towns, a patchwork of crop
parcels) depends on the landscape seed; clouds, crop growth and sensor noise depend on the date seed, so
several dates of one place share the same ground.
"""

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Cover(IntEnum):
    """Land cover classes of the synthetic ground."""

    WATER = 0
    FOREST = 1
    CROP = 2
    STUBBLE = 3
    SOIL = 4
    URBAN = 5


#: Typical surface reflectance per class, bands b01 b02 b03 b04 b05 b06 b07 b08 b8a b09 b11 b12.
SPECTRA = np.array(
    [
        [0.070, 0.060, 0.050, 0.030, 0.025, 0.020, 0.018, 0.015, 0.014, 0.010, 0.008, 0.006],  # water
        [0.025, 0.030, 0.050, 0.030, 0.080, 0.220, 0.280, 0.320, 0.330, 0.300, 0.150, 0.070],  # forest
        [0.035, 0.040, 0.080, 0.045, 0.120, 0.330, 0.420, 0.460, 0.470, 0.430, 0.220, 0.100],  # crop
        [0.070, 0.090, 0.120, 0.150, 0.180, 0.210, 0.230, 0.250, 0.260, 0.250, 0.320, 0.260],  # stubble
        [0.080, 0.100, 0.140, 0.190, 0.220, 0.240, 0.260, 0.280, 0.290, 0.280, 0.360, 0.300],  # soil
        [0.110, 0.120, 0.130, 0.140, 0.160, 0.170, 0.180, 0.200, 0.200, 0.190, 0.230, 0.210],  # urban
    ],
    dtype=np.float32,
)
CLOUD = np.array([0.48, 0.50, 0.51, 0.53, 0.54, 0.55, 0.56, 0.58, 0.58, 0.50, 0.40, 0.30], dtype=np.float32)
BAND_ORDER = ("b01", "b02", "b03", "b04", "b05", "b06", "b07", "b08", "b8a", "b09", "b11", "b12")
VEGETATION = (Cover.FOREST, Cover.CROP)


def smooth_field(n: int, cell: float, rng: np.random.Generator) -> np.ndarray:
    """An n x n float32 random field with features of about `cell` pixels (bilinear value noise)."""
    cell = max(float(cell), 1.0)
    m = int(n / cell) + 3
    low = rng.standard_normal((m, m)).astype(np.float32)
    pos = np.arange(n, dtype=np.float32) / cell
    i0 = pos.astype(np.int64)
    w = (pos - i0)[:, None]
    rows = low[i0] * (1 - w) + low[i0 + 1] * w  # (n, m)
    return rows[:, i0] * (1 - w.T) + rows[:, i0 + 1] * w.T


def fractal_field(n: int, cells: tuple[float, ...], rng: np.random.Generator) -> np.ndarray:
    """Sum of smooth fields, halving the amplitude at each finer scale, scaled to unit deviation."""
    total = np.zeros((n, n), np.float32)
    for k, cell in enumerate(cells):
        total += smooth_field(n, cell, rng) * np.float32(0.5**k)
    return total / np.float32(total.std() or 1.0)


@dataclass
class Scene:
    """A synthetic acquisition: ground cover, per-pixel texture, cloud opacity and shadow, no-data mask."""

    cover: np.ndarray  # uint8 Cover
    vigour: np.ndarray  # float32, multiplies the vegetation red-edge/NIR response
    texture: np.ndarray  # float32, small relative variations
    cloud: np.ndarray  # float32 opacity 0..1
    shadow: np.ndarray  # float32 darkening 0..1
    nodata: np.ndarray  # bool, outside the swath
    rng: np.random.Generator

    def reflectance(self, band: str) -> np.ndarray:
        """Surface reflectance (float32, 10 m) of `band` over the whole scene."""
        k = BAND_ORDER.index(band)
        refl = SPECTRA[:, k][self.cover]
        if band in ("b05", "b06", "b07", "b08", "b8a", "b09"):
            veg = np.isin(self.cover, VEGETATION)
            refl = np.where(veg, refl * self.vigour, refl)
        refl = refl * (1 + 0.08 * self.texture)
        refl = refl * (1 - 0.7 * self.shadow) * (1 - self.cloud) + CLOUD[k] * self.cloud
        return refl + self.rng.normal(0, 0.003, refl.shape).astype(np.float32)


def ground(n: int, landscape_seed: int = 2025) -> tuple[np.ndarray, np.ndarray]:
    """Land cover (uint8 `Cover`) and per-parcel vigour of an n x n landscape, from the landscape seed only."""
    rng = np.random.default_rng(landscape_seed)
    elevation = fractal_field(n, (n / 5, n / 14, n / 40, n / 110), rng)
    cover = np.full((n, n), Cover.CROP, np.uint8)
    y, x = np.mgrid[0:n, 0:n].astype(np.float32)
    # a patchwork of parcels on a rotated, slightly warped grid; each parcel gets a crop state and a vigour
    theta = rng.uniform(0.2, 0.6)
    warp = smooth_field(n, n / 8, rng) * (n / 200)
    size = max(n / 45, 4.0)
    u = np.floor((x * np.cos(theta) + y * np.sin(theta) + warp) / size)
    v = np.floor((-x * np.sin(theta) + y * np.cos(theta) + warp) / (size * 0.7))
    parcel = np.modf(np.sin(u * 12.9898 + v * 78.233) * 43758.5453)[0] % 1.0
    cover[parcel > 0.55] = Cover.STUBBLE
    cover[parcel > 0.80] = Cover.SOIL
    vigour = (0.75 + 0.5 * np.modf(np.sin(u * 39.346 + v * 11.135) * 24634.634)[0] % 1.0).astype(np.float32)
    del u, v, parcel
    cover[elevation > 0.9] = Cover.FOREST
    vigour[elevation > 0.9] = 1.0
    # towns: blobs around a few centres
    towns = fractal_field(n, (n / 30, n / 90), rng)
    for cy, cx in rng.uniform(0.15, 0.85, (3, 2)) * n:
        d = np.hypot(y - cy, x - cx) / (n / 18)
        cover[(d + 0.25 * towns) < 0.8] = Cover.URBAN
    # lakes in the lowest ground and a meandering river across the scene
    cover[elevation < np.quantile(elevation[:: max(n // 200, 1), :: max(n // 200, 1)], 0.03)] = Cover.WATER
    phase = rng.uniform(0, 2 * np.pi)
    meander = np.sin(2 * np.pi * x[0] / (0.6 * n) + phase) * 0.1 * n
    centre = 0.55 * n + meander + smooth_field(n, n / 6, rng)[0] * 0.04 * n
    cover[np.abs(y - centre[None, :]) < max(n / 260, 1.5)] = Cover.WATER
    return cover, vigour


def scene(n: int, seed: int = 1, landscape_seed: int = 2025, cloud_cover: float = 0.12) -> Scene:
    """One date over the landscape: the ground of `landscape_seed`, clouds and noise of `seed`."""
    cover, vigour = ground(n, landscape_seed)
    rng = np.random.default_rng(seed)
    vigour = vigour * np.float32(rng.uniform(0.9, 1.1))
    texture = fractal_field(n, (12, 5, 2), np.random.default_rng(landscape_seed + 1))
    clouds = fractal_field(n, (n / 6, n / 16, n / 50), rng)
    threshold = np.quantile(clouds[:: max(n // 300, 1), :: max(n // 300, 1)], 1 - cloud_cover)
    opacity = np.clip((clouds - threshold) / 1.2 + 0.5, 0, 1).astype(np.float32)
    if cloud_cover <= 0:
        opacity[:] = 0
    shift = max(n // 70, 1), max(n // 55, 1)
    shadow = np.roll(opacity, shift, axis=(0, 1)) * (1 - opacity)
    yy, xx = np.ogrid[0:n, 0:n]
    nodata = (xx + yy) < 0.12 * n
    return Scene(cover, vigour, texture, opacity, shadow.astype(np.float32), nodata, rng)


def block_mean(a: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor x factor blocks (the coarser grid of a band measured at lower resolution)."""
    if factor == 1:
        return a
    n, m = a.shape[0] // factor, a.shape[1] // factor
    return a[: n * factor, : m * factor].reshape(n, factor, m, factor).mean(axis=(1, 3), dtype=np.float32)

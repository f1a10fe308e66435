"""The science of `s2-indices`, on NumPy arrays only: normalized differences and colour composites.

Digital numbers (DN) are decoded to reflectance with a lookup table per band (``DN * scale + offset``,
NaN for no data), so each input pixel costs one gather instead of a multiply, an add and a mask. Composite
channels go from DN straight to uint8 through a table that holds the whole colour correction (clip to
[0, 1], gamma, ``* 255`` truncated), exactly as the float64 formula gives, without a ``pow`` per pixel.
"""

from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Final, Literal, NamedTuple, get_args

import numpy as np

#: Normalized differences (a - b) / (a + b): index -> (band a, band b).
INDICES: Final[dict[str, tuple[str, str]]] = {
    "ndvi": ("b08", "b04"),
    "ndwi": ("b03", "b08"),
    "ndmir": ("b11", "b12"),
    "nbr": ("b08", "b12"),
    "ndwi2": ("b08", "b11"),
    "mndwi": ("b03", "b11"),
    "ndbi": ("b11", "b08"),
}
#: Colour composites: composite -> (red, green, blue) channel bands.
COMPOSITES: Final[dict[str, tuple[str, str, str]]] = {
    "rgb": ("b04", "b03", "b02"),
    "vea": ("b11", "b12", "b04"),
    "civ": ("b08", "b04", "b03"),
    "law": ("b08", "b11", "b04"),
    "sir": ("b12", "b08", "b04"),
    "fcu": ("b12", "b11", "b04"),
    "atp": ("b12", "b11", "b08"),
}
#: Gamma per channel: rio-color "gamma b 1.85, gamma rg 1.95".
GAMMAS: Final = (1.95, 1.95, 1.85)

Product = Literal[
    "ndvi", "ndwi", "ndmir", "nbr", "ndwi2", "mndwi", "ndbi", "rgb", "vea", "civ", "law", "sir", "fcu", "atp"
]
PRODUCTS: Final[tuple[Product, ...]] = get_args(Product)
assert set(PRODUCTS) == set(INDICES) | set(COMPOSITES)

Encoding = Literal["float32", "compact"]
#: The compact encoding of an index: int16 of the value / COMPACT_SCALE, COMPACT_NODATA where it is NaN (CF
#: `scale_factor` and `_FillValue`: xarray and rioxarray read it back as floats, within half a step).
COMPACT_SCALE: Final = 1e-4
COMPACT_NODATA: Final = -32768


def compact(values: np.ndarray) -> np.ndarray:
    """Float index values as int16 steps of COMPACT_SCALE (rounded, clipped to int16), NaN as COMPACT_NODATA."""
    steps = np.rint(values / np.float32(COMPACT_SCALE))
    np.clip(steps, -32767, 32767, out=steps)
    steps[np.isnan(values)] = COMPACT_NODATA
    return steps.astype(np.int16)


LONG_NAMES: Final[dict[str, str]] = {
    "ndvi": "Normalized Difference Vegetation Index",
    "ndwi": "Normalized Difference Water Index",
    "ndmir": "Normalized Difference Moisture Index (SWIR 1, SWIR 2)",
    "nbr": "Normalized Burn Ratio",
    "ndwi2": "Normalized Difference Water Index 2 (NIR, SWIR 1)",
    "mndwi": "Modified Normalized Difference Water Index",
    "ndbi": "Normalized Difference Built-up Index",
    "rgb": "Natural colour composite",
    "vea": "Vegetation analysis composite",
    "civ": "Colour infrared (vegetation) composite",
    "law": "Land/water composite",
    "sir": "Shortwave infrared composite",
    "fcu": "False colour urban composite",
    "atp": "Atmospheric penetration composite",
}


def bands_for(products: list[str] | tuple[str, ...]) -> list[str]:
    """The input bands that `products` need, in a stable order."""
    needed = {b for p in products for b in (INDICES.get(p) or COMPOSITES[p])}
    return sorted(needed)


def _table_domain(dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.arange(info.min, info.max + 1, dtype=np.float64)


def reflectance_table(dtype: np.dtype, scale: float, offset: float, nodata: int | None) -> np.ndarray:
    """float32 reflectance of every DN of an (at most 16-bit) integer `dtype`, NaN at `nodata`."""
    dn = _table_domain(np.dtype(dtype))
    table = (dn * scale + offset).astype(np.float32)
    if nodata is not None:
        table[int(nodata) - int(dn[0])] = np.nan
    return table


def gamma_table(dtype: np.dtype, scale: float, offset: float, nodata: int | None, gamma: float) -> np.ndarray:
    """uint8 composite value of every DN: reflectance clipped to [0, 1], ``** (1 / gamma)``, ``* 255``.

    No data (and any reflectance <= 0) gives 0, as NaN -> 0 does in the reference colour correction.
    """
    dn = _table_domain(np.dtype(dtype))
    refl = np.clip(dn * scale + offset, 0.0, 1.0)
    table = (refl ** (1.0 / gamma) * 255).astype(np.uint8)
    if nodata is not None:
        table[int(nodata) - int(dn[0])] = 0
    return table


def lookup(dn: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Apply a table built by `reflectance_table` or `gamma_table` to an integer DN array."""
    low = np.iinfo(dn.dtype).min
    return np.take(table, dn if low == 0 else dn.astype(np.int32) - low)


def upsample(a: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upsampling by an integer `factor` (each pixel becomes a factor x factor block)."""
    if factor == 1:
        return a
    return np.repeat(np.repeat(a, factor, axis=-1), factor, axis=-2)  # columns first: faster


#: |a + b| below this is a zero denominator: far under the 1e-4 step of 16-bit reflectance, far over float32
#: rounding of such sums (so DN pairs that cancel exactly give NaN whatever the rounding of each term).
ZERO_SUM = 1e-6


def normalized_difference(a: np.ndarray, b: np.ndarray, scratch: np.ndarray | None = None) -> np.ndarray:
    """(a - b) / (a + b) in float32; NaN where a or b is NaN (no data) or a + b is zero (see `ZERO_SUM`).

    `scratch`, a float32 array of the same shape, saves allocating the denominator on repeated calls.
    """
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    den = np.add(a, b, out=scratch)
    out = a - b
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(out, den, out=out)
    out[np.abs(den, out=den) < ZERO_SUM] = np.nan
    return out


class Coding(NamedTuple):
    """How a band's digital numbers decode to reflectance: ``DN * scale + offset``, `nodata` excluded."""

    dtype: str
    scale: float
    offset: float
    nodata: int | None


@lru_cache(maxsize=64)
def _reflectance(coding: Coding) -> np.ndarray:
    return reflectance_table(np.dtype(coding.dtype), coding.scale, coding.offset, coding.nodata)


@lru_cache(maxsize=64)
def _gamma(coding: Coding, gamma: float) -> np.ndarray:
    return gamma_table(np.dtype(coding.dtype), coding.scale, coding.offset, coding.nodata, gamma)


def iter_products(
    products: Sequence[str], dn: Mapping[str, np.ndarray], codings: Mapping[str, Coding], factors: Mapping[str, int]
) -> Iterator[tuple[str, np.ndarray]]:
    """Every requested product of one window, in one pass over its inputs, yielded as soon as it is ready.

    `dn` holds each needed band's digital numbers at its native resolution, `factors` how many output
    pixels one input pixel spans per axis (1 at 10 m, 2 at 20 m). Each band is decoded at most once and
    each (band, gamma) table applied at most once, whatever the number of products using it. Indices come
    out float32 (y, x), composites uint8 (3, y, x). Yielding one product at a time lets the caller write
    and drop it before the next one exists.
    """

    def inputs(name: str) -> list[tuple[str, float | None]]:  # (band, None) = reflectance, (band, gamma) = toned
        if name in INDICES:
            return [(band, None) for band in INDICES[name]]
        return list(zip(COMPOSITES[name], GAMMAS, strict=True))

    last_use = {key: i for i, name in enumerate(products) for key in inputs(name)}
    cache: dict[tuple[str, float | None], np.ndarray] = {}

    def get(key: tuple[str, float | None]) -> np.ndarray:
        if key not in cache:
            band, gamma = key
            table = _reflectance(codings[band]) if gamma is None else _gamma(codings[band], gamma)
            cache[key] = upsample(lookup(dn[band], table), factors[band])
        return cache[key]

    scratch: np.ndarray | None = None
    for i, name in enumerate(products):
        if name in INDICES:
            a, b = (get(key) for key in inputs(name))
            if scratch is None:
                scratch = np.empty(a.shape, np.float32)
            yield name, normalized_difference(a, b, scratch)
        else:
            yield name, np.stack([get(key) for key in inputs(name)])
        for key in [k for k, j in last_use.items() if j == i]:  # free what no later product needs
            cache.pop(key, None)


def compute_products(
    products: Sequence[str], dn: Mapping[str, np.ndarray], codings: Mapping[str, Coding], factors: Mapping[str, int]
) -> dict[str, np.ndarray]:
    """All of `iter_products` at once, as a dict (for small windows and tests)."""
    return dict(iter_products(products, dn, codings, factors))

"""Sentinel-2 MSI bands: names, common names, wavelengths, resolutions and where EOPF Zarr keeps them."""

from typing import Any, Final, NamedTuple

from eoflows.errors import InputError


class Band(NamedTuple):
    """One MSI band as STAC describes it."""

    common_name: str
    resolution: int  # native, metres
    center_wavelength: float  # micrometres
    full_width_half_max: float  # micrometres
    description: str


BANDS: Final[dict[str, Band]] = {
    "b01": Band("coastal", 60, 0.443, 0.027, "Coastal aerosol (band 1)"),
    "b02": Band("blue", 10, 0.49, 0.098, "Blue (band 2)"),
    "b03": Band("green", 10, 0.56, 0.045, "Green (band 3)"),
    "b04": Band("red", 10, 0.665, 0.038, "Red (band 4)"),
    "b05": Band("rededge071", 20, 0.704, 0.019, "Red edge 1 (band 5)"),
    "b06": Band("rededge075", 20, 0.74, 0.018, "Red edge 2 (band 6)"),
    "b07": Band("rededge078", 20, 0.783, 0.028, "Red edge 3 (band 7)"),
    "b08": Band("nir", 10, 0.842, 0.145, "NIR 1 (band 8)"),
    "b8a": Band("nir08", 20, 0.865, 0.033, "NIR 2 (band 8A)"),
    "b09": Band("nir09", 60, 0.945, 0.026, "NIR 3 (band 9)"),
    "b11": Band("swir16", 20, 1.61, 0.143, "SWIR 1 (band 11)"),
    "b12": Band("swir22", 20, 2.19, 0.242, "SWIR 2 (band 12)"),
}

#: Scene classification (SCL) codes of Level-2A products.
SCL_CLASSES: Final[dict[int, str]] = {
    0: "no_data",
    1: "saturated_or_defective",
    2: "dark_area_pixels",
    3: "cloud_shadows",
    4: "vegetation",
    5: "not_vegetated",
    6: "water",
    7: "unclassified",
    8: "cloud_medium_probability",
    9: "cloud_high_probability",
    10: "thin_cirrus",
    11: "snow",
}

#: Group of the L2A scene classification map in an EOPF product.
SCL_GROUP: Final = "conditions/mask/l2a_classification/r20m"
#: `product:type` of Sentinel-2 L2A EOPF products.
L2A_PRODUCT_TYPE: Final = "S02MSIL2A"


def reflectance_group(resolution: int) -> str:
    """EOPF group holding the reflectance bands at `resolution` metres."""
    return f"measurements/reflectance/r{resolution}m"


def band_path(band: str) -> str:
    """Path of `band` (e.g. ``b08``) inside an EOPF Zarr store, at its native resolution."""
    return f"{reflectance_group(BANDS[band].resolution)}/{band}"


def stac_band_name(band: str) -> str:
    """The STAC/ESA name of `band`: ``b8a`` -> ``B8A``."""
    return band.upper()


def band_name(name: str) -> str | None:
    """Our band name for a STAC band `name` or common name (``B08``, ``B8``, ``nir``), or None."""
    low = name.lower()
    if low in BANDS:
        return low
    if len(low) == 2 and low[0] == "b" and f"b0{low[1]}" in BANDS:
        return f"b0{low[1]}"
    return next((band for band, meta in BANDS.items() if meta.common_name == low), None)


def processing_level(properties: dict, collection: str | None = None) -> str | None:
    """The processing level (``L1C``, ``L2A``) a Sentinel-2 STAC item declares, in any common convention.

    EOPF (`product:type` S02MSIL2A, `processing:level`), Earth Search v1 (`s2:product_type` S2MSI2A) and v0
    (`sentinel:product_id`), else the collection id (``sentinel-2-l2a``).
    """
    if props_level := properties.get("processing:level") or properties.get("s2:processing_level"):
        return str(props_level).upper()
    for key in ("product:type", "s2:product_type", "sentinel:product_id"):
        value = str(properties.get(key) or "").upper()
        for level, marker in (("L2A", "2A"), ("L1C", "1C")):
            if f"MSI{marker}" in value or f"MSIL{marker}" in value:
                return level
    for level in ("L2A", "L1C"):
        if collection and level.lower() in collection.lower():
            return level
    return None


def check_sentinel2_l2a(properties: dict[str, Any], collection: str | None, href: str) -> None:
    """Fail unless the STAC item at `href` is a Sentinel-2 Level-2A product (any common convention)."""
    platform = str(properties.get("platform") or properties.get("constellation") or "")
    if not platform.lower().startswith("sentinel-2"):
        raise InputError(f"STAC item {href!r}: not a Sentinel-2 product (platform {platform or 'missing'!r})")
    level = processing_level(properties, collection)
    if level != "L2A":
        raise InputError(
            f"STAC item {href!r}: not a Level-2A product (level {level or 'unknown'}, product:type "
            f"{properties.get('product:type')!r}; expected {L2A_PRODUCT_TYPE} or processing:level L2A)"
        )

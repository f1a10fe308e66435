"""When a raster was acquired, from what the file itself says: its TIFF tags, else a product id in its name."""

import datetime as dt
import re

#: Landsat Collection 1/2 product ids: LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX (acquisition date 4th).
LANDSAT_ID = re.compile(r"L[CETOM]0\d_L\w{3}_\d{6}_(\d{8})_\d{8}_\d{2}_[A-Z0-9]{2}")
#: Sentinel-2 product ids: S2X_MSIL.._YYYYMMDDTHHMMSS_...
SENTINEL2_ID = re.compile(r"S2[A-D]_MSIL\w{2}_(\d{8}T\d{6})")


def from_tags(tags: dict[str, str]) -> dt.datetime | None:
    """The acquisition time in GDAL/TIFF metadata tags (ACQUISITIONDATETIME, DATE_ACQUIRED, TIFFTAG_DATETIME)."""
    for key in ("ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "DATE_ACQUIRED", "TIFFTAG_DATETIME"):
        text = tags.get(key, "").strip()
        for fmt in ("%Y:%m:%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
            try:
                return dt.datetime.strptime(text.rstrip("Z").split(".")[0], fmt).replace(tzinfo=dt.UTC)
            except ValueError:
                continue
    return None


def from_name(name: str) -> dt.datetime | None:
    """The acquisition time in a Landsat or Sentinel-2 product id within `name` (a file name)."""
    if match := LANDSAT_ID.search(name):
        return dt.datetime.strptime(match.group(1), "%Y%m%d").replace(tzinfo=dt.UTC)
    if match := SENTINEL2_ID.search(name):
        return dt.datetime.strptime(match.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return None


def acquired(tags: dict[str, str], name: str, fallback: dt.datetime) -> tuple[dt.datetime, str]:
    """The acquisition time of a raster and where it was found: its tags, its name, else `fallback` (fetched)."""
    if (when := from_tags(tags)) is not None:
        return when, "the raster's metadata tags"
    if (when := from_name(name)) is not None:
        return when, "the product id in the file name"
    return fallback, "the time it was fetched (no acquisition time in the file or its name)"

"""A synthetic pre-/post-fire pair of Sentinel-2 L2A scenes as COGs, with Earth Search style STAC items.

```
DEST/<pre-id>/B08.tif B8A.tif B12.tif SCL.tif   COGs (uint16 DN, 0 = no data; SCL uint8), 512-px tiles
DEST/<pre-id>.json                               STAC item, Earth Search v1 shape (nir, nir08, swir22, scl)
DEST/<post-id>/...  DEST/<post-id>.json          the same after the fire
DEST/burn-scar.json, burn-scar.tif               where the scar is (1 = burnt, 20 m) and the dNBR it was given
```
The post-event scene repeats the pre-event ground with other clouds; inside an elliptic burn scar (on
land) its NIR and SWIR2 are rewritten so that NBR drops by exactly `DNBR` at 20 m (NIR there is constant
per 20 m cell, so the 10 m dNBR keeps that value). `layout="v0"` writes Earth Search v0 items instead
(asset keys B08, B8A, B12, SCL; no raster extension).
"""

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pystac

from eoflows import __version__
from eoflows.errors import InputError
from eoflows.samples import write_with_collection
from eoflows.samples.landscape import Cover, block_mean, scene
from eoflows.samples.s2_eopf import scl_codes
from tasks.data.sentinel2 import BANDS

SCALE, OFFSET = 1e-4, -0.1
EPSG, X0, Y0, TILE = 32633, 499980, 5100000, "33TWL"  # UTM 33N, MGRS tile 33TWL
DNBR = 0.5  # what the fire does to NBR inside the scar
SCAR = {"centre": (0.4, 0.6), "radii": (0.16, 0.22)}  # fractions of the scene (row, col)
#: band -> (Earth Search v1 key, Earth Search v0 key, resolution)
ASSETS = {
    "b08": ("nir", "B08", 10),
    "b8a": ("nir08", "B8A", 20),
    "b12": ("swir22", "B12", 20),
    "scl": ("scl", "SCL", 20),
}
WHEN = {
    "pre": dt.datetime(2025, 7, 3, 10, 0, 31, tzinfo=dt.UTC),
    "post": dt.datetime(2025, 7, 18, 10, 0, 29, tzinfo=dt.UTC),
}


def item_id(event: str) -> str:
    """Earth Search style id of the sample scene of `event` (pre or post)."""
    return f"S2{'B' if event == 'pre' else 'A'}_{TILE}_{WHEN[event]:%Y%m%d}_0_L2A"


def scar_mask(n: int) -> np.ndarray:
    """The burn scar on an n x n grid (ellipse)."""
    y, x = np.ogrid[0:n, 0:n]
    (cy, cx), (ry, rx) = SCAR["centre"], SCAR["radii"]
    return ((y / n - cy) / ry) ** 2 + ((x / n - cx) / rx) ** 2 <= 1


def _dn(refl: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    dn = np.clip(np.rint((refl - OFFSET) / SCALE), 1, 65535).astype(np.uint16)
    dn[nodata] = 0
    return dn


def _write_cog(path: Path, data: np.ndarray, res: int) -> None:
    import rasterio
    from rasterio.transform import Affine

    profile = {"driver": "COG", "dtype": str(data.dtype), "count": 1, "width": data.shape[1], "height": data.shape[0],
               "crs": f"EPSG:{EPSG}", "transform": Affine(res, 0, X0, 0, -res, Y0), "nodata": 0,
               "compress": "deflate", "blocksize": 512,
               "overview_resampling": "nearest" if data.dtype == np.uint8 else "average"}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _scenes(size: int, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """DN of b08 (10 m), b8a, b12 and SCL (20 m) of both dates."""
    out = {}
    half = size // 2
    scar = scar_mask(half)
    for event, date_seed in (("pre", seed), ("post", seed + 1)):
        sc = scene(size, seed=date_seed, cloud_cover=0.08)
        nodata20 = sc.nodata[::2, ::2]
        bands = {b: block_mean(sc.reflectance(b), 1 if b == "b08" else 2) for b in ("b08", "b8a", "b12")}
        scl = scl_codes(sc.cover[::2, ::2], sc.cloud[::2, ::2], sc.shadow[::2, ::2], nodata20)
        out[event] = {"bands": bands, "scl": scl, "nodata": sc.nodata, "cover": sc.cover[::2, ::2]}
    pre, post = out["pre"], out["post"]
    land = ~np.isin(pre["cover"], (Cover.WATER, Cover.URBAN))
    burn = scar & land & ~pre["nodata"][::2, ::2]

    def burnt(nir: np.ndarray, swir: np.ndarray) -> np.ndarray:  # NBR after the fire, at 20 m
        total = nir + swir
        return np.clip((nir - swir) / np.where(total == 0, 1, total) - DNBR, -0.95, 0.95)

    nir20, b8a, b12 = block_mean(pre["bands"]["b08"], 2), pre["bands"]["b8a"], pre["bands"]["b12"]
    after = burnt(nir20, b12)
    total = nir20 + b12  # keep NIR + SWIR2, move the ratio
    swir_after = total * (1 - after) / 2
    nir_after = np.repeat(np.repeat(total * (1 + after) / 2, 2, 0), 2, 1)
    post["bands"]["b08"] = np.where(np.repeat(np.repeat(burn, 2, 0), 2, 1), nir_after, post["bands"]["b08"])
    post["bands"]["b12"] = np.where(burn, swir_after, post["bands"]["b12"])
    after8a = burnt(b8a, b12)  # B8A over the new SWIR2: NBR(B8A) drops by DNBR too
    post["bands"]["b8a"] = np.where(burn, swir_after * (1 + after8a) / (1 - after8a), post["bands"]["b8a"])
    post["scl"] = np.where(burn, np.uint8(5), post["scl"])  # burnt ground: not vegetated, clear
    post["burn"] = burn
    return out


def write_pair(dest: Path, size: int = 1098, seed: int = 7, layout: str = "v1") -> tuple[Path, Path]:
    """Write the pre- and post-event scenes (COGs) and their items into `dest`; return the two item paths."""
    if size < 60 or size % 2:
        raise InputError(f"sample size {size}: expected an even number of 10 m pixels per side, at least 60")
    if layout not in ("v1", "v0"):
        raise InputError(f"layout {layout!r}: expected v1 (Earth Search v1 items) or v0 (Earth Search v0 items)")
    dest.mkdir(parents=True, exist_ok=True)
    scenes = _scenes(size, seed)
    items = []
    for event in ("pre", "post"):
        sid = item_id(event)
        folder = dest / sid
        folder.mkdir(exist_ok=True)
        data = scenes[event]
        nodata10 = data["nodata"]
        rasters = {"b08": _dn(data["bands"]["b08"], nodata10),
                   **{b: _dn(data["bands"][b], nodata10[::2, ::2]) for b in ("b8a", "b12")},
                   "scl": data["scl"]}  # fmt: skip
        for band, array in rasters.items():
            _write_cog(folder / f"{ASSETS[band][1]}.tif", array, ASSETS[band][2])
        valid = data["scl"] > 0
        cloud = float(np.isin(data["scl"][valid], (8, 9, 10)).mean() * 100) if valid.any() else 0.0
        items.append(_item(event, size, sid, layout, round(cloud, 2)))
    pre, post = write_with_collection(dest, items, "Sentinel-2 Level-2A (COG)")
    scar = {**SCAR, "dnbr": DNBR, "pixels_20m": int(scenes["post"]["burn"].sum()), "size": size, "seed": seed}
    (dest / "burn-scar.json").write_text(json.dumps(scar))
    _write_cog(dest / "burn-scar.tif", scenes["post"]["burn"].astype(np.uint8), 20)
    return pre, post


def _item(event: str, size: int, sid: str, layout: str, cloud: float) -> pystac.Item:
    from pyproj import Transformer

    right, bottom = X0 + size * 10, Y0 - size * 10
    cut = 0.12 * size * 10
    ring = [(X0 + cut, Y0), (right, Y0), (right, bottom), (X0, bottom), (X0, Y0 - cut), (X0 + cut, Y0)]
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    lonlat = [list(to_lonlat.transform(x, y)) for x, y in ring]
    lons, lats = zip(*lonlat, strict=True)
    when = WHEN[event]
    product = f"S2{sid[2]}_MSIL2A_{when:%Y%m%dT%H%M%S}_N0511_R079_T{TILE}"
    properties = {"platform": "sentinel-2b" if event == "pre" else "sentinel-2a", "constellation": "sentinel-2",
                  "instruments": ["msi"], "eo:cloud_cover": cloud, "proj:epsg": EPSG, "mgrs:utm_zone": 33,
                  "mgrs:latitude_band": "T", "mgrs:grid_square": "WL", "grid:code": f"MGRS-{TILE}"}  # fmt: skip
    if layout == "v1":
        properties |= {"s2:product_type": "S2MSI2A", "s2:processing_baseline": "05.11",
                       "s2:product_uri": f"{product}_{when:%Y%m%d}T155057.SAFE"}  # fmt: skip
        collection = "sentinel-2-l2a"
    else:
        properties |= {"sentinel:product_id": product, "sentinel:utm_zone": 33, "sentinel:latitude_band": "T",
                       "sentinel:grid_square": "WL"}  # fmt: skip
        collection = "sentinel-s2-l2a-cogs"
    item = pystac.Item(sid, {"type": "Polygon", "coordinates": [lonlat]}, [min(lons), min(lats), max(lons), max(lats)],
                       when, properties, collection=collection,
                       stac_extensions=["https://stac-extensions.github.io/eo/v1.1.0/schema.json",
                                        "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                        *(["https://stac-extensions.github.io/raster/v1.1.0/schema.json"]
                                          if layout == "v1" else [])])  # fmt: skip
    item.properties["processing:software"] = {"eoflows-sample": __version__}
    for band, (v1_key, v0_key, res) in ASSETS.items():
        n = size * 10 // res
        extra: dict = {"gsd": res} if band != "scl" else {}
        if band != "scl":
            meta = BANDS[band]
            name = v1_key if layout == "v1" else v0_key
            extra["eo:bands"] = [{"name": name, "common_name": meta.common_name, "description": meta.description,
                                  "center_wavelength": meta.center_wavelength,
                                  "full_width_half_max": meta.full_width_half_max}]  # fmt: skip
        if layout == "v1":
            extra |= {"proj:shape": [n, n], "proj:transform": [res, 0, X0, 0, -res, Y0]}
            raster = {"nodata": 0, "data_type": "uint8" if band == "scl" else "uint16", "spatial_resolution": res}
            if band != "scl":
                raster |= {"bits_per_sample": 15, "scale": SCALE, "offset": OFFSET}
            extra["raster:bands"] = [raster]
        title = "Scene classification map (SCL)" if band == "scl" else f"{BANDS[band].description} - {res}m"
        item.add_asset(v1_key if layout == "v1" else v0_key, pystac.Asset(
            f"./{sid}/{v0_key}.tif", title, media_type=pystac.MediaType.COG, roles=["data", "reflectance"],
            extra_fields=extra))  # fmt: skip
    return item

"""A synthetic Sentinel-2 L2A product in the EOPF Zarr layout, and a STAC item shaped like the EOPF ones.

```
DEST/<id>.json                                   STAC item (product, SR_*, B??_??m, SCL_20m assets)
DEST/<id>.zarr/measurements/reflectance/r10m     b02 b03 b04 b08 + x, y      uint16 DN, 0 = no data
DEST/<id>.zarr/measurements/reflectance/r20m     b05 b06 b07 b8a b11 b12 + x, y
DEST/<id>.zarr/measurements/reflectance/r60m     b01 b09 + x, y
DEST/<id>.zarr/conditions/mask/l2a_classification/r20m/scl + x, y
```
Zarr v2 with consolidated metadata, Blosc zstd level 3 with bit shuffle, reflectance = DN * 1e-4 - 0.1.
"""

import datetime as dt
from pathlib import Path

import numcodecs
import numpy as np
import pystac
import zarr
from pyproj import Transformer

from eoflows import __version__
from eoflows.errors import InputError
from eoflows.samples import write_with_collection
from eoflows.samples.landscape import Cover, block_mean, scene
from tasks.data.sentinel2 import (
    BANDS,
    L2A_PRODUCT_TYPE,
    SCL_CLASSES,
    SCL_GROUP,
    band_path,
    reflectance_group,
    stac_band_name,
)

CODEC = numcodecs.Blosc(cname="zstd", clevel=3, shuffle=numcodecs.Blosc.BITSHUFFLE)
SCALE, OFFSET = 1e-4, -0.1
EPSG, X0, Y0 = 32632, 499980, 5000040  # UTM 32N, upper-left corner of MGRS tile 32TNQ
TILE = "32TNQ"
ZARR = "application/vnd.zarr"
EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v2.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://stac-extensions.github.io/raster/v2.0.0/schema.json",
    "https://stac-extensions.github.io/processing/v1.2.0/schema.json",
    "https://stac-extensions.github.io/product/v0.1.0/schema.json",
    "https://stac-extensions.github.io/grid/v1.1.0/schema.json",
]


def acquisition(seed: int) -> dt.datetime:
    """Sensing time of the sample of `seed`: one revisit (5 days) per seed step."""
    return dt.datetime(2025, 6, 1, 10, 23, 11, tzinfo=dt.UTC) + dt.timedelta(days=5 * (seed - 1))


def product_id(seed: int) -> str:
    """EOPF-style product id of the sample of `seed`."""
    t = acquisition(seed)
    return f"S2A_MSIL2A_{t:%Y%m%dT%H%M%S}_N0511_R065_T{TILE}_{t:%Y%m%d}T142515"


def scl_codes(cover: np.ndarray, cloud: np.ndarray, shadow: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """The scene classification a L2A processor would give the synthetic scene."""
    scl = np.where(np.isin(cover, (Cover.FOREST, Cover.CROP)), 4, 5).astype(np.uint8)
    scl[cover == Cover.WATER] = 6
    scl[shadow > 0.4] = 3
    scl[cloud > 0.3] = 8
    scl[cloud > 0.6] = 9
    scl[nodata] = 0
    return scl


def _write(group: zarr.Group, name: str, data: np.ndarray, chunk: int, attrs: dict) -> None:
    arr = group.create_array(
        name,
        shape=data.shape,
        chunks=(chunk, chunk),
        dtype=data.dtype,
        compressors=CODEC,
        fill_value=0,
        attributes={"_ARRAY_DIMENSIONS": ["y", "x"], **attrs},
    )
    arr[...] = data


def _coords(group: zarr.Group, size: int, res: int) -> None:
    for name, values in (("x", X0 + res // 2 + res * np.arange(size)), ("y", Y0 - res // 2 - res * np.arange(size))):
        arr = group.create_array(
            name,
            shape=(size,),
            chunks=(size,),
            dtype="int64",
            compressors=None,
            fill_value=None,
            attributes={"_ARRAY_DIMENSIONS": [name], "units": "m", "standard_name": f"projection_{name}_coordinate"},
        )
        arr[...] = values.astype(np.int64)


def footprint(size: int, nodata_fraction: float = 0.12) -> tuple[dict, list[float]]:
    """GeoJSON polygon (lon/lat) of the valid data of the scene, and the lon/lat bbox of the tile."""
    cut = nodata_fraction * size * 10
    right, bottom = X0 + size * 10, Y0 - size * 10
    ring = [(X0 + cut, Y0), (right, Y0), (right, bottom), (X0, bottom), (X0, Y0 - cut), (X0 + cut, Y0)]
    to_lonlat = Transformer.from_crs(EPSG, 4326, always_xy=True)
    lonlat = [list(to_lonlat.transform(x, y)) for x, y in ring]
    corners = [to_lonlat.transform(x, y) for x in (X0, right) for y in (Y0, bottom)]
    lons, lats = zip(*corners, strict=True)
    return {"type": "Polygon", "coordinates": [lonlat]}, [min(lons), min(lats), max(lons), max(lats)]


def write_sample(dest: Path, size: int = 1098, seed: int = 1) -> Path:
    """Write a sample product and its STAC item into `dest`; return the item's path."""
    if size < 60 or size % 6:
        raise InputError(f"sample size {size}: expected a multiple of 6, at least 60 (10 m pixels per side)")
    dest.mkdir(parents=True, exist_ok=True)
    item_id = product_id(seed)
    store = dest / f"{item_id}.zarr"
    chunk10 = min(1830, size // 3)
    sc = scene(size, seed=seed)
    root = zarr.open_group(store, mode="w", zarr_format=2)
    geometry, bbox = footprint(size)
    when = acquisition(seed).isoformat().replace("+00:00", "Z")
    scl = scl_codes(sc.cover[::2, ::2], sc.cloud[::2, ::2], sc.shadow[::2, ::2], sc.nodata[::2, ::2])
    valid = scl > 0
    cloud_cover = float(np.isin(scl[valid], (8, 9, 10)).mean() * 100) if valid.any() else 0.0
    proj_bbox = [X0, Y0 - size * 10, X0 + size * 10, Y0]
    properties = {
        "datetime": when,
        "start_datetime": when,
        "end_datetime": when,
        "platform": "sentinel-2a",
        "constellation": "sentinel-2",
        "instruments": ["msi"],
        "mission": "Sentinel-2",
        "gsd": 10.0,
        "proj:code": f"EPSG:{EPSG}",
        "proj:bbox": proj_bbox,
        "grid:code": f"MGRS-{TILE}",
        "processing:level": "L2A",
        "product:type": L2A_PRODUCT_TYPE,
        "eo:cloud_cover": round(cloud_cover, 3),
        "eo:snow_cover": 0.0,
        "processing:software": {"eoflows-sample": __version__},
    }
    root.attrs["stac_discovery"] = {
        "type": "Feature",
        "id": item_id,
        "bbox": bbox,
        "geometry": geometry,
        "properties": {**properties, "proj:epsg": EPSG},
    }
    root.attrs["other_metadata"] = {"synthetic": True, "generator": f"eoflows {__version__}", "seed": seed}
    for res in (10, 20, 60):
        group = root.require_group(reflectance_group(res))
        factor, n = res // 10, size // (res // 10)
        for band in (b for b, meta in BANDS.items() if meta.resolution == res):
            refl = block_mean(sc.reflectance(band), factor)
            dn = np.clip(np.rint((refl - OFFSET) / SCALE), 1, 65535).astype(np.uint16)
            dn[sc.nodata[::factor, ::factor]] = 0
            _write(
                group,
                band,
                dn,
                chunk10 // factor,
                {
                    "scale_factor": SCALE,
                    "add_offset": OFFSET,
                    "valid_min": 1,
                    "valid_max": 65535,
                    "units": "digital_counts",
                    "long_name": f"BOA reflectance, {BANDS[band].description}",
                    "proj:epsg": EPSG,
                    "proj:shape": [n, n],
                    "proj:transform": [res, 0, X0, 0, -res, Y0, 0, 0, 1],
                },
            )
        _coords(group, n, res)
    group = root.require_group(SCL_GROUP)
    _write(
        group,
        "scl",
        scl,
        chunk10 // 2,
        {
            "long_name": "Scene classification map (SCL)",
            "flag_values": list(SCL_CLASSES),
            "flag_meanings": " ".join(SCL_CLASSES.values()),
            "proj:epsg": EPSG,
        },
    )
    _coords(group, size // 2, 20)
    zarr.consolidate_metadata(store)
    item = stac_item(item_id, store.name, geometry, bbox, acquisition(seed), properties)
    (path,) = write_with_collection(dest, [item], "Sentinel-2 Level-2A (EOPF Zarr)")
    return path


def stac_item(
    item_id: str, store: str, geometry: dict, bbox: list[float], when: dt.datetime, properties: dict
) -> pystac.Item:
    """The STAC item of a sample, shaped like an EOPF Sample Service L2A item, hrefs relative to it."""
    item = pystac.Item(
        item_id, geometry, bbox, when, dict(properties), stac_extensions=list(EXTENSIONS), collection="sentinel-2-l2a"
    )

    def bands_of(names: list[str]) -> list[dict]:
        return [
            {
                "name": stac_band_name(b),
                "description": BANDS[b].description,
                "eo:common_name": BANDS[b].common_name,
                "eo:center_wavelength": BANDS[b].center_wavelength,
                "eo:full_width_half_max": BANDS[b].full_width_half_max,
            }
            for b in names
        ]

    for res in (10, 20, 60):
        names = [b for b, meta in BANDS.items() if meta.resolution == res]
        item.add_asset(
            f"SR_{res}m",
            pystac.Asset(
                f"./{store}/{reflectance_group(res)}",
                f"Surface Reflectance - {res}m",
                media_type=ZARR,
                roles=["data", "reflectance", "dataset"],
                extra_fields={
                    "gsd": res,
                    "bands": bands_of(names),
                    "xarray:open_dataset_kwargs": {"chunks": {}, "engine": "zarr"},
                },
            ),
        )
    for band, meta in BANDS.items():
        item.add_asset(
            f"{stac_band_name(band)}_{meta.resolution}m",
            pystac.Asset(
                f"./{store}/{band_path(band)}",
                f"{meta.description} - {meta.resolution}m",
                media_type=ZARR,
                roles=["data", "reflectance"],
                extra_fields={
                    "gsd": meta.resolution,
                    "bands": bands_of([band]),
                    "nodata": 0,
                    "data_type": "uint16",
                    "raster:scale": SCALE,
                    "raster:offset": OFFSET,
                },
            ),
        )
    item.add_asset(
        "SCL_20m",
        pystac.Asset(
            f"./{store}/{SCL_GROUP}/scl",
            "Scene classification map (SCL)",
            media_type=ZARR,
            roles=["data"],
            extra_fields={"gsd": 20, "nodata": 0, "data_type": "uint8", "raster:scale": 1, "raster:offset": 0},
        ),
    )
    item.add_asset(
        "product",
        pystac.Asset(
            f"./{store}",
            "EOPF Product",
            "The full Zarr store of the EOPF product",
            media_type=ZARR,
            roles=["data", "metadata"],
            extra_fields={"xarray:open_datatree_kwargs": {"chunks": {}, "engine": "zarr"}},
        ),
    )
    item.add_asset(
        "product_metadata",
        pystac.Asset(
            f"./{store}/.zmetadata", "Consolidated Metadata", media_type="application/json", roles=["metadata"]
        ),
    )
    return item

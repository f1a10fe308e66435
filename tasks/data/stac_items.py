"""Output STAC items: derived from an input item, with projection and processing metadata (pystac)."""

import datetime as dt

import pystac
from pystac.extensions.projection import ProjectionExtension

from eoflows import __version__
from tasks.data.eopf import Grid

PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
#: Properties of the input that still describe a derived product (their extensions are carried over too).
KEPT = (
    "start_datetime",
    "end_datetime",
    "platform",
    "constellation",
    "instruments",
    "mission",
    "gsd",
    "grid:code",
    "eo:cloud_cover",
    "sat:relative_orbit",
    "sat:orbit_state",
)


def derived_item(source: pystac.Item, item_id: str, grid: Grid, source_href: str, lineage: str) -> pystac.Item:
    """A new item over the same place and time as `source`, on `grid`, linked back to `source_href`."""
    properties = {k: source.properties[k] for k in KEPT if k in source.properties}
    item = pystac.Item(
        item_id, source.geometry, source.bbox, source.datetime, properties, collection=None, stac_extensions=[]
    )
    prefixes = {k.split(":")[0] for k in properties if ":" in k}
    item.stac_extensions = sorted({uri for uri in source.stac_extensions if any(f"/{p}/" in uri for p in prefixes)})
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    proj.code = grid.crs
    proj.shape = [grid.height, grid.width]
    proj.transform = grid.transform
    proj.bbox = grid.bbox
    item.stac_extensions.append(PROCESSING_SCHEMA)
    item.properties.update(
        {
            "processing:software": {"eoflows": __version__},
            "processing:lineage": lineage,
            "processing:datetime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        }
    )
    item.add_link(pystac.Link("derived_from", source_href, pystac.MediaType.JSON, f"Input item {source.id}"))
    return item

"""Synthetic products for the demo, the tests and the benchmarks (no network needed)."""

import json
from pathlib import Path

import pystac


def write_with_collection(dest: Path, items: list[pystac.Item], title: str) -> list[Path]:
    """Write `items` into `dest` beside the collection they name (`collection.json`, linked relatively).

    Items of a STAC API link to their collection; the samples do the same, so that an item with a `collection`
    field passes STAC validation (it must then have a link of rel `collection`).
    """
    (collection_id,) = {item.collection_id for item in items}
    collection = pystac.Collection(
        collection_id,
        f"{title} (synthetic sample written by eoflows)",
        pystac.Extent(
            pystac.SpatialExtent([pystac.utils.geometry_to_bbox(item.geometry) for item in items]),
            pystac.TemporalExtent([[min(i.datetime for i in items), max(i.datetime for i in items)]]),
        ),
        title=title,
        license="CC-BY-4.0",
    )
    collection.set_self_href(str(dest / "collection.json"))
    (dest / "collection.json").write_text(json.dumps(collection.to_dict(include_self_link=False), indent=1))
    paths = []
    for item in items:
        item.remove_links(pystac.RelType.COLLECTION)
        item.add_link(pystac.Link(pystac.RelType.COLLECTION, "./collection.json", pystac.MediaType.JSON))
        paths.append(dest / f"{item.id}.json")
        paths[-1].write_text(json.dumps(item.to_dict(include_self_link=False, transform_hrefs=False), indent=1))
    return paths

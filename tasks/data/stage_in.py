"""The stage-in step any package can take: one STAC item of any kind -> a staged folder, assets fetched if asked.

By default the data stays where it is (the staged item's asset hrefs are absolute, read in place: a COG over
HTTP range requests, a Zarr store on S3). Assets named in `assets` are downloaded next to the staged item, of any
media type, and the item then points at those copies (relative hrefs: the folder can move, as a CWL Directory).
"""

from pathlib import Path

from eoflows.errors import InputError
from eoflows.package import OutputDir, Resources, Step
from eoflows.settings import S3Settings
from tasks.data.item_folder import ItemFolder
from tasks.data.names import file_name
from tasks.data.stac_io import download, read_item
from tasks.data.staging import stage_items
from tasks.data.storage import absolute_href
from tasks.reporting import logger


def stage_in_item(item: str, output: OutputDir, assets: list[str] = [], storage: S3Settings | None = None) -> Path:
    """Stage a STAC item into a local catalog folder; its data is read in place unless `assets` are downloaded.

    Args:
        item: URL, local path or s3:// URI of a STAC item.
        output: Folder that receives catalog.json and <item-id>/<item-id>.json (with downloaded assets beside it).
        assets: Keys of the item's assets to download next to the staged item (any media type); "*" for all.
    """
    href = absolute_href(item)
    stac_item = read_item(href, storage)
    stac_item.make_asset_hrefs_absolute()
    wanted = list(stac_item.assets) if assets == ["*"] else list(dict.fromkeys(assets))
    missing = [key for key in wanted if key not in stac_item.assets]
    if missing:
        raise InputError(f"assets {missing}: not assets of item {href!r} (it has {', '.join(stac_item.assets)})")
    log = logger()
    log.info("Staging item %s from %s%s", stac_item.id, href, f", downloading {', '.join(wanted)}" if wanted else "")
    if not wanted:
        return stage_items([stac_item], output)
    folder = ItemFolder.of(output, stac_item.id, f"staged folder of item {href!r}")
    with folder.writing(f"stage-in of {href}") as path:
        stac_item.set_self_href(str(folder.file(".json")))  # where it is staged: the fetched copies are beside it
        for key in wanted:
            asset = stac_item.assets[key]
            local = path / file_name(f"{key}{Path(asset.href.split('?')[0]).suffix}")
            download(asset.href, local, storage, f"asset {key!r} of item {href!r}")
            asset.href = f"./{local.name}"
        folder.write_catalog(stac_item, "Staged input item", catalog_id="catalog")
    return output


#: A stage-in step of one STAC item (`stage_in_item`), for packages whose input is an item of any kind.
STAGE_IN = Step("stage-in", stage_in_item, Resources(cores=(1, 1), ram_mb=(512, 512)), network=True)

"""What a person sees of a run in the Prefect UI: the published products with links, sizes and a quicklook."""

import base64
import io

import pystac
from PIL import Image
from prefect.artifacts import create_markdown_artifact

from blocks.s3 import S3Block
from tasks.data.stac_io import FsspecStacIO, read_bytes
from tasks.data.storage import iri, scheme


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} B"


def _thumbnail(href: str, storage: S3Block | None, size: int = 320) -> str:
    """A small PNG of the quicklook as a data URI, so the UI shows it whatever the destination."""
    image = Image.open(io.BytesIO(read_bytes(href, storage, "quicklook")))
    image.thumbnail((size, size))
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def link(href: str, storage: S3Block | None = None) -> str:
    """`href` as markdown a browser can follow from the Prefect UI, never a broken link.

    A local path becomes a ``file://`` link; an S3 object its https URL when the storage block has a
    `public_url`, else its URI as text.
    """
    if scheme(href) == "file":
        return f"[{href}]({iri(href)})"
    if scheme(href) in ("http", "https"):
        return f"[{href}]({href})"
    url = (storage or S3Block.from_env()).browser_url(href)
    return f"[{href}]({url})" if url else f"`{href}`"


def products_markdown(catalog_uri: str, storage: S3Block | None = None) -> str:
    """A markdown summary of the published catalog: one row per asset of each item, and the quicklook."""
    catalog = pystac.Catalog.from_file(catalog_uri, stac_io=FsspecStacIO(storage))
    lines = [f"**Catalog:** {link(catalog_uri, storage)}", ""]
    for item in catalog.get_items(recursive=True):
        lines += [f"### {item.id}", "", "| product | title | href | size |", "|---|---|---|---|"]
        for key, asset in item.assets.items():
            href = asset.get_absolute_href() or asset.href
            size = _size(asset.extra_fields.get("file:size"))
            lines.append(f"| {key} | {asset.title or ''} | {link(href, storage)} | {size} |")
        thumbnails = [a for a in item.assets.values() if "thumbnail" in (a.roles or [])]
        if thumbnails:
            href = thumbnails[0].get_absolute_href() or thumbnails[0].href
            lines += ["", f"![quicklook of {item.id}]({_thumbnail(href, storage)})"]
    return "\n".join(lines)


def publish_products_artifact(key: str, catalog_uri: str, storage: S3Block | None = None) -> None:
    """Create the products artifact of a flow run."""
    create_markdown_artifact(products_markdown(catalog_uri, storage), key=key, description=f"Products at {catalog_uri}")

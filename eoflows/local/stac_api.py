"""A real STAC API on 127.0.0.1 for the tests and the bench: `rustac serve` (in-memory backend) in its own process.

Needs the `dev` extra (rustac). The memory backend has no transactions: `add` restarts the server on the
same port with more items, as a catalogue that ingested new scenes would answer.

```python
with local_stac_api([item_json, ...]) as api:
    api.url          # pystac_client.Client.open(api.url)
    api.add(path)    # serve one more item
```
"""

import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pystac

from eoflows.processes import free_port, http_process


class LocalStacApi:
    """A running `rustac serve` and the item files it serves."""

    def __init__(self, items: list[Path], log: Path | None = None) -> None:
        self.items = list(items)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log
        self._stack = ExitStack()

    def start(self) -> None:
        """Start the server with the current items; wait until it answers."""
        beside = Path(sys.executable).with_name("rustac")  # installed with this Python (dev extra)
        rustac = str(beside) if beside.exists() else shutil.which("rustac") or "rustac"
        command = [rustac, "serve", "--addr", f"127.0.0.1:{self.port}", "--create-collections", *map(str, self.items)]
        self._stack.enter_context(http_process(command, f"{self.url}/", "rustac serve", log=self._log))

    def stop(self) -> None:
        """Stop the server."""
        self._stack.close()

    def add(self, *items: Path) -> None:
        """Serve `items` too (restarts the server)."""
        self.stop()
        self.items += items
        self.start()


@contextmanager
def local_stac_api(items: list[Path], log: Path | None = None) -> Iterator[LocalStacApi]:
    """A STAC API serving `items` (item JSON files, collections created from their `collection`)."""
    api = LocalStacApi(items, log)
    api.start()
    try:
        yield api
    finally:
        api.stop()


def api_item(item: Path, folder: Path, name: str, **properties: Any) -> Path:
    """A copy of the item at `item` for an API: id `name`, `properties` changed, asset hrefs absolute file:// URIs.

    An API resolves relative hrefs against its own URL; absolute file URIs keep the assets on this machine.
    """
    stac = pystac.Item.from_file(str(item))
    stac.id = name
    for key, value in properties.items():
        if key == "datetime":
            stac.datetime = value
            stac.properties.update({"start_datetime": None, "end_datetime": None})
            stac.properties = {k: v for k, v in stac.properties.items() if v is not None}
        else:
            stac.properties[key] = value
    for asset in stac.assets.values():
        asset.href = Path(asset.get_absolute_href()).absolute().as_uri()
    stac.clear_links()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(stac.to_dict(include_self_link=False)))
    return path

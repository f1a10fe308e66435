"""OUTPUT/NAME/: the folder of the files of one item a step writes, and the step's catalog.json beside it.

What every step that writes an item does, in one place: NAME is made from the item id (`file_name`) and checked
to resolve inside OUTPUT, the folder is removed when the step fails, and catalog.json is written last::

    folder = ItemFolder.of(output, out_id, f"output of item {item.id!r}")
    with folder.writing(f"compute of {item.id}"):
        png = folder.file(".png")
        ...
        folder.write_catalog(result, f"results of {item.id}")
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pystac

from tasks.data.names import file_name, inside
from tasks.data.staging import removed_on_failure, write_catalog


@dataclass(frozen=True)
class ItemFolder:
    """The folder `name` under a step's `output`, holding the files of one item."""

    output: Path
    name: str

    @classmethod
    def of(cls, output: Path, item_id: str, what: str) -> "ItemFolder":
        """The folder of the item `item_id`, checked to be inside `output` (`what` names it in the error)."""
        name = file_name(item_id)
        inside(output, output / name, what)
        return cls(output, name)

    @property
    def path(self) -> Path:
        """OUTPUT/NAME."""
        return self.output / self.name

    def file(self, suffix: str) -> Path:
        """OUTPUT/NAME/NAME`suffix`."""
        return self.path / f"{self.name}{suffix}"

    @contextmanager
    def writing(self, what: str) -> Iterator[Path]:
        """Make the folder; remove it when the block fails (a failed read or write: a `StageError` on `what`)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with removed_on_failure(self.path, what):
            yield self.path

    def write_catalog(self, item: pystac.Item, description: str, catalog_id: str = "processing-results") -> Path:
        """Write the step's catalog.json of `item` (last: it means the step's output is complete); its path."""
        return write_catalog([item], self.output, catalog_id, description)

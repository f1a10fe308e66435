"""Prefect blocks of eoflows' settings: S3 storage, Dask Gateway and Calrissian."""

from typing import TypeVar

from prefect.blocks.core import Block

B = TypeVar("B", bound=Block)


def saved_or_env(cls: type[B], name: str | None) -> B:
    """The saved block `name` of type `cls`, or the settings read from the environment when no name is given."""
    return cls.load(name) if name else cls.from_env()  # type: ignore[attr-defined]

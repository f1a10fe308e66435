"""Prefect blocks of eoflows' settings: S3 storage, Dask Gateway and Calrissian."""

from typing import TypeVar

from prefect.blocks.core import Block

B = TypeVar("B", bound=Block)


def input_id(variables: tuple[str, ...]) -> str:
    """The id of the input (CWL, job file) carrying a setting read from the environment `variables`.

    The first variable, in lower case: AWS_SECRET_ACCESS_KEY -> aws_secret_access_key.
    """
    return variables[0].lower()


def credential_inputs(cls: type[Block]) -> list[str]:
    """The ids of the inputs that carry the credentials of a settings block type."""
    environment: dict[str, tuple[str, ...]] = getattr(cls, "environment", {})
    return [input_id(environment[name]) for name in getattr(cls, "credentials", ()) if name in environment]


def saved_or_env(cls: type[B], name: str | None) -> B:
    """The saved block `name` of type `cls`, or the settings read from the environment when no name is given."""
    return cls.load(name) if name else cls.from_env()  # type: ignore[attr-defined]

"""Prefect blocks of eoflows' settings: S3 storage, the Dask cluster and Calrissian.

One pattern: each block class is a `Block` and a settings class of `eoflows.settings` (what steps read without
Prefect), with the same fields; `block_class` maps a settings class to its block class.
"""

from typing import TypeVar

from prefect.blocks.core import Block

from eoflows.errors import InputError
from eoflows.settings import CalrissianSettings, DaskSettings, S3Settings, Settings

B = TypeVar("B", bound=Block)


def block_class(settings: type[Settings]) -> type[Block]:
    """The block class that saves settings of class `settings`.

    Only its module is imported: Calrissian's imports Kubernetes' client, which a package's flow does not need.
    """
    if issubclass(settings, S3Settings):
        from blocks.s3 import S3Block

        return S3Block
    if issubclass(settings, DaskSettings):
        from blocks.dask_cluster import DaskBlock

        return DaskBlock
    if issubclass(settings, CalrissianSettings):
        from blocks.calrissian import CalrissianBlock

        return CalrissianBlock
    raise TypeError(f"settings class {settings.__qualname__}: no block class saves it")


def input_id(variables: tuple[str, ...]) -> str:
    """The id of the input (CWL, job file) carrying a setting read from the environment `variables`.

    The first variable, in lower case: AWS_SECRET_ACCESS_KEY -> aws_secret_access_key.
    """
    return variables[0].lower()


def credential_inputs(cls: type[Block]) -> list[str]:
    """The ids of the inputs that carry the credentials of a settings block type."""
    environment: dict[str, tuple[str, ...]] = getattr(cls, "environment", {})
    return [input_id(environment[name]) for name in getattr(cls, "credentials", ()) if name in environment]


def saved_or_env(cls: type[B], given: B | str | None, param: str = "settings") -> B:
    """The saved block given (flow runs from the UI's block picker) or named, else settings from the environment.

    Blocks without `from_env` default to the class's defaults. Settings given inline (a block that is not saved)
    are refused, naming the parameter `param`: a flow run keeps its parameters, and credentials must not be among
    them.
    """
    if isinstance(given, Block):
        if given._block_document_id is None:
            raise InputError(f"{param}: give a saved block (or its name), not inline settings: a flow run "
                             "keeps its parameters, and credentials must not be among them")  # fmt: skip
        return given
    if given:
        return cls.load(given)  # type: ignore[return-value]
    return cls.from_env() if hasattr(cls, "from_env") else cls()  # type: ignore[attr-defined]


def block_name(given: Block | str | None) -> str | None:
    """The name under which the block given is saved (a name given is returned as it is)."""
    return given._block_document_name if isinstance(given, Block) else given

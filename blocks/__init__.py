"""Prefect blocks of eoflows' settings: S3 storage, Dask Gateway and Calrissian."""

from typing import TypeVar

from prefect.blocks.core import Block

from eoflows.errors import InputError

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

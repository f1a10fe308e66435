"""The base of the settings classes: what a step reads from the environment, a flow from a saved block."""

from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class Settings(BaseModel):
    """Settings a step reads from the environment, or a flow from a saved block (`blocks.block_class`)."""

    #: Validators are built on first use, not at import: a step's `--help` declares settings, never validates them.
    model_config = ConfigDict(defer_build=True)

    #: Field -> the environment variables it is read from, first found wins (CWL tools receive them too).
    environment: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Fields that are credentials: kept out of logs and exported documents (CWL: `cwltool:Secrets`).
    credentials: ClassVar[tuple[str, ...]] = ()
    #: The doc of a step parameter of this type that the step leaves undocumented (`eoflows.package`).
    argument_doc: ClassVar[str] = ""

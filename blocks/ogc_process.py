"""A CWL application package deployed through OGC API - Processes, kept as a Prefect block.

`eoflows serve` saves one per deployed process (deployments.deployed_processes): every server on the same Prefect
API sees it, a restart loses nothing, and the Prefect UI lists it under Blocks.
"""

from typing import Any

from prefect.blocks.core import Block
from pydantic import Field


class OgcProcessBlock(Block):
    """A deployed process: its id, its OGC description and its packed CWL document."""

    _block_type_name = "eoflows OGC process"
    _block_type_slug = "eoflows-ogc-process"
    _description = "A CWL application package deployed through eoflows' OGC API - Processes (POST /processes)."

    process_id: str = Field(description="The process id (OGC API - Processes).")
    process: dict[str, Any] = Field(description="Its OGC description: title, version, inputs, outputs...")
    cwl: dict[str, Any] = Field(description="Its CWL document, packed into one (what its jobs run).")

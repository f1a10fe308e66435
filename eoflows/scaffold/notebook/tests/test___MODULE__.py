"""__NAME__ keeps eoflows' package contract (its notebook runs in the flow, by the CLI steps and by CWL)."""

from typing import Any

import pytest

from eoflows.testing import PackageContract


class TestPackage(PackageContract):
    """Declaration, flow, CLI and CWL derived; runs to a folder and to S3; steps by CLI = flow; CWL = flow."""

    package = "__NAME__"

    @pytest.fixture
    def package_inputs(self, sample_cog_items: tuple[Any, Any]) -> dict[str, Any]:
        """One small run: the post-fire item of the sample pair (COGs on this machine); change it to your input."""
        return {"item": str(sample_cog_items[1])}

"""The built-in packages keep the contract every package inherits (`eoflows.testing.PackageContract`)."""

from pathlib import Path
from typing import Any

import pytest

from eoflows.testing import PackageContract


class TestBurnedArea(PackageContract):
    """burned-area with its switches turned off: false must reach the steps by the CLI and by the CWL too."""

    package = "burned-area"

    @pytest.fixture
    def package_inputs(self, burn_pair: tuple[Path, Path]) -> dict[str, Any]:
        pre, post = burn_pair
        return {"pre_item": str(pre), "post_item": str(post), "severity": False, "mask_clouds": False}

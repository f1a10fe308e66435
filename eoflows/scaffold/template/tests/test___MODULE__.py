"""__NAME__ keeps eoflows' package contract, and its science is right."""

from typing import Any

import numpy as np
import pytest
from __MODULE__.science import normalised_difference

from eoflows.testing import PackageContract


class TestPackage(PackageContract):
    """Declaration, flow, CLI and CWL derived; runs to a folder and to S3; steps by CLI = flow; CWL = flow."""

    package = "__NAME__"

    @pytest.fixture
    def package_inputs(self, sample_cog_items: tuple[Any, Any]) -> dict[str, Any]:
        """One small run: the post-fire item of the sample pair (COGs on this machine)."""
        return {"item": str(sample_cog_items[1])}


def test_the_normalised_difference() -> None:
    a = np.array([0.3, 0.2, 0.0, np.nan], dtype=np.float32)
    b = np.array([0.1, 0.2, 0.0, 0.1], dtype=np.float32)
    out = normalised_difference(a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[:2], [0.5, 0.0], atol=1e-6)
    assert np.isnan(out[2:]).all()  # 0 / 0 and no data are no data

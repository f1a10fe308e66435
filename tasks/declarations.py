"""The application packages by name: each is declared once, beside its steps (`tasks/<package>.py`).

A declaration is imported when asked for, so `eoflows step <package> ...` (what a CWL tool runs) imports its own
package's steps and nothing else; flows, deployments and the CWL export take them all (`declared()`).
"""

import importlib

from eoflows.package import Package

#: Package name -> the module and name of its declaration.
DECLARATIONS = {
    "s2-indices": ("tasks.s2_indices", "S2_INDICES"),
    "burned-area": ("tasks.burned_area", "BURNED_AREA"),
    "downsample": ("tasks.downsample", "DOWNSAMPLE"),
}


def declaration(name: str) -> Package:
    """The declaration of the package called `name` (a key of `DECLARATIONS`)."""
    module, attribute = DECLARATIONS[name]
    return getattr(importlib.import_module(module), attribute)


def declared() -> dict[str, Package]:
    """Every package, by name."""
    return {name: declaration(name) for name in DECLARATIONS}

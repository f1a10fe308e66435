"""Every installed application package's flow (`eoflows.discovery`): what the CLI and the deployments run.

A flow is made when first asked for. This module has an attribute per package, its name with `_` for `-`
(`flows.package_flows:s2_indices`), so a deployment's entrypoint names any installed package's flow the
same way. The `run-cwl` flow (flows/run_cwl.py) runs any CWL document; it is not a package.
"""

from functools import cache

from prefect import Flow

from eoflows.discovery import installed
from flows.build import package_flow


def attribute(name: str) -> str:
    """The attribute of this module holding the flow of the package `name` (the deployments' entrypoint)."""
    return name.replace("-", "_")


@cache
def flow_of(name: str) -> Flow:
    """The flow of the installed package `name` (one per process)."""
    packages = installed()
    if name not in packages:
        raise KeyError(f"package {name!r}: not installed; installed: {', '.join(packages)}")
    return package_flow(packages[name])


def __getattr__(attr: str) -> Flow:
    """`flows.package_flows.s2_indices`: the flow of the package whose attribute is `attr`."""
    name = next((n for n in installed() if attribute(n) == attr), None)
    if name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {attr!r} (no installed package of that name)")
    return flow_of(name)

"""Every application package and its flow, by name: what the CLI, the deployments and the CWL export list.

The `run-cwl` flow (flows/run_cwl.py) runs any CWL document; it is not a package.
"""

from prefect import Flow

from eoflows.package import Package
from flows.burned_area import BURNED_AREA, burned_area
from flows.downsample import DOWNSAMPLE, downsample_flow
from flows.s2_indices import S2_INDICES, s2_indices

PACKAGES: dict[str, Package] = {p.name: p for p in (S2_INDICES, BURNED_AREA, DOWNSAMPLE)}
FLOWS: dict[str, Flow] = {S2_INDICES.name: s2_indices, BURNED_AREA.name: burned_area, DOWNSAMPLE.name: downsample_flow}

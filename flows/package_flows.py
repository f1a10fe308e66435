"""Every application package and its flow, by name: what the CLI, the deployments and the CWL export list.

The `run-cwl` flow (flows/run_cwl.py) runs any CWL document; it is not a package.
"""

from prefect import Flow

from eoflows.package import Package
from flows.burned_area import burned_area
from flows.downsample import downsample_flow
from flows.s2_indices import s2_indices
from tasks.declarations import declared

PACKAGES: dict[str, Package] = declared()
FLOWS: dict[str, Flow] = {"s2-indices": s2_indices, "burned-area": burned_area, "downsample": downsample_flow}

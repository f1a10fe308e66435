"""eoflows: Earth-observation application packages as Prefect flows and CWL."""

from importlib.metadata import version as _version

__version__ = _version("eoflows")
#: The one image of eoflows: Prefect job pods, Dask Gateway schedulers and workers, CWL DockerRequirement.
IMAGE_REPOSITORY = "ghcr.io/eoflows/eoflows"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"
#: Version of the public API of `eoflows.api`: a package states the range it needs (`Package.api`). The major
#: number changes when a name of the API goes or changes meaning; the minor one when names are added.
API_VERSION = "1.1"

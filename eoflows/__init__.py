"""eoflows: Earth-observation application packages as Prefect flows and CWL."""

from importlib.metadata import version as _version

__version__ = _version("eoflows")
#: The one image of eoflows: Prefect job pods, Dask Gateway schedulers and workers, CWL DockerRequirement.
IMAGE_REPOSITORY = "ghcr.io/eoflows/eoflows"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"

"""eoflows: Earth-observation application packages as Prefect flows and CWL."""

from importlib.metadata import version as _version

from eoflows.prefect_home import isolate_step_command as _isolate_step_command

_isolate_step_command()  # `eoflows step ...`: a private Prefect home, set before Prefect is imported

__version__ = _version("eoflows")
#: The one image of eoflows: Prefect job pods, Dask Gateway schedulers and workers, CWL DockerRequirement.
IMAGE_REPOSITORY = "ghcr.io/eoflows/eoflows"
IMAGE = f"{IMAGE_REPOSITORY}:{__version__}"

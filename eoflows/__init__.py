"""eoflows: Earth-observation application packages as Prefect flows and CWL."""

from importlib.metadata import version as _version

__version__ = _version("eoflows")

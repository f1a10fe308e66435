"""What tests give the steps they call from plain Python."""

from eoflows.runtime import Runtime
from tasks.windows import Alone


def alone() -> Runtime:
    """The runtime of a process alone, as `eoflows step` builds it (the configured Dask cluster, else threads)."""
    return Runtime(Alone())

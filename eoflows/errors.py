"""One small exception hierarchy: every error a user can cause or meet is an `EoflowsError`.

Messages name the input, what was expected and what was found; the CLI prints them as one line.
"""


class EoflowsError(Exception):
    """Base of all eoflows errors."""


class InputError(EoflowsError):
    """A parameter, STAC item or data product is not what the step needs."""


class StageError(EoflowsError):
    """Reading from or publishing to a location failed (unreachable, denied, already published)."""


class RemoteRunError(EoflowsError):
    """A run delegated to another system (Calrissian, cwltool, a Dask cluster) failed."""


class Stopped(EoflowsError):
    """The process was asked to stop (SIGTERM): clean-up is short and bounded."""


def root_cause(exc: BaseException) -> BaseException:
    """The first exception of the chain that led to `exc` (following `__cause__`, then `__context__`)."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__
    return exc

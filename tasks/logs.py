"""The logger of the current Prefect run, or the `eoflows` logger outside Prefect (CLI steps, CWL tools)."""

import logging

from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger


def logger() -> logging.Logger | logging.LoggerAdapter:
    """Prefect's run logger inside a flow or task run, the standard `eoflows` logger elsewhere."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("eoflows")

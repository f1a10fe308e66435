"""`eoflows run PACKAGE`: a package end to end as a Prefect flow, its parameters as options; prints the catalog URI.

Every run reports to a Prefect API: the configured one, else a temporary server of the command's own (started
early by `eoflows.cli.main`, while the flows import).
"""

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any

from cyclopts import App, Parameter

from eoflows.cli.options import PREFECT_SERVER, command
from eoflows.errors import EoflowsError
from eoflows.package import Package, Param, Role

if TYPE_CHECKING:
    from prefect import Flow

    from eoflows.prefect_api import Server

JSON_OPTION = Param("as_json", Annotated[bool, Parameter(name="--json")], False,
                    "Print the catalog URI, item ids and asset hrefs as JSON (for scripts).", Role.INPUT)  # fmt: skip
#: The parameter through which a command receives the Prefect server started early (never an option).
SERVER_PARAM = Param(PREFECT_SERVER, Annotated[Any, Parameter(parse=False)], None, "", Role.INPUT)


class _WithoutUserTracebacks(logging.Filter):
    """Leave out of the terminal the records that carry the traceback of an error the user caused or stopped.

    The command ends with that error as one line; the flow run's logs (the API handler) keep the traceback.
    Tracebacks of bugs stay on the terminal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.exceptions import TerminationSignal

        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, EoflowsError | TerminationSignal | KeyboardInterrupt)


def in_prefect(call: Callable[[], Any], early: "Server | None" = None) -> Any:
    """`call()` (a flow) reporting to the Prefect API of `eoflows.prefect_api.prefect_api(early)`."""
    from prefect.logging.handlers import PrefectConsoleHandler

    from eoflows.prefect_api import prefect_api

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not handler.filters:
            handler.addFilter(_WithoutUserTracebacks())
    with prefect_api(early):
        return call()


def published(catalog_uri: str, storage: str | None) -> str:
    """JSON of a published catalog: its URI, and each item's id and asset hrefs (`storage`: a block name)."""
    import pystac

    from blocks import saved_or_env
    from blocks.s3 import S3Block
    from tasks.data.stac_io import FsspecStacIO

    catalog = pystac.Catalog.from_file(catalog_uri, stac_io=FsspecStacIO(saved_or_env(S3Block, storage)))
    items = [{"id": item.id, "assets": {k: a.get_absolute_href() for k, a in item.assets.items()}}
             for item in catalog.get_items(recursive=True)]  # fmt: skip
    return json.dumps({"catalog": catalog_uri, "items": items}, indent=2)


def run_command(package: Package, flow: "Flow") -> Callable[..., Any]:
    """The CLI of a package's flow: its parameters as options (and --json)."""
    from flows.build import flow_params

    def body(as_json: bool = False, prefect_server: "Server | None" = None, **kwargs: Any) -> str:
        def run() -> str:  # reading the catalog may need a saved storage block: while the API is there
            uri = flow(**kwargs)
            return published(uri, kwargs.get("storage")) if as_json else uri

        return in_prefect(run, prefect_server)

    # settings by name on the command line (the flow also takes a saved block, as the Prefect UI picks it)
    params = [replace(p, annotation=str | None) if p.role is Role.SETTINGS else p for p in flow_params(package)]
    return command(package.name, [*params, JSON_OPTION, SERVER_PARAM], package.description, body)


def group(flows: bool) -> App:
    """The `run` group; with `flows`, a command for every package (imports the flows, and Prefect)."""
    app = App(name="run", help="Run a package end to end as a Prefect flow and print the catalog URI.")
    if flows:
        from eoflows.discovery import installed
        from flows.package_flows import flow_of

        for name, package in installed().items():
            app.command(run_command(package, flow_of(name)), name=name)
    return app

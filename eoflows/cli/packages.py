"""`eoflows packages`: the installed application packages, where each comes from, and why one is broken."""

import json
from typing import Annotated

from cyclopts import Parameter

from eoflows.cli.options import print_rows


def packages(*, as_json: Annotated[bool, Parameter(name="--json")] = False) -> None:
    """List the installed packages: name, version, origin, status (ok, or broken and why) and steps.

    Packages come from the `eoflows.packages` entry points of installed distributions and, in development,
    from `eoflows --package module:OBJECT ...` or EOFLOWS_PACKAGES=module:OBJECT,... A broken package is
    listed with its reason; the others work on.

    Args:
        as_json: Print a JSON list instead of a table.
    """
    from eoflows.discovery import discover

    found = discover()
    rows = [
        {
            "name": f.name,
            "version": f.package.version if f.package else "",
            "origin": f.source.origin,
            "status": "ok" if f.ok else f"broken: {f.error}",
            "steps": ", ".join(s.name for s in f.package.steps) if f.package else "",
        }
        for f in found
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print_rows(rows, "no packages are installed")

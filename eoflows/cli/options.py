"""What the command groups share: commands made from declared parameters, tables, output to a file or stdout."""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, get_origin

from cyclopts import Parameter

from eoflows.package import Param, with_signature

#: Values `eoflows.cli.main` gives the commands that take them (parameters with `parse=False`, never options):
#: the Prefect server the command started early (`eoflows.prefect_api.starting_early`), and the root app.
PREFECT_SERVER, ROOT_APP = "prefect_server", "root_app"


def option(p: Param) -> Param:
    """`p` as a command-line option: a list takes several values after one flag (--products ndvi rgb) or repeats."""
    if get_origin(p.annotation) is list:
        return replace(p, annotation=Annotated[p.annotation, Parameter(consume_multiple=True)])
    return p


def command(name: str, params: list[Param], doc: str, body: Callable[..., Any]) -> Callable[..., Any]:
    """A CLI function with keyword-only `params` (options) that prints what `body` returns."""

    def run(**kwargs: Any) -> None:
        result = body(**kwargs)
        if result is not None:
            print(result)

    return with_signature(run, name, [option(p) for p in params], doc, None)


def print_rows(rows: list[dict[str, Any]], empty: str) -> None:
    """`rows` as a table on standard output, or `empty` when there are none."""
    from rich.console import Console
    from rich.table import Table

    if not rows:
        print(empty)
        return
    table = Table(*rows[0])
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=200).print(table)


def write(text: str, output: Path | None) -> None:
    """`text` into the file `output` (its path printed), or on standard output."""
    if output is None:
        print(text, end="")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(output)

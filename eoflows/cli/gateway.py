"""`eoflows gateway`: look after Dask Gateway clusters (list, options, stop)."""

from typing import Any

from cyclopts import App

from eoflows.cli.options import print_rows

app = App(
    name="gateway",
    help="Look after Dask Gateway clusters. Settings: --block NAME (a saved eoflows-dask-gateway block) or the "
    "dask-gateway configuration (DASK_GATEWAY__ADDRESS, ...).",
)


def _settings(block: str | None) -> Any:
    from blocks import saved_or_env
    from blocks.dask_cluster import DaskBlock

    return saved_or_env(DaskBlock, block)


@app.command(name="list")
def gateway_list(*, block: str | None = None) -> None:
    """List the clusters the gateway runs for you.

    Args:
        block: Name of a saved eoflows-dask-gateway block; empty: the dask-gateway configuration.
    """
    from tasks.remote.gateway import list_clusters

    print_rows(list_clusters(_settings(block)), "no clusters")


@app.command(name="options")
def gateway_options(*, block: str | None = None) -> None:
    """Show the cluster options the gateway offers and the values each takes.

    Args:
        block: Name of a saved eoflows-dask-gateway block; empty: the dask-gateway configuration.
    """
    from tasks.remote.gateway import describe_field, gateway, offered_options

    with gateway(_settings(block)) as client:
        fields = offered_options(client)._fields
    print_rows([{"option": k, "takes": describe_field(f)} for k, f in fields.items()], "no options")


@app.command(name="stop")
def gateway_stop(name: str, *, block: str | None = None) -> None:
    """Shut down a cluster, e.g. one a killed run left behind.

    Args:
        name: The cluster name (see `eoflows gateway list`).
        block: Name of a saved eoflows-dask-gateway block; empty: the dask-gateway configuration.
    """
    from tasks.remote.gateway import stop_cluster

    stop_cluster(_settings(block), name)
    print(f"stopped {name}")

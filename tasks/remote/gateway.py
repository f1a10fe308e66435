"""Talking to a Dask Gateway: clusters with checked options, existing clusters, listing and stopping.

Errors say which gateway, what went wrong and what it allows: a wrong password, an unreachable gateway and an
option the gateway does not offer (or a value it refuses) fail before any cluster exists.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
from dask_gateway import BasicAuth, Gateway, GatewayCluster, JupyterHubAuth, KerberosAuth
from dask_gateway.options import Options

from eoflows.errors import EoflowsError, InputError, RemoteRunError, root_cause
from eoflows.settings import DaskSettings
from tasks.reporting import logger


def _auth(settings: DaskSettings) -> BasicAuth | JupyterHubAuth | KerberosAuth:
    if settings.auth == "jupyterhub":
        return JupyterHubAuth(api_token=settings.api_token.get_secret_value() if settings.api_token else None)
    if settings.auth == "kerberos":
        return KerberosAuth()
    password = settings.password.get_secret_value() if settings.password else None
    return BasicAuth(username=settings.username, password=password)


def gateway_error(settings: DaskSettings, exc: BaseException) -> EoflowsError:
    """An eoflows error for a failed gateway call, naming the gateway and the likely cause."""
    cause = root_cause(exc)
    status = getattr(exc, "status", None) or getattr(cause, "status", None)
    where = f"Dask Gateway {settings.address!r}"
    if status in (401, 403):
        return RemoteRunError(f"{where}: authentication refused ({status}); check the {settings.auth} credentials")
    if isinstance(cause, TimeoutError):
        return RemoteRunError(f"{where}: no answer within {settings.request_timeout:g} s ({type(cause).__name__})")
    if isinstance(cause, ConnectionError | OSError) or "Connect" in type(cause).__name__:
        return RemoteRunError(f"{where}: cannot reach it ({type(cause).__name__}: {cause})")
    return RemoteRunError(f"{where}: {type(exc).__name__}: {exc}")


def close_once(client: Gateway) -> None:
    """Close a Gateway client so that its finalizer does not close it again.

    dask-gateway 2026.3's `Gateway.__del__` calls `close()` even after an explicit close, which then fails
    with "loop is not running" in the finalizer; the finalizer skips objects without a loop runner.
    """
    client.close()
    vars(client).pop("_loop_runner", None)


class Cluster(GatewayCluster):
    """A `GatewayCluster` whose own gateway client is closed once (see `close_once`)."""

    def close(self, shutdown: bool | None = None) -> None:
        """Close the cluster object (and shut the cluster down if `shutdown`, default shutdown_on_close)."""
        super().close(shutdown=shutdown)
        vars(self.gateway).pop("_loop_runner", None)


def _where(settings: DaskSettings) -> dict[str, Any]:
    return {"address": settings.address, "proxy_address": settings.proxy_address,
            "public_address": settings.public_address, "auth": _auth(settings)}  # fmt: skip


@contextmanager
def gateway(settings: DaskSettings) -> Iterator[Gateway]:
    """A client of the configured gateway (closed on exit); gateway errors become eoflows errors."""
    if not settings.enabled:
        raise InputError("Dask Gateway settings: no gateway address (set `address` or DASK_GATEWAY__ADDRESS)")
    client = Gateway(**_where(settings))
    client._request_kwargs["timeout"] = aiohttp.ClientTimeout(total=settings.request_timeout)  # default 5 min
    try:
        yield client
    except (EoflowsError, KeyboardInterrupt):
        raise
    except Exception as exc:
        raise gateway_error(settings, exc) from exc
    finally:
        close_once(client)


def describe_field(field: Any) -> str:
    """What values a gateway option takes, in words."""
    if getattr(field, "options", None):
        return "one of " + ", ".join(repr(o) for o in field.options)
    kind = type(field).__name__.lower()
    low, high = getattr(field, "min", None), getattr(field, "max", None)
    bounds = f" from {low} to {high}" if low is not None and high is not None else ""
    bounds = bounds or (f" >= {low}" if low is not None else f" <= {high}" if high is not None else "")
    return f"a {kind}{bounds} (default {field.value!r})"


def offered_options(client: Gateway) -> Options:
    """The cluster options the gateway offers, with its defaults."""
    return client.cluster_options(use_local_defaults=False)


def checked_options(client: Gateway, settings: DaskSettings) -> Options:
    """The gateway's options with ours applied; an option it does not offer or a value it refuses is an error."""
    options = offered_options(client)
    fields = options._fields
    for key, value in settings.cluster_options().items():
        if key not in fields:
            offered = "; ".join(f"{name}: {describe_field(f)}" for name, f in fields.items()) or "none"
            raise InputError(f"Dask Gateway option {key!r}: not offered by {settings.address}; it offers {offered}")
        try:
            options[key] = value
        except (TypeError, ValueError) as exc:
            raise InputError(
                f"Dask Gateway option {key!r}: {value!r} refused by {settings.address} ({exc}); "
                f"it takes {describe_field(fields[key])}"
            ) from exc
    return options


def new_cluster(settings: DaskSettings) -> Cluster:
    """A new cluster for one flow run (a `DaskTaskRunner` cluster class): shut down when closed."""
    with gateway(settings) as client:
        options = checked_options(client, settings)
    try:  # its own client and event loop: the cluster outlives the one that checked the options
        cluster = Cluster(cluster_options=options, shutdown_on_close=True, **_where(settings))
    except Exception as exc:
        raise gateway_error(settings, exc) from exc
    logger().info("Dask Gateway cluster %s created on %s, dashboard %s", cluster.name, settings.address,
                  cluster.dashboard_link)  # fmt: skip
    return cluster


@contextmanager
def existing_cluster(settings: DaskSettings) -> Iterator[Cluster]:
    """The named running cluster (e.g. the one Calrissian procured), left running on exit."""
    with gateway(settings) as client:
        names = [c.name for c in client.list_clusters()]
    if settings.cluster_name not in names:
        raise InputError(
            f"Dask Gateway cluster {settings.cluster_name!r}: not running on {settings.address} "
            f"(running: {', '.join(names) or 'none'})"
        )
    try:
        cluster = Cluster.from_name(settings.cluster_name, shutdown_on_close=False, **_where(settings))
    except Exception as exc:
        raise gateway_error(settings, exc) from exc
    logger().info("Using Dask Gateway cluster %s on %s, dashboard %s", cluster.name, settings.address,
                  cluster.dashboard_link)  # fmt: skip
    try:
        yield cluster
    finally:
        cluster.close(shutdown=False)


@contextmanager
def cluster_for(settings: DaskSettings) -> Iterator[Cluster]:
    """The named cluster (left running), or a new adaptive one shut down on exit, also on error."""
    if settings.cluster_name:
        with existing_cluster(settings) as cluster:
            yield cluster
        return
    with new_cluster(settings) as cluster:
        cluster.adapt(minimum=settings.minimum, maximum=settings.maximum)
        yield cluster


def list_clusters(settings: DaskSettings) -> list[dict[str, str]]:
    """The clusters the gateway runs for this user: name, status, start time, dashboard, options."""
    with gateway(settings) as client:
        reports = client.list_clusters()
    return [{"name": r.name, "status": r.status.name, "started": f"{r.start_time:%Y-%m-%d %H:%M:%S}",
             "dashboard": r.dashboard_link or "-", "options": ", ".join(f"{k}={v}" for k, v in r.options.items())}
            for r in reports]  # fmt: skip


def stop_cluster(settings: DaskSettings, name: str) -> None:
    """Shut down a running cluster (e.g. one a crashed run left behind)."""
    with gateway(settings) as client:
        names = [c.name for c in client.list_clusters()]
        if name not in names:
            raise InputError(f"Dask Gateway cluster {name!r}: not running on {settings.address} "
                             f"(running: {', '.join(names) or 'none'})")  # fmt: skip
        client.stop_cluster(name)

"""Which Dask cluster the Dask steps use: a Dask Gateway (and the cluster to get from it) or a running scheduler."""

import os
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, SecretStr, model_validator

from eoflows.settings.base import Settings


def _local_cluster_from() -> dict[str, int]:
    """`local_cluster_from` as `EOFLOWS_LOCAL_CLUSTER_FROM` sets it (nothing when it is not set)."""
    value = os.environ.get("EOFLOWS_LOCAL_CLUSTER_FROM", "").strip()
    if not value:
        return {}
    if not value.isdigit():
        raise ValueError(f"EOFLOWS_LOCAL_CLUSTER_FROM={value!r}: expected a number of pixels (0 or more)")
    return {"local_cluster_from": int(value)}


def _config(env_config: dict[str, Any], key: str) -> Any:
    """A `gateway.*` dask setting: from DASK_GATEWAY__* variables first, then dask's loaded config files."""
    node: Any = env_config
    for part in key.split("."):  # dask treats - and _ alike: DASK_GATEWAY__PROXY_ADDRESS is proxy-address
        node = (
            next((v for k, v in node.items() if k.replace("_", "-") == part), None) if isinstance(node, dict) else None
        )
        if node is None:
            import dask.config

            return dask.config.get(key, None)
    return node


class DaskSettings(Settings):
    """Which Dask Gateway to use, how to log in, and the cluster to get from it."""

    argument_doc: ClassVar[str] = (
        "Dask Gateway to run on (a block in flows; the dask-gateway configuration and Calrissian's DASK_CLUSTER "
        "otherwise); none: in a flow, a local Dask cluster (threads for small work), alone, local threads."
    )

    address: str | None = Field(default=None, description="Gateway URL, e.g. http://traefik-dask-gateway.ns:80.")
    proxy_address: str | None = Field(
        default=None, description="Scheduler proxy (gateway://host:port); empty: the same host as the address."
    )
    public_address: str | None = Field(default=None, description="Address for dashboard links, if different.")
    auth: Literal["basic", "jupyterhub", "kerberos"] = Field(default="basic", description="Authentication type.")
    username: str | None = Field(default=None, description="User name for basic authentication.")
    password: SecretStr | None = Field(default=None, description="Password for basic authentication.")
    api_token: SecretStr | None = Field(default=None, description="API token for JupyterHub authentication.")
    image: str | None = Field(default=None, description="Scheduler and worker image (the eoflows image).")
    worker_cores: float | None = Field(default=None, description="Cores requested per worker.")
    worker_cores_limit: float | None = Field(default=None, description="Core limit per worker.")
    worker_memory: str | None = Field(default=None, description="Memory per worker, e.g. '4 G'.")
    options: dict[str, Any] = Field(default_factory=dict, description="Other cluster options the gateway offers.")
    minimum: int = Field(default=1, ge=0, description="Adaptive scaling: fewest workers.")
    maximum: int = Field(default=4, ge=1, description="Adaptive scaling: most workers.")
    cluster_name: str | None = Field(
        default=None, description="Use this existing cluster (neither created nor shut down by eoflows)."
    )
    scheduler_address: str | None = Field(
        default=None,
        description="Instead of a gateway: the scheduler of a running Dask cluster, e.g. tcp://10.0.0.5:8786 "
        "(neither created nor shut down by eoflows).",
    )
    request_timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the gateway to answer a request (never hangs)."
    )
    local_cluster_from: int = Field(
        default=16_000_000,
        ge=0,
        description="With no cluster configured: a flow starts a local Dask cluster for a step of at least this "
        "many output pixels; smaller work runs on the flow's own threads (a cluster takes seconds to start). "
        "0: always a local cluster.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.password is not None and self.auth != "basic":
            raise ValueError(f"Cannot specify `password` with auth {self.auth!r} (it is for basic authentication)")
        if self.api_token is not None and self.auth != "jupyterhub":
            raise ValueError(f"Cannot specify `api_token` with auth {self.auth!r} (it is for jupyterhub)")
        if self.minimum > self.maximum:
            raise ValueError(f"Cannot specify `minimum` ({self.minimum}) above `maximum` ({self.maximum})")
        if self.scheduler_address and self.address:
            raise ValueError(
                f"Cannot specify `scheduler_address` ({self.scheduler_address!r}) with the gateway `address` "
                f"({self.address!r}): name one Dask cluster"
            )
        if self.cluster_name and not self.address:
            raise ValueError(f"Cannot specify `cluster_name` ({self.cluster_name!r}) without the gateway `address`")
        return self

    @property
    def enabled(self) -> bool:
        """True when a gateway or a running cluster is configured (otherwise flows use a local Dask cluster)."""
        return bool(self.address or self.scheduler_address)

    @property
    def existing(self) -> bool:
        """True when the settings name a running cluster, which eoflows neither creates nor shuts down."""
        return bool(self.cluster_name or self.scheduler_address)

    def cluster_options(self) -> dict[str, Any]:
        """The cluster options to request (only those set)."""
        named = {"image": self.image, "worker_cores": self.worker_cores,
                 "worker_cores_limit": self.worker_cores_limit, "worker_memory": self.worker_memory}  # fmt: skip
        return {**{k: v for k, v in named.items() if v is not None}, **self.options}

    @classmethod
    def from_env(cls) -> Self:
        """Read the settings from the environment: a running cluster's scheduler, else a gateway.

        Dask's own `DASK_SCHEDULER_ADDRESS` (the `scheduler-address` setting) wins; otherwise the dask-gateway
        configuration and Calrissian's variables (DASK_CLUSTER). `EOFLOWS_LOCAL_CLUSTER_FROM` sets
        `local_cluster_from`.
        """
        import dask.config  # dask itself only when the settings are read

        local = _local_cluster_from()
        scheduler = _config(dask.config.collect_env(os.environ), "scheduler-address")
        if scheduler:
            return cls(scheduler_address=scheduler, **local)
        env = dask.config.collect_env(os.environ).get("gateway", {})
        env = {"gateway": env} if env else {}
        kwargs = _config(env, "gateway.auth.kwargs") or {}
        options = dict(_config(env, "gateway.cluster.options") or {})
        named = {
            k: options.pop(k) for k in ("image", "worker_cores", "worker_cores_limit", "worker_memory") if k in options
        }
        auth = _config(env, "gateway.auth.type") or "basic"
        return cls(
            address=_config(env, "gateway.address") or os.environ.get("DASK_GATEWAY_URL") or None,
            proxy_address=_config(env, "gateway.proxy-address"),
            public_address=_config(env, "gateway.public-address"),
            auth=auth if auth in ("basic", "jupyterhub", "kerberos") else "basic",
            username=kwargs.get("username"),
            password=SecretStr(str(kwargs["password"])) if kwargs.get("password") else None,
            api_token=SecretStr(str(kwargs["api_token"])) if kwargs.get("api_token") else None,
            options=options,
            cluster_name=os.environ.get("DASK_CLUSTER") or os.environ.get("DASK_GATEWAY_CLUSTER") or None,
            **named,
            **local,
        )

    def describe(self) -> str:
        """A log-safe one-line description (no secret)."""
        if self.scheduler_address:
            return f"the running Dask cluster at {self.scheduler_address}"
        where = f"cluster {self.cluster_name} on " if self.cluster_name else ""
        return f"{where}Dask Gateway {self.address} ({self.auth} auth)" if self.enabled else "a local Dask cluster"

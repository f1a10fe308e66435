"""Connection settings of the steps (S3 storage, Dask), as plain pydantic models: no Prefect needed to read them.

A step reads its settings from the environment (`S3Settings.from_env()`: the standard AWS_* variables;
`DaskSettings.from_env()`: the dask-gateway configuration, Calrissian's DASK_CLUSTER, DASK_SCHEDULER_ADDRESS), and
a flow from a saved Prefect block: each settings class names its block class (`block`, in `blocks/`), a subclass
with the same fields that Prefect saves and the UI edits. Step commands (what CWL tools run) so start without
importing Prefect.

```python
from eoflows.settings import S3Settings

S3Settings.from_env().s3fs_options()
```
"""

import importlib
import math
import os
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, model_validator

if TYPE_CHECKING:
    from prefect.blocks.core import Block


class Settings(BaseModel):
    """Settings a step reads from the environment, or a flow from the saved block of class `block`."""

    #: "module:class" of the Prefect block with these fields (imported only by flows and deployments).
    block: ClassVar[str] = ""
    #: Field -> the environment variables it is read from, first found wins (CWL tools receive them too).
    environment: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Fields that are credentials: kept out of logs and exported documents (CWL: `cwltool:Secrets`).
    credentials: ClassVar[tuple[str, ...]] = ()
    #: The doc of a step parameter of this type that the step leaves undocumented (`eoflows.package`).
    argument_doc: ClassVar[str] = ""


def block_class(cls: type[Settings]) -> "type[Block]":
    """The Prefect block class of settings class `cls` (imports Prefect)."""
    module, name = cls.block.split(":")
    return getattr(importlib.import_module(module), name)


class S3Settings(Settings):
    """Where and how to reach an S3 (or S3-compatible) object store."""

    block: ClassVar[str] = "blocks.s3:S3Storage"
    argument_doc: ClassVar[str] = (
        "S3 endpoint and credentials (a block in flows, AWS_* environment variables otherwise)."
    )

    endpoint_url: str | None = Field(
        default=None, description="S3 endpoint, e.g. http://minio:9000; empty for AWS itself."
    )
    access_key_id: SecretStr | None = Field(
        default=None,
        description="Access key id; empty to use the usual AWS credential chain (or anonymous). Kept secret "
        "like the key: a run that is given this block never shows it (UI, logs, run parameters).",
    )
    secret_access_key: SecretStr | None = Field(default=None, description="Secret access key.")
    region_name: str | None = Field(default=None, description="Region, e.g. eu-central-1; empty for the default.")
    anonymous: bool = Field(default=False, description="Read public buckets without signing requests.")
    public_url: str | None = Field(
        default=None,
        description="Base URL under which a browser opens this store's objects, path style (e.g. "
        "https://s3.eu-central-1.amazonaws.com or https://minio.example.org): the run's products artifact links "
        "to https://<base>/<bucket>/<key>; empty: it shows the s3:// URIs as text.",
    )
    connect_timeout: float = Field(default=5.0, gt=0, description="Seconds to wait for a connection.")
    read_timeout: float = Field(default=10.0, gt=0, description="Seconds to wait for an answer once connected.")
    attempts: int = Field(
        default=2,
        ge=1,
        le=10,
        description="Tries of a request (botocore) and of each failed call (s3fs): a stalled endpoint fails "
        "after about attempts x attempts x read_timeout seconds (40 s by default), never hangs.",
    )

    #: Field -> the standard AWS environment variables it is read from, first found wins. CWL tools receive
    #: these variables too (the first of each), from inputs named after them in lower case.
    environment: ClassVar[dict[str, tuple[str, ...]]] = {
        "access_key_id": ("AWS_ACCESS_KEY_ID",),
        "secret_access_key": ("AWS_SECRET_ACCESS_KEY",),
        "endpoint_url": ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        "region_name": ("AWS_REGION", "AWS_DEFAULT_REGION"),
    }

    #: Fields that are credentials: kept out of logs and exported documents (CWL: `cwltool:Secrets`).
    credentials: ClassVar[tuple[str, ...]] = ("access_key_id", "secret_access_key")

    @classmethod
    def from_env(cls) -> Self:
        """Read the settings from the standard AWS_* environment variables."""
        found = {field: next((os.environ[n] for n in names if os.environ.get(n)), None)
                 for field, names in cls.environment.items()}  # fmt: skip
        return cls(**{k: v for k, v in found.items() if v is not None})

    def s3fs_options(self) -> dict[str, Any]:
        """Keyword arguments for `s3fs.S3FileSystem` (and fsspec/xarray/zarr `storage_options`)."""
        options: dict[str, Any] = {"anon": True} if self.anonymous else {}
        if self.access_key_id and not self.anonymous:
            options["key"] = _plain(self.access_key_id)
            options["secret"] = _plain(self.secret_access_key)
        if self.endpoint_url:
            options["endpoint_url"] = self.endpoint_url
        if self.region_name:
            options["client_kwargs"] = {"region_name": self.region_name}
        options["config_kwargs"] = {
            "connect_timeout": self.connect_timeout,
            "read_timeout": self.read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": self.attempts},
        }
        return options

    def gdal_session(self) -> dict[str, Any]:
        """Keyword arguments for `rasterio.session.AWSSession`: GDAL's `/vsis3/` driver on the same store."""
        endpoint = urlsplit(self.endpoint_url) if self.endpoint_url else None
        keys = self.access_key_id and not self.anonymous
        return {
            "aws_unsigned": self.anonymous,
            "aws_access_key_id": _plain(self.access_key_id) if keys else None,
            "aws_secret_access_key": _plain(self.secret_access_key) if keys else None,
            "region_name": self.region_name,
            "endpoint_url": endpoint.netloc if endpoint else None,
        }

    def gdal_options(self) -> dict[str, str]:
        """GDAL configuration options (`rasterio.Env`) of `/vsis3/` reads beside the session: protocol, timeouts."""
        options = {
            "GDAL_HTTP_CONNECTTIMEOUT": str(math.ceil(self.connect_timeout)),
            "GDAL_HTTP_LOW_SPEED_TIME": str(math.ceil(self.read_timeout)),  # no byte for that long: a stalled read
            "GDAL_HTTP_LOW_SPEED_LIMIT": "1",
            "GDAL_HTTP_MAX_RETRY": str(self.attempts - 1),
        }
        if self.endpoint_url:  # path style on the endpoint's own protocol, as s3fs addresses a custom endpoint
            https = urlsplit(self.endpoint_url).scheme == "https"
            options |= {"AWS_HTTPS": "YES" if https else "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}
        return options

    def browser_url(self, uri: str) -> str | None:
        """The https URL of the object at ``s3://`` `uri` through `public_url`, None without one."""
        if not self.public_url or not uri.startswith("s3://"):
            return None
        return f"{self.public_url.rstrip('/')}/{uri.removeprefix('s3://')}"

    def describe(self) -> str:
        """A log-safe one-line description (no credential)."""
        who = "anonymous" if self.anonymous else ("a key" if self.access_key_id else "the AWS credential chain")
        return f"S3 at {self.endpoint_url or 'AWS'} ({who})"


def _plain(value: SecretStr | str | None) -> str | None:
    """The value of a secret field (also when set unvalidated, as `model_copy(update=...)` does)."""
    return value.get_secret_value() if isinstance(value, SecretStr) else value


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

    block: ClassVar[str] = "blocks.dask_gateway:DaskGatewaySettings"
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

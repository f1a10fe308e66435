"""Where and how to reach an S3 (or S3-compatible) object store: the standard AWS_* variables, or a block."""

import math
import os
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr

from eoflows.settings.base import Settings


class S3Settings(Settings):
    """Where and how to reach an S3 (or S3-compatible) object store."""

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

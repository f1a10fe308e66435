"""S3 connection settings as a Prefect block, or from the standard AWS environment variables.

```python
from blocks.s3 import S3Storage

S3Storage(endpoint_url="http://minio:9000", access_key_id="eo", secret_access_key="...").save("minio")
# then: prefect deployment run 's2-indices/local' -p storage=minio
```
Without a block, `S3Storage.from_env()` reads ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``) and ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``).
"""

import os
from typing import Any, ClassVar

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class S3Storage(Block):
    """Where and how to reach an S3 (or S3-compatible) object store."""

    _block_type_name = "eoflows S3 storage"
    _block_type_slug = "eoflows-s3-storage"
    _description = "Endpoint and credentials of an S3-compatible object store."

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
    def from_env(cls) -> "S3Storage":
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

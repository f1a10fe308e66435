"""S3 connection settings as a Prefect block (the fields and their reading: `eoflows.settings.S3Settings`).

```python
from blocks.s3 import S3Block

S3Block(endpoint_url="http://minio:9000", access_key_id="eo", secret_access_key="...").save("minio")
# then: prefect deployment run 's2-indices/local' -p storage=minio
```
Without a block, `S3Block.from_env()` reads ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL_S3`` (or ``AWS_ENDPOINT_URL``) and ``AWS_REGION`` (or ``AWS_DEFAULT_REGION``).
"""

from prefect.blocks.core import Block

from eoflows.settings import S3Settings


class S3Block(Block, S3Settings):
    """Where and how to reach an S3 (or S3-compatible) object store."""

    _block_type_name = "eoflows S3 storage"
    _block_type_slug = "eoflows-s3-storage"
    _description = "Endpoint and credentials of an S3-compatible object store."

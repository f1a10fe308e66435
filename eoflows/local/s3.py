"""A real S3 server on 127.0.0.1 for the demo and the tests: moto's server in its own process, with auth.

Requests must be signed with the key this module creates (a wrong key or secret is refused, as on AWS).
Needs the `dev` extra (moto[server]).

```python
with local_s3(buckets=["results"]) as s3:
    s3.storage()   # an S3Block block for it; s3.env() gives the AWS_* variables
```
"""

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from blocks.s3 import S3Block
from eoflows.processes import free_port, http_process

ALLOW_ALL = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:*", "iam:*"], "Resource": "*"}]}


@dataclass(frozen=True)
class LocalS3:
    """Endpoint and the one valid key of a running local S3 server."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str

    def storage(self) -> S3Block:
        """An `S3Block` block for this server."""
        return S3Block(
            endpoint_url=self.endpoint_url,
            access_key_id=self.access_key_id,
            secret_access_key=SecretStr(self.secret_access_key),
        )

    def client(self, service: str = "s3"):
        """A boto3 client of this server with the valid key (its IAM allows creating restricted users)."""
        import boto3  # dev extra

        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )

    def env(self) -> dict[str, str]:
        """The standard AWS environment variables for this server."""
        return {
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


@contextmanager
def local_s3(buckets: tuple[str, ...] | list[str] = ()) -> Iterator[LocalS3]:
    """Start moto's S3 server on a free port with request signing enforced; stop it on exit."""
    import boto3  # dev extra

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "3"}  # the 3 IAM calls below, then auth for all
    server = Path(sys.executable).with_name("moto_server")
    with http_process([str(server), "-H", "127.0.0.1", "-p", str(port)], f"{url}/moto-api/", "moto server",
                      env=env):  # fmt: skip
        iam = boto3.client(
            "iam",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="bootstrap",
            aws_secret_access_key="bootstrap",
        )
        iam.create_user(UserName="eoflows")
        iam.put_user_policy(UserName="eoflows", PolicyName="s3", PolicyDocument=json.dumps(ALLOW_ALL))
        key = iam.create_access_key(UserName="eoflows")["AccessKey"]
        s3 = LocalS3(url, key["AccessKeyId"], key["SecretAccessKey"])
        client = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=s3.secret_access_key,
            region_name="us-east-1",
        )
        for bucket in buckets:
            client.create_bucket(Bucket=bucket)
        yield s3

"""A real Dask Gateway on 127.0.0.1 for the tests and the benchmark (dask-gateway-server, local backend).

Schedulers and workers are processes of this machine, started with this environment's `dask`, so they import
eoflows like the image would. The gateway offers the options of the usual Kubernetes deployments (image,
worker_cores, worker_cores_limit, worker_memory) and asks for a password. Needs the `dev` extra.

```python
with local_gateway() as gw:
    gw.settings()        # a DaskBlock block for it
```
"""

import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from blocks.dask_cluster import DaskBlock
from eoflows.processes import free_port, http_process

CONFIG = """
from dask_gateway_server.options import Float, Options, String

c.DaskGateway.address = "127.0.0.1:{api}"
c.Proxy.address = "127.0.0.1:{web}"
c.Proxy.tcp_address = "127.0.0.1:{tcp}"
c.DaskGateway.backend_class = "dask_gateway_server.backends.local.UnsafeLocalBackend"
c.DaskGateway.authenticator_class = "dask_gateway_server.auth.SimpleAuthenticator"
c.SimpleAuthenticator.password = {password!r}
c.ClusterConfig.scheduler_cmd = [{dask!r}, "scheduler"]
c.ClusterConfig.worker_cmd = [{dask!r}, "worker"]
c.ClusterConfig.idle_timeout = 600
c.LocalBackend.inherited_environment = {inherited!r}


def options_handler(options):
    return {{"worker_cores": max(1, int(options.worker_cores)), "worker_memory": options.worker_memory}}


c.Backend.cluster_options = Options(
    String("image", "eoflows", label="Image (one image for all: schedulers, workers, CWL tools)"),
    Float("worker_cores", 1, min=0.5, max=2, label="Worker cores (request)"),
    Float("worker_cores_limit", 1, min=0.5, max=2, label="Worker cores (limit)"),
    String("worker_memory", "1 G", label="Worker memory"),
    handler=options_handler,
)
"""
INHERITED = ["PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "HOME"]


@dataclass(frozen=True)
class LocalGateway:
    """Addresses and password of a running local gateway."""

    address: str
    proxy_address: str
    password: str

    def settings(self, **changes: object) -> DaskBlock:
        """A `DaskBlock` block for this gateway (with `changes` applied)."""
        return DaskBlock(
            address=self.address,
            proxy_address=self.proxy_address,
            auth="basic",
            username="eoflows",
            password=SecretStr(self.password),
            **changes,
        )


@contextmanager
def local_gateway(password: str = "eoflows-test", env: dict[str, str] | None = None) -> Iterator[LocalGateway]:
    """Start dask-gateway-server; clusters' processes inherit `env` (e.g. PREFECT_API_URL). Stop it on exit."""
    api, web, tcp = free_port(), free_port(), free_port()
    dask = str(Path(sys.executable).with_name("dask"))
    extra = dict(env or {})
    with tempfile.TemporaryDirectory(prefix="eoflows-gateway-") as folder:
        config = Path(folder) / "gateway_config.py"
        config.write_text(CONFIG.format(api=api, web=web, tcp=tcp, password=password, dask=dask,
                                        inherited=INHERITED + sorted(extra)))  # fmt: skip
        server = Path(sys.executable).with_name("dask-gateway-server")
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        env_ = {**os.environ, **extra, "PATH": path}
        address = f"http://127.0.0.1:{web}"
        with http_process([str(server), "-f", str(config)], f"{address}/api/health", "dask-gateway-server",
                          stop_timeout=15, cwd=folder, env=env_):  # fmt: skip
            yield LocalGateway(address, f"gateway://127.0.0.1:{tcp}", password)

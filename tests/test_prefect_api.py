"""The Prefect API of a command: a temporary server started before the flows import, used once, always stopped."""

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from eoflows.cli import reports_to_prefect
from eoflows.prefect_api import prefect_api, starting_early


def servers() -> list[psutil.Process]:
    """The temporary Prefect servers this process has started."""
    return [p for p in psutil.Process().children() if "prefect.server.api.server:create_app" in " ".join(p.cmdline())]


@pytest.fixture
def no_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No API configured, neither in the environment nor in the settings; a Prefect home of the test's own."""
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))  # the temporary server's database
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        yield


def test_the_server_started_early_is_the_one_the_run_reports_to(no_api: None) -> None:
    with starting_early() as server:
        (early,) = servers()  # started, not waited for: the command imports its flows meanwhile
        assert server is not None and server.process.pid == early.pid
        with prefect_api(server) as url:
            assert servers() == [early]  # no second server
            with urllib.request.urlopen(f"{url}/health", timeout=5) as answer:
                assert answer.status == 200
        assert early.is_running()
    assert servers() == [] and not early.is_running()


def test_an_api_in_the_settings_stops_the_early_server_unused(no_api: None) -> None:
    with starting_early() as server:
        (early,) = servers()
        with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}), prefect_api(server) as url:
            assert url == "http://127.0.0.1:9/api"
            early.wait(10)  # stopped at once, not at the end of the command
            assert servers() == []


def test_an_api_in_the_environment_starts_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    with starting_early() as server:
        assert server is None and servers() == []


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        (["run", "s2-indices", "--item", "x.json"], True),
        (["cwl", "run", "package.cwl", "job.yml"], True),
        (["run", "s2-indices", "--help"], False),
        (["run"], False),
        (["step", "s2-indices", "compute", "--input", "in"], False),
        (["cwl", "export", "s2-indices"], False),
    ],
)
def test_only_commands_that_run_a_flow_start_a_server(tokens: list[str], expected: bool) -> None:
    assert reports_to_prefect(tokens) is expected

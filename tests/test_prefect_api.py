"""The Prefect API of a command: a temporary server started before the flows import, used once, always stopped."""

import http.server
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from eoflows.cli import reports_to_prefect
from eoflows.prefect_api import LOGS_REFUSED, flush_run_reports, prefect_api, starting_early
from eoflows.prefect_watch import LOST_AFTER_S
from eoflows.processes import wait_answering


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


def test_a_run_whose_api_dies_stops_within_seconds_in_one_line(no_api: None, sample_item: Path, tmp_path: Path) -> None:
    """An API of its own (PREFECT_API_URL) is killed and not restarted as the run begins: the run stops, leaves
    nothing behind, and its last line says what happened, instead of retrying the dead API for many minutes."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with starting_early() as server:
        assert server is not None
        wait_answering(server.process, f"{server.url}/health", "prefect", timeout=120)
        env = {**os.environ, "PREFECT_API_URL": server.url, "TMPDIR": str(tmp)}
        run = subprocess.Popen([str(Path(sys.executable).with_name("eoflows")), "run", "s2-indices", "--item",
                                str(sample_item), "--destination", str(tmp_path / "dest"), "--products", "ndvi"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for line in run.stderr:
            if "Beginning flow run" in line:
                break
        server.process.kill()
        try:
            err = run.communicate(timeout=LOST_AFTER_S + 45)[1]
        except subprocess.TimeoutExpired:
            run.kill()
            raise AssertionError(f"still running {LOST_AFTER_S + 45:g} s after its API died") from None
    assert run.returncode == 1, err
    assert re.fullmatch(rf"eoflows: error: Prefect API '{server.url}': no answer for 15 s \(.*\); the run was stopped, "
                        "its unpublished work removed", err.strip().splitlines()[-1]), err  # fmt: skip
    assert not (tmp_path / "dest").exists() and list(tmp.glob("eoflows-*")) == []


class _Refusing(http.server.BaseHTTPRequestHandler):
    """An API that fails every request with a 500, as a server whose disk is full does with logs."""

    def _refuse(self) -> None:
        self.send_error(500, "disk full")

    do_GET = do_POST = _refuse

    def log_message(self, *args: object) -> None:
        pass


def test_logs_the_api_refuses_are_said_in_one_line(capsys: pytest.CaptureFixture) -> None:
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_CLIENT_MAX_RETRIES

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing) as stub:
        threading.Thread(target=stub.serve_forever, daemon=True).start()
        APILogWorker.drain_all()  # a worker of its own, for this API
        url = f"http://127.0.0.1:{stub.server_address[1]}/api"
        with temporary_settings({PREFECT_API_URL: url, PREFECT_CLIENT_MAX_RETRIES: 0}):
            APILogWorker.instance().send({"name": "test", "level": 20, "message": "lost", "timestamp": "now"})
            flush_run_reports()
        stub.shutdown()
    err = capsys.readouterr().err
    assert LOGS_REFUSED not in err, err
    (line,) = err.strip().splitlines()
    assert line.startswith("eoflows: warning: the Prefect API refused some of the run's logs, which are lost (")

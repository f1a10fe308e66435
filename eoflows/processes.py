"""Child processes serving HTTP: a free port, a server waited for until it answers and always stopped.

Used for the temporary Prefect API of `eoflows run` (`eoflows.prefect_api`) and the local servers of the demo
and the tests (`eoflows.local`).
"""

import ctypes
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In a child process before exec: get SIGTERM when the parent dies, even by SIGKILL (Linux; else nothing)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def started(command: list[str], stop_timeout: float = 10.0, log: Path | None = None,
            **popen: Any) -> Iterator[subprocess.Popen]:  # fmt: skip
    """Start `command` and yield the process at once; terminate it (then kill) on exit.

    Its output goes to `log` when given, else nowhere. The process also ends when this one dies without a
    chance to stop it (SIGKILL): see `die_with_parent`.
    """
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - open for the process's lifetime
    popen.setdefault("preexec_fn", die_with_parent)  # a killed parent leaves no server behind
    process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT if log else subprocess.DEVNULL, **popen)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
        if log:
            out.close()


def wait_answering(process: subprocess.Popen, health_url: str, name: str, timeout: float = 30.0,
                   log: Path | None = None) -> None:  # fmt: skip
    """Wait until `health_url` answers; an error (with the tail of `log`) if `process` exits or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(health_url, timeout=1).close()
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                state = "exited" if process.poll() is not None else f"did not answer within {timeout:g} s"
                tail = f": {log.read_text()[-2000:]}" if log else ""
                raise RuntimeError(f"{name} at {health_url} {state}{tail}") from None
            time.sleep(0.1)


@contextmanager
def http_process(command: list[str], health_url: str, name: str, timeout: float = 30.0, stop_timeout: float = 10.0,
                 log: Path | None = None, **popen: Any) -> Iterator[subprocess.Popen]:  # fmt: skip
    """Start `command`, wait until `health_url` answers, yield the process; terminate it (then kill) on exit.

    Its output goes to `log` when given (its tail is in the error if it does not start), else nowhere.
    """
    with started(command, stop_timeout, log, **popen) as process:
        wait_answering(process, health_url, name, timeout, log)
        yield process

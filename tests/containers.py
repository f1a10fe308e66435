"""The project's Docker image for tests: built by image/build.sh (the one build path), once per test run.

`built_image()` returns the tag of the image of this checkout, built (or found built with nothing changed) the
first time a test of the run asks; pytest-xdist workers share the result through a file under a lock, so a run
builds once. `docker_available()` skips a test when no Docker engine answers, and fails it under CI (`CI=true`),
where the image must be built and tested.
"""

import atexit
import fcntl
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD = ROOT / "image" / "build.sh"
#: The first build on a fresh machine: debootstrap, the wheels, the image (minutes); then seconds.
BUILD_TIMEOUT = 1800


@functools.cache
def docker_info() -> subprocess.CompletedProcess | None:
    """`docker info`, or None when there is no docker client."""
    try:
        return subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None


def docker_available() -> None:
    """Skip the calling test (one-line reason) when no Docker engine answers; under CI, fail it instead."""
    info = docker_info()
    if info is not None and info.returncode == 0:
        return
    reason = "no Docker engine answers (docker info)"
    if os.environ.get("CI") == "true":
        detail = "" if info is None else f": {(info.stderr or info.stdout).strip()[-500:]}"
        pytest.fail(f"{reason}, and CI must build and test the image{detail}")
    pytest.skip(reason)


def build(**more: str) -> subprocess.CompletedProcess:
    """Run image/build.sh (the wheels are downloaded by this Python's pip), with `more` environment variables
    (EXTRA, EOFLOWS_IMAGE); its tag is the last line of stdout."""
    env = {**os.environ, "PYTHON": sys.executable, **more}
    return subprocess.run([str(BUILD)], capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT)


def tag_of(done: subprocess.CompletedProcess) -> str:
    """The tag a successful image/build.sh printed; a test failure with its log's end otherwise."""
    if done.returncode:
        pytest.fail(f"image/build.sh failed ({done.returncode}):\n{done.stderr[-6000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created) while the block runs."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def built_image() -> str:
    """The tag of this checkout's image, built once per test run (the first caller builds, the others wait)."""
    docker_available()
    return tag_of(first_build())


@functools.cache
def first_build() -> subprocess.CompletedProcess:
    """image/build.sh's result for this test run: run by the first caller, read by the others (pytest-xdist)."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # the same in every worker of one run
    if run is None:
        return build()
    result = Path(tempfile.gettempdir()) / "eoflows-image-build.json"  # the last run's
    with locked(result.with_suffix(".lock")):
        known = json.loads(result.read_text()) if result.exists() else {}
        if known.get("run") != run:
            done = build()
            known = {"run": run, "returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}
            result.write_text(json.dumps(known))
    return subprocess.CompletedProcess([str(BUILD)], known["returncode"], known["stdout"], known["stderr"])


#: The build started in the background when the tests that need the image are collected (tests/conftest.py).
BACKGROUND: list[subprocess.Popen] = []


def start_image_build() -> None:
    """Start image/build.sh in the background (its output in eoflows-image-build.log), in a run without workers:
    `built_image()` then waits for it (the build's lock) and finds everything built. Stopped at exit if still
    running (no test waited for it)."""
    info = docker_info()
    if BACKGROUND or info is None or info.returncode:
        return
    with (Path(tempfile.gettempdir()) / "eoflows-image-build.log").open("w") as log:
        process = subprocess.Popen([str(BUILD)], stdout=log, stderr=log, env={**os.environ, "PYTHON": sys.executable},
                                   start_new_session=True)  # fmt: skip
    BACKGROUND.append(process)

    def stop() -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)

    atexit.register(stop)

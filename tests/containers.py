"""The project's Docker image for tests, and the Debian trixie root GDAL reads in, made by image/ (the one path).

`built_image()` returns the tag of the image of this checkout, built (or found built with nothing changed) the
first time a test of the run asks; pytest-xdist workers share the result through a file under a lock, so a run
builds once. `docker_available()` skips a test when no Docker engine answers, and fails it under CI (`CI=true`),
where the image must be built and tested.

Both take minutes on a fresh machine: the tests that need them (fixtures `image` and `trixie`, tests/conftest.py)
run last, while `start_warm_ups` makes them in the background.
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
import threading
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


def image_cache() -> Path:
    """Where image/ keeps what it makes (EOFLOWS_IMAGE_CACHE, as image/build.sh sees it)."""
    home = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("EOFLOWS_IMAGE_CACHE", str(home / "eoflows" / "image")))


def setup(command: list[str], **env: str) -> str:
    """The last line `command` (a script of image/) prints; the test fails with its log's end if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **env}, timeout=BUILD_TIMEOUT)
    if done.returncode:
        pytest.fail(f"{' '.join(command[:3])} failed ({done.returncode}):\n{done.stderr[-4000:]}", pytrace=False)
    return done.stdout.strip().splitlines()[-1]


def trixie_root() -> tuple[str, Path]:
    """The Debian trixie base image and the folder of `TRIXIE_WHEELS` installed for its python3 (made once, cached).

    For tests/test_gdal_reads.py: Debian's own GDAL there is 3.10.3, and rasterio >= 1.5 (wheels with GDAL 3.12)
    needs Python >= 3.12, which trixie's python3 (3.13) is.
    """
    docker_available()
    cache = image_cache()
    cache.mkdir(parents=True, exist_ok=True)
    with locked(cache / "trixie.lock"):  # (a warm-up may be making it)
        base = setup([str(ROOT / "image" / "base.sh")], EOFLOWS_BASE_SUITE="trixie")
        site = setup(
            [sys.executable, str(ROOT / "image" / "wheelhouse.py"), "--site", str(cache), base, *TRIXIE_WHEELS]
        )
    return base, Path(site)


#: What the trixie root reads with: rasterio wheels with GDAL 3.12, the odc-stac of the issue.
TRIXIE_WHEELS = ["rasterio==1.5.2", "odc-stac==0.5.3"]

#: What the tests may need made before they run (minutes on a fresh machine), by the fixture they get it with
#: (tests/conftest.py).
WARM_UPS = {"image": built_image, "trixie": trixie_root}


def warm_ups(item: pytest.Item) -> list[str]:
    """The warm-ups `item` uses (through their fixtures)."""
    return [name for name in WARM_UPS if name in getattr(item, "fixturenames", ())]


def start_warm_ups(names: list[str]) -> None:
    """Make `names` (`WARM_UPS`) in the background, each in a process of its own (`python -m tests.containers
    NAME`, its output in eoflows-warm-up-NAME.log; their debootstraps take turns, image/base.sh), while the tests
    that need nothing run: a test that needs one then waits for it (its lock) and finds it made. Stopped at exit if
    still running."""
    info = docker_info()
    if info is None or info.returncode:
        return
    for name in names:
        with (Path(tempfile.gettempdir()) / f"eoflows-warm-up-{name}.log").open("w") as log:
            process = subprocess.Popen([sys.executable, "-m", "tests.containers", name], stdout=log, stderr=log,
                                       cwd=ROOT, start_new_session=True)  # fmt: skip
        atexit.register(_stop, process)
        threading.Thread(target=process.wait, name=f"eoflows-warm-up-{name}", daemon=True).start()  # (no zombie)


def _stop(process: subprocess.Popen) -> None:
    """Stop a warm-up still running (its process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


if __name__ == "__main__":  # a warm-up: of the workers' test run (their PYTEST_XDIST_TESTRUNUID, `first_build`)
    print(f"{sys.argv[1]}: {WARM_UPS[sys.argv[1]]()}", file=sys.stderr)

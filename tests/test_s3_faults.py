"""S3 faults, injected by a TCP proxy in front of the moto server: stalls fail in bounded time, SIGTERM ends a
stalled run quickly, a cut upload leaves nothing the next attempt does not clear."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
import s3fs

from blocks.s3 import S3Block
from eoflows.errors import StageError
from eoflows.local.s3 import LocalS3
from eoflows.runtime import Deadline
from tasks.data.run_folders import CLAIM, claim_run_folder
from tasks.data.staging import EarlyUploads
from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.fault_proxy import FaultProxy, fault_proxy
from tests.steps import alone

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))


@pytest.fixture(scope="module")
def results(sample_item: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compute output folder (read only)."""
    base = tmp_path_factory.mktemp("results")
    return compute_indices(stage_in_eopf(str(sample_item), base / "staged"), base / "out", alone(), products=["ndvi"])


@pytest.fixture
def proxy(s3: LocalS3) -> Iterator[FaultProxy]:
    with fault_proxy(urlparse(s3.endpoint_url).port) as running:
        yield running


def keys(s3: LocalS3, prefix: str) -> set[str]:
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options(), skip_instance_cache=True)
    return {p.removeprefix(prefix.removeprefix("s3://")) for p in fs.find(prefix)}


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.Popen(
        [EOFLOWS, *args],
        env={**clean, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )  # fmt: skip (a process group, as in a terminal)


def stage_out(results: Path, destination: str, run_id: str, env: dict[str, str]) -> subprocess.Popen:
    return start(env, "step", "s2-indices", "stage-out", "--input", str(results), "--destination", destination,
                 "--run-id", run_id)  # fmt: skip


def test_a_stalled_endpoint_fails_after_a_bounded_number_of_tries(s3: LocalS3, proxy: FaultProxy) -> None:
    proxy.mode = "stall"
    storage = s3.storage().model_copy(
        update={"endpoint_url": proxy.url, "read_timeout": 0.5, "connect_timeout": 0.5, "attempts": 2}
    )
    with pytest.raises(StageError, match=r"no answer in time about bucket 'eoflows-results' \(\w*TimeoutError"):
        with claim_run_folder("s3://eoflows-results/stalled", "r1", storage, "t", Deadline()):
            pass
    assert 1 <= proxy.connections <= 4  # 2 calls (s3fs) x 2 requests (botocore), not 5 x 5 as by default


def test_a_failed_early_upload_stops_the_step_at_its_next_put(s3: LocalS3, proxy: FaultProxy, tmp_path: Path) -> None:
    """The endpoint stalls after the claim: the first upload times out, and the next put fails with it (the step
    stops) instead of each file waiting out its own timeout."""
    storage = s3.storage().model_copy(
        update={"endpoint_url": proxy.url, "read_timeout": 0.5, "connect_timeout": 0.5, "attempts": 1}
    )
    with pytest.raises(StageError, match=r"^destination 's3://eoflows-results/early/r1': no answer in time"):
        with claim_run_folder("s3://eoflows-results/early", "r1", storage, "t", Deadline()) as folder:
            proxy.mode = "stall"
            uploads = EarlyUploads(folder, tmp_path, Deadline(), budget=1)  # one file in flight at a time
            for i in range(5):
                uploads.put(tmp_path / f"chunk-{i}", b"x")
    assert proxy.faulted.is_set()


def test_a_run_stalled_mid_upload_fails_in_one_line_within_seconds(
    s3: LocalS3, proxy: FaultProxy, sample_item: Path
) -> None:
    """No stop asked: the endpoint hangs halfway through the uploads made while computing; each S3 call gives up
    after its timeout (here 1 s, one try, as the storage block says), and so does the run, in one line."""
    proxy.mode, proxy.after = "stall", 100_000
    settings = s3.storage().model_copy(
        update={"endpoint_url": proxy.url, "read_timeout": 1.0, "connect_timeout": 1.0, "attempts": 1}
    )
    S3Block(**dict(settings)).save("stalling-s3", overwrite=True)
    running = start({}, "run", "s2-indices", "--item", str(sample_item), "--destination",
                    "s3://eoflows-results/stalled-run", "--run-id", "r1", "--products", "ndvi", "--storage",
                    "stalling-s3")  # fmt: skip
    assert proxy.faulted.wait(120), "the run never reached S3"
    try:
        _, err = running.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        running.kill()
        _, err = running.communicate()
        raise AssertionError(f"still running 30 s after S3 stalled: {err}") from None
    assert running.returncode == 1, err
    last = err.strip().splitlines()[-1]
    assert re.match(r"eoflows: error: destination 's3://eoflows-results/stalled-run(/r1)?': no answer in time", last)


@pytest.mark.parametrize(("command", "stop"), [("step", "SIGTERM"), ("run", "SIGTERM"), ("run", "Ctrl-C")])
def test_a_stop_ends_a_run_stalled_mid_upload_within_seconds(
    command: str, stop: str, s3: LocalS3, proxy: FaultProxy, results: Path, sample_item: Path, tmp_path: Path
) -> None:
    """The endpoint hangs halfway through the upload; SIGTERM, or Ctrl-C in a terminal (SIGINT to the whole
    process group, the run's own temporary Prefect server with it), ends the run at once, its clean-up bounded."""
    proxy.mode, proxy.after = "stall", 100_000  # the claim and some of the files go through
    env = {**s3.env(), "AWS_ENDPOINT_URL_S3": proxy.url}
    if stop == "Ctrl-C":  # no PREFECT_API_URL: a temporary server of the run's own
        env |= {"PREFECT_API_URL": "", "PREFECT_HOME": str(tmp_path / "home")}
    destination = f"s3://eoflows-results/{stop}-{command}"
    if command == "step":
        running = stage_out(results, destination, "r1", env)
    else:
        running = start(env, "run", "s2-indices", "--item", str(sample_item), "--destination", destination,
                        "--run-id", "r1", "--products", "ndvi")  # fmt: skip
    assert proxy.faulted.wait(120), "the run never reached S3"
    children = psutil.Process(running.pid).children(recursive=True)
    if stop == "Ctrl-C":
        os.killpg(running.pid, signal.SIGINT)
    else:
        running.send_signal(signal.SIGTERM)
    try:
        _, err = running.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        running.kill()
        _, err = running.communicate()
        raise AssertionError(f"still running 10 s after {stop}: {err}") from None
    assert running.returncode == 1, err
    name = "SIGINT" if stop == "Ctrl-C" else stop
    assert err.strip().splitlines()[-1] == f"eoflows: error: stopped by signal {name}", err
    assert "Traceback" not in err
    assert psutil.wait_procs(children, timeout=5)[1] == []  # the temporary server stopped after the run


def test_a_cut_upload_is_cleared_by_the_next_attempt(s3: LocalS3, proxy: FaultProxy, results: Path) -> None:
    """The connection is cut mid-upload: the attempt fails in one line, its rollback cannot reach S3 either;
    the next attempt at the same run id takes over the dead claim and publishes exactly its own files."""
    destination = "s3://eoflows-results/cut"
    proxy.mode, proxy.after = "cut", 500_000  # of about 800 kB
    env = {**s3.env(), "AWS_ENDPOINT_URL_S3": proxy.url}
    first = stage_out(results, destination, "r1", env)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 1 and proxy.faulted.is_set(), err
    assert err.strip().splitlines()[-1].startswith("eoflows: error: destination 's3://eoflows-results/cut/r1'"), err
    left = keys(s3, f"{destination}/r1")
    assert "/.eoflows-claim" in left and len(left) > 1 and "/catalog.json" not in left  # a dead attempt's files
    proxy.mode = "pass"
    second = stage_out(results, destination, "r1", env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert out.strip() == f"{destination}/r1/catalog.json"
    expected = {"/" + str(p.relative_to(results)) for p in results.rglob("*") if p.is_file()}
    assert keys(s3, f"{destination}/r1") == expected  # its own files, none of the first attempt's, no claim


def test_a_publish_stopped_by_sigterm_is_cleared_for_the_next_attempt(
    s3: LocalS3, proxy: FaultProxy, results: Path, tmp_path: Path
) -> None:
    """SIGTERM while stage-out's files are on their way, more than one batch of them, each answer late: requests
    already sent may land after the rollback, so the claim stays, marked ended; the next attempt at the same run id
    takes it over at once, removes what landed and publishes exactly its own files."""
    many = tmp_path / "results"
    shutil.copytree(results, many)
    for i in range(100):  # a few batches of uploads
        (many / "extra" / f"{i}.bin").parent.mkdir(exist_ok=True)
        (many / "extra" / f"{i}.bin").write_bytes(b"x" * 1000)
    destination = "s3://eoflows-results/stopped-publish"
    env = {**s3.env(), "AWS_ENDPOINT_URL_S3": proxy.url}
    proxy.mode, proxy.delay = "slow", 0.3  # requests arrive at once, answers late: the next batch waits for them
    first = stage_out(many, destination, "r1", env)
    while len(keys(s3, f"{destination}/r1")) < 2 and first.poll() is None:
        proxy.faulted.wait(0.1)  # (polls for the first files to land)
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=30)
    assert first.returncode == 1 and err.strip().splitlines()[-1] == "eoflows: error: stopped by signal SIGTERM", err
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options(), skip_instance_cache=True)
    assert json.loads(fs.cat_file(f"{destination}/r1/{CLAIM}"))["ended"]
    proxy.mode = "pass"
    second = stage_out(many, destination, "r1", env)
    out, err = second.communicate(timeout=120)
    assert second.returncode == 0, err
    assert "taking over from a stopped attempt" in err
    expected = {"/" + str(p.relative_to(many)) for p in many.rglob("*") if p.is_file()}
    assert keys(s3, f"{destination}/r1") == expected

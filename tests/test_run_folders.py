"""Destinations checked before any work, one writer per run folder, rollback of exactly what an attempt wrote."""

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pystac
import pytest
import s3fs
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from eoflows.errors import EoflowsError, InputError, StageError
from eoflows.local.s3 import LocalS3
from eoflows.runtime import Deadline
from flows.package_flows import s2_indices
from tasks.data.run_folders import CLAIM, _process_started, claim_run_folder
from tasks.data.stac_io import FsspecStacIO
from tasks.data.staging import stage_out
from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.steps import alone

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))


@pytest.fixture(scope="module")
def results(sample_item: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compute output folder (read only)."""
    base = tmp_path_factory.mktemp("results")
    return compute_indices(stage_in_eopf(str(sample_item), base / "staged"), base / "out", alone(), products=["ndvi"])


def task_runs_of(state) -> list:
    with get_client(sync_client=True) as client:
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))


def test_a_bad_destination_fails_before_any_step(sample_item: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    state = s2_indices(item=str(sample_item), destination=str(blocker / "below"), products=["ndvi"], return_state=True)
    assert state.is_failed() and task_runs_of(state) == []  # no stage-in, no compute
    with pytest.raises(InputError, match=rf"destination '{blocker}/below': '{blocker}' is a file, not a folder"):
        state.result()
    assert blocker.read_text() == "x"


@pytest.mark.parametrize(
    ("destination", "error", "message"),
    [
        ("http://example.org/results", InputError, "expected a local folder or an s3://bucket/prefix URL"),
        ("gs://bucket/results", InputError, "expected a local folder or an s3://bucket/prefix URL"),
        ("{tmp}/a-file", InputError, "is a file, not a folder"),
        ("{tmp}/locked/sub", StageError, r"cannot create the folder \(Operation not permitted\)"),
    ],
)
def test_local_and_unknown_destinations(destination: str, error: type, message: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    subprocess.run(["chattr", "+i", str(locked)], check=True)  # not even root may write there
    try:
        with (
            pytest.raises(error, match=message),
            claim_run_folder(destination.format(tmp=tmp_path), "r1", None, "t", Deadline()),
        ):
            pass
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "locked"] and not any(locked.iterdir())


@pytest.mark.parametrize("region", [None, "eu-west-1"])
def test_a_missing_bucket_is_named_and_never_created(s3: LocalS3, results: Path, region: str | None) -> None:
    storage = s3.storage().model_copy(update={"region_name": region})
    with pytest.raises(InputError, match="bucket 'typo-bucket' does not exist"):
        stage_out(results, "s3://typo-bucket/results", alone(), run_id="r1", storage=storage)
    assert "typo-bucket" not in {b["Name"] for b in s3.client().list_buckets()["Buckets"]}


def published(uri: str, storage=None) -> pystac.Item:
    """The item of a published catalog, every asset present."""
    (item,) = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(storage)).get_items(recursive=True)
    return item


def files(destination: str, storage) -> set[str]:
    if destination.startswith("s3://"):
        fs = s3fs.S3FileSystem(**storage.s3fs_options(), skip_instance_cache=True)
        return {p.removeprefix(destination.removeprefix("s3://")) for p in fs.find(destination)}
    return {str(p).removeprefix(destination) for p in Path(destination).rglob("*") if p.is_file()}


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_two_writers_of_one_run_folder(kind: str, s3: LocalS3, results: Path, tmp_path: Path) -> None:
    """Two stage-outs at once into one run folder: one publishes, the other is refused and touches nothing."""
    destination = str(tmp_path / "dest") if kind == "local" else f"s3://eoflows-results/race-{tmp_path.name}"
    (tmp_path / "dest").mkdir()  # a step publishes into an existing folder
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **s3.env()}
    command = [EOFLOWS, "step", "s2-indices", "stage-out", "--input", str(results), "--destination", destination,
               "--run-id", "same"]  # fmt: skip
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]  # fmt: skip
    outcomes = [(run.wait(120), *run.communicate()) for run in runs]
    assert sorted(code for code, _, _ in outcomes) == [0, 1], outcomes
    (uri,) = [out.strip() for code, out, _ in outcomes if code == 0]
    (refused,) = [err.strip().splitlines()[-1] for code, _, err in outcomes if code == 1]
    assert "another run is writing there" in refused or "already holds a published catalog" in refused, refused
    assert published(uri, s3.storage()).id.endswith("-processed")
    assert files(f"{destination}/same", s3.storage()) == files(str(results), None)  # complete, only its own, no claim


def test_a_taken_run_id_is_refused_before_any_work(sample_item: Path, tmp_path: Path) -> None:
    s2_indices(item=str(sample_item), destination=str(tmp_path), run_id="taken", products=["ndvi"])
    before = files(str(tmp_path / "taken"), None)
    state = s2_indices(item=str(sample_item), destination=str(tmp_path), run_id="taken", products=["ndvi"],
                       return_state=True)  # fmt: skip
    assert state.is_failed() and task_runs_of(state) == []
    with pytest.raises(StageError, match="already holds a published catalog"):
        state.result()
    assert files(str(tmp_path / "taken"), None) == before


def dead_claim(host: str | None = None, heartbeat: dt.datetime | None = None) -> dict:
    """The claim of an attempt that is gone: a process that has exited (or another host's, with a heartbeat)."""
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    when = (heartbeat or dt.datetime.now(dt.UTC)).isoformat()
    return {"token": "dead", "host": host or os.uname().nodename, "pid": int(gone.stdout), "process_started": 1.0,
            "claimed": when, "heartbeat": when}  # fmt: skip


@pytest.mark.parametrize("kind", ["local", "s3"])
def test_a_dead_attempts_leftovers_are_cleared(kind: str, s3: LocalS3, results: Path, tmp_path: Path) -> None:
    destination = str(tmp_path / "dest") if kind == "local" else f"s3://eoflows-results/dead-{tmp_path.name}"
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options(), skip_instance_cache=True)
    leftovers = {CLAIM: json.dumps(dead_claim()), "old.zarr/ndvi/c/9/9": "killed", "old.zarr/zarr.json": "{}"}
    for name, text in leftovers.items():
        if kind == "local":
            (tmp_path / "dest" / "run" / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "dest" / "run" / name).write_text(text)
        else:
            fs.pipe(f"{destination.removeprefix('s3://')}/run/{name}", text.encode())
    uri = stage_out(results, destination, alone(), run_id="run", storage=s3.storage())
    got = files(f"{destination}/run", s3.storage())
    assert not any("old.zarr" in p or CLAIM in p for p in got) and "/catalog.json" in got
    assert published(uri, s3.storage()).id.endswith("-processed")


def test_another_hosts_claim_is_live_until_its_lease_ends(results: Path, tmp_path: Path) -> None:
    run = tmp_path / "dest" / "run"
    run.mkdir(parents=True)
    (run / CLAIM).write_text(json.dumps(dead_claim(host="elsewhere")))  # heartbeat now: alive
    with pytest.raises(StageError, match="another run is writing there .*on elsewhere"):
        stage_out(results, str(tmp_path / "dest"), alone(), run_id="run")
    assert sorted(p.name for p in run.iterdir()) == [CLAIM]
    stale = dead_claim(host="elsewhere", heartbeat=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    (run / CLAIM).write_text(json.dumps(stale))
    assert published(stage_out(results, str(tmp_path / "dest"), alone(), run_id="run")).id.endswith("-processed")


def test_a_folder_no_run_claims_is_left_alone(results: Path, tmp_path: Path) -> None:
    mine = tmp_path / "dest" / "photos"
    mine.mkdir(parents=True)
    (mine / "holiday.jpg").write_text("precious")
    with pytest.raises(EoflowsError, match="holds files no eoflows run claims"):
        stage_out(results, str(tmp_path / "dest"), alone(), run_id="photos")
    assert [p.name for p in mine.iterdir()] == ["holiday.jpg"]


def test_claims_are_reentrant_for_one_token_and_released(tmp_path: Path) -> None:
    with claim_run_folder(str(tmp_path), "r", None, "token-1", Deadline()) as outer:
        assert (tmp_path / "r" / CLAIM).is_file() and _process_started(os.getpid()) is not None
        with claim_run_folder(str(tmp_path), "r", None, "token-1", Deadline()):
            pass
        assert (tmp_path / "r" / CLAIM).is_file()  # the inner holder does not release the outer one's claim
        with (
            pytest.raises(StageError, match="another run is writing there"),
            claim_run_folder(str(tmp_path), "r", None, "token-2", Deadline()),
        ):
            pass
        assert outer.uri == str(tmp_path / "r")
    assert not (tmp_path / "r").exists()  # claim released, the empty run folder it made removed

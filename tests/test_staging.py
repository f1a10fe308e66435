"""Stage-in and stage-out against real local servers: files, HTTP, S3 (moto, with signed requests)."""

import json
import socket
import uuid
from pathlib import Path

import pystac
import pytest
import s3fs

from eoflows.errors import InputError, StageError
from eoflows.local.s3 import LocalS3
from eoflows.settings import S3Settings
from tasks.data.stac_io import SOURCE_REL, FsspecStacIO
from tasks.data.staging import stage_out
from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.steps import alone


@pytest.fixture(scope="session")
def results(sample_item: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compute output folder (read only)."""
    base = tmp_path_factory.mktemp("results")
    staged = stage_in_eopf(str(sample_item), base / "staged")
    return compute_indices(staged, base / "out", alone(), products=["ndvi", "rgb"])


def upload_sample(s3: LocalS3, sample_item: Path, prefix: str) -> str:
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    fs.put(str(sample_item.parent) + "/", f"eoflows-source/{prefix}/", recursive=True)
    return f"s3://eoflows-source/{prefix}/{sample_item.name}"


def check_staged(folder: Path, source: str, store_prefix: str) -> pystac.Item:
    catalog = json.loads((folder / "catalog.json").read_text())
    assert catalog["id"] == "catalog"
    (item_file,) = folder.glob("*/*.json")
    assert item_file.parent.name == item_file.stem  # <item-id>/<item-id>.json
    item = pystac.Item.from_file(str(item_file))
    assert item.assets["product"].href.startswith(store_prefix)  # absolute: the Zarr is read in place
    assert item.get_single_link(SOURCE_REL).href == source
    return item


def test_stage_in_from_a_local_path(sample_item: Path, tmp_path: Path) -> None:
    folder = stage_in_eopf(str(sample_item), tmp_path / "staged")
    check_staged(folder, str(sample_item), str(sample_item.parent))


def test_stage_in_over_http(sample_item: Path, http_server: str, tmp_path: Path) -> None:
    url = f"{http_server}/{sample_item.name}"
    item = check_staged(stage_in_eopf(url, tmp_path / "staged"), url, http_server)
    assert item.assets["B08_10m"].href == f"{http_server}/{sample_item.stem}.zarr/measurements/reflectance/r10m/b08"


def test_stage_in_from_s3(s3: LocalS3, sample_item: Path, tmp_path: Path) -> None:
    uri = upload_sample(s3, sample_item, "stage-in")
    check_staged(stage_in_eopf(uri, tmp_path / "staged", s3.storage()), uri, "s3://eoflows-source/stage-in/")


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda d: str(d / "missing.json"), InputError, r"STAC item '.*missing\.json': not found"),
        (lambda d: (d / "bad.json").write_text("{oops") and str(d / "bad.json"), InputError, "not JSON"),
        (lambda d: (d / "list.json").write_text("[]") and str(d / "list.json"), InputError, "expected a JSON object"),
        (lambda d: (d / "cat.json").write_text('{"type": "Catalog"}') and str(d / "cat.json"), InputError,
         r"not a STAC item \(type is 'Catalog'"),
        (lambda d: "http://127.0.0.1:9/item.json", StageError, r"'http://127.0.0.1:9/item.json': cannot reach it"),
    ],
)  # fmt: skip
def test_stage_in_bad_items(make, error, message, tmp_path: Path) -> None:
    with pytest.raises(error, match=message):
        stage_in_eopf(make(tmp_path), tmp_path / "staged")
    assert not (tmp_path / "staged").exists()


def test_stage_in_from_a_server_that_never_answers_fails_in_seconds(tmp_path: Path) -> None:
    """The HTTP read has the storage settings' timeouts (here 1 s): one line naming the URL, nothing staged."""
    with socket.create_server(("127.0.0.1", 0)) as listener:  # the kernel accepts; nobody reads or answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/item.json"
        with pytest.raises(StageError, match=rf"^STAC item '{url}': no answer in time"):
            stage_in_eopf(url, tmp_path / "staged", S3Settings(connect_timeout=1, read_timeout=1))
    assert not (tmp_path / "staged").exists()


def test_stage_out_to_a_local_folder(results: Path, tmp_path: Path) -> None:
    uri = stage_out(results, str(tmp_path / "published"), alone(), run_id="run-1")
    assert uri == str(tmp_path / "published" / "run-1" / "catalog.json")
    catalog = pystac.Catalog.from_file(uri)
    (item,) = catalog.get_items(recursive=True)
    for asset in item.assets.values():
        assert asset.href.startswith("./")  # relative: the folder is self-contained
        assert Path(asset.get_absolute_href()).is_relative_to(tmp_path / "published" / "run-1")
        assert Path(asset.get_absolute_href()).exists()
    assert item.get_single_link("derived_from") is not None
    assert catalog.get_self_href() == uri
    with pytest.raises(StageError, match="already holds a published catalog"):
        stage_out(results, str(tmp_path / "published"), alone(), run_id="run-1")


def test_stage_out_to_s3_round_trips_through_pystac(s3: LocalS3, results: Path) -> None:
    run = uuid.uuid4().hex
    uri = stage_out(results, "s3://eoflows-results/out", alone(), run_id=run, storage=s3.storage())
    assert uri == f"s3://eoflows-results/out/{run}/catalog.json"
    io = FsspecStacIO(s3.storage())
    (item,) = pystac.Catalog.from_file(uri, stac_io=io).get_items(recursive=True)
    assert item.assets["ndvi"].href.startswith(f"s3://eoflows-results/out/{run}/")
    as_dict = item.to_dict(transform_hrefs=False)
    assert pystac.Item.from_dict(as_dict).to_dict(transform_hrefs=False) == as_dict
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    assert fs.exists(item.assets["thumbnail"].href)


def test_stage_out_with_a_wrong_key_publishes_nothing(s3: LocalS3, results: Path) -> None:
    wrong = s3.storage().model_copy(update={"access_key_id": "AKIAWRONGWRONGWRONG"})
    denied = "destination 's3://eoflows-results/wrong': access to bucket 'eoflows-results' denied"
    with pytest.raises(StageError, match=denied):
        stage_out(results, "s3://eoflows-results/wrong", alone(), run_id="x", storage=wrong)
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    assert not fs.exists("eoflows-results/wrong")


def restricted(s3: LocalS3, deny_pattern: str) -> LocalS3:
    """A key that may do anything on S3 except write objects matching `deny_pattern`."""
    iam = s3.client("iam")
    name = f"restricted-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::eoflows-results/{deny_pattern}"},
    ]}  # fmt: skip
    iam.put_user_policy(UserName=name, PolicyName="restricted", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return LocalS3(s3.endpoint_url, key["AccessKeyId"], key["SecretAccessKey"])


@pytest.mark.parametrize("denied", ["*catalog.json", "*-processed.json"])
def test_a_failed_publish_removes_what_it_uploaded(s3: LocalS3, results: Path, denied: str) -> None:
    """Publishing fails at catalog.json (or earlier, at the item): nothing stays, no catalog appears."""
    run = uuid.uuid4().hex
    key = restricted(s3, denied)
    with pytest.raises(StageError, match="access denied"):
        stage_out(results, "s3://eoflows-results/partial", alone(), run_id=run, storage=key.storage())
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options(), skip_instance_cache=True)
    assert fs.find(f"eoflows-results/partial/{run}") == []
    # the key is refused only the denied objects: the publish had uploaded the others, then removed them
    limited = s3fs.S3FileSystem(**key.storage().s3fs_options(), skip_instance_cache=True)
    limited.pipe(f"eoflows-results/partial/{run}/probe.zarr/0", b"x")
    with pytest.raises(PermissionError):
        limited.pipe(f"eoflows-results/partial/{run}/{denied.replace('*', 'x')}", b"x")


def test_stage_out_refuses_other_destinations(results: Path) -> None:
    with pytest.raises(InputError, match="destination 'http://example.org/x': expected a local folder or an s3://"):
        stage_out(results, "http://example.org/x", alone())


def test_stage_out_needs_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no catalog.json"):
        stage_out(tmp_path, str(tmp_path / "dest"), alone())


def test_uploads_keep_a_bounded_number_of_bytes_in_flight(tmp_path: Path) -> None:
    """fsspec would put every file at once (its batch is an eighth of the open-file limit): bounded by size."""
    from tasks.data.staging import UPLOAD_BUDGET, upload_batch

    def files(size: int, n: int = 3) -> list[Path]:
        paths = [tmp_path / f"{size}-{i}" for i in range(n)]
        for p in paths:
            with p.open("wb") as f:
                f.truncate(size)  # sparse: no disk used
        return paths

    assert UPLOAD_BUDGET // (7 * 2**20) == 36 and upload_batch(files(7 * 2**20)) == 32  # 36 would fit: capped
    assert upload_batch(files(100 * 2**20)) == 2 and upload_batch(files(2**30)) == 1 and upload_batch(files(10)) == 32
    assert upload_batch([]) == 32

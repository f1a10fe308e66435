"""No secret on disk: after a run to S3, the S3 secret is nowhere in what the run leaves (files, Prefect database)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import s3fs

from eoflows.local.s3 import LocalS3

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))


def holding(root: Path, secret: bytes) -> list[Path]:
    """Files under `root` whose bytes contain `secret`."""
    return [p for p in root.rglob("*") if p.is_file() and not p.is_symlink() and secret in p.read_bytes()]


def test_a_run_to_s3_leaves_its_secret_nowhere(sample_item: Path, s3: LocalS3, tmp_path: Path) -> None:
    """Credentials from the environment; its own temporary Prefect server, so its database is a file to read."""
    home, tmp, cwd = tmp_path / "home", tmp_path / "tmp", tmp_path / "cwd"
    for folder in (home, tmp, cwd):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PREFECT_"))}
    env.update({**s3.env(), "HOME": str(home), "TMPDIR": str(tmp), "PREFECT_HOME": str(home / ".prefect")})
    done = subprocess.run([EOFLOWS, "run", "s2-indices", "--item", str(sample_item), "--destination",
                           "s3://eoflows-results/secrets", "--run-id", "r1", "--products", "ndvi"],
                          env=env, cwd=cwd, capture_output=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert (home / ".prefect" / "prefect.db").is_file()
    secret = s3.secret_access_key.encode()
    assert secret not in done.stdout + done.stderr
    assert holding(tmp_path, secret) == []  # database (and its WAL), logs, work folders, home, working folder
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options(), skip_instance_cache=True)
    published = fs.find("eoflows-results/secrets/r1")
    assert published and not [p for p in published if secret in fs.cat_file(p)]


def test_a_saved_block_as_parameter_keeps_credentials_out_of_the_run(sample_item: Path, s3: LocalS3) -> None:
    """The flow takes the block the Prefect UI picks (or a name); the run's stored parameters hold no credential,
    and settings given inline (not saved) are refused before any work."""
    from prefect.client.orchestration import get_client

    from blocks.s3 import S3Block
    from eoflows.errors import InputError
    from flows.package_flows import s2_indices

    s3.storage().save("secrets-test", overwrite=True)
    state = s2_indices(item=str(sample_item), destination="s3://eoflows-results/picked", products=["ndvi"],
                       storage=S3Block.load("secrets-test"), return_state=True)  # fmt: skip
    assert state.is_completed() and state.result().startswith("s3://eoflows-results/picked/")
    with get_client(sync_client=True) as client:
        stored = str(client.read_flow_run(state.state_details.flow_run_id).parameters)
    assert "secrets-test" in stored and s3.access_key_id not in stored and s3.secret_access_key not in stored
    state = s2_indices(item=str(sample_item), destination="s3://eoflows-results/inline", products=["ndvi"],
                       storage=s3.storage(), return_state=True)  # fmt: skip
    assert state.is_failed()
    with pytest.raises(InputError, match="storage: give a saved block"):
        state.result()
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options(), skip_instance_cache=True)
    assert not fs.exists("eoflows-results/inline")

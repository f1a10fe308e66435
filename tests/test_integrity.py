"""Damaged data is noticed: missing input chunks are counted (or refused), corrupted output chunks fail to read
(GDAL too: tests/test_gdal_reads.py)."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from eoflows.cli import main
from eoflows.errors import InputError
from eoflows.local.s3 import LocalS3
from tasks.data.staging import stage_out
from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.steps import alone


@pytest.fixture
def damaged_item(sample_item: Path, tmp_path: Path) -> Path:
    """A copy of the sample product with one b04 chunk (rows and columns 122-244 at 10 m) deleted."""
    store = sample_item.with_suffix(".zarr")
    shutil.copytree(store, tmp_path / store.name)
    copy = tmp_path / sample_item.name
    copy.write_text(sample_item.read_text())
    (tmp_path / store.name / "measurements/reflectance/r10m/b04/1.1").unlink()
    return copy


def test_missing_input_chunks_are_counted_and_said(
    damaged_item: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    staged = stage_in_eopf(str(damaged_item), tmp_path / "staged")
    with caplog.at_level(logging.INFO, logger="eoflows"):
        out = compute_indices(staged, tmp_path / "out", alone(), products=["ndvi", "nbr"])
    warning = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1 and "misses chunks (b04 1 of 9)" in warning[0], warning
    assert any("missing input chunks | b04 1 of 9" in r.getMessage() for r in caplog.records)  # the usage table
    ds = xr.open_zarr(next(out.glob("*/*.zarr")))
    ndvi, nbr = ds.ndvi.values, ds.nbr.values
    assert np.isnan(ndvi[122:244, 122:244]).all()  # the missing chunk is no data, and only it
    assert np.isnan(ndvi).mean() < 1 / 9 + 0.02 and not np.isnan(nbr[122:244, 122:244]).all()  # nbr needs no b04


def test_strict_refuses_missing_chunks_before_writing(damaged_item: Path, tmp_path: Path) -> None:
    staged = stage_in_eopf(str(damaged_item), tmp_path / "staged")
    with pytest.raises(InputError, match=r"chunks missing \(b04 1 of 9\); strict: not computed"):
        compute_indices(staged, tmp_path / "out", alone(), products=["ndvi"], strict=True)
    assert not (tmp_path / "out").exists()


def test_a_corrupted_output_chunk_fails_to_read_and_verify_names_it(
    sample_item: Path, tmp_path: Path, s3: LocalS3, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = compute_indices(
        stage_in_eopf(str(sample_item), tmp_path / "staged"), tmp_path / "out", alone(), products=["ndvi"]
    )
    store = next(out.glob("*/*.zarr"))
    codecs = json.loads((store / "ndvi" / "zarr.json").read_text())["codecs"]
    assert codecs[-1] == {"name": "zstd", "configuration": {"level": 3, "checksum": True}}, codecs  # GDAL reads it
    chunk = store / "ndvi" / "c" / "1" / "1"
    original = chunk.read_bytes()
    data = bytearray(original)
    intact = xr.open_zarr(store).ndvi.values
    data[100:400] = bytes(300)  # 300 zeroed bytes, as in a damaged copy
    chunk.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="Zstd decompression error"):  # the frame's checksum, or its structure
        xr.open_zarr(store).ndvi.values  # noqa: B018
    assert np.isfinite(intact).any()
    assert main(["verify", str(out)]) == 1  # the results folder: each store in it
    said = capsys.readouterr().err
    assert f"{store}: 1 of " in said and "ndvi chunk 1.1: Zstd decompression error" in said, said
    stage_out(out, "s3://eoflows-results/integrity", alone(), run_id="r1", storage=s3.storage())  # as it is
    for name, value in s3.env().items():
        monkeypatch.setenv(name, value)
    published = f"s3://eoflows-results/integrity/r1/{store.relative_to(out).as_posix()}"
    assert main(["verify", published]) == 1 and "ndvi chunk 1.1: Zstd" in capsys.readouterr().err
    chunk.write_bytes(original)
    assert main(["verify", str(store)]) == 0 and f"intact: {store}" in capsys.readouterr().out

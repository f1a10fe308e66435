"""The `s2-indices` flow end to end on the session's Prefect API, a local Dask cluster and real servers."""

import io
import json
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pystac
import pytest
import s3fs
import xarray as xr
import zarr
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.exceptions import ParameterTypeError

from eoflows.errors import InputError
from eoflows.local.s3 import LocalS3
from eoflows.prefect_api import flush_run_reports
from flows.package_flows import s2_indices
from tasks.data.stac_io import FsspecStacIO
from tasks.science.indices import PRODUCTS
from tests import reference as ref
from tests.test_eopf import real_item_on
from tests.test_staging import upload_sample


def reference_products(sample_item: Path) -> dict[str, np.ndarray]:
    root = zarr.open_group(sample_item.with_suffix(".zarr"), mode="r")
    dn = {b: root[f"measurements/reflectance/r10m/{b}"][:] for b in ("b02", "b03", "b04", "b08")}
    dn |= {b: root[f"measurements/reflectance/r20m/{b}"][:] for b in ("b11", "b12")}
    return ref.products(dn)


def published_item(uri: str, storage=None) -> pystac.Item:
    (item,) = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(storage)).get_items(recursive=True)
    return item


def check_products(item: pystac.Item, sample_item: Path, products: list[str], storage_options=None) -> None:
    expected = reference_products(sample_item)
    ds = xr.open_zarr(item.assets["product"].get_absolute_href(), consolidated=True, storage_options=storage_options)
    assert sorted(ds.data_vars) == sorted(products)
    assert ds.rio.crs if hasattr(ds, "rio") else ds["spatial_ref"].attrs["crs_wkt"].startswith("PROJCRS")
    for name in products:
        got = ds[name].values
        if got.dtype == np.float32:
            np.testing.assert_allclose(got, expected[name], rtol=2e-5, atol=2e-6, equal_nan=True, err_msg=name)
            assert ds[name].attrs["long_name"] and np.isnan(ds[name].encoding["_FillValue"])
        else:
            np.testing.assert_array_equal(got, expected[name], err_msg=name)
    assert ds.sizes["x"] == ds.sizes["y"] == 366
    assert float(ds.x[0]) == 499985.0 and float(ds.y[0]) == 5000035.0  # pixel centres of the 10 m grid


def artifacts_of(state) -> dict[str, list]:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]))
        )
    by_type: dict[str, list] = {}
    for artifact in found:
        by_type.setdefault(artifact.type, []).append(artifact)
    return by_type


def test_s3_to_s3_on_a_local_cluster(s3: LocalS3, sample_item: Path, always_a_cluster: str) -> None:
    source = upload_sample(s3, sample_item, f"flow-{uuid.uuid4().hex[:6]}")
    s3.storage().save("test-s3", overwrite=True)
    state = s2_indices(item=source, destination="s3://eoflows-results/flow", storage="test-s3", dask=always_a_cluster,
                       return_state=True)  # fmt: skip
    uri = state.result()
    assert uri.startswith("s3://eoflows-results/flow/") and uri.endswith("/catalog.json")
    assert str(state.state_details.flow_run_id) in uri  # default run id: the flow run id
    item = published_item(uri, s3.storage())
    assert item.id == f"{sample_item.stem}-processed"
    assert item.get_single_link("derived_from").href == source
    check_products(item, sample_item, list(PRODUCTS), s3.storage().s3fs_options())
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    quicklook = Image.open(io.BytesIO(fs.cat(item.assets["thumbnail"].get_absolute_href())))
    assert (quicklook.format, quicklook.mode, quicklook.size) == ("PNG", "RGBA", (366, 366))
    assert quicklook.getpixel((0, 0))[3] == 0 and quicklook.getpixel((300, 300))[3] == 255  # no data: transparent
    as_dict = item.to_dict(transform_hrefs=False)
    assert pystac.Item.from_dict(as_dict).to_dict(transform_hrefs=False) == as_dict
    artifacts = artifacts_of(state)
    (products,) = [a for a in artifacts["markdown"] if a.key == "s2-indices-products"]
    assert "| ndvi |" in products.data and "data:image/png;base64," in products.data and uri in products.data
    progress = sorted((a.description, a.data) for a in artifacts["progress"])
    assert progress == [("computing 14 products", 100.0), (f"publishing to {uri.rsplit('/', 1)[0]}", 100.0)]
    tables = {a.key: json.loads(a.data) for a in artifacts["table"]}
    assert {"compute-usage", "dask-cluster"} <= set(tables)
    usage = {row["measure"]: row["value"] for row in tables["compute-usage"]}
    cluster = {row["property"]: row["value"] for row in tables["dask-cluster"]}
    # a local cluster's worker threads each run windows in turn (a Prefect task per thread, not per window)
    threads = (os.cpu_count() or 1) + 1
    assert usage["windows ran on"] == (f"{threads} Prefect tasks on the flow's DaskTaskRunner (a local cluster), "
                                       "each running windows in turn")  # fmt: skip
    assert usage["window schedulers"] == cluster["scheduler"]  # the windows ran on the task runner's cluster
    assert usage["window workers"].startswith("inproc://")  # the cluster's worker: threads of the flow's process
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    names = sorted(run.task_key.rsplit("-", 1)[0] for run in runs)
    assert names.count("run_queue") == threads and {"compute_indices", "stage_in_eopf", "stage_out"} <= set(names)
    assert sorted(run.name for run in runs if run.name.startswith("windows ")) == [
        f"windows {n}/{threads}" for n in range(1, threads + 1)
    ]
    assert all(run.state.is_completed() for run in runs)


def run_log_lines(state, starting: str, timeout: float = 30.0) -> list[str]:
    """The run's log lines that start with `starting`, once the server has them (logs are sent in batches)."""
    flush_run_reports()
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id]))
            )
            found = [log.message for log in logs if log.message.startswith(starting)]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.2)


def test_to_s3_the_chunks_go_while_computing_and_a_failure_leaves_nothing(
    s3: LocalS3, sample_copy: Path, tmp_path: Path
) -> None:
    s3.storage().save("early-s3", overwrite=True)
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    state = s2_indices(item=str(sample_copy), destination="s3://eoflows-results/early", run_id="good",
                       products=["ndvi", "rgb"], storage="early-s3", return_state=True)  # fmt: skip
    item = published_item(state.result(), s3.storage())
    check_products(item, sample_copy, ["ndvi", "rgb"], s3.storage().s3fs_options())
    (line,) = run_log_lines(state, "Publishing ")
    assert line.endswith(" of them sent while computing)")  # 9 windows x 2 products, less empty chunks
    early = int(line.rsplit("(", 1)[1].split()[0])
    assert 9 <= early <= 18, line
    # the chunks went from memory to S3, never written locally: the item's sizes still count them
    store = item.assets["product"].get_absolute_href().removeprefix("s3://")
    assert item.assets["product"].extra_fields["file:size"] == sum(fs.du(store, total=False).values())
    assert item.assets["ndvi"].extra_fields["file:size"] == fs.du(f"{store}/ndvi")

    # a window that cannot be read fails the run after others were uploaded: the run folder is left empty
    chunk = sample_copy.with_suffix(".zarr") / "measurements/reflectance/r10m/b04/2.2"  # the last window's
    assert chunk.is_file()
    chunk.write_bytes(b"not a chunk")
    with pytest.raises(InputError, match=r"band b04 cannot be decoded in rows 244-366, columns 244-366 of the 10 m"):
        s2_indices(item=str(sample_copy), destination="s3://eoflows-results/early", run_id="bad",
                   products=["ndvi", "rgb"], storage="early-s3")  # fmt: skip
    assert fs.find("eoflows-results/early/bad") == []


def test_http_item_to_a_local_folder_with_some_products(sample_item: Path, http_server: str, tmp_path: Path) -> None:
    url = f"{http_server}/{sample_item.name}"
    state = s2_indices(item=url, destination=str(tmp_path / "out"), products=["ndvi", "vea"], run_id="r1",
                       return_state=True)  # fmt: skip
    uri = state.result()
    assert uri == str(tmp_path / "out" / "r1" / "catalog.json")
    item = published_item(uri)
    assert set(item.assets) == {"ndvi", "vea", "product", "thumbnail"}
    check_products(item, sample_item, ["ndvi", "vea"])
    # 366 x 366 px is too little work to start a local cluster for: the windows ran on the flow's own threads
    tables = {a.key: json.loads(a.data) for a in artifacts_of(state)["table"]}
    assert "dask-cluster" not in tables
    usage = {row["measure"]: row["value"] for row in tables["compute-usage"]}
    assert usage["windows ran on"].endswith(
        "threads of the flow process (133,956 px, below the 16,000,000 px a local cluster is started for)"
    )
    assert usage["window workers"] == "this process" and usage["windows"] == 9


def test_the_real_eopf_item_with_a_local_store(sample_item: Path, tmp_path: Path) -> None:
    path = real_item_on(sample_item.with_suffix(".zarr"), tmp_path)
    uri = s2_indices(item=str(path), destination=str(tmp_path / "out"), products=["nbr", "rgb"], run_id="real")
    item = published_item(uri)
    assert item.id == "S2A_MSIL2A_20251113T102311_N0511_R065_T32TNQ_20251113T142515-processed"
    assert item.get_single_link("derived_from").href.startswith("https://stac.core.eopf.eodc.eu/")
    assert item.properties["proj:code"] == "EPSG:32632" and item.properties["proj:shape"] == [366, 366]
    assert item.properties["processing:software"]["eoflows"]
    check_products(item, sample_item, ["nbr", "rgb"])


def test_an_unknown_product_is_refused_before_anything_runs(sample_item: Path, tmp_path: Path) -> None:
    with pytest.raises(ParameterTypeError, match="products"):
        s2_indices(item=str(sample_item), destination=str(tmp_path / "out"), products=["ndvi", "evi"])
    assert not (tmp_path / "out").exists()


def test_a_store_missing_a_band_fails_and_publishes_nothing(sample_copy: Path, tmp_path: Path) -> None:
    store = sample_copy.with_suffix(".zarr")
    for path in (store / "measurements/reflectance/r20m").glob("b12*"):
        import shutil

        shutil.rmtree(path)
    zarr.consolidate_metadata(str(store))
    with pytest.raises(InputError, match=r"band b12 missing"):
        s2_indices(item=str(sample_copy), destination=str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_a_wrong_key_fails_and_publishes_nothing(s3: LocalS3, sample_item: Path, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    denied = "destination 's3://eoflows-results/denied': access to bucket 'eoflows-results' denied"
    with pytest.raises(Exception, match=denied):
        s2_indices(item=str(sample_item), destination="s3://eoflows-results/denied", run_id="x", products=["ndvi"])
    fs = s3fs.S3FileSystem(**s3.storage().s3fs_options())
    assert not fs.exists("eoflows-results/denied")

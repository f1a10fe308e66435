"""Dask Gateway behind the flows, against a real dask-gateway-server (local backend) on 127.0.0.1."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import zarr
from pydantic import SecretStr, ValidationError

from blocks.dask_cluster import DaskBlock
from eoflows.errors import EoflowsError, InputError, RemoteRunError
from eoflows.local.gateway import LocalGateway
from flows.package_flows import s2_indices
from flows.runners import task_runner
from tasks.remote.gateway import gateway as gateway_client
from tasks.remote.gateway import new_cluster
from tests.test_s2_flow import artifacts_of, check_products, published_item


def gateway_env(gw: LocalGateway) -> dict[str, str]:
    """The standard dask-gateway configuration variables for the test gateway."""
    return {"DASK_GATEWAY__ADDRESS": gw.address, "DASK_GATEWAY__PROXY_ADDRESS": gw.proxy_address,
            "DASK_GATEWAY__AUTH__TYPE": "basic", "DASK_GATEWAY__AUTH__KWARGS__USERNAME": "eoflows",
            "DASK_GATEWAY__AUTH__KWARGS__PASSWORD": gw.password}  # fmt: skip


def running(gw: LocalGateway) -> list[str]:
    with gateway_client(gw.settings()) as client:
        return [c.name for c in client.list_clusters()]


def tables(state) -> dict[str, dict]:
    found = {a.key: json.loads(a.data) for a in artifacts_of(state)["table"]}
    return {key: {row.get("property", row.get("measure")): row["value"] for row in rows} for key, rows in found.items()}


def test_flow_on_a_per_run_gateway_cluster(gateway: LocalGateway, sample_item: Path, tmp_path: Path) -> None:
    gateway.settings(worker_memory="1 G", maximum=2).save("test-gateway", overwrite=True)
    state = s2_indices(item=str(sample_item), destination=str(tmp_path), products=["ndvi", "rgb"], dask="test-gateway",
                       return_state=True)  # fmt: skip
    check_products(published_item(state.result()), sample_item, ["ndvi", "rgb"])
    found = tables(state)
    cluster = found["dask-cluster"]
    assert cluster["backing"].startswith(f"Dask Gateway {gateway.address}")
    assert cluster["option worker_memory"] == "1 G" and cluster["adaptive workers"] == "1 to 2"
    assert cluster["dashboard"].startswith(f"{gateway.address}/clusters/{cluster['cluster']}/")
    # every window ran as a Prefect task on a worker of that cluster
    assert found["compute-usage"]["window schedulers"] == cluster["scheduler"]
    assert found["compute-usage"]["window workers"].startswith("tls://127.0.0.1:")
    assert running(gateway) == []  # shut down with the flow run


def test_a_failing_compute_shuts_the_cluster_down(gateway: LocalGateway, sample_copy: Path, tmp_path: Path) -> None:
    store = sample_copy.with_suffix(".zarr")
    shutil.rmtree(store / "measurements/reflectance/r10m/b08")
    zarr.consolidate_metadata(str(store))
    gateway.settings().save("test-gateway-2", overwrite=True)
    with pytest.raises(InputError, match="band b08 missing"):
        s2_indices(item=str(sample_copy), destination=str(tmp_path / "out"), products=["ndvi"], dask="test-gateway-2")
    assert running(gateway) == []
    assert not (tmp_path / "out").exists()


@pytest.fixture
def calrissian_cluster(gateway: LocalGateway, monkeypatch: pytest.MonkeyPatch):
    """A cluster procured outside eoflows, announced the way Calrissian does (DASK_CLUSTER + gateway config)."""
    cluster = new_cluster(gateway.settings())
    cluster.scale(1)
    env = {**gateway_env(gateway), "DASK_CLUSTER": cluster.name}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield cluster, env
    cluster.shutdown()


def test_the_flow_uses_the_cluster_named_in_dask_cluster(
    calrissian_cluster, gateway: LocalGateway, sample_item: Path, tmp_path: Path
) -> None:
    cluster, _ = calrissian_cluster
    state = s2_indices(item=str(sample_item), destination=str(tmp_path), products=["ndwi"], return_state=True)
    assert state.is_completed()
    found = tables(state)
    assert found["dask-cluster"]["cluster"] == cluster.name
    assert found["compute-usage"]["window schedulers"] == found["dask-cluster"]["scheduler"]
    assert running(gateway) == [cluster.name]  # used, not shut down


def test_a_cwl_style_step_uses_the_cluster_named_in_dask_cluster(
    calrissian_cluster, gateway: LocalGateway, sample_item: Path, tmp_path: Path
) -> None:
    cluster, env = calrissian_cluster
    eoflows = str(Path(sys.executable).with_name("eoflows"))
    subprocess.run([eoflows, "step", "s2-indices", "stage-in", "--item", str(sample_item), "--output",
                    str(tmp_path / "in")], check=True, capture_output=True)  # fmt: skip
    done = subprocess.run([eoflows, "step", "s2-indices", "compute", "--input", str(tmp_path / "in"), "--output",
                           str(tmp_path / "out"), "--products", "ndvi"], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Windows run on Dask Gateway cluster {cluster.name}" in done.stderr
    assert gateway.password not in done.stderr
    assert running(gateway) == [cluster.name]


@pytest.fixture
def hand_made_cluster(prefect_api: str, monkeypatch: pytest.MonkeyPatch):
    """A Dask cluster eoflows did not make (a scheduler and a worker process), named by DASK_SCHEDULER_ADDRESS."""
    from distributed import LocalCluster

    env = {"PREFECT_API_URL": prefect_api, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address="127.0.0.1:0",
                      host="127.0.0.1", env=env) as cluster:  # fmt: skip
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", cluster.scheduler_address)
        yield cluster


def test_the_flow_uses_the_running_cluster_named_in_dask_scheduler_address(
    hand_made_cluster, sample_item: Path, tmp_path: Path
) -> None:
    (worker,) = hand_made_cluster.scheduler_info["workers"]
    state = s2_indices(item=str(sample_item), destination=str(tmp_path), products=["ndvi"], return_state=True)
    check_products(published_item(state.result()), sample_item, ["ndvi"])
    found = tables(state)
    assert found["dask-cluster"]["backing"] == f"the running Dask cluster at {hand_made_cluster.scheduler_address}"
    assert found["compute-usage"]["window schedulers"] == hand_made_cluster.scheduler_address
    assert found["compute-usage"]["window workers"] == worker  # every window ran on that cluster's worker
    assert list(hand_made_cluster.scheduler_info["workers"]) == [worker]  # used, left running


def test_a_step_uses_the_running_cluster_named_in_dask_scheduler_address(
    hand_made_cluster, sample_item: Path, tmp_path: Path
) -> None:
    eoflows = str(Path(sys.executable).with_name("eoflows"))
    subprocess.run([eoflows, "step", "s2-indices", "stage-in", "--item", str(sample_item), "--output",
                    str(tmp_path / "in")], check=True, capture_output=True)  # fmt: skip
    done = subprocess.run([eoflows, "step", "s2-indices", "compute", "--input", str(tmp_path / "in"), "--output",
                           str(tmp_path / "out"), "--products", "ndvi"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"Windows run on the Dask cluster at {hand_made_cluster.scheduler_address}" in done.stderr
    assert len(hand_made_cluster.scheduler_info["workers"]) == 1


def test_a_scheduler_address_and_a_gateway_are_refused_together() -> None:
    with pytest.raises(ValidationError, match="name one Dask cluster"):
        DaskBlock(address="http://gateway:80", scheduler_address="tcp://10.0.0.5:8786")


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"password": SecretStr("wrong")}, RemoteRunError, "authentication refused \\(401\\)"),
        ({"address": "http://127.0.0.1:9"}, RemoteRunError, "'http://127.0.0.1:9': cannot reach it"),
        ({"options": {"gpus": 2}}, InputError,
         "option 'gpus': not offered by .*; it offers image: a string .*worker_cores: a float from 0.5 to 2.0"),
        ({"worker_cores": 16.0}, InputError, "option 'worker_cores': 16.0 refused .*it takes a float from 0.5 to 2.0"),
        ({"cluster_name": "no-such-cluster"}, InputError, "cluster 'no-such-cluster': not running on"),
    ],
)  # fmt: skip
def test_bad_gateway_settings_fail_fast_and_leak_nothing(gateway: LocalGateway, change, error, message) -> None:
    settings = gateway.settings().model_copy(update=change)
    with pytest.raises(error, match=message):
        with task_runner(settings) as runner:
            runner.client  # noqa: B018 - the cluster is made on first use
    assert running(gateway) == []


def test_a_gateway_that_never_answers_fails_in_seconds() -> None:
    """A gateway that accepts connections and answers nothing: the request timeout, not aiohttp's 5 minutes."""
    with socket.create_server(("127.0.0.1", 0)) as listener:  # the kernel accepts; nobody reads or answers
        address = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(RemoteRunError, match=rf"^Dask Gateway '{address}': no answer within 1 s"):
            with task_runner(DaskBlock(address=address, request_timeout=1.0)) as runner:
                runner.client  # noqa: B018 - the cluster is made on first use


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not DaskBlock.from_env().enabled  # nothing configured: a local cluster
    monkeypatch.setenv("DASK_GATEWAY_URL", "http://gateway:80")  # as Calrissian sets it
    monkeypatch.setenv("DASK_GATEWAY__CLUSTER__OPTIONS__WORKER_MEMORY", "4 G")
    monkeypatch.setenv("DASK_GATEWAY__CLUSTER__OPTIONS__PROFILE", "large")
    monkeypatch.setenv("DASK_GATEWAY__PROXY_ADDRESS", "gateway://gateway:8786")
    monkeypatch.setenv("DASK_CLUSTER", "abc123")
    settings = DaskBlock.from_env()
    assert (settings.address, settings.worker_memory, settings.cluster_name) == ("http://gateway:80", "4 G", "abc123")
    assert settings.proxy_address == "gateway://gateway:8786"
    assert settings.cluster_options() == {"worker_memory": "4 G", "profile": "large"}
    assert settings.local_cluster_from == 16_000_000
    monkeypatch.setenv("EOFLOWS_LOCAL_CLUSTER_FROM", "0")
    assert DaskBlock.from_env().local_cluster_from == 0
    monkeypatch.setenv("EOFLOWS_LOCAL_CLUSTER_FROM", "4k")
    with pytest.raises(ValueError, match=r"EOFLOWS_LOCAL_CLUSTER_FROM='4k': expected a number of pixels"):
        DaskBlock.from_env()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"auth": "jupyterhub", "password": "x"}, "Cannot specify `password` with auth 'jupyterhub'"),
        ({"api_token": "x"}, "Cannot specify `api_token` with auth 'basic'"),
        ({"minimum": 5, "maximum": 2}, r"Cannot specify `minimum` \(5\) above `maximum` \(2\)"),
        ({"address": None, "cluster_name": "x"}, "Cannot specify `cluster_name` .* without the gateway `address`"),
    ],
)
def test_conflicting_settings_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DaskBlock(**{"address": "http://gateway", **fields})


def test_secrets_stay_out_of_descriptions(gateway: LocalGateway) -> None:
    settings = gateway.settings()
    assert gateway.password not in settings.describe() + repr(settings) + str(EoflowsError(settings))


def test_a_stopped_run_shuts_its_cluster_down(gateway: LocalGateway, tmp_path: Path) -> None:
    """SIGTERM (what a Prefect worker sends on cancellation) while the compute runs: no cluster stays."""
    import time

    from prefect.settings import PREFECT_API_URL

    from eoflows.samples.s2_eopf import write_sample

    item = write_sample(tmp_path / "big", size=1098)
    gateway.settings(maximum=1).save("test-gateway-3", overwrite=True)
    eoflows = str(Path(sys.executable).with_name("eoflows"))
    run = subprocess.Popen([eoflows, "run", "s2-indices", "--item", str(item), "--destination", str(tmp_path / "out"),
                            "--dask", "test-gateway-3"], env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not running(gateway) and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert running(gateway), "no cluster was started"
    run.terminate()
    _, err = run.communicate(timeout=120)
    assert run.returncode == 1 and "stopped by signal SIGTERM" in err.splitlines()[-1]
    assert running(gateway) == []
    assert not (tmp_path / "out").exists()


def test_gateway_commands(gateway: LocalGateway) -> None:
    env = {**os.environ, **gateway_env(gateway)}
    eoflows = str(Path(sys.executable).with_name("eoflows"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([eoflows, "gateway", *args], capture_output=True, text=True, env=env, timeout=120)

    options = run("options")
    assert options.returncode == 0, options.stderr
    assert "worker_memory" in options.stdout and "a float from 0.5 to 2.0" in options.stdout
    assert run("list").stdout.strip() == "no clusters"
    leaked = new_cluster(gateway.settings())
    leaked.close(shutdown=False)  # as a killed run would leave it
    listed = run("list")
    assert leaked.name in listed.stdout and "RUNNING" in listed.stdout
    stopped = run("stop", leaked.name)
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"stopped {leaked.name}"
    assert running(gateway) == []
    missing = run("stop", "nope")
    assert missing.returncode == 1 and "cluster 'nope': not running" in missing.stderr

"""A package of one's own, end to end: `eoflows new package` writes it, pip installs it (beside eoflows, on
PYTHONPATH: this environment stays as it is), and every way eoflows runs a package runs it: `eoflows run`, its
own contract suite (eoflows.testing: flow, CLI steps, CWL with stock cwltool, folder and S3), `eoflows deploy` +
`prefect deployment run` on the process pool. A deliberately broken package is listed as broken meanwhile."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
from rio_cogeo.cogeo import cog_validate

from eoflows import API_VERSION
from eoflows.cli import main
from eoflows.testing.stac_schemas import validate_with_pystac

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NAME, BROKEN = "ndmi-demo", "broken-demo"


def install(folder: Path, site: Path) -> None:
    """pip install `folder` into `site` (its own target: the test environment's packages are left alone)."""
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target"]
    done = subprocess.run([*command, str(site), str(folder)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the scaffolded package and a broken one are installed (a folder for PYTHONPATH)."""
    root = tmp_path_factory.mktemp("own")
    site = root / "site"
    assert main(["new", "package", NAME, "--dest", str(root / NAME)]) == 0
    install(root / NAME, site)
    assert main(["new", "package", BROKEN, "--dest", str(root / BROKEN)]) == 0
    steps = root / BROKEN / "broken_demo" / "steps.py"
    steps.write_text(steps.read_text().replace('api=">=1.0,<2"', 'api=">=9"'))  # needs an API that is not here
    install(root / BROKEN, site)
    return site


def env_with(site: Path, **more: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("EOFLOWS_PACKAGES", "PYTHONPATH")}
    return {**clean, "PYTHONPATH": str(site), **more}


def eoflows(site: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "eoflows"), *args], capture_output=True, text=True, env=env_with(site),
                          timeout=timeout)  # fmt: skip


def expected_difference(item_path: Path) -> np.ndarray:
    """(b08 - b12) / (b08 + b12) of the sample item, computed here from its files: reflectance from the item's
    raster:bands, the 20 m b12 repeated 2 x 2 onto the 10 m grid, no data where either band has none."""
    item = pystac.Item.from_file(str(item_path))
    bands = {}
    for key, factor in (("nir", 1), ("swir22", 2)):
        asset = item.assets[key]
        (coding,) = asset.extra_fields["raster:bands"]
        with rasterio.open(asset.get_absolute_href()) as src:
            dn = src.read(1).repeat(factor, 0).repeat(factor, 1)
        bands[key] = np.where(dn == coding["nodata"], np.nan, dn * coding["scale"] + coding["offset"])
    with np.errstate(divide="ignore", invalid="ignore"):
        return (bands["nir"] - bands["swir22"]) / (bands["nir"] + bands["swir22"])


def test_the_scaffold_runs_at_once_beside_a_broken_package(
    site: Path, burn_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    listed = eoflows(site, "packages", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows[NAME] == {"name": NAME, "version": "0.1.0", "origin": f"{NAME} 0.1.0", "status": "ok",
                          "steps": "stage-in, compute, stage-out"}  # fmt: skip
    assert rows[BROKEN]["status"] == (
        f"broken: package '{BROKEN}' (entry point {BROKEN} = broken_demo.steps:PACKAGE of {BROKEN} 0.1.0): it needs "
        f"eoflows API >=9; this eoflows has API {API_VERSION}"
    )
    assert all(rows[p]["status"] == "ok" for p in ("s2-indices", "burned-area", "downsample"))

    done = eoflows(site, "run", NAME, "--item", str(burn_pair[1]), "--destination", str(tmp_path), "--run-id", "r1",
                   "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    published = json.loads(done.stdout)
    assert published["catalog"] == str(tmp_path / "r1" / "catalog.json")
    validate_with_pystac(published["catalog"])
    (item,) = published["items"]
    cog = Path(item["assets"]["data"])
    assert cog_validate(str(cog))[0], cog_validate(str(cog))
    with rasterio.open(cog) as src:
        values = src.read(1)
    np.testing.assert_allclose(values, expected_difference(burn_pair[1]), rtol=1e-5, atol=1e-6, equal_nan=True)

    refused = eoflows(site, "run", BROKEN, "--item", str(burn_pair[1]), "--destination", str(tmp_path))
    assert refused.returncode == 1 and "it needs eoflows API >=9" in refused.stderr.splitlines()[-1]


def test_the_package_passes_its_contract_suite(site: Path) -> None:
    """The scaffold's own tests: eoflows.testing's fixtures and PackageContract (flow, CLI, CWL + cwltool, S3)."""
    tests = next(site.parent.glob(f"{NAME}/tests"))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                          capture_output=True, text=True, cwd=tests.parent, env=env_with(site),
                          timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:]
    assert "8 passed" in done.stdout.splitlines()[-1], done.stdout[-3000:]


def test_deployed_and_run_on_the_process_pool(site: Path, burn_pair: tuple[Path, Path], tmp_path: Path) -> None:
    """`eoflows deploy` covers the installed package (prefect.yaml unchanged); a process worker runs it."""
    deployed = eoflows(site, "deploy", "--project", str(ROOT))
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    assert all(f"{NAME}/{pool}" in deployed.stdout for pool in ("local", "docker", "kubernetes")), deployed.stdout
    with get_client(sync_client=True) as client:
        k8s = client.read_deployment_by_name(f"{NAME}/kubernetes")
    assert k8s.entrypoint == "flows.package_flows:ndmi_demo"
    assert k8s.job_variables == {"cpu_request": "1", "cpu_limit": "2", "memory_request": "1Gi", "memory_limit": "2Gi"}

    env = env_with(site)
    scheduled = subprocess.run([str(BIN / "prefect"), "deployment", "run", f"{NAME}/local", "-p",
                                f"item={burn_pair[1]}", "-p", f"destination={tmp_path}", "-p", "run_id=deployed"],
                               capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert scheduled.returncode == 0, scheduled.stdout + scheduled.stderr
    with get_client(sync_client=True) as client:  # the one run of the deployment
        local = client.read_deployment_by_name(f"{NAME}/local")
        (run,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[local.id]))
        )
    run_id = run.id
    worker = subprocess.run([str(BIN / "prefect"), "worker", "start", "--pool", "eoflows-local", "--type", "process",
                             "--run-once"], capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 300
        while not (run := client.read_flow_run(run_id)).state.is_final() and time.monotonic() < deadline:
            time.sleep(1)  # a poll of the run's state, not a race: the loop ends on the state
    assert run.state.is_completed(), f"{run.state}\n{worker.stdout[-3000:]}{worker.stderr[-3000:]}"
    validate_with_pystac(tmp_path / "deployed" / "catalog.json")

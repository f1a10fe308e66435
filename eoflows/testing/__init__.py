"""The test harness of application packages: a pytest plugin with real local parts, and the package contract.

Load it in a package's ``tests/conftest.py`` (it is not loaded into every pytest session of the environment)::

    pytest_plugins = ["eoflows.testing"]

and inherit the contract in a test module, giving the package's name and, as the fixture `package_inputs`, the
inputs of one small run (a destination is added by each test)::

    class TestMine(PackageContract):
        package = "mine"

        @pytest.fixture
        def package_inputs(self, sample_cog_items):
            return {"item": str(sample_cog_items[1])}

Fixtures (started by the tests themselves on 127.0.0.1, stopped at the session's end; no network):
`eoflows_prefect_api` (a temporary Prefect server, or the one PREFECT_API_URL names), `eoflows_s3` (moto's S3
server with a bucket ``eoflows-contract``, an `eoflows.local.s3.LocalS3`), `sample_cog_items` (a synthetic
pre-/post-fire pair of Sentinel-2 L2A scenes as COGs, Earth Search v1 items: two item paths) and
`sample_zarr_item` (a synthetic Sentinel-2 L2A EOPF Zarr product: its item path). Needs the ``testing`` extra of
eoflows (pytest, moto, stac-validator).
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
import pytest
import yaml

from eoflows.package import Package, Role, Step

BUCKET = "eoflows-contract"
BIN = Path(sys.executable).parent
SAMPLE_SIZE = 366  # pixels per side of the sample scenes (small: a contract run takes seconds)


@pytest.fixture(scope="session")
def eoflows_prefect_api() -> Iterator[str]:
    """The URL of a Prefect API for the session: PREFECT_API_URL's, else a temporary server (SQLite)."""
    from eoflows.prefect_api import prefect_api

    with prefect_api() as url:
        yield url


@pytest.fixture(scope="session")
def eoflows_s3() -> Iterator[Any]:
    """moto's S3 server (own process) with the bucket `BUCKET`; `.env()` gives its AWS_* variables."""
    from eoflows.local.s3 import local_s3

    with local_s3(buckets=[BUCKET]) as server:
        yield server


@pytest.fixture(scope="session")
def sample_cog_items(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A synthetic pre- and post-fire Sentinel-2 L2A pair (COGs, Earth Search v1 items); read only."""
    from eoflows.samples.burn_pair import write_pair

    return write_pair(tmp_path_factory.mktemp("cog-items"), size=SAMPLE_SIZE, seed=7)


@pytest.fixture(scope="session")
def sample_zarr_item(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic Sentinel-2 L2A EOPF Zarr product and its STAC item (the item's path); read only."""
    from eoflows.samples.s2_eopf import write_sample

    return write_sample(tmp_path_factory.mktemp("zarr-item"), size=SAMPLE_SIZE, seed=1)


def eoflows(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run the `eoflows` command of this environment; its result (output captured)."""
    return subprocess.run([str(BIN / "eoflows"), *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})  # fmt: skip


def cli_options(step: Step, values: dict[str, Any]) -> list[str]:
    """`values` of the step's user inputs as `eoflows step` options (a list repeats its option)."""
    options = []
    for p in step.by_role(Role.INPUT):
        if p.name not in values:
            continue
        flag, value = f"--{p.name.replace('_', '-')}", values[p.name]
        if isinstance(value, bool):
            options.append(flag if value else f"--no-{p.name.replace('_', '-')}")
        elif isinstance(value, list | tuple):
            options += [x for v in value for x in (flag, str(v))]
        else:
            options += [flag, str(value)]
    return options


def published(uri: str, storage: Any = None) -> dict[str, dict[str, Any]]:
    """The items of a published catalog by id: properties (but the processing time) and asset bytes by key.

    Executed notebooks (role ``executed-notebook``) are compared by key alone: they record when and where they ran.
    """
    from tasks.data.stac_io import FsspecStacIO, read_bytes
    from tasks.notebook import EXECUTED

    catalog = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(storage))
    items = {}
    for item in catalog.get_items(recursive=True):
        properties = {k: v for k, v in item.properties.items() if k != "processing:datetime"}
        assets = {k: read_bytes(a.get_absolute_href(), storage, f"asset {k!r}") for k, a in item.assets.items()
                  if "zarr" not in (a.media_type or "") and EXECUTED not in (a.roles or [])}  # fmt: skip
        items[item.id] = {"properties": properties, "assets": assets, "keys": sorted(item.assets)}
    return items


def check_catalog(uri: str, storage: Any = None) -> pystac.Catalog:
    """The catalog at `uri`, checked: it has items, each valid against the STAC schemas (offline), every asset there."""
    from eoflows.testing.stac_schemas import pystac_validator
    from tasks.data.stac_io import FsspecStacIO, read_bytes

    catalog = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(storage))
    items = list(catalog.get_items(recursive=True))
    assert items, f"{uri}: the published catalog holds no items"
    with pystac_validator():  # each object as read (S3 too): the vendored schemas, offline
        for obj in (catalog, *items):
            obj.validate()
    for item in items:
        for key, asset in item.assets.items():
            href = asset.get_absolute_href()
            if not asset.media_type or "zarr" not in asset.media_type:
                assert read_bytes(href, storage, f"asset {key!r} of item {item.id!r}"), f"{href}: empty asset"
    return catalog


class PackageContract:
    """What every application package must do; inherit it, set `package`, give the fixture `package_inputs`."""

    package: str = ""

    @pytest.fixture
    def package_inputs(self) -> dict[str, Any]:
        """The inputs of one small run of the package (override it; a destination is added by each test)."""
        raise NotImplementedError(f"{type(self).__name__}: define the fixture package_inputs (a small run's inputs)")

    @pytest.fixture
    def declared(self) -> Package:
        """The package, as discovery loads it (an entry point, or EOFLOWS_PACKAGES)."""
        from eoflows.discovery import require

        assert self.package, f"{type(self).__name__}: set the class attribute package to the package's name"
        return require(self.package)

    def test_the_declaration_is_valid(self, declared: Package) -> None:
        """Discovered without error; every step and user input documented; the CLI lists it as ok."""
        assert declared.name == self.package
        for step in declared.steps:
            assert step.doc, f"step {step.name!r}: its function has no docstring"
            assert all(p.doc for p in step.by_role(Role.INPUT)), f"step {step.name!r}: an input has no doc"
        listed = {row["name"]: row for row in json.loads(eoflows("packages", "--json").stdout)}
        assert listed[self.package]["status"] == "ok", listed[self.package]["status"]

    def test_the_flow_cli_and_cwl_are_derived(self, declared: Package) -> None:
        """The flow's parameters, the CLI's options and the CWL inputs are the declaration's inputs."""
        from flows.package_flows import flow_of
        from tasks.cwl.export import CwlOptions, export

        inputs = [p.name for p in declared.params if p.role is Role.INPUT]
        schema = flow_of(self.package).parameters.properties
        assert set(inputs) <= set(schema), f"flow parameters {sorted(schema)} miss some of {inputs}"
        helped = eoflows("run", self.package, "--help")
        assert helped.returncode == 0, helped.stderr
        for name in inputs:
            assert f"--{name.replace('_', '-')}" in helped.stdout, f"eoflows run {self.package}: no option for {name}"
        for step in declared.steps:
            done = eoflows("step", self.package, step.name, "--help")
            assert done.returncode == 0, done.stderr
        document = export(declared, CwlOptions(mode="full"))
        (workflow,) = [p for p in document["$graph"] if p["id"] == self.package]
        ids = {i["id"] if isinstance(i, dict) else i for i in workflow["inputs"]}
        assert set(inputs) <= ids, f"CWL inputs {sorted(ids)} miss some of {inputs}"

    def test_the_cwl_passes_cwltool_validate(self, declared: Package, tmp_path: Path) -> None:
        """`eoflows cwl export` in both modes, checked by stock cwltool (`--validate`)."""
        for mode in ("app", "full"):
            path = tmp_path / f"{mode}.cwl"
            done = eoflows("cwl", "export", self.package, "--mode", mode, "--dask", "hints", "-o", str(path))
            assert done.returncode == 0, done.stderr
            checked = subprocess.run([str(BIN / "cwltool"), "--validate", str(path)], capture_output=True, text=True,
                                     timeout=300)  # fmt: skip
            assert checked.returncode == 0, checked.stderr[-3000:]

    def test_a_run_to_a_folder_publishes_a_valid_catalog(
        self, declared: Package, package_inputs: dict[str, Any], eoflows_prefect_api: str, tmp_path: Path
    ) -> None:
        """The flow publishes DESTINATION/RUN_ID/catalog.json, valid STAC, every asset there."""
        from flows.package_flows import flow_of

        uri = flow_of(self.package)(**package_inputs, destination=str(tmp_path / "results"), run_id="contract")
        assert Path(uri) == tmp_path / "results" / "contract" / "catalog.json"
        check_catalog(uri)

    def test_a_run_to_s3_publishes_a_valid_catalog(
        self,
        declared: Package,
        package_inputs: dict[str, Any],
        eoflows_prefect_api: str,
        eoflows_s3: Any,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The flow publishes to S3 (credentials from the environment), valid STAC read back from S3."""
        from flows.package_flows import flow_of

        for name, value in eoflows_s3.env().items():
            monkeypatch.setenv(name, value)
        destination = f"s3://{BUCKET}/{self.package}"
        uri = flow_of(self.package)(**package_inputs, destination=destination, run_id="contract-s3")
        assert uri == f"{destination}/contract-s3/catalog.json"
        check_catalog(uri, eoflows_s3.storage())

    def test_the_steps_by_cli_give_what_the_flow_gives(
        self, declared: Package, package_inputs: dict[str, Any], eoflows_prefect_api: str, tmp_path: Path
    ) -> None:
        """`eoflows step` stage-in, compute, stage-out on folders: the same items and files as the flow."""
        from flows.package_flows import flow_of

        flow_uri = flow_of(self.package)(**package_inputs, destination=str(tmp_path / "flow"), run_id="run")
        (tmp_path / "cli").mkdir()  # a step publishes into an existing folder
        previous = None
        for i, step in enumerate(declared.steps):
            wiring = []
            if step.by_role(Role.STAGED):
                wiring += [f"--{step.by_role(Role.STAGED)[0].name}", str(previous)]
            if step.by_role(Role.OUTPUT):
                previous = tmp_path / f"step-{i}"
                wiring += [f"--{step.by_role(Role.OUTPUT)[0].name}", str(previous)]
            values = {**package_inputs, "destination": str(tmp_path / "cli"), "run_id": "run"}
            done = eoflows("step", self.package, step.name, *wiring, *cli_options(step, values))
            assert done.returncode == 0, f"eoflows step {self.package} {step.name}: {done.stderr[-3000:]}"
        cli_uri = str(tmp_path / "cli" / "run" / "catalog.json")
        assert published(cli_uri) == published(flow_uri)

    def test_the_cwl_runs_with_cwltool_like_the_flow(
        self, declared: Package, package_inputs: dict[str, Any], eoflows_prefect_api: str, tmp_path: Path
    ) -> None:
        """The full-mode CWL, run by stock cwltool (no container: this environment), publishes what the flow does."""
        from flows.package_flows import flow_of

        flow_uri = flow_of(self.package)(**package_inputs, destination=str(tmp_path / "flow"), run_id="run")
        path, job = tmp_path / "package.cwl", tmp_path / "job.yml"
        done = eoflows("cwl", "export", self.package, "--mode", "full", "--dask", "hints", "--docker", "hints",
                       "-o", str(path))  # fmt: skip
        assert done.returncode == 0, done.stderr
        job.write_text(yaml.safe_dump({**package_inputs, "destination": str(tmp_path / "cwl"), "run_id": "run"}))
        kept = [x for name in ("PYTHONPATH", "EOFLOWS_PACKAGES") if name in os.environ
                for x in ("--preserve-environment", name)]  # fmt: skip
        (tmp_path / "cwl").mkdir()
        command = [str(BIN / "cwltool"), "--enable-ext", "--no-container", *kept, "--outdir", str(tmp_path / "out")]
        path_with_eoflows = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # the steps run `eoflows step ...`
        ran = subprocess.run([*command, f"{path}#{self.package}", str(job)], capture_output=True, text=True,
                             timeout=600, env={**os.environ, "PATH": path_with_eoflows})  # fmt: skip
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert published(json.loads(ran.stdout)["catalog_uri"]) == published(flow_uri)

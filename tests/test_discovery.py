"""Discovery of packages (entry points, `module:OBJECT` for development): a broken one is listed with its reason,
naming the package and where it comes from, and never stops the others; the deployments derived for each."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import eoflows
from deployments.deploy import package_deployments, pod_resources
from eoflows import API_VERSION
from eoflows.discovery import Source, discover, find, installed, load, require
from eoflows.errors import InputError
from tasks.s2_indices import S2_INDICES

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))

STEPS = '''
from pathlib import Path
from eoflows.api import STAGE_IN, STAGE_OUT, OutputDir, Package, StagedDir, Step


def compute(input: StagedDir, output: OutputDir, gain: float = 1.0) -> Path:
    """Compute.

    Args:
        input: Staged folder.
        output: Output folder.
        gain: A gain.
    """
    return output


def other(input: StagedDir, output: OutputDir, gain: int = 2) -> Path:
    """Other.

    Args:
        input: Staged folder.
        output: Output folder.
        gain: Another gain.
    """
    return output


def undocumented(input: StagedDir, output: OutputDir, gain: float = 1.0) -> Path:
    """Gain not documented.

    Args:
        input: Staged folder.
        output: Output folder.
    """
    return output
'''

CASES = {
    "good": 'PACKAGE = Package("toy-good", "Toy", "A toy.", STAGE_IN, Step("compute", compute), STAGE_OUT)',
    "undocumented": 'PACKAGE = Package("toy-undoc", "Toy", "A toy.", STAGE_IN, Step("compute", undocumented), '
    "STAGE_OUT)",
    "same_names": 'PACKAGE = Package("toy-same", "Toy", "A toy.", STAGE_IN, Step("stage-in", compute), STAGE_OUT)',
    "differently": 'PACKAGE = Package("toy-diff", "Toy", "A toy.", STAGE_IN, Step("compute", compute), '
    'Step("stage-out", other))',
    "clash": 'PACKAGE = Package("s2-indices", "Toy", "A toy.", STAGE_IN, Step("compute", compute), STAGE_OUT)',
    "reserved": 'PACKAGE = Package("monitor", "Toy", "A toy.", STAGE_IN, Step("compute", compute), STAGE_OUT)',
    "api": 'PACKAGE = Package("toy-api", "Toy", "A toy.", STAGE_IN, Step("compute", compute), STAGE_OUT, '
    'api=">=2.0,<3")',
    "fails": 'raise RuntimeError("the module fails on import")',
    "not_a_package": "PACKAGE = 42",
}


@pytest.fixture
def toys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Modules toy_<case> on sys.path (and PYTHONPATH, for the CLI), one declaration each."""
    for case, declaration in CASES.items():
        (tmp_path / f"toy_{case}.py").write_text(STEPS + "\n" + textwrap.dedent(declaration) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    return tmp_path


def one(case: str, name: str = "") -> str:
    """The error of discovering toy_<case> (as an entry point called `name`, or a development source)."""
    found = load(Source(f"toy_{case}:PACKAGE", name, "toys 1.0" if name else ""))
    return found.error


def test_a_good_package_loads_from_a_development_source(toys: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EOFLOWS_PACKAGES", "toy_good:PACKAGE")
    assert "toy-good" in installed() and {"s2-indices", "burned-area", "downsample"} <= set(installed())
    assert require("toy-good").name == "toy-good"


@pytest.mark.parametrize(
    ("case", "entry_point", "expected"),
    [
        ("undocumented", "toy-undoc", "parameter 'gain' of undocumented has no doc"),
        ("same_names", "toy-same", "its steps need three names"),
        ("differently", "toy-diff", "parameter 'gain' is declared differently by two steps"),
        (
            "reserved",
            "monitor",
            "package 'monitor' (entry point monitor = toy_reserved:PACKAGE of toys 1.0): its name "
            "is taken by eoflows' monitor flow",
        ),
        ("api", "toy-api", f"it needs eoflows API >=2.0,<3; this eoflows has API {API_VERSION}"),
        ("fails", "toy-fails", "cannot be loaded (RuntimeError: the module fails on import)"),
        ("not_a_package", "toy-int", "is a int, not an eoflows Package"),
    ],
)
def test_a_broken_declaration_names_the_package_and_its_entry_point(
    toys: Path, case: str, entry_point: str, expected: str
) -> None:
    error = one(case, entry_point)
    assert expected in error and f"entry point {entry_point} = toy_{case}:PACKAGE of toys 1.0" in error, error
    assert "\n" not in error


def test_an_entry_point_named_unlike_its_package_is_refused(toys: Path) -> None:
    assert "the entry point is called 'other' but the package 'toy-good'" in one("good", "other")


def test_a_name_clashing_with_a_built_in_is_broken_and_the_built_in_stays(
    toys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EOFLOWS_PACKAGES", "toy_clash:PACKAGE,toy_good:PACKAGE")
    found = {(f.name, f.source.built_in): f for f in discover()}
    clash = found[("s2-indices", False)]
    assert not clash.ok and "its name is taken by a built-in package (entry point s2-indices" in clash.error
    assert "toy_clash:PACKAGE, given by EOFLOWS_PACKAGES or --package" in clash.error
    assert installed()["s2-indices"] is S2_INDICES and found[("toy-good", False)].ok


def test_the_cli_lists_broken_packages_and_runs_the_others(toys: Path, tmp_path: Path) -> None:
    env = {"PYTHONPATH": str(toys), "EOFLOWS_PACKAGES": "toy_fails:PACKAGE,toy_undocumented:PACKAGE"}
    listed = subprocess.run([EOFLOWS, "--package", "toy_good:PACKAGE", "packages", "--json"], capture_output=True,
                            text=True, env={**_base_env(), **env}, timeout=120)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["toy-good"]["status"] == "ok" and rows["toy-good"]["steps"] == "stage-in, compute, stage-out"
    assert rows["s2-indices"]["origin"].startswith("built-in (eoflows ")
    assert rows["toy_fails:PACKAGE"]["status"].startswith("broken: toy_fails:PACKAGE, given by EOFLOWS_PACKAGES")
    assert "has no doc" in rows["toy_undocumented:PACKAGE"]["status"]
    staged = subprocess.run([EOFLOWS, "--package", "toy_good:PACKAGE", "step", "toy-good", "stage-in", "--help"],
                            capture_output=True, text=True, env={**_base_env(), **env}, timeout=120)  # fmt: skip
    assert staged.returncode == 0 and "--item" in staged.stdout, staged.stderr


def test_running_a_broken_package_prints_its_reason(toys: Path) -> None:
    env = {**_base_env(), "PYTHONPATH": str(toys)}
    for command in (["step", "toy-api", "compute", "--help"], ["run", "toy-api", "--help"]):
        done = subprocess.run([EOFLOWS, "--package", "toy_api:PACKAGE", *command], capture_output=True, text=True,
                              env=env, timeout=120)  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert done.stderr.strip().splitlines()[-1] == (
            "eoflows: error: package 'toy-api' (toy_api:PACKAGE, given by EOFLOWS_PACKAGES or --package): it needs "
            f"eoflows API >=2.0,<3; this eoflows has API {API_VERSION}"
        )
    with pytest.raises(InputError, match="not installed; installed: .*s2-indices"):
        require("no-such-package")


def test_a_package_that_cannot_be_loaded_is_named_when_asked_for(toys: Path) -> None:
    """Its name is unknown (its module fails): asking for any package not found says why it could not load."""
    done = subprocess.run([EOFLOWS, "--package", "toy_fails:PACKAGE", "run", "toy-fails", "--item", "x"],
                          capture_output=True, text=True, env={**_base_env(), "PYTHONPATH": str(toys)},
                          timeout=120)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "eoflows: error: package 'toy-fails': not installed; installed: burned-area, downsample, downsample-notebook, "
        "s2-indices; toy_fails:PACKAGE, given by EOFLOWS_PACKAGES or --package: cannot be loaded (RuntimeError: the "
        "module fails on import)"
    )


def test_a_version_comes_from_the_distribution_unless_declared(toys: Path) -> None:
    assert load(Source("toy_good:PACKAGE", "toy-good", "toys 1.2", version="1.2")).package.version == "1.2"
    assert load(Source("toy_good:PACKAGE")).package.version == "0+dev"  # named for development, not installed
    assert require("downsample").version == eoflows.__version__  # declared


def test_find_loads_the_named_entry_point_alone() -> None:
    found = find("downsample")
    assert found is not None and found.ok and found.source.built_in
    assert found.source.target == "tasks.downsample:DOWNSAMPLE" and found.package.api == ""


def test_every_installed_package_gets_the_deployments_of_the_template() -> None:
    config = {
        "definitions": {
            "package": {"version_type": "prefect:simple", "enforce_parameter_schema": True},
            "package_deployments": [
                {"name": "local", "work_pool": {"name": "eoflows-local", "job_variables": {}}},
                {"name": "kubernetes", "work_pool": {"name": "eoflows-k8s", "job_variables": {}}},
            ],
        }
    }
    entries = package_deployments(config, {"s2-indices": S2_INDICES})
    assert [e["name"] for e in entries] == ["local", "kubernetes"]
    assert {e["entrypoint"] for e in entries} == {"flows.package_flows:s2_indices"}
    assert entries[0]["tags"] == ["eoflows", "s2-indices"] and entries[0]["enforce_parameter_schema"]
    assert entries[1]["work_pool"]["job_variables"] == pod_resources(S2_INDICES) == {
        "cpu_request": "2", "cpu_limit": "2", "memory_request": "2Gi", "memory_limit": "4Gi"}  # fmt: skip
    assert config["definitions"]["package_deployments"][1]["work_pool"]["job_variables"] == {}  # not changed


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("EOFLOWS_PACKAGES", "PYTHONPATH")}

"""Notebook steps: the parameters cell declares the step; papermill runs it; the executed notebook is published.

The example package `downsample-notebook` (the seed's two notebooks) keeps the package contract (flow, CLI, CWL
by cwltool) and publishes what `downsample` publishes for the same input, plus its executed notebooks.
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

import nbformat
import pystac
import pytest
import rasterio
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from eoflows.discovery import require
from eoflows.package import Role
from eoflows.samples.landsat import write_landsat
from eoflows.testing import PackageContract, published
from flows.package_flows import downsample as downsample_flow
from flows.package_flows import flow_of
from tasks.cwl.export import CwlOptions, export
from tasks.notebook import NotebookError, declared_parameters, notebook_step
from tests.test_s2_flow import artifacts_of

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))


@pytest.fixture(scope="module")
def landsat(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """SR_B5 and QA_PIXEL of a small synthetic scene."""
    return write_landsat(tmp_path_factory.mktemp("landsat"))


def write_notebook(path: Path, parameters: str, *code: str) -> Path:
    """A notebook with a title, the parameters cell and `code` cells."""
    cells = [new_markdown_cell("# A test notebook"), new_code_cell(parameters, metadata={"tags": ["parameters"]})]
    nb = new_notebook(cells=cells + [new_code_cell(c) for c in code])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


def test_types_come_from_annotations_comments_and_literal_defaults() -> None:
    source = """import os
factor: float = 2  # the factor
count = 3  # type: int
label = "x"  # a label
flags = ["a", "b"]
mode: Literal["fast", "exact"] = "fast"  # how
limit: int | None = None
ratio: Optional[float] = 0.5
"""
    found = {p.name: p for p in declared_parameters(source, "notebook 't.ipynb'")}
    assert {name: p.annotation for name, p in found.items()} == {
        "factor": float, "count": int, "label": str, "flags": list[str], "mode": Literal["fast", "exact"],
        "limit": int | None, "ratio": float | None}  # fmt: skip
    assert (found["factor"].default, type(found["factor"].default)) == (2.0, float)
    assert (found["factor"].help, found["count"].help, found["label"].help) == ("the factor", "", "a label")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("x = None", "parameter 'x' has no type eoflows can know from its default None; annotate it"),
        ("x = []", "parameter 'x' has no type eoflows can know from its default []; annotate it"),
        ("x = os.environ['X']", "parameter 'x' has the default \"os.environ['X']\", not a literal value"),
        ("x: dict = {}", "parameter 'x' has the type 'dict', not one eoflows takes"),
        ("x: int = 'a'", "parameter 'x' has the default 'a', not a value of its type"),
        ("x = (", "the parameters cell is not valid Python"),
    ],
)
def test_a_parameter_whose_type_cannot_be_known_is_named(line: str, expected: str) -> None:
    with pytest.raises(NotebookError, match="^notebook 't.ipynb': " + expected.replace("(", r"\(").replace("[", r"\[")):
        declared_parameters(line, "notebook 't.ipynb'")


def test_a_notebook_without_the_contract_is_refused(tmp_path: Path) -> None:
    no_cell = tmp_path / "none.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), str(no_cell))
    with pytest.raises(NotebookError, match="no code cell tagged 'parameters'"):
        notebook_step("compute", no_cell)
    with pytest.raises(NotebookError, match="its parameters cell sets no output_dir"):
        notebook_step("compute", write_notebook(tmp_path / "out.ipynb", "x = 1"))
    with pytest.raises(NotebookError, match="takes dask_scheduler, but the step asks for no Dask cluster"):
        notebook_step("compute", write_notebook(tmp_path / "d.ipynb", "output_dir = ''\ndask_scheduler = ''"))


def test_one_declaration_gives_the_flow_form_the_cli_options_and_the_cwl_inputs() -> None:
    package = require("downsample-notebook")
    compute = package.step("compute")
    assert [(p.name, p.role) for p in compute.params] == [
        ("input", Role.STAGED), ("output", Role.OUTPUT), ("min_spin_time", Role.INPUT),
        ("max_spin_time", Role.INPUT)]  # fmt: skip
    schema = flow_of("downsample-notebook").parameters
    assert schema.properties["min_spin_time"]["type"] == "integer" and "input_url" in schema.required
    assert schema.properties["max_spin_time"]["description"].startswith("longest pause before the work")
    helped = subprocess.run([EOFLOWS, "step", "downsample-notebook", "compute", "--help"], capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert "--min-spin-time" in helped.stdout and "--input" in helped.stdout, helped.stderr
    document = export(package, CwlOptions(mode="app"))
    (tool,) = [p for p in document["$graph"] if p["id"] == "downsample-notebook-compute"]
    inputs = {i["id"].rsplit("/", 1)[-1]: i for i in tool["inputs"]}
    assert inputs["min_spin_time"]["type"] == "int" and inputs["min_spin_time"]["default"] == 0
    assert tool["baseCommand"] == ["eoflows", "step", "downsample-notebook", "compute"]


def test_it_publishes_what_downsample_does_and_its_executed_notebook(
    landsat: tuple[Path, Path], tmp_path: Path
) -> None:
    url = str(landsat[1])
    state = flow_of("downsample-notebook")(input_url=url, destination=str(tmp_path / "nb"), run_id="r",
                                           return_state=True)  # fmt: skip
    ours = state.result()
    theirs = downsample_flow(url=url, destination=str(tmp_path / "py"), run_id="r")
    a, b = published(ours), published(theirs)
    assert a.keys() == b.keys()
    for item_id, item in b.items():
        assert a[item_id]["properties"] == item["properties"]
        notebook_keys = {"compute-notebook", "compute-notebook-html"}
        assert set(a[item_id]["keys"]) == set(item["keys"]) | notebook_keys
        assert {k: v for k, v in a[item_id]["assets"].items() if k not in notebook_keys} == item["assets"]
    (item,) = pystac.Catalog.from_file(ours).get_items(recursive=True)
    asset = item.assets["compute-notebook"]
    assert asset.media_type == "application/x-ipynb+json" and asset.extra_fields["notebook:parameters"] == {
        "min_spin_time": 0, "max_spin_time": 0}  # fmt: skip
    assert asset.extra_fields["notebook:duration"] > 0
    executed = nbformat.read(asset.get_absolute_href(), as_version=4)
    nbformat.validate(executed)
    assert executed.metadata.papermill.parameters["min_spin_time"] == 0
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in executed.cells)
    html = Path(item.assets["compute-notebook-html"].get_absolute_href()).read_text()
    assert html.startswith("<!DOCTYPE html>") and "Downsample a Landsat band" in html
    markdown = {a.key: a.data for a in artifacts_of(state)["markdown"]}
    assert "as assets `compute-notebook` (compute.ipynb)" in markdown["notebook-compute"]
    published_html = item.assets["compute-notebook-html"].get_absolute_href()
    assert f"| compute-notebook-html | Executed notebook downsample_landsat.ipynb, as HTML | [{published_html}]" in (
        "\n".join(v for k, v in markdown.items() if k != "notebook-compute")
    )  # the products artifact links it


def test_a_failing_cell_is_one_line_and_the_executed_notebook_is_kept(
    landsat: tuple[Path, Path], tmp_path: Path
) -> None:
    staged, out = tmp_path / "staged", tmp_path / "out"
    done = subprocess.run([EOFLOWS, "step", "downsample-notebook", "stage-in", "--input-url", str(landsat[1]),
                           "--output", str(staged)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    done = subprocess.run([EOFLOWS, "step", "downsample-notebook", "compute", "--input", str(staged), "--output",
                           str(out), "--min-spin-time", "5", "--max-spin-time", "1"], capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "eoflows: error: notebook 'downsample_landsat.ipynb': cell 3 raised ValueError: min_spin_time 5, "
        f"max_spin_time 1: need 0 <= min <= max (the executed notebook: {out / 'compute.ipynb'})"
    )
    assert "Traceback (most recent call last)" in done.stderr  # the traceback goes to the log
    kept = nbformat.read(str(out / "compute.ipynb"), as_version=4)
    nbformat.validate(kept)
    assert not (out / "catalog.json").exists()


def test_a_value_for_a_parameter_the_notebook_lacks_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([EOFLOWS, "step", "downsample-notebook", "compute", "--input", str(tmp_path), "--output",
                           str(tmp_path / "out"), "--width", "3"], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 2 and "--width" in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


WRITE_CATALOG = """
import pystac, datetime
item = pystac.Item("sum", None, None, datetime.datetime(2025, 1, 1), {"sum": total})
catalog = pystac.Catalog("catalog", "results")
catalog.add_item(item)
catalog.normalize_and_save(output_dir, pystac.CatalogType.SELF_CONTAINED)
"""


def test_a_dask_notebook_computes_on_the_cluster_eoflows_gives_it(tmp_path: Path) -> None:
    path = write_notebook(
        tmp_path / "dask.ipynb",
        "output_dir = ''\ndask_scheduler = ''  # filled by eoflows\nn: int = 10  # how many",
        "from distributed import Client\nwith Client(dask_scheduler) as client:\n"
        "    total = sum(client.gather(client.map(lambda x: x * x, range(n))))",
        WRITE_CATALOG,
    )
    from eoflows.package import DaskSizes

    step = notebook_step("compute", path, dask=DaskSizes())
    step.run(output=tmp_path / "out", n=4, dask=None)
    (item,) = pystac.Catalog.from_file(str(tmp_path / "out" / "catalog.json")).get_items(recursive=True)
    assert item.properties["sum"] == 14 and "compute-notebook" in item.assets
    executed = nbformat.read(item.assets["compute-notebook"].get_absolute_href(), as_version=4)
    assert executed.metadata.papermill.parameters["dask_scheduler"].startswith("tcp://127.0.0.1:")


def test_a_notebook_that_writes_no_catalog_breaks_the_contract(tmp_path: Path) -> None:
    path = write_notebook(tmp_path / "nothing.ipynb", "output_dir = ''", "print('done')")
    with pytest.raises(NotebookError, match=r"ran, but wrote no catalog.json into output_dir .* executed notebook: "):
        notebook_step("compute", path).run(output=tmp_path / "out")
    assert (tmp_path / "out" / "compute.ipynb").is_file()


class TestDownsampleNotebook(PackageContract):
    """The example package keeps the contract: flow, CLI steps and CWL by cwltool give the same results."""

    package = "downsample-notebook"

    @pytest.fixture
    def package_inputs(self, landsat: tuple[Path, Path]) -> dict[str, Any]:
        return {"input_url": str(landsat[1])}


THEIR_PARAMETERS = """input_dir = "."  # the staged folder (eoflows fills it)
output_dir = "."  # where the results go (eoflows fills it)
band = "nir"  # the asset to measure
threshold: float = 0.2  # reflectance above which a pixel counts as bright
"""
THEIR_CODE = (
    """import numpy as np, pystac, rasterio
item = next(pystac.Catalog.from_file(f"{input_dir}/catalog.json").get_items(recursive=True))
asset = item.assets[band]
coding = asset.extra_fields["raster:bands"][0]
with rasterio.open(asset.get_absolute_href()) as src:
    dn = src.read(1).astype("float64")
valid = dn != coding["nodata"]
bright = float(((dn * coding["scale"] + coding["offset"] > threshold) & valid).sum() / valid.sum())""",
    """import pathlib
out = pystac.Item(f"{item.id}-bright", item.geometry, item.bbox, item.datetime, {"bright_fraction": bright})
folder = pathlib.Path(output_dir) / out.id
folder.mkdir(parents=True, exist_ok=True)
(folder / "bright.txt").write_text(f"{bright:.6f}\\n")
out.add_asset("data", pystac.Asset("./bright.txt", media_type="text/plain", roles=["data"]))
results = pystac.Catalog("results", "Bright pixels")
results.add_item(out)
results.normalize_and_save(output_dir, pystac.CatalogType.SELF_CONTAINED)""",
)


def test_someone_elses_notebook_becomes_a_package_that_runs_everywhere(
    burn_pair: tuple[Path, Path], tmp_path: Path
) -> None:
    """A notebook knowing nothing of eoflows but the guide's two names: `eoflows new package --notebook`, pip
    install, `eoflows run`, and the package's own contract suite (flow, CLI steps, CWL by cwltool, S3)."""
    from tests.test_own_package import env_with, install

    theirs = write_notebook(tmp_path / "bright.ipynb", THEIR_PARAMETERS, *THEIR_CODE)
    made = subprocess.run([EOFLOWS, "new", "package", "bright-pixels", "--dest", str(tmp_path / "bright-pixels"),
                           "--notebook", str(theirs)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert not (tmp_path / "bright-pixels" / "bright_pixels" / "science.py").exists()
    site = tmp_path / "site"
    install(tmp_path / "bright-pixels", site)
    done = subprocess.run([EOFLOWS, "run", "bright-pixels", "--item", str(burn_pair[1]), "--threshold", "0.3",
                           "--destination", str(tmp_path / "results"), "--run-id", "r1", "--json"],
                          capture_output=True, text=True, env=env_with(site), timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (item,) = pystac.Catalog.from_file(json.loads(done.stdout)["catalog"]).get_items(recursive=True)
    source = pystac.Item.from_file(str(burn_pair[1])).assets["nir"]
    coding = source.extra_fields["raster:bands"][0]
    with rasterio.open(source.get_absolute_href()) as src:
        dn = src.read(1).astype("float64")
    valid = dn != coding["nodata"]
    expected = ((dn * coding["scale"] + coding["offset"] > 0.3) & valid).sum() / valid.sum()
    assert item.properties["bright_fraction"] == pytest.approx(expected) and 0 < expected < 1
    assert item.assets["compute-notebook"].extra_fields["notebook:parameters"] == {"band": "nir", "threshold": 0.3}
    tests = tmp_path / "bright-pixels" / "tests"
    suite = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
                           capture_output=True, text=True, cwd=tests.parent, env=env_with(site),
                           timeout=900)  # fmt: skip
    assert suite.returncode == 0 and "7 passed" in suite.stdout.splitlines()[-1], suite.stdout[-4000:]


def test_the_scaffold_refuses_a_notebook_that_cannot_be_a_compute_step(tmp_path: Path) -> None:
    lonely = write_notebook(tmp_path / "lonely.ipynb", "output_dir = '.'\nx = None", "print(x)")
    done = subprocess.run([EOFLOWS, "new", "package", "lonely", "--dest", str(tmp_path / "lonely"), "--notebook",
                           str(lonely)], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 1 and not (tmp_path / "lonely").exists()
    assert done.stderr.strip() == (
        "eoflows: error: notebook 'lonely.ipynb': parameter 'x' has no type eoflows can know from its default None; "
        "annotate it (`name: int = 1`) or add a `# type: int` comment (str, int, float, bool, list[...], Literal[...])"
    )


def test_a_failed_flow_run_keeps_its_notebook_beyond_its_work_folder(
    landsat: tuple[Path, Path], tmp_path: Path
) -> None:
    state = flow_of("downsample-notebook")(input_url=str(landsat[1]), min_spin_time=3, max_spin_time=1,
                                           destination=str(tmp_path / "nb"), return_state=True)  # fmt: skip
    assert state.is_failed()
    run = state.state_details.flow_run_id
    kept = Path(tempfile.gettempdir(), "eoflows-notebooks", str(run), "compute.ipynb")
    assert state.message.endswith(
        f"min_spin_time 3, max_spin_time 1: need 0 <= min <= max (the executed notebook: {kept})"
    )
    nbformat.validate(nbformat.read(str(kept), as_version=4))
    (failed,) = [a for a in artifacts_of(state)["markdown"] if a.key == "notebook-compute-failed"]
    assert "Traceback (most recent call last)" in failed.data and "cell 3" in failed.data
    assert not (tmp_path / "nb").exists() or not list((tmp_path / "nb").rglob("*.json"))  # nothing published

"""What the ecosystem's CWL clients get from eoflows: job files they accept, outputs without strays, and the
measured table of which `--dask` form each runner and validator accepts (README, "CWL")."""

import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from eoflows.cli import main
from eoflows.discovery import installed
from eoflows.package import Role
from eoflows.prefect_home import private_prefect_home
from tasks.cwl.check import stock_tool_advice
from tasks.cwl.export import CwlOptions, export, job_template, to_yaml
from tasks.cwl.extensions import cwltool_main
from tasks.cwl.wrap import WRAPPER, wrap_package
from tasks.data.work_folders import LOCK

PACKAGES = installed()

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FORMS = ("requirements", "hints", "none")


def validate_job(target: str, job: Path) -> tuple[int, str]:
    """cwltool's `--validate TARGET JOB` (inputs checked too), the eoap string-format schema answered locally."""
    out, err = io.StringIO(), io.StringIO()
    quiet = logging.getLogger("cwltool")
    propagate, quiet.propagate = quiet.propagate, False
    try:
        code = cwltool_main(["--enable-ext", "--validate", target, str(job)], stdout=out, stderr=err,
                            logger_handler=logging.StreamHandler(err))  # fmt: skip
    finally:
        quiet.propagate = propagate
    return code, " ".join(re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue() + err.getvalue()).split())  # unwrapped


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_the_wrapped_job_template_validates_against_the_wrapped_document(
    package: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """`cwl job --mode wrapped` gives inputs cwltool accepts for `main` of `cwl export --mode wrapped`."""
    path, job = tmp_path / "wrapped.cwl", tmp_path / "job.yml"
    path.write_text(to_yaml(wrap_package(PACKAGES[package], CwlOptions(dask="hints"))))  # a stock cwltool form
    assert main(["cwl", "job", package, "--mode", "wrapped", "-o", str(job)]) == 0, capsys.readouterr().err
    inputs = yaml.safe_load(job.read_text())
    reference = PACKAGES[package].stage_in.by_role(Role.INPUT)[0].name  # the item (or file) to stage
    assert inputs["input"] == {"value": job_template(PACKAGES[package], "full")[reference]}
    code, log = validate_job(f"{path}#{WRAPPER}", job)
    assert code == 0 and "No errors detected in the inputs" in log, log[-3000:]
    job.write_text(yaml.safe_dump({**inputs, "input": inputs["input"]["value"]}))  # the full mode's plain string
    code, log = validate_job(f"{path}#{WRAPPER}", job)
    assert code == 1 and "the 'input' field is not valid" in log, log[-3000:]


def test_a_private_prefect_home_unless_the_user_set_one(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    home = private_prefect_home(environ, imported=[])
    assert home and environ == {"PREFECT_HOME": home} and Path(home).is_dir()
    assert [p.name for p in Path(home).iterdir()] == [LOCK]  # locked: a killed step's home goes with the next run
    assert private_prefect_home({"PREFECT_HOME": str(tmp_path)}, imported=[]) is None  # the user's choice
    assert private_prefect_home({}, imported=["prefect"]) is None  # too late: Prefect made its home


def test_a_step_command_writes_only_its_output(sample_item: Path, tmp_path: Path) -> None:
    """No Prefect home, cache or log in $HOME or the current folder, and the private home is removed."""
    home, work, tmp = tmp_path / "home", tmp_path / "work", tmp_path / "tmp"
    for folder in (home, work, tmp):
        folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_HOME")}
    env.update(HOME=str(home), TMPDIR=str(tmp))
    done = subprocess.run([str(BIN / "eoflows"), "step", "s2-indices", "stage-in", "--item", str(sample_item),
                           "--output", str(work / "out")], capture_output=True, text=True, cwd=work, env=env,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(home.iterdir()) == [] and list(tmp.iterdir()) == []
    assert [p.name for p in work.iterdir()] == ["out"]
    assert {p.name for p in (work / "out").iterdir()} == {"catalog.json", sample_item.stem}


def test_validate_says_which_dask_form_to_give_stock_tools(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    package = PACKAGES["s2-indices"]
    for form in FORMS:
        advice = " ".join(stock_tool_advice(export(package, CwlOptions(dask=form))))
        assert ("export with --dask none" in advice) == (form != "none"), (form, advice)
    for form, expected in (("requirements", True), ("none", False)):
        path = tmp_path / f"{form}.cwl"
        path.write_text(to_yaml(export(package, CwlOptions(dask=form))))
        status = main(["cwl", "validate", "--no-ogc", str(path)])
        out = capsys.readouterr().out
        assert status == 0, out
        notes = [line for line in out.splitlines() if line.startswith("note: ")]
        assert bool(notes) == expected, out
        if expected:
            assert "stock cwltool and eoap-validator reject" in notes[0] and "--dask none" in notes[0]
        assert out.strip().splitlines()[-1] == f"{path}: valid (cwltool, Calrissian DaskGatewayRequirement)"


def readme_row(tool: str) -> dict[str, bool]:
    """The README table's cells for `tool`: form -> accepted (cells start with yes or no)."""
    text = (ROOT / "README.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| runner or validator |"))
    forms = [re.search(r"`(\w+)`", cell)[1] for cell in header.strip().strip("|").split("|")[1:]]
    row = next(line for line in text.splitlines() if line.startswith(f"| {tool} "))
    cells = [cell.strip() for cell in row.strip().strip("|").split("|")[1:]]
    assert forms == list(FORMS) and all(c.startswith(("yes", "no")) for c in cells), (forms, cells)
    return {form: cell.startswith("yes") for form, cell in zip(forms, cells, strict=True)}


def test_the_readme_table_row_of_stock_cwltool_holds(tmp_path: Path) -> None:
    """Stock cwltool --validate (no extension schema) on the three forms, in parallel: as the README says."""
    expected = readme_row("stock cwltool")
    assert expected == {"requirements": False, "hints": True, "none": True}  # the advice of `cwl validate` too
    runs = {}
    for form in FORMS:
        path = tmp_path / f"{form}.cwl"
        path.write_text(to_yaml(export(PACKAGES["s2-indices"], CwlOptions(dask=form))))
        runs[form] = subprocess.Popen([str(BIN / "cwltool"), "--validate", str(path)], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)  # fmt: skip
    for form, run in runs.items():
        log = " ".join(run.communicate(timeout=300)[0].split())  # cwltool wraps its messages
        assert (run.returncode == 0) == expected[form], f"--dask {form}: exit {run.returncode}\n{log[-2000:]}"
        if not expected[form]:
            assert "undefined reference to" in log and "DaskGatewayRequirement" in log, log[-2000:]

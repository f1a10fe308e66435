"""The `eoflows` command line, run as users and CWL tools run it (a subprocess), plus its help texts."""

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr
from prefect.settings import PREFECT_API_URL

from bench.startup import imported_by
from eoflows.cli import main
from eoflows.discovery import installed
from eoflows.local.s3 import LocalS3
from eoflows.package import Role
from flows.build import flow_params

PACKAGES = installed()

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))


def eoflows(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return subprocess.run([EOFLOWS, *args], capture_output=True, text=True, env={**clean, **(env or {})}, timeout=300)


def test_steps_one_by_one_on_folders_and_s3(sample_item: Path, s3: LocalS3, tmp_path: Path) -> None:
    staged, out = tmp_path / "staged", tmp_path / "out"
    done = eoflows("step", "s2-indices", "stage-in", "--item", str(sample_item), "--output", str(staged))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(staged) and (staged / "catalog.json").is_file()
    done = eoflows(
        "step", "s2-indices", "compute", "--input", str(staged), "--output", str(out), "--products", "ndvi", "rgb"
    )  # fmt: skip  (the README's form; CWL tools repeat the flag)
    assert done.returncode == 0, done.stderr
    assert "computing 2 products" in done.stderr  # the progress bar
    (store,) = out.glob("*/*.zarr")
    assert sorted(xr.open_zarr(store, consolidated=True).data_vars) == ["ndvi", "rgb"]
    done = eoflows("step", "s2-indices", "stage-out", "--input", str(out), "--destination", "s3://eoflows-results/cli",
                   "--run-id", "steps", env=s3.env())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "s3://eoflows-results/cli/steps/catalog.json"
    assert s3.secret_access_key not in done.stdout + done.stderr
    # a step publishes into an existing folder: a missing one is what a host folder looks like in a container
    missing = tmp_path / "not-made"
    done = eoflows("step", "s2-indices", "stage-out", "--input", str(out), "--destination", str(missing))
    assert done.returncode != 0 and not missing.exists()
    assert (
        done.stderr.strip().splitlines()[-1].startswith(f"eoflows: error: destination {str(missing)!r}: no such folder")
    )


def test_run_prints_the_catalog_uri(sample_item: Path, tmp_path: Path) -> None:
    done = eoflows("run", "s2-indices", "--item", str(sample_item), "--destination", str(tmp_path), "--run-id", "cli",
                   "--products", "ndwi", env={"PREFECT_API_URL": PREFECT_API_URL.value()})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == str(tmp_path / "cli" / "catalog.json")
    item = json.loads(next((tmp_path / "cli").glob("*/*-processed.json")).read_text())
    assert set(item["assets"]) == {"ndwi", "product", "thumbnail"}
    done = eoflows("run", "s2-indices", "--item", str(sample_item), "--destination", str(tmp_path), "--run-id", "js",
                   "--products", "ndwi", "--json", env={"PREFECT_API_URL": PREFECT_API_URL.value()})  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    (item,) = printed["items"]
    assert printed["catalog"] == str(tmp_path / "js" / "catalog.json") and item["id"].endswith("-processed")
    assert set(item["assets"]) == {"ndwi", "product", "thumbnail"}
    assert all(Path(href).exists() and Path(href).is_relative_to(tmp_path / "js") for href in item["assets"].values())


def test_errors_are_one_line_and_a_failure_status(tmp_path: Path) -> None:
    done = eoflows("step", "s2-indices", "stage-in", "--item", str(tmp_path / "nope.json"), "--output", str(tmp_path))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(f"eoflows: error: STAC item '{tmp_path / 'nope.json'}'")
    assert "Traceback" not in done.stderr
    done = eoflows("step", "s2-indices", "compute", "--input", str(tmp_path), "--output", str(tmp_path),
                   "--products", "evi")  # fmt: skip
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith('eoflows: usage error: Invalid value "evi" for --products. Choose from: "ndvi"')


def help_text(capsys: pytest.CaptureFixture, *args: str) -> str:
    assert main([*args, "--help"]) == 0
    return " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_help_documents_every_option(package: str, capsys: pytest.CaptureFixture) -> None:
    text = help_text(capsys, "run", package)
    for p in flow_params(PACKAGES[package]):
        assert f"--{p.name.replace('_', '-')}" in text and " ".join(p.doc.split()[:4]) in text, p.name
    for step in PACKAGES[package].steps:
        text = help_text(capsys, "step", package, step.name)
        for p in step.params:
            if p.role in (Role.SETTINGS, Role.RUNTIME):
                assert f"--{p.name}" not in text  # credentials never on the command line; the runtime is wiring
            else:
                assert f"--{p.name.replace('_', '-')}" in text and " ".join(p.doc.split()[:4]) in text, p.name


def test_sample_command(tmp_path: Path) -> None:
    done = eoflows("sample", "s2", str(tmp_path), "--size", "60", "--seed", "2")
    assert done.returncode == 0, done.stderr
    item = Path(done.stdout.strip())
    assert item.is_file() and item.with_suffix(".zarr").is_dir() and "20250606" in item.name


def status_of(argv: list[str]) -> int:
    """The exit status of the command line `argv`, run in this process."""
    return main(argv)


@pytest.mark.parametrize(
    ("error", "status", "said"),
    [
        (TypeError("a bug"), 3, "eoflows: internal error (a bug in eoflows, traceback above): TypeError: a bug"),
        (OSError(28, "No space left on device"), 1, "eoflows: error: compute of"),
    ],
)
def test_bugs_show_as_bugs_and_failed_io_as_one_line(
    error: Exception, status: int, said: str, sample_item: Path, tmp_path: Path, monkeypatch, capfd
) -> None:
    import tasks.s2_indices

    logging.getLogger("eoflows").handlers.clear()  # main() sets its handler up on this test's stderr
    staged, out = str(tmp_path / "in"), str(tmp_path / "out")
    assert status_of(["step", "s2-indices", "stage-in", "--item", str(sample_item), "--output", staged]) == 0

    def broken(*args, **kwargs):
        raise error

    monkeypatch.setattr(tasks.s2_indices, "iter_products", broken)
    code = status_of(["step", "s2-indices", "compute", "--input", staged, "--output", out])
    err = capfd.readouterr().err
    assert code == status and said in err
    assert ("Traceback" in err) == (status == 3)  # a bug keeps its traceback; an input or I/O error is one line
    assert not any((tmp_path / "out").iterdir())  # the partial products are removed either way


def test_deploy_outside_a_checkout_is_refused_before_touching_the_api(tmp_path: Path) -> None:
    # an API nobody answers: any registration before the check would fail with a connection error instead
    done = eoflows("deploy", "--project", str(tmp_path), env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip().splitlines()[-1] == (
        f"eoflows: error: project '{tmp_path}': no prefect.yaml (run eoflows deploy from an eoflows checkout or "
        "give --project)"
    )


@pytest.mark.parametrize(("typed", "expected"), [("eoflows run s2-", "s2-indices"), ("eoflows run s2-indices --pro",
                                                                                    "--products")])  # fmt: skip
def test_bash_completes_packages_and_options(typed: str, expected: str, tmp_path: Path) -> None:
    script = tmp_path / "eoflows.bash"
    script.write_text(eoflows("completion", "--shell", "bash").stdout)
    words = typed.split()
    done = subprocess.run(["bash", "-c", f'source {script}; COMP_WORDS=({typed}); COMP_CWORD={len(words) - 1}; '
                           f'COMP_LINE="{typed}"; COMP_POINT=${{#COMP_LINE}}; _eoflows; echo "${{COMPREPLY[@]}}"'],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.stdout.split() == [expected], done.stderr


@pytest.mark.parametrize(("args", "imports_prefect"), [(["--version"], False), (["sample", "--help"], False),
                                                       (["run", "s2-indices", "--help"], True)])  # fmt: skip
def test_only_commands_that_need_the_packages_import_them(args: list[str], imports_prefect: bool) -> None:
    """Prefect and the packages (1-3 s of imports) load for the commands that list or run packages only."""
    assert ("prefect" in imported_by(*args)) == imports_prefect


@pytest.mark.parametrize("package", sorted(PACKAGES))
@pytest.mark.parametrize(
    ("args", "status"), [(["--help"], 0), (["--input", "in", "--output", "out", "--nope", "1"], 2)]
)
def test_a_step_command_imports_its_own_package_and_not_prefect(package: str, args: list[str], status: int) -> None:
    """What a CWL tool runs starts light (issues 19, 32): its help and usage errors import no Prefect, no flows, no
    other package, nor what runs the step (Zarr, s3fs and aiohttp, xarray, Dask): `bench.startup.HEAVY`."""
    imported = imported_by("step", package, "compute", *args, status=status)
    assert imported == [f"tasks.{package.replace('-', '_')}"]


def test_a_step_runs_without_importing_prefect(sample_item: Path, tmp_path: Path) -> None:
    staged, out = tmp_path / "staged", tmp_path / "out"
    imported = imported_by("step", "s2-indices", "stage-in", "--item", str(sample_item), "--output", str(staged))
    assert imported == ["tasks.s2_indices"]
    imported = imported_by("step", "s2-indices", "compute", "--input", str(staged), "--output", str(out),
                           "--products", "ndvi")  # fmt: skip
    assert "prefect" not in imported and "flows" not in imported  # dask.array: the store's lazy template
    assert list(out.glob("*/*.zarr"))

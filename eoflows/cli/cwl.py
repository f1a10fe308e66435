"""`eoflows cwl`: export packages as CWL (OGC EO Application Packages), write job files, check and run CWL."""

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from cyclopts import App, Parameter

from eoflows.cli.options import write
from eoflows.errors import InputError

if TYPE_CHECKING:
    from eoflows.package import Package

app = App(name="cwl", help="Export packages as CWL (OGC EO Application Packages), check and run them.")


def _package(name: str) -> "Package":
    from eoflows.discovery import require

    return require(name)


@app.command(name="run")
def cwl_run(
    cwl: str,
    inputs: str,
    *,
    runner: Literal["cwltool", "calrissian"] = "cwltool",
    calrissian: str | None = None,
    outdir: str = "cwl-results",
    dry_run: bool = False,
    prefect_server: Annotated[Any, Parameter(parse=False)] = None,
) -> None:
    """Run a CWL document (FILE[#id], URL or an eoflows package name) with cwltool or Calrissian; print outputs.

    Args:
        cwl: The CWL document, FILE#id for one process of a $graph, or an eoflows package name.
        inputs: YAML file of the job's inputs.
        runner: cwltool (here, without containers) or calrissian (a Kubernetes Job).
        calrissian: Name of a saved eoflows-calrissian block; empty: its defaults, in-cluster.
        outdir: Folder for cwltool's results (one sub-folder per run).
        dry_run: With calrissian: print the manifests without contacting a cluster.
        prefect_server: The temporary Prefect server started for this command, if any (given by `main`).
    """
    from eoflows.cli.run import in_prefect
    from flows.run_cwl import run_cwl

    result = in_prefect(
        lambda: run_cwl(cwl=cwl, inputs=inputs, runner=runner, calrissian=calrissian, outdir=outdir, dry_run=dry_run),
        prefect_server,
    )
    print(result["manifests"] if dry_run and runner == "calrissian" else json.dumps(result, indent=2))


@app.command(name="export")
def cwl_export(
    package: str | None = None,
    *,
    mode: Literal["app", "full", "wrapped"] = "app",
    image: str | None = None,
    entry_id: str | None = None,
    dask: Literal["requirements", "hints", "none"] = "requirements",
    docker: Literal["requirements", "hints"] = "requirements",
    output: Annotated[Path | None, Parameter(alias="-o")] = None,
    all: Path | None = None,
) -> None:
    """Export a package as CWL: `app` (the OGC application package), `full` or `wrapped` (with eoap-cwlwrap).

    Args:
        package: The package to export.
        mode: app: compute only, staged Directory in and out; full: stage-in, compute, stage-out, item URLs in,
            the catalog URI out; wrapped: the app package wrapped by eoap-cwlwrap with eoflows' stage-in and
            stage-out (entry main, eoap URI records in and out).
        image: Container image of the tools; default the image of this eoflows version (pin a digest on release).
        entry_id: Id of the entry workflow; default the package name (use `main` for runners that need it).
        dask: Where calrissian:DaskGatewayRequirement goes (measured; README table): requirements: Calrissian >=
            0.19 with --dask-gateway-url and eoflows (cwl validate, cwl run) accept it, stock cwltool and
            eoap-validator reject it; hints: stock cwltool and eoflows accept it, eoap-validator 0.3.1 crashes,
            Calrissian 0.19 fails the step; none: every runner and validator accepts it (Calrissian then
            runs a plain pod: no Dask cluster).
        docker: Where DockerRequirement goes: requirements (OGC), hints (to run with cwltool --no-container).
        output: File to write; default standard output.
        all: Export every package in both modes, with job templates, into this folder.
    """
    from eoflows import IMAGE
    from eoflows.discovery import installed
    from tasks.cwl.export import CwlOptions, export, job_template, to_yaml
    from tasks.cwl.wrap import wrap_package

    options = dict(image=image or IMAGE, entry_id=entry_id, dask=dask, docker=docker)
    if all is not None:
        for name, declared in installed().items():
            for kind, suffix in (("app", ""), ("full", "-full")):
                write(to_yaml(export(declared, CwlOptions(mode=kind, **options))), all / f"{name}{suffix}.cwl")
                write(yaml.safe_dump(job_template(declared, kind), sort_keys=False), all / f"{name}{suffix}.job.yml")
        return
    if package is None:
        raise InputError("cwl export: give a PACKAGE or --all DIR")
    if mode == "wrapped":
        write(to_yaml(wrap_package(_package(package), CwlOptions(**options))), output)
    else:
        write(to_yaml(export(_package(package), CwlOptions(mode=mode, **options))), output)


@app.command(name="job")
def cwl_job(
    package: str,
    *,
    mode: Literal["app", "full", "wrapped"] = "full",
    output: Annotated[Path | None, Parameter(alias="-o")] = None,
) -> None:
    """Write example inputs (a CWL job file) for a package; credentials are left out, give them at run time.

    Args:
        package: The package.
        mode: The export mode the inputs are for: app (a staged Directory), full (item URLs), wrapped (the
            entry main of `cwl export --mode wrapped`: the item as an eoap URI record, input: {value: URL}).
        output: File to write; default standard output.
    """
    from tasks.cwl.export import job_template
    from tasks.cwl.wrap import wrapped_job_template

    declared = _package(package)
    job = wrapped_job_template(declared) if mode == "wrapped" else job_template(declared, mode)
    write(yaml.safe_dump(job, sort_keys=False), output)


@app.command(name="validate")
def cwl_validate(file: Path, *, ogc: bool = True) -> None:
    """Check a CWL document with cwltool (Calrissian's Dask extension known) and the OGC EOAP rules.

    Also says which `cwl export --dask` form to use when stock cwltool, eoap-validator or Calrissian would
    refuse the document's Dask requirement where it is (notes before the verdict).

    Args:
        file: The CWL document.
        ogc: Also check the OGC EOAP rules (--no-ogc for a wrapped package: its entry is eoap-cwlwrap's main).
    """
    from tasks.cwl.check import check, stock_tool_advice

    if not file.is_file():
        raise InputError(f"CWL document {str(file)!r}: not found")
    problems = check(file, ogc=ogc)
    for problem in problems:
        print(problem)
    document = yaml.safe_load(file.read_text())  # it parsed in `check`
    for advice in stock_tool_advice(document) if isinstance(document, dict) else []:
        print(f"note: {advice}")
    if problems:
        raise InputError(f"CWL document {str(file)!r}: {len(problems)} problems (listed above)")
    print(f"{file}: valid (cwltool, Calrissian DaskGatewayRequirement{', OGC EOAP rules' if ogc else ''})")

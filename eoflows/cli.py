"""The `eoflows` command line: run packages as flows, run single steps (what CWL tools call), make samples.

Commands are derived from the package declarations: `eoflows run <package>` takes the flow's parameters,
`eoflows step <package> <step>` the step function's parameters; `--help` shows their docs.
"""

import inspect
import json
import logging
import re
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_origin

import yaml
from cyclopts import App, CycloptsError, Parameter

from eoflows import __version__
from eoflows.errors import EoflowsError, InputError, Stopped
from eoflows.package import Package, Param, Role, Step, settings_class, with_signature
from eoflows.prefect_home import private_prefect_home

if TYPE_CHECKING:
    from prefect import Flow

INTERNAL_ERROR = 3  # exit status of a bug (1: bad input or an unusable location, 2: a malformed command line)

app = App(
    name="eoflows",
    help="Earth-observation application packages as Prefect flows and CWL.",
    version=__version__,
    default_parameter=Parameter(negative_iterable=()),
)
run_app = App(name="run", help="Run a package end to end as a Prefect flow and print the catalog URI.")
step_app = App(name="step", help="Run one step of a package on local folders (the command CWL tools run).")
sample_app = App(name="sample", help="Write synthetic sample products and their STAC items (no network needed).")
gateway_app = App(
    name="gateway",
    help="Look after Dask Gateway clusters. Settings: --block NAME (a saved eoflows-dask-gateway block) or the "
    "dask-gateway configuration (DASK_GATEWAY__ADDRESS, ...).",
)
cwl_app = App(name="cwl", help="Export packages as CWL (OGC EO Application Packages), check and run them.")
k8s_app = App(name="k8s", help="Kubernetes manifests for running eoflows (offline: nothing is applied).")
for sub in (run_app, step_app, sample_app, gateway_app, k8s_app, cwl_app):
    app.command(sub)


def _option(p: Param) -> Param:
    """`p` as a command-line option: a list takes several values after one flag (--products ndvi rgb) or repeats."""
    if get_origin(p.annotation) is list:
        return replace(p, annotation=Annotated[p.annotation, Parameter(consume_multiple=True)])
    return p


def _command(name: str, params: list[Param], doc: str, body: Callable[..., Any]) -> Callable[..., Any]:
    """A CLI function with keyword-only `params` (options) that prints what `body` returns."""

    def command(**kwargs: Any) -> None:
        result = body(**kwargs)
        if result is not None:
            print(result)

    return with_signature(command, name, [_option(p) for p in params], doc, None)


def step_command(step: Step) -> Callable[..., Any]:
    """The CLI of one step: its inputs and folders as options.

    Settings come from the environment, and the runtime is that of a process alone (`tasks.windows.Alone`: the
    configured Dask cluster, else threads).
    """
    options = [p for p in step.params if p.role not in (Role.SETTINGS, Role.RUNTIME)]
    settings = [p for p in step.params if p.role is Role.SETTINGS]
    runtimes = [p for p in step.params if p.role is Role.RUNTIME]

    def body(**kwargs: Any) -> Any:
        for p in options:
            if p.writable and kwargs[p.name] is not None:
                from tasks.data.run_folders import check_existing_folder

                check_existing_folder(kwargs[p.name])
        for p in settings:
            kwargs[p.name] = settings_class(p.annotation).from_env()
        if runtimes:
            from eoflows.runtime import Runtime
            from tasks.windows import Alone

            kwargs |= {p.name: Runtime(Alone()) for p in runtimes}
        return step.run(**kwargs)

    return _command(step.name, options, inspect.getdoc(step.run).split("\n\n")[0], body)


class _WithoutUserTracebacks(logging.Filter):
    """Leave out of the terminal the records that carry the traceback of an error the user caused or stopped.

    The command ends with that error as one line; the flow run's logs (the API handler) keep the traceback.
    Tracebacks of bugs stay on the terminal.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from prefect.exceptions import TerminationSignal

        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, EoflowsError | TerminationSignal | KeyboardInterrupt)


def in_prefect(call: Callable[[], Any]) -> Any:
    """`call()` (a flow) reporting to the Prefect API, a temporary one if none is configured (`prefect_api`)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    from eoflows.prefect_api import prefect_api

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not handler.filters:
            handler.addFilter(_WithoutUserTracebacks())
    with prefect_api():
        return call()


JSON_OPTION = Param("json", bool, False, "Print the catalog URI, item ids and asset hrefs as JSON (for scripts).",
                    Role.INPUT)  # fmt: skip


def published(catalog_uri: str, storage: str | None) -> str:
    """JSON of a published catalog: its URI, and each item's id and asset hrefs (`storage`: a block name)."""
    import pystac

    from blocks import saved_or_env
    from blocks.s3 import S3Storage
    from tasks.data.stac_io import FsspecStacIO

    catalog = pystac.Catalog.from_file(catalog_uri, stac_io=FsspecStacIO(saved_or_env(S3Storage, storage)))
    items = [{"id": item.id, "assets": {k: a.get_absolute_href() for k, a in item.assets.items()}}
             for item in catalog.get_items(recursive=True)]  # fmt: skip
    return json.dumps({"catalog": catalog_uri, "items": items}, indent=2)


def run_command(package: Package, flow: "Flow") -> Callable[..., Any]:
    """The CLI of a package's flow: its parameters as options (and --json)."""
    from flows.build import flow_params

    def body(json: bool = False, **kwargs: Any) -> str:
        def run() -> str:  # reading the catalog may need a saved storage block: while the API is there
            uri = flow(**kwargs)
            return published(uri, kwargs.get("storage")) if json else uri

        return in_prefect(run)

    # settings by name on the command line (the flow also takes a saved block, as the Prefect UI picks it)
    params = [replace(p, annotation=str | None) if p.role is Role.SETTINGS else p for p in flow_params(package)]
    return _command(package.name, [*params, JSON_OPTION], package.description, body)


@cache
def register_steps(name: str) -> None:
    """Add the `step` commands of package `name` (imports its declaration and steps: not Prefect, not flows)."""
    from tasks.packages import package

    declared = package(name)
    steps = App(name=name, help=f"Steps of {name}: {', '.join(s.name for s in declared.steps)}.")
    for step in declared.steps:
        steps.command(step_command(step), name=step.name)
    step_app.command(steps)


@cache
def register_runs() -> None:
    """Add a `run` command for every package (imports the flows, and Prefect)."""
    from flows.packages import FLOWS, PACKAGES

    for name, package in PACKAGES.items():
        run_app.command(run_command(package, FLOWS[name]), name=name)


def reports_to_prefect(tokens: list[str]) -> bool:
    """Whether `tokens` run a flow, which reports to a Prefect API (`in_prefect`), rather than ask for help."""
    runs = (tokens[:1] == ["run"] and len(tokens) > 1) or tokens[:2] == ["cwl", "run"]
    return runs and not {"--help", "-h", "--version"} & set(tokens)


def _starting_prefect_api(tokens: list[str]) -> AbstractContextManager[None]:
    """For a command that runs a flow, its temporary Prefect server starts now, while the flows import."""
    if not reports_to_prefect(tokens):
        return nullcontext()
    from eoflows.prefect_api import starting_early

    return starting_early()


def register(tokens: list[str]) -> None:
    """Add the package commands that `tokens` may run: one package's steps for a step, else all that are asked.

    A step command (what a CWL tool runs) so imports its own package alone, and never Prefect.
    """
    from tasks.packages import DECLARATIONS

    if tokens[:1] == ["step"] and len(tokens) > 1 and tokens[1] in DECLARATIONS:
        register_steps(tokens[1])
        return
    if not tokens or tokens[0] in ("step", "completion", "--help", "-h"):
        for name in DECLARATIONS:
            register_steps(name)
    if not tokens or tokens[0] in ("run", "completion", "--help", "-h"):
        register_runs()


@sample_app.command(name="s2")
def sample_s2(dest: Path, *, size: int = 1098, seed: int = 1) -> None:
    """Write a synthetic Sentinel-2 L2A product (EOPF Zarr) and its STAC item into DEST; print the item path.

    Args:
        dest: Folder to write <id>.zarr and <id>.json into.
        size: Pixels per side at 10 m (a multiple of 6; 10980 is a full tile).
        seed: Date seed: the same ground, different clouds and acquisition date.
    """
    from eoflows.samples.s2_eopf import write_sample

    print(write_sample(dest, size=size, seed=seed))


@sample_app.command(name="burned-area")
def sample_burned_area(dest: Path, *, size: int = 1098, seed: int = 7, layout: Literal["v1", "v0"] = "v1") -> None:
    """Write a synthetic pre-/post-fire pair of Sentinel-2 L2A scenes (COGs) and their items; print both paths.

    Args:
        dest: Folder to write <id>/*.tif, <id>.json for both dates and burn-scar.json into.
        size: Pixels per side at 10 m (even; 10980 is a full tile).
        seed: Ground and clouds seed.
        layout: Item shape: v1 (Earth Search v1 asset keys nir, swir22, scl) or v0 (B08, B12, SCL).
    """
    from eoflows.samples.burn_pair import write_pair

    pre, post = write_pair(dest, size=size, seed=seed, layout=layout)
    print(pre)
    print(post)


@sample_app.command(name="landsat")
def sample_landsat(dest: Path, *, width: int = 781, height: int = 771, seed: int = 3) -> None:
    """Write a synthetic Landsat 8 Collection 2 scene (SR_B5 and QA_PIXEL COGs) into DEST; print both paths.

    Args:
        dest: Folder to write the two GeoTIFFs into.
        width: Pixels per row (30 m; a full scene is about 7800).
        height: Rows (a full scene is about 7700).
        seed: Landscape seed.
    """
    from eoflows.samples.landsat import write_landsat

    for path in write_landsat(dest, width=width, height=height, seed=seed):
        print(path)


def _gateway_settings(block: str | None):
    from blocks import saved_or_env
    from blocks.dask_gateway import DaskGatewaySettings

    return saved_or_env(DaskGatewaySettings, block)


def _print_rows(rows: list[dict[str, Any]], empty: str) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        print(empty)
        return
    table = Table(*rows[0])
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console(width=200).print(table)


@gateway_app.command(name="list")
def gateway_list(*, block: str | None = None) -> None:
    """List the clusters the gateway runs for you.

    Args:
        block: Name of a saved eoflows-dask-gateway block; empty: the dask-gateway configuration.
    """
    from tasks.remote.gateway import list_clusters

    _print_rows(list_clusters(_gateway_settings(block)), "no clusters")


@gateway_app.command(name="options")
def gateway_options(*, block: str | None = None) -> None:
    """Show the cluster options the gateway offers and the values each takes.

    Args:
        block: Name of a saved eoflows-dask-gateway block; empty: the dask-gateway configuration.
    """
    from tasks.remote.gateway import describe_field, gateway, offered_options

    with gateway(_gateway_settings(block)) as client:
        fields = offered_options(client)._fields
    _print_rows([{"option": k, "takes": describe_field(f)} for k, f in fields.items()], "no options")


@gateway_app.command(name="stop")
def gateway_stop(name: str, *, block: str | None = None) -> None:
    """Shut down a cluster, e.g. one a killed run left behind.

    Args:
        name: The cluster name (see `eoflows gateway list`).
        block: Name of a saved eoflows-dask-gateway block; empty: the dask-gateway configuration.
    """
    from tasks.remote.gateway import stop_cluster

    stop_cluster(_gateway_settings(block), name)
    print(f"stopped {name}")


@app.command(name="completion")
def completion(*, shell: Literal["bash", "zsh", "fish"] = "bash", install: bool = False) -> None:
    """Print the shell completion script of eoflows (commands, packages, options), or install it.

    Args:
        shell: The shell to complete in.
        install: Write the script where the shell loads it and add it to the shell's startup file.
    """
    if install:
        print(f"installed: {app.install_completion(shell=shell)}")
        return
    print(app.generate_completion(prog_name="eoflows", shell=shell), end="")


@app.command(name="deploy")
def deploy(*, project: Path = Path("."), namespace: str = "eoflows", image: str | None = None) -> None:
    """Register the blocks, create the work pools and the crashed-run detection, deploy every flow of prefect.yaml.

    Needs PREFECT_API_URL (a server that keeps running).

    Args:
        project: The eoflows checkout holding prefect.yaml.
        namespace: Kubernetes namespace of the eoflows-k8s pool's jobs.
        image: Image of the eoflows-k8s and eoflows-docker pools' runs; default the image of this eoflows version.
    """
    from deployments.deploy import check_project, deploy_all, ensure_crash_detection, ensure_pools, register_blocks
    from eoflows import IMAGE

    check_project(project.absolute())
    print("blocks: " + ", ".join(register_blocks()))
    print("work pools: " + ", ".join(ensure_pools(image or IMAGE, namespace)))
    print("automations: " + ensure_crash_detection())
    output = deploy_all(project.absolute())
    names = sorted(set(re.findall(r"Deployment '([^']+)' successfully", output)))
    print("deployments: " + ", ".join(names))


@app.command(name="schedule")
def schedule(
    deployment: str,
    *,
    cron: str | None = None,
    interval: float | None = None,
    timezone: str = "UTC",
    param: Annotated[list[str], Parameter(alias="-p")] = [],
    inactive: bool = False,
) -> None:
    """Add a schedule with its own parameters to a deployment, as the Prefect UI does (needs PREFECT_API_URL).

    Args:
        deployment: The deployment, as FLOW/NAME (e.g. monitor/local).
        cron: Cron expression, e.g. "0 6 * * *" (or give --interval).
        interval: Seconds between runs (or give --cron).
        timezone: Time zone of the schedule.
        param: A parameter of the scheduled runs, KEY=VALUE (VALUE as JSON when it parses); repeat.
        inactive: Create the schedule paused.
    """
    from deployments.schedules import create_schedule, parse_parameters

    created = create_schedule(deployment, parse_parameters(param), cron, interval, timezone, not inactive)
    print(f"schedule {created.id} of {deployment}: {cron or f'every {interval:g} s'} ({timezone}), "
          f"{'active' if created.active else 'inactive'}, parameters {json.dumps(created.parameters)}")  # fmt: skip


@k8s_app.command(name="manifests")
def k8s_manifests(
    *, namespace: str = "eoflows", api_url: str, image: str | None = None, api_key_secret: str | None = None
) -> None:
    """Print the manifests of an eoflows namespace: service accounts, the worker's RBAC and Deployment.

    Args:
        namespace: Namespace to create and run in.
        api_url: Prefect API URL the worker reports to, e.g. http://prefect-server.prefect:4200/api.
        image: Worker image; default the image of this eoflows version.
        api_key_secret: Secret holding PREFECT_API_KEY (Prefect Cloud), referenced, never copied.
    """
    from deployments.kubernetes import manifests, to_yaml, validate
    from eoflows import IMAGE

    documents = manifests(namespace, api_url, image or IMAGE, api_key_secret)
    for document in documents:
        validate(document)
    print(to_yaml(documents), end="")


@k8s_app.command(name="calrissian-rbac")
def k8s_calrissian_rbac(
    *,
    namespace: str = "eoflows",
    storage_class: str | None = None,
    size: str = "10Gi",
    flows_namespace: str = "eoflows",
) -> None:
    """Print what Calrissian runs need in a namespace: service account, roles, bindings, RWX volume claims.

    Args:
        namespace: Namespace of the Calrissian Jobs and step pods.
        storage_class: Storage class of the claims (must support ReadWriteMany); empty: the default.
        size: Size of each claim.
        flows_namespace: Namespace of the Prefect flow-run pods that launch Calrissian (eoflows k8s manifests).
    """
    from deployments.kubernetes import calrissian_manifests, to_yaml, validate

    documents = calrissian_manifests(namespace, storage_class, size, flows_namespace)
    for document in documents:
        validate(document)
    print(to_yaml(documents), end="")


@cwl_app.command(name="run")
def cwl_run(
    cwl: str,
    inputs: str,
    *,
    runner: Literal["cwltool", "calrissian"] = "cwltool",
    calrissian: str | None = None,
    outdir: str = "cwl-results",
    dry_run: bool = False,
) -> None:
    """Run a CWL document (FILE[#id], URL or an eoflows package name) with cwltool or Calrissian; print outputs.

    Args:
        cwl: The CWL document, FILE#id for one process of a $graph, or an eoflows package name.
        inputs: YAML file of the job's inputs.
        runner: cwltool (here, without containers) or calrissian (a Kubernetes Job).
        calrissian: Name of a saved eoflows-calrissian block; empty: its defaults, in-cluster.
        outdir: Folder for cwltool's results (one sub-folder per run).
        dry_run: With calrissian: print the manifests without contacting a cluster.
    """
    import json

    from flows.run_cwl import run_cwl

    result = in_prefect(
        lambda: run_cwl(cwl=cwl, inputs=inputs, runner=runner, calrissian=calrissian, outdir=outdir, dry_run=dry_run)
    )
    print(result["manifests"] if dry_run and runner == "calrissian" else json.dumps(result, indent=2))


@k8s_app.command(name="job-template")
def k8s_job_template(*, namespace: str = "eoflows", image: str | None = None) -> None:
    """Print the base job template of the eoflows-k8s work pool (JSON), as `eoflows deploy` sets it.

    Args:
        namespace: Namespace of the jobs.
        image: Image of the jobs; default the image of this eoflows version.
    """
    import json

    from deployments.kubernetes import base_job_template
    from eoflows import IMAGE

    print(json.dumps(base_job_template(image or IMAGE, namespace), indent=2))


def _package(name: str):
    from flows.packages import PACKAGES

    if name not in PACKAGES:
        raise InputError(f"package {name!r}: unknown; expected one of {', '.join(PACKAGES)}")
    return PACKAGES[name]


def _write(text: str, output: Path | None) -> None:
    if output is None:
        print(text, end="")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(output)


@cwl_app.command(name="export")
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
    from flows.packages import PACKAGES
    from tasks.cwl.export import CwlOptions, export, job_template, to_yaml
    from tasks.cwl.wrap import wrap_package

    options = dict(image=image or IMAGE, entry_id=entry_id, dask=dask, docker=docker)
    if all is not None:
        for name, declared in PACKAGES.items():
            for kind, suffix in (("app", ""), ("full", "-full")):
                _write(to_yaml(export(declared, CwlOptions(mode=kind, **options))), all / f"{name}{suffix}.cwl")
                _write(yaml.safe_dump(job_template(declared, kind), sort_keys=False), all / f"{name}{suffix}.job.yml")
        return
    if package is None:
        raise InputError("cwl export: give a PACKAGE or --all DIR")
    if mode == "wrapped":
        _write(to_yaml(wrap_package(_package(package), CwlOptions(**options))), output)
    else:
        _write(to_yaml(export(_package(package), CwlOptions(mode=mode, **options))), output)


@cwl_app.command(name="job")
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
    _write(yaml.safe_dump(job, sort_keys=False), output)


@cwl_app.command(name="validate")
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


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command; errors become one line on stderr and exit status 1 (usage errors 2, bugs 3)."""
    log = logging.getLogger("eoflows")  # outside Prefect runs, steps log here (tasks.logs)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    tokens = argv if argv is not None else sys.argv[1:]
    if tokens[:1] == ["step"]:  # a CWL tool: writes nothing but its output, so no Prefect home in $HOME
        private_prefect_home()
    try:
        with _starting_prefect_api(tokens):
            register(tokens)  # the packages (and Prefect with them) are imported only by the commands that need them
            app(tokens, exit_on_error=False, print_error=False)
    except CycloptsError as error:
        print(f"eoflows: usage error: {_one_line(error)}", file=sys.stderr)
        return 2
    except EoflowsError as error:
        print(f"eoflows: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except Exception as error:  # a bug: the whole traceback, and a status of its own
        log.exception("internal error")
        print(f"eoflows: internal error (a bug in eoflows, traceback above): {type(error).__name__}: "
              f"{_one_line(error)}", file=sys.stderr)  # fmt: skip
        return INTERNAL_ERROR
    return 0


def _terminate(signum: int, frame: object) -> None:
    raise Stopped(f"stopped by signal {signal.Signals(signum).name}")


def cli() -> None:
    """Console script `eoflows`: SIGTERM unwinds like an error, so clusters and uploads are cleaned up."""
    signal.signal(signal.SIGTERM, _terminate)
    sys.exit(main())


if __name__ == "__main__":
    cli()

"""Turn a package declaration into a Prefect flow: stage-in -> compute -> stage-out as tasks.

The flow's parameters are the package's user inputs (names, types, defaults and docs read from the step
signatures) plus, for each settings parameter, the name of a saved block; nothing is declared twice. Every
step runs in the flow process, next to the work folder, and receives the flow's runtime (`eoflows.runtime`):
its windows run on the Dask task runner chosen in `flows.runners`, opened for the step when its work is worth
a cluster (`tasks.windows.FlowCluster`), and, when the compute step says it uploads early and the destination
is S3, its final files go to the run folder the flow holds while it computes.
"""

import inspect
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from prefect import Flow, flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.tasks import Task
from prefect_dask import DaskTaskRunner

from blocks import block_class, saved_or_env
from blocks.dask_cluster import DaskBlock
from blocks.s3 import S3Block
from eoflows.package import Package, Param, Role, Step, settings_class, summary, with_signature
from eoflows.runtime import Deadline, Runtime, UploadSink
from flows.artifacts import publish_products_artifact
from flows.runners import describe_cluster, task_runner
from flows.work import flow_work_folder
from tasks.data.staging import publishing_early
from tasks.windows import FlowCluster


def settings_param(p: Param) -> Param:
    """The flow parameter standing for a settings parameter: a saved block or its name, or the environment.

    Typed as the block class or a string, so the Prefect UI offers a picker of the saved blocks of that type
    (the run keeps a reference to the block, never its fields) and the CLI and `-p` take a name.
    """
    cls = block_class(settings_class(p.annotation))
    doc = (
        f"Name of a saved '{cls.get_block_type_slug()}' block (in the UI: pick one): {cls.get_description()} "
        f"Empty: {summary(cls.from_env.__doc__)}"
    )
    return Param(p.name, cls | str | None, None, doc, Role.SETTINGS)


def flow_params(package: Package) -> list[Param]:
    """The parameters of the package's flow: user inputs in declaration order, then settings."""
    inputs = [p for p in package.params if p.role is Role.INPUT]
    return inputs + [settings_param(p) for p in package.params if p.role is Role.SETTINGS]


def step_task(step: Step) -> Task:
    """The Prefect task of a step (no caching: inputs are folders and settings, not values)."""
    return task(step.run, name=step.name, cache_policy=NO_CACHE, task_run_name=step.name)


def load_settings(package: Package, values: dict[str, Any]) -> dict[str, Any]:
    """Each settings parameter's block: the saved block given, loaded by the name given, or from the environment.

    Settings given inline (a block that is not saved) are refused: the flow run keeps its parameters.
    """
    loaded = {}
    for p in package.params:
        if p.role is Role.SETTINGS:
            loaded[p.name] = saved_or_env(block_class(settings_class(p.annotation)), values[p.name], p.name)
    return loaded


def step_arguments(step: Step, values: dict[str, Any], settings: dict[str, Any], staged: Any, output: Path | None,
                   runtime: Runtime) -> dict[str, Any]:  # fmt: skip
    """The arguments of `step` in the flow, by the role of each parameter."""
    wiring = {Role.STAGED: staged, Role.OUTPUT: output, Role.RUNTIME: runtime}
    given = {Role.SETTINGS: settings, Role.INPUT: values}
    return {p.name: wiring[p.role] if p.role in wiring else given[p.role].get(p.name) for p in step.params}


def run_package(package: Package, tasks: dict[str, Task], values: dict[str, Any], settings: dict[str, Any]) -> Any:
    """Run the steps of `package` in a temporary work folder, holding what the steps hold; the last step's result.

    What a step holds (stage-out: its destination checked and run folder claimed) is taken before the first step
    and kept until the last ends. A compute step that uploads early sends its final files into the held run
    folder while it runs (S3 only), and stage-out, publishing its output, learns which went early.
    """
    log = get_run_logger()
    deadline = Deadline()  # the clean-ups of this run, should it be stopped, share it

    def runtime(step: Step, uploads: UploadSink | None = None) -> Runtime:
        return Runtime(FlowCluster(partial(step_cluster, step.name)), uploads, deadline)

    with ExitStack() as held, flow_work_folder(package.name) as work, ExitStack() as early:
        holds = {}
        for step in package.steps:
            if step.hold is not None:
                arguments = step_arguments(step, values, settings, None, None, runtime(step))
                names = inspect.signature(step.hold).parameters
                holds[step.name] = held.enter_context(step.hold(**{n: arguments[n] for n in names}))
        uploads = None
        if package.compute.uploads_early:
            root = Path(work) / package.compute.name
            uploads = early.enter_context(publishing_early(holds.get(package.stage_out.name), root, deadline))
        result: Any = None
        for step in package.steps:
            sink = uploads if step.name in (package.compute.name, package.stage_out.name) else None
            log.info("Step %s: %s", step.name, step.doc)
            arguments = step_arguments(step, values, settings, result, Path(work) / step.name, runtime(step, sink))
            result = tasks[step.name](**arguments)
    return result


@contextmanager
def step_cluster(step: str, dask: DaskBlock | None) -> Iterator[DaskTaskRunner]:
    """The started Dask task runner of a step's windows, and its `dask-cluster` artifact; stopped on exit."""
    log = get_run_logger()
    log.info("Step %s runs on %s", step, dask.describe() if dask else "a local Dask cluster")
    with task_runner(dask) as runner:
        create_table_artifact(describe_cluster(runner, dask), key="dask-cluster", description=f"Dask cluster of {step}")
        yield runner


def package_flow(package: Package) -> Flow:
    """The Prefect flow of `package`; it returns the URI of the published catalog."""
    params = flow_params(package)
    tasks = {step.name: step_task(step) for step in package.steps}

    def run(**values: Any) -> str:
        settings = load_settings(package, values)
        catalog_uri = run_package(package, tasks, values, settings)
        storage = next((v for v in settings.values() if isinstance(v, S3Block)), None)
        publish_products_artifact(f"{package.name}-products", catalog_uri, storage)
        return catalog_uri

    with_signature(run, package.name, params, package.description, str)
    return flow(name=package.name, description=package.description, version=package.version, validate_parameters=True)(
        run
    )

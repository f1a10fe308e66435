"""Turn a package declaration into a Prefect flow: stage-in -> compute -> stage-out as tasks.

The flow's parameters are the package's user inputs (names, types, defaults and docs read from the step
signatures) plus, for each settings parameter, the name of a saved block; nothing is declared twice. Every
step runs in the flow process, next to the work folder; a step that needs Dask opens, when its work is worth
one, the Dask task runner chosen in `flows.runners`, which is the flow's task runner (in Prefect's run context)
while the windows the step submits (`tasks.windows`) run on that cluster.
"""

import inspect
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from functools import partial
from pathlib import Path
from typing import Any

from prefect import Flow, flow, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.context import FlowRunContext
from prefect.logging import get_run_logger
from prefect.tasks import Task
from prefect_dask import DaskTaskRunner

from blocks import saved_or_env
from blocks.dask_gateway import DaskGatewaySettings
from blocks.s3 import S3Storage
from eoflows.package import Package, Param, Role, Step, settings_class, summary, with_signature
from eoflows.settings import block_class
from flows.artifacts import publish_products_artifact
from flows.runners import describe_cluster, task_runner
from flows.work import flow_work_folder
from tasks.data.staging import publishing_early
from tasks.windows import flow_cluster


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


def run_package(package: Package, tasks: dict[str, Task], values: dict[str, Any], settings: dict[str, Any]) -> Any:
    """Run the steps of `package` in a temporary work folder, holding what the steps hold; the last step's result."""
    log = get_run_logger()
    with ExitStack() as held, flow_work_folder(package.name) as work, ExitStack() as early:
        for step in package.steps:
            if step.hold is not None:
                names = inspect.signature(step.hold).parameters
                kwargs = {n: settings[n] if n in settings else values.get(n) for n in names}
                what = held.enter_context(step.hold(**kwargs))
                # a claimed S3 run folder takes the compute's final files while it runs (stage-out sends the rest)
                early.enter_context(publishing_early(what, Path(work) / package.compute.name))
        result: Any = None
        for step in package.steps:
            kwargs = {}
            for p in step.params:
                kwargs[p.name] = {
                    Role.STAGED: result,
                    Role.OUTPUT: Path(work) / step.name,
                    Role.SETTINGS: settings.get(p.name),
                    Role.INPUT: values.get(p.name),
                }[p.role]
            log.info("Step %s: %s", step.name, step.doc)
            with flow_cluster(partial(step_cluster, step.name)) if step.dask else nullcontext():
                result = tasks[step.name](**kwargs)
    return result


@contextmanager
def step_cluster(step: str, dask: DaskGatewaySettings | None) -> Iterator[DaskTaskRunner]:
    """The Dask task runner of a step, made the flow run's task runner while the step's windows run on it."""
    log = get_run_logger()
    log.info("Step %s runs on %s", step, dask.describe() if dask else "a local Dask cluster")
    with task_runner(dask) as runner, FlowRunContext.get().model_copy(update={"task_runner": runner}):
        create_table_artifact(describe_cluster(runner, dask), key="dask-cluster", description=f"Dask cluster of {step}")
        yield runner


def package_flow(package: Package) -> Flow:
    """The Prefect flow of `package`; it returns the URI of the published catalog."""
    params = flow_params(package)
    tasks = {step.name: step_task(step) for step in package.steps}

    def run(**values: Any) -> str:
        settings = load_settings(package, values)
        catalog_uri = run_package(package, tasks, values, settings)
        storage = next((v for v in settings.values() if isinstance(v, S3Storage)), None)
        publish_products_artifact(f"{package.name}-products", catalog_uri, storage)
        return catalog_uri

    with_signature(run, package.name, params, package.description, str)
    return flow(name=package.name, description=package.description, version=package.version, validate_parameters=True)(
        run
    )

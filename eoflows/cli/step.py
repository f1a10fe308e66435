"""`eoflows step PACKAGE STEP`: one step of a package on local folders, what a CWL CommandLineTool runs.

A step command imports its own package's steps and nothing else, never Prefect: its settings come from the
environment, and its runtime is that of a process alone (`tasks.windows.Alone`).
"""

import inspect
from collections.abc import Callable
from typing import Any

from cyclopts import App

from eoflows.cli.options import command
from eoflows.package import Package, Role, Step, settings_class


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

    return command(step.name, options, inspect.getdoc(step.run).split("\n\n")[0], body)


def steps_group(package: Package) -> App:
    """The `step` commands of `package`."""
    steps = App(name=package.name, help=f"Steps of {package.name}: {', '.join(s.name for s in package.steps)}.")
    for step in package.steps:
        steps.command(step_command(step), name=step.name)
    return steps


def group(packages: list[Package]) -> App:
    """The `step` commands of `packages` (their declarations and steps are imported: not Prefect, not flows)."""
    app = App(
        name="step",
        help="Run one step of a package on local folders (the command CWL tools run).",
        help_format="plaintext",  # the docs as written: Markdown's renderer (markdown-it, pygments) is not imported
    )
    for package in packages:
        app.command(steps_group(package))
    return app

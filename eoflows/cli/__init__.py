"""The `eoflows` command line: run packages as flows, run single steps (what CWL tools call), make samples.

One module per command group: `run` and `step` are derived from the package declarations (`eoflows run
PACKAGE` takes the flow's parameters, `eoflows step PACKAGE STEP` the step function's; `--help` shows their
docs), `sample`, `gateway`, `cwl`, `k8s`, and `deploy` (with `schedule`). `main` builds the commands a command
line may run (a step command imports its own package alone, and never Prefect), runs it, and turns its errors
into an exit status (`eoflows.cli.exits`).
"""

import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, Literal

from cyclopts import App, Parameter

from eoflows import __version__
from eoflows.cli import cwl, deploy, gateway, k8s, new, run, sample, step
from eoflows.cli.exits import Exit, exit_status
from eoflows.cli.options import PREFECT_SERVER, ROOT_APP
from eoflows.cli.packages import packages
from eoflows.cli.serve import serve
from eoflows.cli.verify import verify
from eoflows.errors import InputError, Stopped
from eoflows.prefect_home import private_prefect_home
from eoflows.prefect_watch import exit_now

if TYPE_CHECKING:
    from eoflows.prefect_api import Server


def completion(
    *,
    shell: Literal["bash", "zsh", "fish"] = "bash",
    install: bool = False,
    root_app: Annotated[Any, Parameter(parse=False)] = None,
) -> None:
    """Print the shell completion script of eoflows (commands, packages, options), or install it.

    Args:
        shell: The shell to complete in.
        install: Write the script where the shell loads it and add it to the shell's startup file.
        root_app: The `eoflows` app (given by `main`).
    """
    if install:
        print(f"installed: {root_app.install_completion(shell=shell)}")
        return
    print(root_app.generate_completion(prog_name="eoflows", shell=shell), end="")


def build(tokens: list[str]) -> App:
    """The `eoflows` app with the package commands `tokens` may run.

    A step command gets its own package's steps alone; other commands get all of those they may ask for (`run`
    imports every flow, and Prefect).
    """
    from eoflows import discovery

    app = App(
        name="eoflows",
        help="Earth-observation application packages as Prefect flows and CWL.\n\nPackages come from the "
        f"'{discovery.GROUP}' entry points; one in development is named with --package module:OBJECT before the "
        f"command (repeat it) or {discovery.ENV}=module:OBJECT,...",
        version=__version__,
        default_parameter=Parameter(negative_iterable=()),
    )
    everything = not tokens or tokens[0] in ("completion", "--help", "-h")
    named = tokens[1] if tokens[:1] in (["step"], ["run"]) and len(tokens) > 1 else "-"
    package = None if named.startswith("-") else discovery.require(named)  # or why it cannot run, in one line
    if package is not None and tokens[0] == "step":  # a step command imports its own package alone
        app.command(step.group([package]))
    else:
        app.command(step.group(list(discovery.installed().values()) if everything or tokens[:1] == ["step"] else []))
    app.command(run.group(flows=everything or tokens[0] == "run"))
    for group in (sample.app, gateway.app, k8s.app, cwl.app, new.app):
        app.command(group)
    deploy.add_to(app)
    app.command(completion, name="completion")
    app.command(packages, name="packages")
    app.command(serve, name="serve")
    app.command(verify, name="verify")
    return app


def development_packages(tokens: list[str]) -> list[str]:
    """`tokens` without the leading `--package module:OBJECT` options, whose packages join EOFLOWS_PACKAGES.

    In the environment, they reach what the command starts: flow-run processes, workers, cwltool's steps.
    """
    from eoflows.discovery import ENV

    named = []
    while tokens[:1] == ["--package"] or tokens[:1] and tokens[0].startswith("--package="):
        if tokens[0] == "--package":
            if len(tokens) < 2:
                raise InputError("--package: give module:OBJECT, the package object of a module")
            named.append(tokens[1])
            tokens = tokens[2:]
        else:
            named.append(tokens[0].split("=", 1)[1])
            tokens = tokens[1:]
    if named:
        os.environ[ENV] = ",".join(filter(None, [os.environ.get(ENV, ""), *named]))
    return tokens


def reports_to_prefect(tokens: list[str]) -> bool:
    """Whether `tokens` run a flow, which reports to a Prefect API (`run.in_prefect`), rather than ask for help."""
    runs = (tokens[:1] == ["run"] and len(tokens) > 1) or tokens[:2] == ["cwl", "run"]
    return runs and not {"--help", "-h", "--version"} & set(tokens)


@contextmanager
def _prefect_server(tokens: list[str]) -> Iterator["Server | None"]:
    """For a command that runs a flow, its temporary Prefect server starts now, while the flows import."""
    if not reports_to_prefect(tokens):
        yield None
        return
    from eoflows.prefect_api import starting_early

    with starting_early() as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command; errors become one line on stderr and an exit status (`eoflows.cli.exits`)."""
    return _run(argv).status


def _run(argv: list[str] | None) -> Exit:
    """Run the command of `argv` (default: the process's arguments); how it ended."""
    log = logging.getLogger("eoflows")  # outside Prefect runs, steps log here (tasks.reporting)
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    with exit_status(log) as ended:
        tokens = development_packages(argv if argv is not None else sys.argv[1:])
        if tokens[:1] == ["step"]:  # a CWL tool: writes nothing but its output, so no Prefect home in $HOME
            private_prefect_home()
        with _prefect_server(tokens) as server:
            app = build(tokens)  # packages (and Prefect with them) are imported only by the commands needing them
            command, bound, given = app.parse_args(tokens, exit_on_error=False, print_error=False)
            provided = {PREFECT_SERVER: server, ROOT_APP: app}
            command(*bound.args, **bound.kwargs, **{name: provided[name] for name in given})
    return ended


def _terminate(signum: int, frame: object) -> None:
    raise Stopped(f"stopped by signal {signal.Signals(signum).name}")


def cli() -> None:
    """Console script `eoflows`: SIGTERM unwinds like an error, so clusters and uploads are cleaned up.

    A stopped command (SIGTERM, Ctrl-C, its Prefect API lost) ends as soon as that clean-up is done: at
    interpreter exit, Prefect's threads would still try to send what they hold to an API that is gone (a lost
    one, or the run's temporary server, already stopped) for seconds to minutes.
    """
    signal.signal(signal.SIGTERM, _terminate)
    ended = _run(None)
    if ended.stopped:
        exit_now(ended.status)
    sys.exit(ended.status)

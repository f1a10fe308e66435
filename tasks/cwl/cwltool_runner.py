"""Run a CWL document locally through cwltool's Python API: how a package is tried before a cluster gets it.

Each job cwltool runs (a tool, each element of a scatter, each job of a sub-workflow) is a Prefect task run of
its own as it runs (tasks.cwl.cwltool_jobs), and the run ends with a `cwl-timeline` of its jobs.

Without a container engine (the default), the document's `DockerRequirement`s become hints in a working copy
and cwltool runs the tools from the local PATH (`--no-container`); eoflows' own `eoflows` command is put on
that PATH. The Calrissian Dask requirement is known to cwltool (`tasks.cwl.extensions`) and ignored.
"""

import contextvars
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE

from eoflows.errors import RemoteRunError
from tasks.cwl.documents import CwlDocument, processes
from tasks.cwl.extensions import cwltool_main
from tasks.cwl.outputs import report_outputs
from tasks.cwl.step_runs import StepRuns
from tasks.cwl.timeline import job_rows, report_timeline
from tasks.data.work_folders import work_folder
from tasks.reporting import logger, report_table

if TYPE_CHECKING:
    from tasks.cwl.cwltool_jobs import JobHooks


def docker_as_hint(content: dict[str, Any]) -> dict[str, Any]:
    """The document with every `DockerRequirement` moved from requirements to hints (list or map form)."""
    for process in processes(content):
        requirements = process.get("requirements")
        if isinstance(requirements, dict) and "DockerRequirement" in requirements:
            hints = process.setdefault("hints", {})
            docker = requirements.pop("DockerRequirement")
            if isinstance(hints, dict):
                hints["DockerRequirement"] = docker
            else:
                hints.append({"class": "DockerRequirement", **docker})
        elif isinstance(requirements, list):
            moved = [r for r in requirements if r.get("class") == "DockerRequirement"]
            if moved:
                process["requirements"] = [r for r in requirements if r not in moved]
                hints = process.setdefault("hints", [])
                if isinstance(hints, dict):
                    hints["DockerRequirement"] = {k: v for k, v in moved[0].items() if k != "class"}
                else:
                    hints.extend(moved)
    return content


class _CwltoolLog(logging.Handler):
    """cwltool's log: forwarded to the run log as it comes, kept for an error's tail.

    A record about a job (`[job NAME] ...`) also goes to that job's own log. cwltool also logs from threads of
    its own (`--parallel`): records are sent from the Prefect context of the run (its settings, its API).
    """

    JOB = re.compile(r"^\[job (.+?)\](?: |$)")  # job names may hold brackets: rev[0]

    def __init__(self, hooks: "JobHooks") -> None:
        super().__init__(logging.INFO)
        self.log, self.lines, self.hooks = logger(), [], hooks
        self.context = contextvars.copy_context()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.lines.extend(message.splitlines())
        self.context.copy().run(self.log.log, record.levelno, "cwltool | %s", message)
        if match := self.JOB.match(message):
            self.hooks.route(record, match[1])


@contextmanager
def _tools_path() -> Iterator[None]:
    """PATH with the `bin` of this environment first while cwltool runs (tools run `eoflows`); restored after."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before])
    try:
        yield
    finally:
        os.environ["PATH"] = before


def run_with_cwltool(document: CwlDocument, inputs: dict[str, Any], outdir: Path, container: bool = False,
                     parallel: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run `document` with `inputs`; results go to `outdir`; return the CWL outputs.

    Each job cwltool runs is a task run of its own (tasks.cwl.step_runs); `parallel`: cwltool runs the jobs
    that are ready at once (--parallel), as many as the cores allow.
    """
    from tasks.cwl.cwltool_jobs import JobHooks  # cwltool: imported when a run needs it

    outdir.mkdir(parents=True, exist_ok=True)
    log, out = logger(), io.StringIO()
    log.info("Running %s with cwltool (%s)", document.target, "containers" if container else "no container")
    # the working copy and the job (which may hold credentials) live in a private folder, removed at the end
    with work_folder("cwltool") as (work, _), _tools_path(), StepRuns.of_this_run("cwltool") as runs:
        path = document.path
        if not container:
            path = work / document.path.name
            path.write_text(yaml.safe_dump(docker_as_hint(document.content()), sort_keys=False))
        job = work / "inputs.yml"
        with os.fdopen(os.open(job, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            yaml.safe_dump(inputs, f, sort_keys=False)
        target = f"{path}#{document.entry}" if document.entry else str(path)
        args = ["--enable-ext", "--outdir", str(outdir), *([] if container else ["--no-container"]),
                *(["--parallel"] if parallel else []), target, str(job)]  # fmt: skip
        hooks = JobHooks(runs)
        cwltool_log = _CwltoolLog(hooks)
        propagates = logging.getLogger("cwltool").propagate
        logging.getLogger("cwltool").propagate = False  # forwarded to the run log, not to the root logger as well
        try:
            code = cwltool_main(["--disable-color", *args], hooks=hooks, stdout=out, stderr=io.StringIO(),
                                logger_handler=cwltool_log)  # fmt: skip
        finally:
            logging.getLogger("cwltool").propagate = propagates
            runs.close("not run: cwltool stopped before this job ran")
    report_timeline(runs.steps, f"Jobs of the cwltool run of {document.target}")
    report_table("cwl-usage", f"Steps of the cwltool run of {document.target}", job_rows(runs.steps))
    if code != 0:
        raise RemoteRunError(f"cwltool run of {document.target} failed (status {code}): " + (
            runs.failure() or "last log lines:\n" + "\n".join(cwltool_log.lines[-15:])))  # fmt: skip
    outputs = json.loads(out.getvalue())
    report_outputs(outputs, f"Outputs of the cwltool run of {document.target}")
    return outputs


run_cwl_with_cwltool = task(run_with_cwltool, name="cwltool", cache_policy=NO_CACHE)

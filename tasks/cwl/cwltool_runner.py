"""Run a CWL document locally through cwltool's Python API: how a package is tried before a cluster gets it.

Without a container engine (the default), the document's `DockerRequirement`s become hints in a working copy
and cwltool runs the tools from the local PATH (`--no-container`); eoflows' own `eoflows` command is put on
that PATH. The Calrissian Dask requirement is known to cwltool (`tasks.cwl.extensions`) and ignored.
"""

import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from prefect import task
from prefect.cache_policies import NO_CACHE

from eoflows.errors import RemoteRunError
from tasks.cwl.documents import CwlDocument, processes, step_resources
from tasks.cwl.extensions import cwltool_main
from tasks.data.work_folders import work_folder
from tasks.reporting import logger, report_markdown, report_table


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
    """cwltool's log: forwarded to the run log as it comes, kept for an error's tail, timed per job.

    When a job starts and how it ends come from cwltool's `[job NAME] ...` records.
    """

    JOB = re.compile(r"^\[job ([^\]]+)\] ?(?:completed (\w+))?")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.log, self.lines = logger(), []
        self.jobs: dict[str, dict[str, Any]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.lines.extend(message.splitlines())
        self.log.log(record.levelno, "cwltool | %s", message)
        match = self.JOB.match(message)
        if match:
            job = self.jobs.setdefault(match[1], {"start": record.created})
            if match[2]:
                job.update(end=record.created, status=match[2])

    def rows(self, content: dict[str, Any]) -> list[dict[str, Any]]:
        """One row per job, with the columns of a Calrissian usage table (cores and RAM as the step asks)."""
        asked = step_resources(content)
        return [{"step": name, "cores": asked.get(name, (None, None))[0], "RAM MB": asked.get(name, (None, None))[1],
                 "seconds": round(job["end"] - job["start"], 1) if "end" in job else None,
                 "exit code": {"success": 0}.get(job.get("status", ""), job.get("status", "unfinished"))}
                for name, job in self.jobs.items()]  # fmt: skip


@contextmanager
def _tools_path() -> Iterator[None]:
    """PATH with the `bin` of this environment first while cwltool runs (tools run `eoflows`); restored after."""
    before = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), before])
    try:
        yield
    finally:
        os.environ["PATH"] = before


def run_with_cwltool(document: CwlDocument, inputs: dict[str, Any], outdir: Path,
                     container: bool = False) -> dict[str, Any]:  # fmt: skip
    """Run `document` with `inputs`; results go to `outdir`; return the CWL outputs."""
    outdir.mkdir(parents=True, exist_ok=True)
    log, out, cwltool_log = logger(), io.StringIO(), _CwltoolLog()
    log.info("Running %s with cwltool (%s)", document.target, "containers" if container else "no container")
    # the working copy and the job (which may hold credentials) live in a private folder, removed at the end
    with work_folder("cwltool") as (work, _), _tools_path():
        path = document.path
        if not container:
            path = work / document.path.name
            path.write_text(yaml.safe_dump(docker_as_hint(document.content()), sort_keys=False))
        job = work / "inputs.yml"
        with os.fdopen(os.open(job, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            yaml.safe_dump(inputs, f, sort_keys=False)
        target = f"{path}#{document.entry}" if document.entry else str(path)
        args = ["--enable-ext", "--outdir", str(outdir), *([] if container else ["--no-container"]), target, str(job)]
        propagates = logging.getLogger("cwltool").propagate
        logging.getLogger("cwltool").propagate = False  # forwarded to the run log, not to the root logger as well
        try:
            code = cwltool_main(["--disable-color", *args], stdout=out, stderr=io.StringIO(),
                                logger_handler=cwltool_log)  # fmt: skip
        finally:
            logging.getLogger("cwltool").propagate = propagates
    if code != 0:
        tail = "\n".join(cwltool_log.lines[-15:])
        raise RemoteRunError(f"cwltool run of {document.target} failed (status {code}); last log lines:\n{tail}")
    outputs = json.loads(out.getvalue())
    report_markdown("cwl-outputs", f"Outputs of the cwltool run of {document.target}",
                    "```json\n" + json.dumps(outputs, indent=2) + "\n```")  # fmt: skip
    report_table("cwl-usage", f"Steps of the cwltool run of {document.target}", cwltool_log.rows(document.content()))
    return outputs


run_cwl_with_cwltool = task(run_with_cwltool, name="cwltool", cache_policy=NO_CACHE)

"""cwltool's own hooks, by which each CWL job it runs becomes a step run (`tasks.cwl.step_runs`) as it happens.

- `LoadingContext.construct_tool_object` (`JobHooks.make_tool`): the processes cwltool builds are subclasses of
  its own whose jobs report to the step runs: Pending when cwltool makes the job, Running when it starts,
  Completed / Failed when it ends, its standard output and error line by line meanwhile (through a pipe that
  cwltool gives the tool as its default stdout/stderr), its cores and RAM as cwltool evaluated them, its exit code;
- `RuntimeContext.workflow_job_step_name_callback` (`JobNames`): a job is named after its step, `step[i]` for the
  i-th job of a scattered step, `outer/inner` inside a sub-workflow (a lone tool keeps the tool's name).

cwltool's executors stay its own (`--parallel` included): the hooks live on the jobs.
"""

import logging
import os
import threading
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from cwltool.command_line_tool import CommandLineTool, ExpressionJob, ExpressionTool
from cwltool.job import JobBase
from cwltool.process import Process, shortname
from cwltool.workflow import Workflow, default_make_tool

from tasks.cwl.step_runs import StepRun, StepRuns

DECLARED_STDERR_LINES = 1000  # of a `stderr:` file a tool declares, logged after the job


class JobNames:
    """cwltool's step-name callback: `step`, `step[i]` for the i-th job of a scatter, `parent/step` when nested."""

    def __init__(self, parent: str = "", counts: dict[Any, int] | None = None) -> None:
        self.parent, self.counts = parent, counts if counts is not None else {}

    def __call__(self, step: Any, inputs: Any) -> str:
        """The name of the job(s) `step` (a cwltool WorkflowJobStep) is about to make."""
        name = self.parent + shortname(step.id)
        if "scatter" in step.tool:  # called once per element, in element order (cwltool makes them in turn)
            index = self.counts.get(step, 0)
            self.counts[step] = index + 1
            name += f"[{index}]"
        return name

    def within(self, name: str) -> "JobNames":
        """The names of the steps of the sub-workflow run as `name`."""
        return JobNames(f"{name}/", self.counts)


@contextmanager
def lines_to(sink: Callable[[str], None]) -> Iterator[IO[bytes]]:
    """A writable file whose lines reach `sink` as they come (a pipe, read by a thread until its writers close)."""
    read_end, write_end = os.pipe()
    writer = os.fdopen(write_end, "wb")

    def pump() -> None:
        with os.fdopen(read_end, "rb") as reader:
            for raw in reader:
                sink(raw.decode(errors="replace").rstrip("\r\n"))

    thread = threading.Thread(target=pump, name="cwl-job-output", daemon=True)
    thread.start()
    try:
        yield writer
    finally:
        writer.close()  # cwltool closes it once the tool has ended; closing twice is harmless
        thread.join(timeout=30)  # a tool's background child could hold the pipe open: do not wait forever


def _declared_stderr(job: Any, step: StepRun, runs: StepRuns) -> None:
    """Log the `stderr:` file a tool declares (the pipe never sees that stream)."""
    if not getattr(job, "stderr", None):
        return
    try:
        lines = Path(getattr(job, "base_path_logs", None) or job.outdir, job.stderr).read_text(errors="replace")
    except OSError:
        return
    found = lines.splitlines()
    if len(found) > DECLARED_STDERR_LINES:
        runs.line(step, f"({len(found) - DECLARED_STDERR_LINES} earlier lines of {job.stderr} not shown)")
    for text in found[-DECLARED_STDERR_LINES:]:
        runs.line(step, text)


def _ended(step: StepRun, runs: StepRuns, status: str | None) -> None:
    if status == "success":
        runs.finish(step, "Completed", exit_code=step.exit_code)
        return
    code = f"exit code {step.exit_code}, " if step.exit_code is not None else ""
    runs.finish(step, "Failed", f"{code}cwltool status {status or 'unknown'}")


def observe(job: JobBase | ExpressionJob, name: str, runs: StepRuns) -> None:
    """Make `job` a step run named `name`: Pending now, then Running, its output, and its end as they happen."""
    resources = getattr(job.builder, "resources", None) or {}
    step = runs.add(name, key=getattr(job, "name", None), cores=resources.get("cores"), ram_mb=resources.get("ram"))
    run, callback, ended = job.run, job.output_callback, {}

    def output_callback(outputs: Any, status: str) -> None:
        ended["status"] = status
        if callback is not None:
            callback(outputs, status)

    def observed_run(runtime_context: Any, tmpdir_lock: Any = None) -> None:
        context = runtime_context.copy()  # the job's own: its output goes to its own pipe
        with lines_to(lambda text: runs.line(step, text)) as output:
            context.default_stdout = context.default_stderr = output
            runs.running(step)
            try:
                run(context, tmpdir_lock)
            except BaseException as exc:
                runs.finish(step, "Failed", f"{type(exc).__name__}: {exc}")
                raise
        _declared_stderr(job, step, runs)
        _ended(step, runs, ended.get("status"))

    if isinstance(job, JobBase):
        collect = job.collect_outputs

        def collect_outputs(outdir: str, rcode: int) -> Any:
            step.exit_code = rcode
            return collect(outdir, rcode)

        job.collect_outputs = collect_outputs  # type: ignore[method-assign]
    job.output_callback = output_callback  # type: ignore[method-assign]
    job.run = observed_run  # type: ignore[method-assign]


class _ObservedJobs:
    """A cwltool process whose jobs are observed (mixed into its CommandLineTool and ExpressionTool)."""

    runs: StepRuns
    tool: MutableMapping[str, Any]

    def job(self, job_order: Any, output_callbacks: Any, runtimeContext: Any) -> Iterator[Any]:  # noqa: N803
        """cwltool's jobs of this process, each observed (a job's name: its step's, else the tool's)."""
        name = runtimeContext.name or shortname(self.tool.get("id", "job"))
        for job in super().job(job_order, output_callbacks, runtimeContext):  # type: ignore[misc]
            if isinstance(job, JobBase | ExpressionJob):
                observe(job, name, self.runs)
            yield job


class _CommandLineTool(_ObservedJobs, CommandLineTool):
    pass


class _ExpressionTool(_ObservedJobs, ExpressionTool):
    pass


class _Workflow(Workflow):
    """A cwltool Workflow whose steps, when it runs as a step itself, are named inside that step's name."""

    def job(self, job_order: Any, output_callbacks: Any, runtimeContext: Any) -> Iterator[Any]:  # noqa: N803
        """cwltool's jobs of this workflow."""
        names = runtimeContext.workflow_job_step_name_callback
        if isinstance(names, JobNames) and runtimeContext.name:
            runtimeContext = runtimeContext.copy()
            runtimeContext.workflow_job_step_name_callback = names.within(runtimeContext.name)
        yield from super().job(job_order, output_callbacks, runtimeContext)


class JobHooks:
    """What cwltool is given so that every job it runs reports to `runs`."""

    CLASSES = {"CommandLineTool": _CommandLineTool, "ExpressionTool": _ExpressionTool, "Workflow": _Workflow}

    def __init__(self, runs: StepRuns) -> None:
        self.runs = runs
        self.names = JobNames()

    def make_tool(self, toolpath_object: Any, loading_context: Any) -> Process:
        """cwltool's `construct_tool_object`: its own processes, observed."""
        kind = self.CLASSES.get(toolpath_object.get("class")) if isinstance(toolpath_object, MutableMapping) else None
        if kind is None:
            return default_make_tool(toolpath_object, loading_context)
        process = kind(toolpath_object, loading_context)
        process.runs = self.runs  # type: ignore[attr-defined]
        return process

    def route(self, record: logging.LogRecord, job_name: str) -> None:
        """Also log a cwltool record about job `job_name` in that job's own log (errors also in its tail)."""
        step = self.runs.find(job_name)
        if step is not None:
            message, level = f"cwltool | {record.getMessage()}", record.levelno
            self.runs.line(step, message, level, keep=level >= logging.ERROR)

"""Every CWL job cwltool runs is a Prefect task run of its own: asked of the test Prefect server's API."""

import base64
import io
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from uuid import UUID, uuid4

import pytest
import yaml
from PIL import Image
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterTaskRunId
from prefect.client.schemas.objects import TaskRun
from prefect.logging.handlers import APILogHandler

from eoflows.errors import RemoteRunError
from flows.run_cwl import run_cwl
from tasks.cwl.step_runs import StepRun, StepRuns
from tasks.cwl.timeline import FEW, timeline_markdown
from tests.test_run_cwl import SORTTOOL, markdown, relative_job, scatter_package, tables


def job_runs(flow_run_id: UUID) -> list[TaskRun]:
    """The task runs of a flow run's CWL jobs (tagged `cwl`), by start time."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    jobs = [r for r in runs if "cwl" in r.tags]
    return sorted(jobs, key=lambda r: r.start_time or datetime.max.replace(tzinfo=UTC))


def all_task_runs(state) -> list[TaskRun]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )


def states(run: TaskRun) -> list[str]:
    with get_client(sync_client=True) as client:
        return [s.name for s in sorted(client.read_task_run_states(run.id), key=lambda s: s.timestamp)]


def log_of(run: TaskRun) -> str:
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=[run.id])))
    return "\n".join(log.message for log in sorted(logs, key=lambda log: log.timestamp))


def timeline_rows(state) -> list[dict[str, str]]:
    """The rows of the `cwl-timeline` table (markdown) of a flow run."""
    lines = [line for line in markdown(state)["cwl-timeline"].splitlines() if line.startswith("| ")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    return [dict(zip(head, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[1:]]


def test_each_scatter_element_is_a_task_run_with_its_log_and_a_timeline(tmp_path: Path) -> None:
    workflow, job = scatter_package(tmp_path / "package"), relative_job(tmp_path / "inputs")
    state = run_cwl(cwl=str(workflow), inputs=str(job), outdir=str(tmp_path / "out"), return_state=True)
    assert state.is_completed()
    runs = job_runs(state.state_details.flow_run_id)
    assert [r.name for r in runs] == ["rev[0]", "rev[1]", "sort[0]", "sort[1]"]
    (runner,) = [r for r in all_task_runs(state) if r.name.startswith("cwltool")]
    for run in runs:
        assert states(run) == ["Pending", "Running", "Completed"], run.name
        assert run.start_time and run.end_time and run.start_time <= run.end_time
        assert {"cwl", "cwltool"} <= set(run.tags)
    for run in runs[1:]:  # one after the other: cwltool runs one job at a time unless --parallel
        assert run.start_time >= runs[runs.index(run) - 1].end_time - timedelta(milliseconds=50)
    rev_one, rev_two = log_of(runs[0]), log_of(runs[1])  # each job's own command line, in its own log
    assert "one.txt" in rev_one and "two.txt" not in rev_one and "two.txt" in rev_two
    assert "completed success" in rev_two
    with get_client(sync_client=True) as client:
        assert all(str(runner.id) in str(client.read_task_run(r.id).task_inputs["__parents__"]) for r in runs)
    rows = timeline_rows(state)
    assert [(r["step"], r["state"], r["cores"]) for r in rows] == [
        ("rev[0]", "Completed", "1"), ("rev[1]", "Completed", "1"),
        ("sort[0]", "Completed", "1"), ("sort[1]", "Completed", "1")]  # fmt: skip
    assert all(float(r["seconds"]) >= 0 and float(r["RAM MiB"]) > 0 and r["start"] <= r["end"] for r in rows)
    picture = markdown(state)["cwl-timeline"].split("data:image/png;base64,")[1].split(")")[0]
    assert Image.open(io.BytesIO(base64.b64decode(picture))).size[0] > 300  # four jobs: more than a few, drawn
    assert [r["step"] for r in tables(state)["cwl-usage"]] == ["rev[0]", "rev[1]", "sort[0]", "sort[1]"]


FAILING = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "doc": "Says what it reads, then fails with a message on standard error",
    "baseCommand": ["sh", "-c", 'echo "reading $0"; echo "boom: no band B13 in $0" >&2; exit 3'],
    "inputs": {"input": {"type": "File", "inputBinding": {"position": 1}}},
    "outputs": {},
}
FAILING_WORKFLOW = {
    "cwlVersion": "v1.2",
    "class": "Workflow",
    "requirements": [{"class": "ScatterFeatureRequirement"}, {"class": "StepInputExpressionRequirement"}],
    "inputs": {"files": "File[]"},
    "outputs": {},
    "steps": {
        "rev": {"run": "tools/revtool.cwl", "scatter": "input", "in": {"input": "files"}, "out": ["output"]},
        "check": {"run": "tools/failing.cwl", "in": {"input": {"source": "rev/output", "valueFrom": "$(self[0])"}},
                  "out": []},
    },
}  # fmt: skip


def test_a_failing_step_is_a_failed_task_run_and_names_itself_in_the_flow_run(tmp_path: Path) -> None:
    workflow = scatter_package(tmp_path / "package")
    (workflow.parent / "tools" / "failing.cwl").write_text(yaml.safe_dump(FAILING))
    workflow.write_text(yaml.safe_dump(FAILING_WORKFLOW))
    job = relative_job(tmp_path / "inputs")
    state = run_cwl(cwl=str(workflow), inputs=str(job), outdir=str(tmp_path / "out"), return_state=True)
    assert state.is_failed()
    runs = {r.name: r for r in job_runs(state.state_details.flow_run_id)}
    assert set(runs) == {"rev[0]", "rev[1]", "check"}
    assert states(runs["check"]) == ["Pending", "Running", "Failed"]
    assert runs["check"].state.message == "exit code 3, cwltool status permanentFail"
    log = log_of(runs["check"])
    assert "reading " in log and "boom: no band B13 in " in log  # its stdout and stderr, line by line
    assert all(states(runs[name])[-1] == "Completed" for name in ("rev[0]", "rev[1]"))
    with get_client(sync_client=True) as client:
        message = client.read_flow_run(state.state_details.flow_run_id).state.message
    assert "step 'check' failed (exit code 3, cwltool status permanentFail); last lines of its log:" in message
    assert "boom: no band B13 in " in message
    with pytest.raises(RemoteRunError, match=r"(?s)failed \(status 1\): step 'check' failed .*boom: no band B13"):
        state.result()


SUBWORKFLOW = {
    "cwlVersion": "v1.2",
    "class": "Workflow",
    "requirements": [{"class": "ScatterFeatureRequirement"}, {"class": "SubworkflowFeatureRequirement"}],
    "inputs": {"files": "File[]"},
    "outputs": {"sorted": {"type": "File[]", "outputSource": "each/sorted"}},
    "steps": {"each": {"scatter": "file", "in": {"file": "files"}, "out": ["sorted"], "run": {
        "class": "Workflow", "inputs": {"file": "File"},
        "outputs": {"sorted": {"type": "File", "outputSource": "sort/output"}},
        "steps": {"rev": {"run": "tools/revtool.cwl", "in": {"input": "file"}, "out": ["output"]},
                  "sort": {"run": "tools/sorttool.cwl", "in": {"input": "rev/output", "reverse": {"default": False}},
                           "out": ["output"]}}}}},
}  # fmt: skip


def test_jobs_of_a_scattered_sub_workflow_are_named_inside_its_element(tmp_path: Path) -> None:
    workflow = scatter_package(tmp_path / "package")
    workflow.write_text(yaml.safe_dump(SUBWORKFLOW))
    state = run_cwl(cwl=str(workflow), inputs=str(relative_job(tmp_path / "inputs")), outdir=str(tmp_path / "out"),
                    return_state=True)  # fmt: skip
    assert [Path(f["path"]).read_text() for f in state.result()["sorted"]] == ["a\nb\nc\n", "y\nz\n"]
    runs = job_runs(state.state_details.flow_run_id)
    assert sorted(r.name for r in runs) == ["each[0]/rev", "each[0]/sort", "each[1]/rev", "each[1]/sort"]
    assert all(r.state.is_completed() for r in runs)


MEETING = {
    "cwlVersion": "v1.2",
    "class": "CommandLineTool",
    "doc": "Waits (20 s at most) until as many jobs as it expects have arrived in a folder: they run at once",
    "baseCommand": ["sh", "-c", 'touch "$0/$1"; for i in $(seq 200); do [ "$(ls "$0" | wc -l)" -ge 2 ] && '
                    'echo "met in $0" && exit 0; sleep 0.1; done; echo "alone" >&2; exit 1'],
    "inputs": {"room": {"type": "string", "inputBinding": {"position": 1}},
               "me": {"type": "string", "inputBinding": {"position": 2}}},
    "outputs": {},
}  # fmt: skip


def test_jobs_that_cwltool_runs_in_parallel_are_parallel_task_runs(tmp_path: Path) -> None:
    (tmp_path / "room").mkdir()
    (tmp_path / "meeting.cwl").write_text(yaml.safe_dump(MEETING))
    workflow = {"cwlVersion": "v1.2", "class": "Workflow", "requirements": [{"class": "ScatterFeatureRequirement"}],
                "inputs": {"room": "string", "people": "string[]"}, "outputs": {},
                "steps": {"meet": {"run": "meeting.cwl", "scatter": "me", "in": {"room": "room", "me": "people"},
                                   "out": []}}}  # fmt: skip
    (tmp_path / "workflow.cwl").write_text(yaml.safe_dump(workflow))
    state = run_cwl(cwl=str(tmp_path / "workflow.cwl"), inputs={"room": str(tmp_path / "room"), "people": ["a", "b"]},
                    outdir=str(tmp_path / "out"), parallel=True, return_state=True)  # fmt: skip
    assert state.is_completed()
    first, second = job_runs(state.state_details.flow_run_id)
    assert {first.name, second.name} == {"meet[0]", "meet[1]"}
    assert second.start_time < first.end_time  # both ran at once
    assert "met in " in log_of(first) and "met in " in log_of(second)


def test_the_timeline_draws_a_picture_only_for_more_than_a_few_jobs() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    steps = [StepRun(f"rev[{i}]", cores=1, ram_mb=256, state="Completed", start=start + timedelta(seconds=i),
                     end=start + timedelta(seconds=i + 2)) for i in range(FEW)]  # fmt: skip
    steps.insert(0, StepRun("never", state="Cancelled"))
    text = timeline_markdown(steps)
    assert "data:image/png" not in text
    first = "| rev[0] | Completed | 2026-01-01T00:00:00.000+00:00 | 2026-01-01T00:00:02.000+00:00 | 2.0 | 1 | 256 |"
    head = ["| step | state | start | end | seconds | cores | RAM MiB |", "|---|---|---|---|---|---|---|"]
    assert text.splitlines()[:3] == [*head, first]
    assert text.splitlines()[-1].startswith("| never | Cancelled |  |  |  |")  # never started: last
    steps.append(StepRun("sort", state="Failed", start=start, end=start + timedelta(seconds=9), node="node-a"))
    text = timeline_markdown(steps)
    assert "| node |" in text and "| node-a |" in text
    png = base64.b64decode(text.split("data:image/png;base64,")[1].split(")")[0])
    assert png.startswith(b"\x89PNG") and Image.open(io.BytesIO(png)).size[1] > 100


def test_a_lone_tool_is_one_task_run_named_after_it(tmp_path: Path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("b\na\n")
    state = run_cwl(cwl=str(SORTTOOL), inputs={"reverse": False, "input": {"class": "File", "path": str(lines)}},
                    outdir=str(tmp_path / "out"), return_state=True)  # fmt: skip
    (run,) = job_runs(state.state_details.flow_run_id)
    assert run.name == "calrissian_sorttool.cwl" and run.state.is_completed()


def test_a_prefect_api_that_fails_never_breaks_the_run(caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def create_task_run(self, *args, **kwargs):
            raise ConnectionError("Prefect API unreachable")

    caplog.set_level(logging.INFO, logger="eoflows")
    runs = StepRuns("cwltool", Down(), parent=SimpleNamespace(id=uuid4(), flow_run_id=uuid4()))  # type: ignore[arg-type]
    step = runs.add("rev[0]")
    runs.running(step)
    runs.line(step, "rev: cannot open x")
    runs.finish(step, "Failed", "exit code 1, cwltool status permanentFail")
    assert step.task_run_id is None
    assert "Could not create the task run of rev[0] (Prefect API unreachable)" in caplog.text
    assert "[rev[0]] rev: cannot open x" in caplog.text  # logged all the same
    assert runs.failure() == (
        "step 'rev[0]' failed (exit code 1, cwltool status permanentFail); last lines of its log:\nrev: cannot open x"
    )

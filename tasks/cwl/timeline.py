"""The `cwl-timeline` artifact of a CWL run: one row per job, and a picture of the timeline when there are many.

Each row gives the job's state, start, end, duration, the cores and RAM it asked for (and, on Kubernetes, the
node it ran on). With more than `FEW` jobs, a PNG of the jobs as bars along time (coloured by state) follows the
table, inside the same markdown artifact (a data URI); matplotlib draws it, imported only then.
"""

import base64
import io
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from tasks.cwl.step_runs import StepRun
from tasks.reporting import report_markdown

FEW = 3
COLOURS = {"Completed": "#2e9e5b", "Failed": "#d64541", "Cancelled": "#9e9e9e", "Running": "#3b7dd8",
           "Pending": "#e0c341"}  # fmt: skip


def _time(moment: datetime | None) -> str:
    return moment.isoformat(timespec="milliseconds") if moment else ""


def in_order(steps: Sequence[StepRun]) -> list[StepRun]:
    """The jobs by start time (those that never started last, in the order they were made)."""
    order, never = {id(s): i for i, s in enumerate(steps)}, datetime.max.replace(tzinfo=UTC)
    return sorted(steps, key=lambda s: (s.start or never, order[id(s)]))


def rows(steps: Sequence[StepRun]) -> list[dict[str, Any]]:
    """One row per job, by start time."""
    nodes = any(s.node for s in steps)
    return [{"step": s.name, "state": s.state, "start": _time(s.start), "end": _time(s.end), "seconds": s.seconds,
             "cores": s.cores, "RAM MiB": s.ram_mb, **({"node": s.node or ""} if nodes else {})}
            for s in in_order(steps)]  # fmt: skip


def job_rows(steps: Sequence[StepRun]) -> list[dict[str, Any]]:
    """One row per job for a usage table (the columns of Calrissian's usage report), by start time."""
    return [{"step": s.name, "cores": s.cores, "RAM MB": s.ram_mb, "seconds": s.seconds,
             "exit code": s.exit_code if s.state != "Cancelled" else "not run"} for s in in_order(steps)]  # fmt: skip


def markdown_table(table: list[dict[str, Any]]) -> str:
    """`table` as a markdown table (empty cells for None)."""

    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    head = list(table[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(cell(row[k]) for k in head) + " |" for row in table])


def timeline_png(steps: Sequence[StepRun]) -> bytes:
    """A picture of the jobs as bars along time, the first at the top, coloured by state (PNG)."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot: no global figure state, safe in threads

    ordered = [s for s in in_order(steps) if s.start]
    origin = min(s.start for s in ordered)  # type: ignore[type-var]
    last = max((s.end or s.start) for s in ordered)  # type: ignore[type-var]
    figure = Figure(figsize=(9, 1 + 0.28 * len(ordered)), dpi=80, layout="constrained")
    axes = figure.add_subplot()
    for row, step in enumerate(ordered):
        begin = (step.start - origin).total_seconds()  # type: ignore[operator]
        width = max(((step.end or last) - step.start).total_seconds(), 0.05)  # type: ignore[operator]
        axes.barh(row, width, left=begin, height=0.7, color=COLOURS.get(step.state, "#666666"))
    axes.set_yticks(range(len(ordered)), [s.name for s in ordered], fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the first job started")
    axes.grid(axis="x", alpha=0.3)
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def timeline_markdown(steps: Sequence[StepRun]) -> str:
    """The artifact's text: the table, then (more than `FEW` jobs) the picture."""
    text = markdown_table(rows(steps))
    if len([s for s in steps if s.start]) > FEW:
        picture = base64.b64encode(timeline_png(steps)).decode()
        text += f"\n\n![Timeline of the jobs](data:image/png;base64,{picture})\n"
    return text


def report_timeline(steps: Sequence[StepRun], title: str) -> None:
    """Publish the `cwl-timeline` artifact (nothing when no job ran)."""
    if steps:
        report_markdown("cwl-timeline", title, timeline_markdown(steps))

"""Each job of a CWL run as a Prefect task run of its own: its states as they happen, its log, its resources.

A runner reports what it sees of a job (cwltool through its hooks, Calrissian through the step pods) to a
`StepRuns`, which creates a task run per job in the current flow run, a child of the runner's task run, and
moves it Pending -> Running -> Completed / Failed / Cancelled. These task runs are records of work done
elsewhere: their states are set as seen (forced, past Prefect's orchestration rules, which are for work Prefect
runs itself). Outside a Prefect run the same reports are only logged.

```python
with StepRuns.of_this_run("cwltool") as runs:
    step = runs.add("rev[0]", cores=1, ram_mb=256)
    runs.running(step)
    runs.line(step, "a line of its output")
    runs.finish(step, "Completed", exit_code=0)
failure = runs.failure()  # "step 'rev[0]' failed (...); last lines of its log: ..." or ""
```
"""

import contextvars
import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.objects import TaskRunResult
from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.loggers import task_run_logger
from prefect.states import Cancelled, Completed, Failed, Pending, Running

TAIL = 20  # log lines kept per job, for the message of a failed run
FINAL = ("Completed", "Failed", "Cancelled")


def _cwl_job() -> None:
    """The task of CWL job task runs (never called: the job itself runs in cwltool or in a pod)."""


CWL_JOB = task(_cwl_job, name="cwl-job", cache_policy=NO_CACHE)


@dataclass(eq=False)
class StepRun:
    """One CWL job: what it asked for, where and when it ran, how it ended, the last lines of its log."""

    name: str
    cores: float | None = None
    ram_mb: float | None = None
    node: str | None = None
    state: str = "Pending"
    start: datetime | None = None
    end: datetime | None = None
    exit_code: int | None = None
    message: str = ""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    task_run_id: uuid.UUID | None = None
    log: logging.Logger | logging.LoggerAdapter = field(default_factory=lambda: logging.getLogger("eoflows"))

    @property
    def seconds(self) -> float | None:
        """How long it ran (None until it has started and ended)."""
        return round((self.end - self.start).total_seconds(), 1) if self.start and self.end else None


def _now() -> datetime:
    return datetime.now(UTC)


class _Prefixed(logging.LoggerAdapter):
    """The `eoflows` logger with the job's name before each line (outside a Prefect run)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        return f"[{self.extra['step']}] {msg}", kwargs  # type: ignore[index]


class StepRuns:
    """The jobs of one CWL run, each a task run of the current flow run (or only logged, outside Prefect).

    Thread-safe: cwltool runs jobs in threads of its own (`--parallel`), and the output of each job is read by a
    thread; their log lines are sent from the Prefect context the step runs were made in (its settings, its API).
    """

    def __init__(self, runner: str, client: SyncPrefectClient | None = None, parent: Any = None,
                 flow_run: Any = None, flow: Any = None) -> None:  # fmt: skip
        self.runner = runner
        self.steps: list[StepRun] = []
        self._client, self._parent, self._flow_run, self._flow = client, parent, flow_run, flow
        self._keys: dict[str, StepRun] = {}
        self._lock = threading.RLock()
        self._context = contextvars.copy_context()

    @classmethod
    @contextmanager
    def of_this_run(cls, runner: str) -> Iterator["StepRuns"]:
        """The step runs of the current Prefect task run (its children); outside a Prefect task run, logs only."""
        context = TaskRunContext.get()
        if context is None:
            yield cls(runner)
            return
        flow_context = FlowRunContext.get()
        with get_client(sync_client=True) as client:
            yield cls(runner, client, context.task_run, flow_context and flow_context.flow_run,
                      flow_context and flow_context.flow)  # fmt: skip

    def add(self, name: str, key: str | None = None, **known: Any) -> StepRun:
        """A new job, Pending; `key` finds it again (`find`); `known`: cores, ram_mb, node."""
        step = StepRun(name, **known)
        step.log = _Prefixed(logging.getLogger("eoflows"), {"step": name})
        if self._client is not None:
            run = self._api(f"create the task run of {name}", self._client.create_task_run,
                            CWL_JOB, self._parent.flow_run_id, dynamic_key=uuid.uuid4().hex, name=name,
                            extra_tags=["cwl", self.runner], state=Pending(),
                            task_inputs={"__parents__": [TaskRunResult(id=self._parent.id)]})  # fmt: skip
            if run is not None:
                step.task_run_id = run.id
                step.log = task_run_logger(run, task=CWL_JOB, flow_run=self._flow_run, flow=self._flow)
        with self._lock:
            self.steps.append(step)
            if key is not None:
                self._keys[key] = step
        return step

    def _api(self, what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        """`call` to the Prefect API; if it fails, a warning and None: a mirror never breaks the run it shows."""
        try:
            with self._lock:
                return call(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - whatever the API does, the CWL run goes on
            self._context.copy().run(logging.getLogger("eoflows").warning, "Could not %s (%s)", what, exc)
            return None

    def find(self, key: str) -> StepRun | None:
        """The job added with `key`."""
        with self._lock:
            return self._keys.get(key)

    def _set(self, step: StepRun, state: Any) -> None:
        if self._client is not None and step.task_run_id is not None:
            self._api(f"set the state of {step.name}", self._client.set_task_run_state, step.task_run_id, state,
                      force=True)  # fmt: skip

    def running(self, step: StepRun, at: datetime | None = None) -> None:
        """The job has started (at `at`, default now)."""
        if step.state != "Pending":
            return
        step.state, step.start = "Running", at or _now()
        self._set(step, Running())

    def line(self, step: StepRun, text: str, level: int = logging.INFO, keep: bool = True) -> None:
        """A line of the job's log: to its task run's log, and (`keep`) to the tail kept for a failure."""
        if keep:
            step.tail.append(text)
        self._log(step, level, "%s", text)

    def _log(self, step: StepRun, level: int, *args: Any) -> None:
        self._context.copy().run(step.log.log, level, *args)  # a copy: other threads may be logging too

    def finish(self, step: StepRun, state: str, message: str = "", exit_code: int | None = None,
               at: datetime | None = None) -> None:  # fmt: skip
        """The job has ended: Completed, Failed or Cancelled (a job that already ended stays as it was)."""
        if step.state in FINAL:
            return
        step.state, step.end, step.message = state, at or _now(), message
        step.exit_code = exit_code if exit_code is not None else step.exit_code
        if state == "Failed":
            self._log(step, logging.ERROR, "Failed: %s", message)
        prefect_state = {"Completed": Completed, "Failed": Failed, "Cancelled": Cancelled}[state]
        self._set(step, prefect_state(message=message or None))

    def close(self, message: str) -> None:
        """End, as Cancelled with `message`, every job that has not ended (the run is over)."""
        for step in list(self.steps):
            self.finish(step, "Cancelled", message)

    def failure(self) -> str:
        """Which job failed first and the last lines of its log, as a sentence for an error ("" if none did)."""
        failed = sorted((s for s in self.steps if s.state == "Failed"), key=lambda s: s.end or _now())
        if not failed:
            return ""
        step = failed[0]
        lines = "\n".join(step.tail) if step.tail else "(it logged nothing)"
        return f"step {step.name!r} failed ({step.message}); last lines of its log:\n{lines}"

"""What a step may use from where it runs: never a flow parameter, a CLI option or a CWL input.

That is where its windows run, where its final files may go while it computes, and when the clean-ups of a
stopping process must end. A step asks for it with a parameter annotated `Runtime`; like the staged and output
folders, it is wiring. `eoflows step` builds the runtime of a process alone, the flow builder the flow's
(`flows.build`), and a test or a notebook builds one by hand::

    from eoflows.runtime import Runtime
    from tasks.windows import Alone

    compute_indices(staged, output, Runtime(Alone()), products=["ndvi"])
"""

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from eoflows.settings import DaskSettings

#: Seconds the clean-ups of a stopping process get, all together.
CLEANUP_S = 3.0


@dataclass(frozen=True)
class Placement:
    """Where the windows of one step run: a way to submit one, in words, and whether that is another process.

    `submit(job, window)` returns a future (of `concurrent.futures` or Prefect's) of the window's measured result.
    """

    submit: Callable[[Callable[[Any], Any], Any], Any]
    where: str
    remote: bool  # windows run in other processes, maybe other machines: they must send their results back


class WindowSites(Protocol):
    """Where the windows of a step may run (`tasks.windows`: threads, a Dask cluster, a flow's task runner)."""

    def place(self, dask: "DaskSettings | None", pixels: int) -> AbstractContextManager[Placement]:
        """The placement of the windows of a step making `pixels` output pixels; what it starts ends on exit."""
        ...


class UploadSink(Protocol):
    """Where a step's final output files go while it computes (`tasks.data.staging.EarlyUploads`)."""

    root: Path  # the step's output folder: a file is put by its path under it
    sizes: dict[Path, int]  # each file put, with its size

    def put(self, path: Path, data: bytes) -> None:
        """Send `data` as the file `path` under `root`: it is final, and never written locally."""
        ...


class Deadline:
    """When the clean-ups of a stopping process must end: `seconds` after the first of them starts.

    Nested clean-ups (a run folder claimed by the flow and again by its stage-out step, the uploads in flight)
    share it, so a stopped run ends within `seconds` whatever hangs.
    """

    def __init__(self, seconds: float = CLEANUP_S) -> None:
        self.seconds = seconds
        self._at: float | None = None
        self._lock = threading.Lock()

    def remaining(self) -> float:
        """Seconds left; the deadline starts at the first call."""
        with self._lock:
            if self._at is None:
                self._at = time.monotonic() + self.seconds
            return max(0.0, self._at - time.monotonic())


@dataclass(frozen=True)
class Runtime:
    """What a step may use from where it runs (see the module docstring)."""

    windows: WindowSites
    #: In a flow publishing to S3, the step whose output stage-out publishes sends its final files there now,
    #: and stage-out learns from it which files went early; None everywhere else.
    uploads: UploadSink | None = None
    deadline: Deadline = field(default_factory=Deadline)

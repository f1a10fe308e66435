"""Calrissian's step pods mirrored as task runs of the flow run (tasks.cwl.step_runs) while the run goes on.

Calrissian runs each CommandLineTool job in a pod of its own, labelled with the labels it was given
(`--pod-labels`: eoflows puts the run's name and flow-run id there); the pod's container is named after the job
(`<job>-container`, the job name made Kubernetes-safe: `rev_2` becomes `rev-2`). A `PodMirror` watches those pods
(tasks.remote.watching: resumed on 410 Gone, listed when watching fails or is not allowed) and reports each one:
Pending -> Pending, Running -> Running, Succeeded -> Completed, Failed -> Failed (exit code and reason), its
container's log followed into its task run, its node and the cores and memory it requested. The Job stays the
judge of how the run ended: once it has, the pods are listed a last time and jobs still open are Cancelled.
"""

import asyncio
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eoflows.settings import CalrissianSettings
from eoflows.settings.calrissian import memory_mib
from tasks.cwl.step_runs import StepRun, StepRuns
from tasks.remote.watching import watch_until
from tasks.reporting import logger

LABEL_RUN = "eoflows.dev/run"
ENDED = {"Succeeded": "Completed", "Failed": "Failed"}


def step_name(pod: Any) -> str:
    """The job a step pod runs: its container's name without `-container` (else the pod's, without `-pod-<tag>`)."""
    containers = (pod.spec.containers or []) if pod.spec else []
    if containers and containers[0].name.endswith("-container"):
        return containers[0].name.removesuffix("-container")
    return pod.metadata.name.rsplit("-pod-", 1)[0]


def _cores(quantity: str | None) -> float | None:
    if not quantity:
        return None
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _mib(quantity: str | None) -> float | None:
    if not quantity:
        return None
    if quantity.isdigit():
        return int(quantity) / 2**20
    with suppress(ValueError, KeyError):
        return memory_mib(quantity)
    return None


def requested(pod: Any) -> dict[str, float | None]:
    """The cores and RAM (MiB) a step pod's container requests (what Calrissian makes of coresMin and ramMin)."""
    containers = (pod.spec.containers or []) if pod.spec else []
    requests = (containers[0].resources.requests or {}) if containers and containers[0].resources else {}
    return {"cores": _cores(requests.get("cpu")), "ram_mb": _mib(requests.get("memory"))}


def _state(pod: Any) -> Any:
    """The state of the pod's step container (by name: a Dask step pod also has a sidecar)."""
    containers = (pod.spec.containers or []) if pod.spec else []
    statuses = (pod.status.container_statuses or []) if pod.status else []
    named = [s for s in statuses if containers and s.name == containers[0].name] or statuses
    return named[0].state if named else None


def _terminated(pod: Any) -> Any:
    state = _state(pod)
    return state.terminated if state else None


def _started(pod: Any) -> datetime | None:
    state = _state(pod)
    running = state and (state.running or state.terminated)
    return running.started_at if running else None


@dataclass(eq=False)
class _Pod:
    name: str
    container: str | None
    step: StepRun
    follower: "asyncio.Task[None] | None" = None
    ending: "asyncio.Task[None] | None" = None


class PodMirror:
    """The step pods of one Calrissian run, each reported to `runs` as it changes."""

    def __init__(self, core: Any, ns: str, run: str, runs: StepRuns, settings: CalrissianSettings) -> None:
        self.core, self.ns, self.run, self.runs, self.settings = core, ns, run, runs, settings
        self.pods: dict[str, _Pod] = {}
        self.selector = f"{LABEL_RUN}={run}"

    async def watch(self) -> None:
        """Mirror the pods until cancelled (when the Job has ended)."""
        await watch_until(self.core.list_namespaced_pod, self.ns, f"the step pods of {self.run}",
                          self.settings.poll_seconds, self.seen, label_selector=self.selector)  # fmt: skip

    async def seen(self, kind: str, pod: Any) -> None:
        """Report what a watch event (or a listing) shows of a pod of this run."""
        if (pod.metadata.labels or {}).get(LABEL_RUN) != self.run:
            return None  # another pod (the Calrissian pod itself, another run's)
        found = self.pods.get(pod.metadata.name)
        if found is None:
            containers = (pod.spec.containers or []) if pod.spec else []
            step = await asyncio.to_thread(self.runs.add, step_name(pod), **requested(pod))
            found = self.pods[pod.metadata.name] = _Pod(pod.metadata.name, containers[0].name if containers else None,
                                                        step)  # fmt: skip
        found.step.node = (pod.spec.node_name if pod.spec else None) or found.step.node
        phase = pod.status.phase if pod.status else None
        if phase in ("Running", *ENDED) and found.step.state == "Pending":
            await asyncio.to_thread(self.runs.running, found.step, _started(pod))
            if phase == "Running":
                found.follower = asyncio.create_task(self._log(found, follow=True))
        if found.ending is None and (phase in ENDED or kind == "DELETED"):
            found.ending = asyncio.create_task(self._end(found, pod, phase if phase in ENDED else None))
        return None

    async def _log(self, found: _Pod, follow: bool) -> None:
        """The container's log into the job's log: followed while it runs, or read once it has ended."""
        from kubernetes_asyncio.client.exceptions import ApiException

        try:
            response = await self.core.read_namespaced_pod_log(found.name, self.ns, container=found.container,
                                                               follow=follow, _preload_content=False)  # fmt: skip
            try:
                async for raw in response.content:
                    self.runs.line(found.step, raw.decode(errors="replace").rstrip("\r\n"))
            finally:
                response.close()
        except (ApiException, OSError, TimeoutError) as exc:
            self.runs.line(found.step, f"(the log of pod {found.name} could not be read: {exc})", keep=False)

    async def _end(self, found: _Pod, pod: Any, phase: str | None) -> None:
        """End the job as its pod did, once the last lines of its log are in."""
        if found.follower is None and phase is not None:
            found.follower = asyncio.create_task(self._log(found, follow=False))
        if found.follower is not None:
            await asyncio.wait([found.follower], timeout=5)
        ended = _terminated(pod)
        code = ended.exit_code if ended else None
        if phase is None:
            state, message = "Cancelled", f"pod {found.name} was deleted before it ended"
        else:
            state = ENDED[phase]
            reason = f" ({ended.reason})" if ended and ended.reason and state == "Failed" else ""
            message = f"exit code {code}{reason}" if code is not None else f"pod {phase}"
        at = ended.finished_at if ended else None
        await asyncio.to_thread(self.runs.finish, found.step, state, message, code, at)

    async def close(self, watcher: "asyncio.Task[None]") -> None:
        """The Job has ended: stop watching, look at the pods a last time, end every job still open."""
        from kubernetes_asyncio.client.exceptions import ApiException

        watcher.cancel()
        with suppress(asyncio.CancelledError):
            await watcher
        try:
            for pod in (await self.core.list_namespaced_pod(self.ns, label_selector=self.selector)).items:
                await self.seen("MODIFIED", pod)
        except (ApiException, OSError, TimeoutError) as exc:
            logger().warning("Could not list the step pods of %s a last time (%s)", self.run, exc)
        endings = [p.ending for p in self.pods.values() if p.ending is not None]
        if endings:
            await asyncio.wait(endings, timeout=10)
        for found in self.pods.values():
            for task in (found.follower, found.ending):
                if task is not None:
                    task.cancel()
        await asyncio.to_thread(self.runs.close, "the Calrissian run ended before this pod did")

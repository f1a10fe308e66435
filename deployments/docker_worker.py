"""The worker of the eoflows-docker pool: prefect-docker's, with a missing image reported as a Failed run.

Before prefect-docker's worker starts a run's container, this one makes sure the engine holds the image, and
pulls it if not. An image that can be neither found nor pulled ends the run Failed with one line naming the image
and what to do, where prefect-docker ends it Crashed with a traceback (and, under `prefect worker start`, does not
even pull: its `except docker.errors.ImageNotFound` misses the class the engine's 404 raises when prefect's lazy
import has loaded docker.errors twice). A present image is left to prefect-docker and its pull policy (the pool's
IfNotPresent: not pulled). The pool's type (`eoflows-docker`, from the `prefect.collections` entry point) selects
this worker:

    prefect worker start --pool eoflows-docker
"""

from typing import Any

import anyio.abc
from prefect.client.schemas.objects import FlowRun
from prefect.states import Failed
from prefect.utilities.asyncutils import run_sync_in_worker_thread
from prefect.utilities.engine import propose_state
from prefect_docker.worker import DockerWorker, DockerWorkerJobConfiguration, DockerWorkerResult, ImagePullPolicy

WORKER_TYPE = "eoflows-docker"


class MissingImageError(Exception):
    """A run's image is not in the worker's Docker engine and could not be pulled."""

    def __init__(self, image: str, reason: str) -> None:
        reason = " ".join(reason.split())[:300]
        super().__init__(f"image {image!r} is not in the local engine and no registry answers ({reason}): "
                         "run make image or push it")  # fmt: skip


class EoflowsDockerWorker(DockerWorker):
    """prefect-docker's worker; a run whose image is neither in the engine nor pullable ends Failed, in one line."""

    type = WORKER_TYPE
    _display_name = "Docker (eoflows)"
    _description = "Runs flows in Docker containers (prefect-docker); a missing image fails its run in one line."

    async def run(
        self,
        flow_run: FlowRun,
        configuration: DockerWorkerJobConfiguration,
        task_status: anyio.abc.TaskStatus[Any] | None = None,
    ) -> DockerWorkerResult:
        """Run the flow in a container of its image, or fail the run when the image is not to be had."""
        try:
            await run_sync_in_worker_thread(self._ensure_image, configuration)
        except MissingImageError as error:
            self.get_flow_run_logger(flow_run).error(str(error))
            await propose_state(self.client, Failed(message=str(error)), flow_run_id=flow_run.id)
            if task_status is not None:
                task_status.started(error)  # an exception: the worker counts the run as not submitted
            return DockerWorkerResult(status_code=0, identifier="")  # 0: the run's state is final already
        return await super().run(flow_run, configuration, task_status)

    def _ensure_image(self, configuration: DockerWorkerJobConfiguration) -> None:
        """Pull the run's image unless the engine holds it; MissingImageError when that fails."""
        image, client = configuration.image, self._get_client()
        try:
            try:
                client.api.inspect_image(image)
                return
            except Exception as exc:  # the class is not compared: prefect's lazy import can load docker.errors twice
                if getattr(exc, "status_code", None) != 404:
                    raise
            if configuration._determine_image_pull_policy() is ImagePullPolicy.NEVER:
                raise MissingImageError(image, "pull policy Never")
            credentials = configuration.registry_credentials
            try:
                if credentials:
                    client.login(username=credentials.username, password=credentials.password.get_secret_value(),
                                 registry=credentials.registry_url, reauth=credentials.reauth)  # fmt: skip
                self._logger.info(f"Pulling image {image!r}...")
                self._pull_image(client, configuration)
            except Exception as exc:
                raise MissingImageError(image, str(getattr(exc, "explanation", None) or exc)) from exc
        finally:
            client.close()

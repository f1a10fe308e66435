"""OGC API - Processes (Part 1: Core 1.0) on Prefect: every installed package is a process, every job a flow run.

A process is an installed package: its inputs are the package's user inputs, their schemas the JSON schemas of
its flow's parameters (the one declaration), plus an optional `destination`; its one output, `catalog`, is the
published STAC catalog. Executing it creates a flow run of the package's deployment on the server's pool (`NAME/
local` by default, run by that pool's workers), after the inputs were checked against the description: a job's
id is the flow run's id, its status the run's state, its results the run's published catalog
(DESTINATION/JOB_ID/catalog.json). An execute request is answered synchronously (200, the results) when
the run ends within a bounded wait (``Prefer: wait=N``, at most the server's `wait_s`), else as an asynchronous
one (201, ``Location``); ``Prefer: respond-async`` answers at once. Dismissing a job cancels the flow run (its
worker stops it) and never deletes what it published. Errors are OGC exception documents naming the input or
the job.
"""

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from eoflows.discovery import installed
from eoflows.errors import InputError
from eoflows.package import Package, Role

SPEC = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
#: What it passes (job-list waits for the datetime, minDuration and maxDuration filters).
CONFORMANCE = [f"{SPEC}/{c}" for c in ("core", "ogc-process-description", "json", "oas30", "dismiss", "callback")]
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
REL = "http://www.opengis.net/def/rel/ogc/1.0"
#: A flow run's state type -> an OGC job status.
STATUS = {"SCHEDULED": "accepted", "PENDING": "accepted", "PAUSED": "accepted", "RUNNING": "running",
          "COMPLETED": "successful", "FAILED": "failed", "CRASHED": "failed", "CANCELLING": "dismissed",
          "CANCELLED": "dismissed"}  # fmt: skip
PAGE_MAX = 100  # jobs per page at most (the Prefect API returns 200 flow runs at most per request)
JobStatus = Literal["accepted", "running", "successful", "failed", "dismissed"]
TAG = "ogc-api"  # the flow runs made by this API
DESTINATION_DOC = (
    "A folder inside the server's results folder (relative to it, or absolute) or an s3:// prefix "
    "to publish to; default: the server's results."
)
#: Flow parameters that the server decides and a request never gives.
SERVER_SIDE = ("run_id", "storage", "dask")


class ApiError(Exception):
    """An OGC exception document (RFC 7807: type, title, status, detail)."""

    def __init__(self, status: int, kind: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail

    def response(self) -> JSONResponse:
        body = {"type": f"{EXCEPTIONS}/{self.kind}", "title": self.title, "status": self.status, "detail": self.detail}
        return JSONResponse(body, status_code=self.status, media_type="application/problem+json")


@dataclass(frozen=True)
class ServerSettings:
    """Where jobs run and where their results go unless the request says."""

    results: str  # a folder or s3:// prefix: a job publishes to RESULTS/JOB_ID/ by default
    pool: str = "local"  # the deployments of the packages the jobs are runs of: NAME/POOL
    ui_url: str = ""  # the Prefect UI, for a job's link to its run
    wait_s: float = 30.0  # the longest a synchronous execute waits before it answers as an asynchronous one
    storage: str = ""  # a saved eoflows-s3-storage block: the jobs' S3 settings (never credentials in requests)


def _openapi(schema: dict[str, Any], definitions: dict[str, Any]) -> dict[str, Any]:
    """A JSON schema of Prefect's parameter schema as an OpenAPI 3.0 schema (refs inlined, null as nullable)."""
    if "$ref" in schema:
        return _openapi(definitions[schema["$ref"].rsplit("/", 1)[-1]], definitions)
    out = {k: v for k, v in schema.items() if k not in ("title", "position", "$ref")}
    if "anyOf" in out:
        options = [o for o in out.pop("anyOf") if o.get("type") != "null"]
        nullable = len(options) < len(schema["anyOf"])
        inner = _openapi(options[0], definitions) if len(options) == 1 else {
            "oneOf": [_openapi(o, definitions) for o in options]}  # fmt: skip
        out = {**out, **inner, **({"nullable": True} if nullable else {})}
    if "items" in out:
        out["items"] = _openapi(out["items"], definitions)
    return out


def inputs_of(package: Package) -> dict[str, dict[str, Any]]:
    """The OGC input descriptions of a package: its user inputs and `destination`, from its flow's parameters."""
    from flows.package_flows import flow_of

    schema = flow_of(package.name).parameters
    definitions = schema.definitions or {}
    user = {p.name: p for p in package.params if p.role is Role.INPUT}
    found = {}
    for name, prop in schema.properties.items():
        if name in SERVER_SIDE or (name not in user and name != "destination"):
            continue
        required = name in (schema.required or []) and name != "destination"
        doc = user[name].doc if name in user else DESTINATION_DOC
        found[name] = {"title": name.replace("_", " ").capitalize(), "description": doc,
                       "schema": _openapi(prop, definitions), "minOccurs": 1 if required else 0,
                       "maxOccurs": 1}  # fmt: skip
    return found


CATALOG_OUTPUT = {
    "catalog": {
        "title": "Catalog",
        "description": "The published STAC catalog (catalog.json; its items and assets beside it).",
        "schema": {"type": "string", "format": "uri", "contentMediaType": "application/json"},
    }
}


def summary(package: Package, base: str) -> dict[str, Any]:
    """The process summary of a package."""
    return {"id": package.name, "title": package.label, "description": package.description,
            "version": package.version, "jobControlOptions": ["async-execute", "sync-execute", "dismiss"],
            "outputTransmission": ["reference"],
            "links": [{"href": f"{base}/processes/{package.name}", "rel": "self", "type": "application/json",
                       "title": "process description"}]}  # fmt: skip


def _time(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def state_kind(run: Any) -> str:
    """The type of the flow run's state (SCHEDULED before it has one)."""
    return run.state.type.value if run.state else "SCHEDULED"


def job_status(run: Any) -> str:
    """The OGC status of the job that is flow run `run`."""
    return STATUS.get(state_kind(run), "accepted")


def status_info(run: Any, base: str, settings: ServerSettings) -> dict[str, Any]:
    """The statusInfo of the job that is flow run `run`."""
    kind, status = state_kind(run), job_status(run)
    links = [{"href": f"{base}/jobs/{run.id}", "rel": "self", "type": "application/json", "title": "job status"}]
    if status == "successful":
        links.append({"href": f"{base}/jobs/{run.id}/results", "rel": f"{REL}/results", "type": "application/json",
                      "title": "results"})  # fmt: skip
    if settings.ui_url:
        links.append({"href": f"{settings.ui_url.rstrip('/')}/runs/flow-run/{run.id}", "rel": "alternate",
                      "type": "text/html", "title": "the flow run in the Prefect UI"})  # fmt: skip
    message = (run.state.message if run.state else None) or kind.lower()
    info = {"jobID": str(run.id), "type": "process", "status": status, "message": message,
            "created": _time(run.created), "started": _time(run.start_time), "finished": _time(run.end_time),
            "updated": _time(run.state.timestamp if run.state else run.updated), "links": links}  # fmt: skip
    if status == "successful":
        info["progress"] = 100
    return {k: v for k, v in info.items() if v is not None}


def _package(name: str) -> Package:
    package = installed().get(name)
    if package is None:
        listed = ", ".join(sorted(installed()))
        raise ApiError(404, "no-such-process", "No such process", f"process {name!r}: not installed here; processes: "
                       f"{listed}")  # fmt: skip
    return package


def checked_inputs(package: Package, given: Any) -> dict[str, Any]:
    """The request's `inputs`, checked against the process description: the flow's parameters, or a 400."""
    import jsonschema

    if not isinstance(given, dict):
        raise ApiError(400, "invalid-parameter", "Invalid inputs", "inputs: expected an object of input values")
    described = inputs_of(package)
    unknown = sorted(set(given) - set(described))
    if unknown:
        raise ApiError(400, "invalid-parameter", "Unknown input", f"input {unknown[0]!r}: not an input of process "
                       f"{package.name!r}; its inputs: {', '.join(described)}")  # fmt: skip
    missing = [name for name, d in described.items() if d["minOccurs"] and name not in given]
    if missing:
        raise ApiError(400, "invalid-parameter", "Missing input", f"input {missing[0]!r}: required by process "
                       f"{package.name!r}")  # fmt: skip
    from flows.package_flows import flow_of

    schema = flow_of(package.name).parameters
    for name, value in given.items():
        prop = {**schema.properties[name], "definitions": schema.definitions or {}}
        try:
            jsonschema.validate(value, prop)
        except jsonschema.ValidationError as exc:
            raise ApiError(400, "invalid-parameter", "Invalid input", f"input {name!r}: {exc.message}") from None
    return dict(given)


def _destination(given: str | None, settings: ServerSettings) -> str:
    """Where a job publishes: the server's results, an s3:// prefix, or a folder inside the results folder.

    A client never makes the workers write anywhere else on their machines: another folder is a 400 naming it.
    """
    if given is None or given.startswith("s3://"):
        return given or settings.results
    from tasks.data.names import inside

    if settings.results.startswith("s3://"):
        raise ApiError(400, "invalid-parameter", "Invalid input", f"input 'destination' {given!r}: this server "
                       "publishes to S3; give an s3:// prefix")  # fmt: skip
    try:
        return str(inside(Path(settings.results), Path(settings.results, given), "input 'destination'"))
    except InputError as exc:
        raise ApiError(400, "invalid-parameter", "Invalid input", str(exc)) from None


def _results(run: Any, settings: ServerSettings) -> dict[str, Any]:
    """The results document of the job that is flow run `run`; an exception when it has none (yet)."""
    status = job_status(run)
    if status == "failed":
        raise ApiError(500, "job-results-failed", "Job failed", f"job {run.id}: failed: {run.state.message}")
    if status == "dismissed":
        raise ApiError(404, "no-such-job", "Job dismissed", f"job {run.id}: dismissed, no results")
    if status != "successful":
        raise ApiError(404, "result-not-ready", "Result not ready", f"job {run.id}: {status}, no results yet")
    destination = str(run.parameters.get("destination", settings.results)).rstrip("/")
    href = f"{destination}/{run.parameters.get('run_id') or run.id}/catalog.json"
    return {"catalog": {"href": href, "type": "application/json", "title": "the published STAC catalog"}}


async def _until_final(client: Any, run: Any, seconds: float) -> Any:
    """The flow run once it is final, or as it is after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (run.state is not None and run.state.is_final()) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        run = await client.read_flow_run(run.id)
    return run


async def _progress(client: Any, run: Any, steps: int) -> int:
    """A running job's progress (0-100): its steps done, and the latest progress artifact of the step at work."""
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterType,
        TaskRunFilter,
        TaskRunFilterFlowRunId,
        TaskRunFilterState,
        TaskRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import ArtifactSort

    completed = TaskRunFilterState(type=TaskRunFilterStateType(any_=[StateType.COMPLETED]))
    done = await client.read_task_runs(
        task_run_filter=TaskRunFilter(flow_run_id=TaskRunFilterFlowRunId(any_=[run.id]), state=completed)
    )
    finished = len({t.name for t in done})
    latest = await client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
                                       type=ArtifactFilterType(any_=["progress"])),
        sort=ArtifactSort.UPDATED_DESC, limit=1)  # fmt: skip
    current = float(latest[0].data) / 100 if latest and finished < steps else 0.0
    return max(0, min(99, int(100 * (min(finished, steps) + current) / steps)))


CALLBACKS = {"successful": "successUri", "failed": "failedUri", "dismissed": "failedUri", "running": "inProgressUri"}


def checked_subscriber(given: Any) -> dict[str, str]:
    """The request's `subscriber` URIs (http or https), or a 400 naming the one that is not."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise ApiError(400, "invalid-parameter", "Invalid subscriber", "subscriber: expected an object of URIs")
    for key, uri in given.items():
        if key not in ("successUri", "inProgressUri", "failedUri") or not re.match(r"https?://[^/\s]+", str(uri)):
            raise ApiError(400, "invalid-parameter", "Invalid subscriber", f"subscriber {key} {uri!r}: expected "
                           "successUri, inProgressUri or failedUri, each an http(s) URL")  # fmt: skip
    return dict(given)


async def notify(subscriber: dict[str, str], job: Any, info_of: Any, poll_s: float = 1.0, tries: int = 3) -> None:
    """POST the job's statusInfo to the subscriber's URI of each status it reaches, and at each progress change.

    Running goes to inProgressUri, successful to successUri, failed or dismissed to failedUri; each POST is
    tried `tries` times, 10 s each, with a growing pause between.
    """
    import httpx
    from prefect import get_client

    log = logging.getLogger("eoflows.ogc")
    sent: tuple[str, int] | None = None
    async with get_client() as client, httpx.AsyncClient(timeout=10) as http:
        while True:
            run = await client.read_flow_run(job)
            info = await info_of(client, run)
            key = (info["status"], info.get("progress", -1))
            uri = subscriber.get(CALLBACKS.get(info["status"], ""))
            if uri and key != sent:
                for attempt in range(tries):
                    try:
                        (await http.post(uri, json=info)).raise_for_status()
                        break
                    except httpx.HTTPError as exc:
                        log.warning("callback %s of job %s: %s (try %d of %d)", uri, job, exc, attempt + 1, tries)
                        await asyncio.sleep(2**attempt)
                sent = key
            if info["status"] in ("successful", "failed", "dismissed"):
                return
            await asyncio.sleep(poll_s)


def problems(**codes: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a route's exception documents: status code (as `_404`) -> when."""
    return {int(code.lstrip("_")): {"description": why, "content": {"application/problem+json": {}}}
            for code, why in codes.items()}  # fmt: skip


def create_app(settings: ServerSettings) -> FastAPI:
    """The OGC API - Processes application on the Prefect API this process reports to (PREFECT_API_URL)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Cancelling

    app = FastAPI(title="eoflows: OGC API - Processes", version="1.0.0", openapi_url="/api", docs_url="/api.html",
                  redoc_url=None)  # fmt: skip

    callbacks: set[asyncio.Task] = set()  # kept referenced while they run

    @app.exception_handler(ApiError)
    async def ogc_exception(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def invalid_parameter(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first.get("loc", ())[1:]) or "request"
        return ApiError(400, "invalid-parameter", "Invalid parameter", f"{name}: {first.get('msg')}").response()

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def run_of(client: Any, job_id: str) -> tuple[Any, Package]:
        """The flow run of a job, and the package it is a run of."""
        try:
            run = await client.read_flow_run(UUID(job_id))
            flow = await client.read_flow(run.flow_id)
        except (ValueError, ObjectNotFound):
            raise ApiError(404, "no-such-job", "No such job", f"job {job_id!r}: no such job") from None
        package = installed().get(flow.name)
        if package is None:
            raise ApiError(404, "no-such-job", "No such job", f"job {job_id!r}: not a run of a process here")
        return run, package

    def described(run: Any, process: str, request: Request) -> dict[str, Any]:
        return {**status_info(run, base(request), settings), "processID": process}

    @app.get("/")
    async def landing(request: Request) -> dict[str, Any]:
        b = base(request)
        return {
            "title": "eoflows",
            "description": "Earth-observation application packages as OGC processes; every job is a Prefect flow run.",
            "links": [  # fmt: skip
                {"href": f"{b}/", "rel": "self", "type": "application/json", "title": "this document"},
                {
                    "href": f"{b}/api",
                    "rel": "service-desc",
                    "type": "application/vnd.oai.openapi+json;version=3.0",
                    "title": "the API definition",
                },
                {
                    "href": f"{b}/conformance",
                    "rel": "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                    "type": "application/json",
                    "title": "conformance classes",
                },
                {"href": f"{b}/processes", "rel": f"{REL}/processes", "type": "application/json", "title": "processes"},
                {"href": f"{b}/jobs", "rel": f"{REL}/job-list", "type": "application/json", "title": "jobs"},
            ],
        }

    @app.get("/conformance")
    async def conformance() -> dict[str, Any]:
        return {"conformsTo": CONFORMANCE}

    @app.get("/processes")
    async def processes(request: Request) -> dict[str, Any]:
        b = base(request)
        return {"processes": [summary(p, b) for _, p in sorted(installed().items())],
                "links": [{"href": f"{b}/processes", "rel": "self", "type": "application/json"}]}  # fmt: skip

    @app.get("/processes/{process_id}", responses=problems(_404="no such process"))
    async def process(process_id: str, request: Request) -> dict[str, Any]:
        package = _package(process_id)
        return {**summary(package, base(request)), "inputs": inputs_of(package), "outputs": CATALOG_OUTPUT}

    @app.post("/processes/{process_id}/execution", status_code=201, responses={
        200: {"description": "the results (synchronous execution)"},
        **problems(_400="an input is invalid", _404="no such process", _500="the job failed (synchronous)",
                   _503="the process has no deployment")})  # fmt: skip
    async def execute(process_id: str, request: Request) -> JSONResponse:
        package = _package(process_id)
        try:
            body = await request.json()
        except ValueError:
            raise ApiError(400, "invalid-parameter", "Invalid request", "the request body is not JSON") from None
        inputs = checked_inputs(package, body.get("inputs", {}) if isinstance(body, dict) else None)
        subscriber = checked_subscriber(body.get("subscriber"))
        parameters = {**inputs, "destination": _destination(inputs.get("destination"), settings),
                      **({"storage": settings.storage} if settings.storage else {})}  # fmt: skip
        async with get_client() as client:
            try:
                deployment = await client.read_deployment_by_name(f"{package.name}/{settings.pool}")
            except ObjectNotFound:
                detail = (
                    f"process {package.name!r}: no deployment {package.name}/{settings.pool} on the Prefect API "
                    "(run eoflows deploy)"
                )
                raise ApiError(503, "server-error", "Process not deployed", detail) from None
            run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters, tags=[TAG])
            if subscriber:  # a task of this server: callbacks of jobs in flight end with it
                callbacks.add(task := asyncio.create_task(notify(subscriber, run.id, partial(job_info, request,
                                                                                             package))))  # fmt: skip
                task.add_done_callback(callbacks.discard)
            prefer = request.headers.get("Prefer", "")
            if "respond-async" not in prefer:  # synchronous, within a bounded wait, else as asynchronous
                wait = re.search(r"wait=(\d+)", prefer)
                run = await _until_final(client, run, min(int(wait.group(1)), settings.wait_s) if wait else
                                         settings.wait_s)  # fmt: skip
                if run.state is not None and run.state.is_final():
                    return JSONResponse(_results(run, settings), headers={"Preference-Applied": "respond-sync"})
        info = described(run, package.name, request)
        return JSONResponse(info, status_code=201, headers={"Location": f"{base(request)}/jobs/{run.id}",
                                                            "Preference-Applied": "respond-async"})  # fmt: skip

    @app.get("/jobs", responses=problems(_400="a parameter is invalid"))
    async def jobs(
        request: Request,
        processID: Annotated[list[str] | None, Query()] = None,  # noqa: N803 - the standard's name
        status: Annotated[list[JobStatus] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 10,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,  # (SQLite fails on larger ones)
    ) -> dict[str, Any]:
        limit = min(limit, PAGE_MAX)  # the standard: a larger limit gets the server's largest page
        packages = installed()
        names = [name for name in processID or sorted(packages) if name in packages]
        links = [{"href": str(request.url), "rel": "self", "type": "application/json"}]
        if not names:  # processes that are not here have no jobs
            return {"jobs": [], "links": links}
        types = [StateType(k) for k, v in STATUS.items() if not status or v in status]
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=names)),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=types))),
                sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=limit + 1, offset=offset)  # fmt: skip
            named = await client.read_flows(flow_filter=FlowFilter(name=FlowFilterName(any_=names)))
        flows = {f.id: f.name for f in named}
        found = [described(r, flows.get(r.flow_id, ""), request) for r in runs[:limit]]
        if len(runs) > limit:
            links.append({"href": str(request.url.include_query_params(offset=offset + limit)), "rel": "next",
                          "type": "application/json"})  # fmt: skip
        return {"jobs": found, "links": links}

    async def job_info(request: Request, package: Package, client: Any, run: Any) -> dict[str, Any]:
        """The statusInfo of a job of `package`, with its progress while it runs."""
        info = described(run, package.name, request)
        if info["status"] == "running":
            info["progress"] = await _progress(client, run, len(package.steps))
        return info

    @app.get("/jobs/{job_id}", responses=problems(_404="no such job"))
    async def job(job_id: str, request: Request) -> dict[str, Any]:
        async with get_client() as client:
            run, package = await run_of(client, job_id)
            return await job_info(request, package, client, run)

    @app.get("/jobs/{job_id}/results", responses=problems(_404="no such job, or no results yet", _500="failed"))
    async def results(job_id: str) -> dict[str, Any]:
        async with get_client() as client:
            run, _ = await run_of(client, job_id)
        return _results(run, settings)

    @app.delete("/jobs/{job_id}", responses=problems(_404="no such job"))
    async def dismiss(job_id: str, request: Request) -> dict[str, Any]:
        async with get_client() as client:
            run, package = await run_of(client, job_id)
            if job_status(run) in ("accepted", "running"):
                stop = Cancelling if state_kind(run) == "RUNNING" else Cancelled
                await client.set_flow_run_state(run.id, stop(message="dismissed through the OGC API"), force=True)
                run = await client.read_flow_run(run.id)
        return described(run, package.name, request)

    return app

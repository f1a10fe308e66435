"""OGC API - Processes (Part 1: Core 1.0; Part 2: Deploy, Replace, Undeploy) on Prefect: jobs are flow runs.

Every installed package and every deployed CWL application package is a process, every job a flow run.

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

A CWL application package deployed through `POST /processes` (deployments.deployed_processes) is a process too:
its jobs are flow runs of the `run-cwl` deployment (`run-cwl/local`: cwltool on the worker; `run-cwl/calrissian`:
a Calrissian Job), each CWL step a task run; its results are the run's CWL outputs. Deploy, replace and
undeploy need the server's bearer token; the installed packages can be neither replaced nor undeployed.
"""

import asyncio
import dataclasses
import datetime as dt
import hmac
import logging
import re
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from deployments.deployed_processes import Deployed, PackageError, cwl_inputs, deployable, remove, save, stored
from eoflows.discovery import installed
from eoflows.errors import InputError
from eoflows.package import Package, Role

SPEC = "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf"
DRU = "http://www.opengis.net/spec/ogcapi-processes-2/1.0/conf"
#: What it passes: Part 1 Core 1.0, and Part 2's deploy, replace, undeploy of CWL application packages.
CONFORMANCE = [
    *(f"{SPEC}/{c}" for c in ("core", "ogc-process-description", "json", "oas30", "job-list", "dismiss", "callback")),
    *(f"{DRU}/{c}" for c in ("deploy-replace-undeploy", "ogcapppkg", "cwl")),
]
EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
EXCEPTIONS_DRU = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"
REL = "http://www.opengis.net/def/rel/ogc/1.0"
#: A flow run's state type -> an OGC job status.
STATUS = {"SCHEDULED": "accepted", "PENDING": "accepted", "PAUSED": "accepted", "RUNNING": "running",
          "COMPLETED": "successful", "FAILED": "failed", "CRASHED": "failed", "CANCELLING": "dismissed",
          "CANCELLED": "dismissed"}  # fmt: skip
PAGE_MAX = 100  # jobs per page at most (the Prefect API returns 200 flow runs at most per request)
JobStatus = Literal["accepted", "running", "successful", "failed", "dismissed"]
TAG = "ogc-api"  # the flow runs made by this API; each also has PROCESS_TAG + its process id
PROCESS_TAG = "ogc-process:"
SCAN_MAX = 400  # flow runs read at most for one page of /jobs filtered by duration (Prefect has no such filter)
Process = Package | Deployed
DESTINATION_DOC = (
    "A folder inside the server's results folder (relative to it, or absolute) or an s3:// prefix "
    "to publish to; default: the server's results."
)
#: Flow parameters that the server decides and a request never gives.
SERVER_SIDE = ("run_id", "storage", "dask")


class ApiError(Exception):
    """An OGC exception document (RFC 7807: type, title, status, detail); `kind` a Part 1 type or a full URI."""

    def __init__(self, status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail, self.headers = status, kind, title, detail, headers

    def response(self) -> JSONResponse:
        kind = self.kind if "://" in self.kind else f"{EXCEPTIONS}/{self.kind}"
        body = {"type": kind, "title": self.title, "status": self.status, "detail": self.detail}
        return JSONResponse(body, status_code=self.status, media_type="application/problem+json", headers=self.headers)


@dataclass(frozen=True)
class ServerSettings:
    """Where jobs run and where their results go unless the request says."""

    results: str  # a folder or s3:// prefix: a job publishes to RESULTS/JOB_ID/ by default
    pool: str = "local"  # the deployments of the packages the jobs are runs of: NAME/POOL
    ui_url: str = ""  # the Prefect UI, for a job's link to its run
    wait_s: float = 30.0  # the longest a synchronous execute waits before it answers as an asynchronous one
    storage: str = ""  # a saved eoflows-s3-storage block: the jobs' S3 settings (never credentials in requests)
    cwl: str = "local"  # the run-cwl deployment of the deployed packages' jobs: local (cwltool) or calrissian
    token: str = field(default="", repr=False)  # bearer token of deploy/replace/undeploy (none: they are refused)
    execute_needs_token: bool = False  # execute and dismiss need the token too


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
        "description": "The published STAC catalog (catalog.json; its items and assets beside it): its URI as "
        "published (a path or s3://), or its https URL when the server's storage has a public URL.",
        "schema": {"type": "string", "format": "uri", "contentMediaType": "application/json"},
    },
    "items": {
        "title": "Items",
        "description": "The published STAC items, their URIs as published.",
        "schema": {"type": "array", "items": {"type": "string", "format": "uri"}},
    },
}


def summary(process: Process, base: str) -> dict[str, Any]:
    """The process summary of an installed package or a deployed one."""
    pid = process.name if isinstance(process, Package) else process.id
    links = [{"href": f"{base}/processes/{pid}", "rel": "self", "type": "application/json",
              "title": "process description"}]  # fmt: skip
    if isinstance(process, Package):
        about = {"title": process.label, "description": process.description, "version": process.version}
    else:
        about = {k: v for k, v in process.process.items() if k not in ("inputs", "outputs")}
        links.append({"href": f"{base}/processes/{pid}/package", "rel": f"{REL}/application-package",
                      "type": "application/cwl+json", "title": "the CWL as deployed"})  # fmt: skip
    return {
        "id": pid,
        **about,
        "jobControlOptions": ["async-execute", "sync-execute", "dismiss"],
        "outputTransmission": ["reference"],
        "mutable": isinstance(process, Deployed),
        "links": links,
    }


def description(process: Process, base: str) -> dict[str, Any]:
    """The process description: its summary, inputs and outputs."""
    if isinstance(process, Package):
        return {**summary(process, base), "inputs": inputs_of(process), "outputs": CATALOG_OUTPUT}
    return {**summary(process, base), "inputs": process.process["inputs"], "outputs": process.process["outputs"]}


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


async def here(client: Any) -> dict[str, Process]:
    """Every process of this server by id: the installed packages, and the deployed ones (never shadowing them)."""
    packages: dict[str, Process] = dict(installed())
    return {**{k: v for k, v in (await stored(client)).items() if k not in packages}, **packages}


async def _process(client: Any, name: str) -> Process:
    package = installed().get(name)
    if package is not None:  # (no request to the Prefect API)
        return package
    processes = await here(client)
    if name not in processes:
        raise ApiError(404, "no-such-process", "No such process", f"process {name!r}: not installed or deployed "
                       f"here; processes: {', '.join(sorted(processes))}")  # fmt: skip
    return processes[name]


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


def _reference(value: Any) -> Any:
    """A CWL output value as an OGC result: a File or Directory as a link to it, arrays of them as their hrefs."""
    if isinstance(value, list):
        return [v["location"] if isinstance(v, dict) and "location" in v else v for v in value]
    if isinstance(value, dict) and value.get("class") in ("File", "Directory"):
        return {"href": value["location"], "title": value.get("basename", value["class"]),
                **({"type": "application/json"} if value.get("basename", "").endswith(".json") else {})}  # fmt: skip
    return value


def _results(run: Any, settings: ServerSettings, outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """The results document of the job that is flow run `run`; an exception when it has none (yet).

    `outputs`: the CWL outputs of a deployed package's job (its results).
    """
    status = job_status(run)
    if status == "failed":
        raise ApiError(500, "job-results-failed", "Job failed", f"job {run.id}: failed: {run.state.message}")
    if status == "dismissed":
        raise ApiError(404, "no-such-job", "Job dismissed", f"job {run.id}: dismissed, no results")
    if status != "successful":
        raise ApiError(404, "result-not-ready", "Result not ready", f"job {run.id}: {status}, no results yet")
    if outputs is not None:
        return {name: _reference(value) for name, value in outputs.items() if value is not None}
    destination = str(run.parameters.get("destination", settings.results)).rstrip("/")
    href = f"{destination}/{run.parameters.get('run_id') or run.id}/catalog.json"
    return {"catalog": {"href": href, "type": "application/json", "title": "the published STAC catalog"}}


def with_items(results: dict[str, Any], storage: str) -> dict[str, Any]:
    """An installed package's results with its items, and the catalog's https URL where the storage has one.

    The catalog is read where it was published (with the server's storage block for S3); one that cannot be
    read any more keeps its link alone, said in the log.
    """
    import pystac

    from blocks.s3 import S3Block
    from tasks.data.stac_io import FsspecStacIO

    block = S3Block.load(storage) if storage else None
    uri = results["catalog"]["href"]
    try:
        catalog = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(block))
        items = [item.get_self_href() for item in catalog.get_items(recursive=True)]
    except Exception as exc:  # moved or deleted since: the link stays, the items are not known
        logging.getLogger("eoflows.ogc").warning("results %s: the catalog does not read (%s)", uri, exc)
        return results
    public = (block or S3Block.from_env()).browser_url(uri) if uri.startswith("s3://") else None
    catalog_link = {**results["catalog"], **({"href": public, "title": f"the published STAC catalog ({uri})"}
                                             if public else {})}  # fmt: skip
    return {"catalog": catalog_link, "items": items}


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


def duration_s(run: Any) -> float:
    """How long a job has run (until now while it runs; 0 before it starts)."""
    if run.start_time is None:
        return 0.0
    return ((run.end_time or dt.datetime.now(dt.UTC)) - run.start_time).total_seconds()


def created_between(value: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The `datetime` parameter of /jobs (an instant, or an interval START/END with `..` open) as bounds."""
    parts = value.split("/")
    if len(parts) > 2 or not all(parts):
        raise ApiError(400, "invalid-parameter", "Invalid parameter", f"datetime {value!r}: expected an RFC 3339 "
                       "date-time or an interval START/END (.. for open)")  # fmt: skip
    try:
        bounds = [None if part == ".." else dt.datetime.fromisoformat(part.replace("z", "Z")) for part in parts]
    except ValueError:
        raise ApiError(400, "invalid-parameter", "Invalid parameter", f"datetime {value!r}: not an RFC 3339 "
                       "date-time or interval") from None  # fmt: skip
    bounds = [b.replace(tzinfo=dt.UTC) if b is not None and b.tzinfo is None else b for b in bounds]
    return (bounds[0], bounds[0]) if len(bounds) == 1 else (bounds[0], bounds[1])


async def page_of(client: Any, filters: dict[str, Any], limit: int, offset: int,
                  keep: Any = None) -> tuple[list[Any], int | None]:  # fmt: skip
    """Up to `limit` flow runs from `offset` on that `keep` keeps (all when None), and the offset of the next page.

    Prefect filters and pages the runs; `keep` (the duration filters, which Prefect has not) reads at most
    SCAN_MAX runs for a page, and the next page goes on from where it stopped.
    """
    from prefect.client.schemas.sorting import FlowRunSort

    found: list[Any] = []
    position, batch = offset, limit + 1 if keep is None else 200
    while True:
        runs = await client.read_flow_runs(**filters, sort=FlowRunSort.EXPECTED_START_TIME_DESC, limit=batch,
                                           offset=position)  # fmt: skip
        for run in runs:
            if keep is None or keep(run):
                if len(found) == limit:
                    return found, position
                found.append(run)
            position += 1
        if len(runs) < batch:
            return found, None
        if position - offset >= SCAN_MAX:
            return found, position


def process_of(run: Any) -> str | None:
    """The process a flow run made by this API is a job of (None: not made by it)."""
    tags = run.tags or []
    return next((t.removeprefix(PROCESS_TAG) for t in tags if t.startswith(PROCESS_TAG)), None) if TAG in tags else None


def create_app(settings: ServerSettings) -> FastAPI:
    """The OGC API - Processes application on the Prefect API this process reports to (PREFECT_API_URL)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import ArtifactSort
    from prefect.exceptions import ObjectNotFound
    from prefect.states import Cancelled, Cancelling

    from tasks.cwl.outputs import KEY, outputs_of

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

    def authorized(request: Request, what: str) -> None:
        """Nothing when the request carries the server's bearer token; a 403 (no token set) or a 401 otherwise."""
        if not settings.token:
            raise ApiError(403, "forbidden", "Forbidden", f"{what}: not open on this server (start eoflows serve "
                           "with EOFLOWS_SERVE_TOKEN to allow it to holders of that token)")  # fmt: skip
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {settings.token}".encode()):
            raise ApiError(401, "unauthorized", "Unauthorized", f"{what}: needs the server's bearer token "
                           "(Authorization: Bearer ...)", headers={"WWW-Authenticate": "Bearer"})  # fmt: skip

    async def run_of(client: Any, job_id: str) -> tuple[Any, str, Process | None]:
        """The flow run of a job, its process id, and the process (None once undeployed)."""
        try:
            run = await client.read_flow_run(UUID(job_id))
        except (ValueError, ObjectNotFound):
            raise ApiError(404, "no-such-job", "No such job", f"job {job_id!r}: no such job") from None
        process_id = process_of(run)
        if process_id is None:
            raise ApiError(404, "no-such-job", "No such job", f"job {job_id!r}: not a job of this API")
        return run, process_id, (await here(client)).get(process_id)

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
        async with get_client() as client:
            found = await here(client)
        return {"processes": [summary(p, b) for _, p in sorted(found.items())],
                "links": [{"href": f"{b}/processes", "rel": "self", "type": "application/json"}]}  # fmt: skip

    package_body = {"requestBody": {"required": True, "content": {
        "application/ogcapppkg+json": {"schema": {"type": "object", "required": ["executionUnit"]}},
        "application/cwl+yaml": {"schema": {"type": "string"}},
        "application/cwl+json": {"schema": {"type": "object"}}}}}  # fmt: skip

    async def deployable_from(request: Request, w: str | None) -> Deployed:
        try:
            return await asyncio.to_thread(deployable, await request.body(), request.headers.get("Content-Type", ""),
                                           w)  # fmt: skip
        except PackageError as exc:
            kind = f"{EXCEPTIONS_DRU}/workflow-not-found" if "(w)" in exc.detail else "invalid-parameter"
            raise ApiError(exc.status, kind, "Invalid application package", exc.detail) from None

    def mutable(process_id: str, found: dict[str, Process], what: str) -> None:
        if isinstance(found.get(process_id), Package):
            raise ApiError(403, f"{EXCEPTIONS_DRU}/immutable-process", "Immutable process", f"process {process_id!r}: "
                           f"an installed package; it cannot be {what} through the API")  # fmt: skip
        if process_id not in found:
            raise ApiError(404, "no-such-process", "No such process", f"process {process_id!r}: not deployed here")

    @app.post("/processes", status_code=201, openapi_extra=package_body, responses={
        201: {"description": "deployed: the process summary"},
        **problems(_400="the package is invalid", _401="no or a wrong bearer token", _403="deploying is not open",
                   _409="a process with that id exists")})  # fmt: skip
    async def deploy(request: Request, w: Annotated[str | None, Query(max_length=200)] = None) -> JSONResponse:
        authorized(request, "deploy")
        deployed = await deployable_from(request, w)
        async with get_client() as client:
            found = await here(client)
            if deployed.id in found:
                kind = "an installed package" if isinstance(found[deployed.id], Package) else "deployed already"
                raise ApiError(409, f"{EXCEPTIONS_DRU}/duplicated-process", "Duplicated process", f"process "
                               f"{deployed.id!r}: {kind}; replace it with PUT /processes/{deployed.id}")  # fmt: skip
            await save(deployed)
        logging.getLogger("eoflows.ogc").info("deployed process %s", deployed.id)
        location = f"{base(request)}/processes/{deployed.id}"
        return JSONResponse(summary(deployed, base(request)), status_code=201, headers={"Location": location})

    @app.put("/processes/{process_id}", status_code=204, openapi_extra=package_body, responses=problems(
        _400="the package is invalid", _401="no or a wrong bearer token", _403="an installed package, or replacing "
        "is not open", _404="no such process"))  # fmt: skip
    async def replace(process_id: str, request: Request) -> Response:
        authorized(request, "replace")
        async with get_client() as client:
            mutable(process_id, await here(client), "replaced")
        deployed = dataclasses.replace(await deployable_from(request, None), id=process_id)
        await save(deployed)
        return Response(status_code=204)

    @app.delete("/processes/{process_id}", status_code=204, responses=problems(
        _401="no or a wrong bearer token", _403="an installed package, or undeploying is not open",
        _404="no such process"))  # fmt: skip
    async def undeploy(process_id: str, request: Request) -> Response:
        authorized(request, "undeploy")
        async with get_client() as client:
            mutable(process_id, await here(client), "undeployed")
            await remove(client, process_id)
        return Response(status_code=204)

    @app.get("/processes/{process_id}/package", responses={
        200: {"description": "the CWL of the process", "content": {"application/cwl+json": {}}},
        **problems(_404="no such process")})  # fmt: skip
    async def package_of(process_id: str) -> JSONResponse:
        async with get_client() as client:
            process = await _process(client, process_id)
        if isinstance(process, Package):  # the package as eoflows exports it (full mode: item URLs in, catalog out)
            from tasks.cwl.export import CwlOptions, export

            return JSONResponse(export(process, CwlOptions(mode="full")), media_type="application/cwl+json")
        return JSONResponse(process.cwl, media_type="application/cwl+json")

    @app.get("/processes/{process_id}", responses=problems(_404="no such process"))
    async def process(process_id: str, request: Request) -> dict[str, Any]:
        async with get_client() as client:
            return description(await _process(client, process_id), base(request))

    def parameters_of(process: Process, given: Any) -> tuple[str, dict[str, Any]]:
        """The deployment a job of `process` is a run of, and the flow-run parameters of the request's inputs."""
        storage = {"storage": settings.storage} if settings.storage else {}
        if isinstance(process, Deployed):
            try:
                inputs = cwl_inputs(process, given)
            except InputError as exc:
                raise ApiError(400, "invalid-parameter", "Invalid input", str(exc)) from None
            outdir = {} if settings.results.startswith("s3://") else {"outdir": settings.results}
            return f"run-cwl/{settings.cwl}", {"cwl": process.cwl, "inputs": inputs, **outdir, **storage}
        inputs = checked_inputs(process, given)
        destination = _destination(inputs.get("destination"), settings)
        return f"{process.name}/{settings.pool}", {**inputs, "destination": destination, **storage}

    @app.post("/processes/{process_id}/execution", status_code=201, responses={
        200: {"description": "the results (synchronous execution)"},
        **problems(_400="an input is invalid", _401="no or a wrong bearer token", _403="executing is not open",
                   _404="no such process", _500="the job failed (synchronous)",
                   _503="the process has no deployment")})  # fmt: skip
    async def execute(process_id: str, request: Request) -> JSONResponse:
        if settings.execute_needs_token:
            authorized(request, "execute")
        async with get_client() as client:
            process = await _process(client, process_id)
            try:
                body = await request.json()
            except ValueError:
                raise ApiError(400, "invalid-parameter", "Invalid request", "the request body is not JSON") from None
            given = body.get("inputs", {}) if isinstance(body, dict) else None
            deployment_name, parameters = parameters_of(process, given)
            subscriber = checked_subscriber(body.get("subscriber"))
            try:
                deployment = await client.read_deployment_by_name(deployment_name)
            except ObjectNotFound:
                detail = (
                    f"process {process_id!r}: no deployment {deployment_name} on the Prefect API (run eoflows deploy)"
                )
                raise ApiError(503, "server-error", "Process not deployed", detail) from None
            run = await client.create_flow_run_from_deployment(deployment.id, parameters=parameters,
                                                               tags=[TAG, PROCESS_TAG + process_id])  # fmt: skip
            if subscriber:  # a task of this server: callbacks of jobs in flight end with it
                info_of = partial(job_info, request, process_id, process)
                callbacks.add(task := asyncio.create_task(notify(subscriber, run.id, info_of)))
                task.add_done_callback(callbacks.discard)
            prefer = request.headers.get("Prefer", "")
            if "respond-async" not in prefer:  # synchronous, within a bounded wait, else as asynchronous
                wait = re.search(r"wait=(\d+)", prefer)
                run = await _until_final(client, run, min(int(wait.group(1)), settings.wait_s) if wait else
                                         settings.wait_s)  # fmt: skip
                if run.state is not None and run.state.is_final():
                    results = await results_of(client, run, process)
                    return JSONResponse(results, headers={"Preference-Applied": "respond-sync"})
        info = described(run, process_id, request)
        return JSONResponse(info, status_code=201, headers={"Location": f"{base(request)}/jobs/{run.id}",
                                                            "Preference-Applied": "respond-async"})  # fmt: skip

    async def results_of(client: Any, run: Any, process: Process | None) -> dict[str, Any]:
        """The results document of a job: a deployed package's CWL outputs, or an installed one's catalog."""
        found = _results(run, settings, await cwl_outputs(client, run, process))
        if "cwl" in (run.parameters or {}):
            return found
        return await asyncio.to_thread(with_items, found, settings.storage)

    async def cwl_outputs(client: Any, run: Any, process: Process | None) -> dict[str, Any] | None:
        """The CWL outputs of a deployed package's successful job (None for an installed package's job)."""
        if isinstance(process, Package) or "cwl" not in (run.parameters or {}) or job_status(run) != "successful":
            return None
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run.id]),
                                           key=ArtifactFilterKey(any_=[KEY])),
            sort=ArtifactSort.UPDATED_DESC, limit=1)  # fmt: skip
        return outputs_of(found[0].data) if found else {}

    @app.get("/jobs", responses=problems(_400="a parameter is invalid"))
    async def jobs(
        request: Request,
        processID: Annotated[list[str] | None, Query()] = None,  # noqa: N803 - the standard's name
        status: Annotated[list[JobStatus] | None, Query()] = None,
        datetime: Annotated[str | None, Query(max_length=100, pattern=r"^[^/]+(/[^/]+)?$")] = None,
        minDuration: Annotated[int | None, Query(ge=0, le=10**9)] = None,  # noqa: N803 - the standard's name
        maxDuration: Annotated[int | None, Query(ge=0, le=10**9)] = None,  # noqa: N803 - the standard's name
        limit: Annotated[int, Query(ge=1, le=10000)] = 10,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,  # (SQLite fails on larger ones)
    ) -> dict[str, Any]:
        limit = min(limit, PAGE_MAX)  # the standard: a larger limit gets the server's largest page
        links = [{"href": str(request.url), "rel": "self", "type": "application/json"}]
        types = [StateType(k) for k, v in STATUS.items() if not status or v in status]
        tags = FlowRunFilterTags(all_=[TAG], **({"any_": [PROCESS_TAG + p for p in processID]} if processID else {}))
        after, before = created_between(datetime) if datetime else (None, None)
        created = FlowRunFilterExpectedStartTime(after_=after, before_=before) if datetime else None
        run_filter = FlowRunFilter(tags=tags, state=FlowRunFilterState(type=FlowRunFilterStateType(any_=types)),
                                   expected_start_time=created)  # fmt: skip
        low, high = minDuration, maxDuration

        def lasted(run: Any) -> bool:
            return (low is None or duration_s(run) >= low) and (high is None or duration_s(run) <= high)

        keep = None if low is None and high is None else lasted
        async with get_client() as client:
            runs, following = await page_of(client, {"flow_run_filter": run_filter}, limit, offset, keep)
        found = [described(r, process_of(r) or "", request) for r in runs]
        if following is not None:
            links.append({"href": str(request.url.include_query_params(offset=following)), "rel": "next",
                          "type": "application/json"})  # fmt: skip
        return {"jobs": found, "links": links}

    async def job_info(request: Request, process_id: str, process: Process | None, client: Any,
                       run: Any) -> dict[str, Any]:  # fmt: skip
        """The statusInfo of a job, with its progress while it runs."""
        info = described(run, process_id, request)
        if info["status"] == "running" and process is not None:
            steps = process.steps if isinstance(process, Package) else process.entry.get("steps") or [process.id]
            info["progress"] = await _progress(client, run, len(steps))
        return info

    @app.get("/jobs/{job_id}", responses=problems(_404="no such job"))
    async def job(job_id: str, request: Request) -> dict[str, Any]:
        async with get_client() as client:
            run, process_id, process = await run_of(client, job_id)
            return await job_info(request, process_id, process, client, run)

    @app.get("/jobs/{job_id}/results", responses=problems(_404="no such job, or no results yet", _500="failed"))
    async def results(job_id: str) -> dict[str, Any]:
        async with get_client() as client:
            run, _, process = await run_of(client, job_id)
            return await results_of(client, run, process)

    @app.delete("/jobs/{job_id}", responses=problems(_401="no or a wrong bearer token", _403="not open",
                                                     _404="no such job"))  # fmt: skip
    async def dismiss(job_id: str, request: Request) -> dict[str, Any]:
        if settings.execute_needs_token:
            authorized(request, "dismiss")
        async with get_client() as client:
            run, process_id, _ = await run_of(client, job_id)
            if job_status(run) in ("accepted", "running"):
                stop = Cancelling if state_kind(run) == "RUNNING" else Cancelled
                await client.set_flow_run_state(run.id, stop(message="dismissed through the OGC API"), force=True)
                run = await client.read_flow_run(run.id)
        return described(run, process_id, request)

    return app

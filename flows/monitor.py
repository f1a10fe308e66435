r"""`monitor`: search a STAC API, run a package's deployment on each new item, skip what is already published.

```
prefect deployment run monitor/local -p stac_api=https://earth-search.aws.element84.com/v1 \\
    -p package=s2-indices -p 'collections=["sentinel-2-l2a"]' -p 'bbox=[8.9,45.1,9.1,45.2]' \\
    -p last_days=1 -p max_cloud_cover=20 -p destination=s3://eoflows/monitor
```
Each item (or, for `burned-area`, each tile's pre-/post-event pair around `event_date`) becomes one run of
the package, published to `destination/<item id>_<digest>/` where the digest stands for the package and its
parameters. An item counts as done when that folder holds a `catalog.json` (written last by stage-out), so
the skip rule holds across runs, machines and a lost Prefect database. New runs are flow runs of the
package's deployment (`run_deployment`, visible in the UI, spread over the pool's workers); at most
`max_concurrent` run at once, under a Prefect global concurrency limit shared by all monitors that name it.
"""

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

import pystac
from prefect import flow, get_run_logger, runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.concurrency.sync import concurrency
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.futures import PrefectFuture, as_completed
from prefect.settings import PREFECT_UI_URL
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import block_name, saved_or_env
from blocks.s3 import S3Block
from eoflows import __version__
from eoflows.discovery import installed
from eoflows.errors import InputError, RemoteRunError
from eoflows.package import Package, Role
from tasks.data.names import file_name
from tasks.data.storage import filesystem, join
from tasks.remote.stac_search import Pair, choose_pairs, property_filter, search, time_window
from tasks.reporting import progress, report_markdown

#: The installed packages that declare how they are fed (`Package.feed`).
PackageName = Literal[tuple(name for name, p in installed().items() if p.feed)]  # type: ignore[valid-type]
WIRING = ("destination", "run_id")  # inputs the monitor sets itself
POLL_S = 0.5  # how often a unit asks for its flow run's state (it holds its slot until it sees the end), at least
POLLS_PER_S = 8  # polls per second of all the units of a monitor, at most (above 4 at once, each polls less often)


@dataclass(frozen=True)
class Unit:
    """One run of the package: the items it takes, its inputs, and the folder it publishes to."""

    key: str  # the item id, or "<pre id>_<post id>"
    items: tuple[pystac.Item, ...]
    inputs: dict[str, str]
    run_id: str
    problem: str | None = None  # why it cannot run (it then counts as failed)


def package_parameters(package: Package, parameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The package's inputs with defaults filled in, and the settings (block names) given; checked."""
    fed = set(package.feed.inputs) | set(WIRING)
    inputs = {p.name: p for p in package.params if p.role is Role.INPUT and p.name not in fed}
    settings = {p.name for p in package.params if p.role is Role.SETTINGS} - {"storage"}
    unknown = sorted(set(parameters) - set(inputs) - settings)
    if unknown:
        raise InputError(
            f"parameters {unknown}: not inputs of {package.name} that the monitor leaves to you "
            f"(expected some of {sorted(set(inputs) | settings)}; the monitor sets items, destination and storage)"
        )
    missing = sorted(n for n, p in inputs.items() if p.required and n not in parameters)
    if missing:
        raise InputError(f"parameters: {package.name} needs {missing}")
    values = {n: parameters.get(n, p.default) for n, p in inputs.items()}
    return values, {n: v for n, v in parameters.items() if n in settings}


def digest(package: Package, values: dict[str, Any]) -> str:
    """8 hex digits standing for the package and its input values (the same values give the same digest)."""
    text = json.dumps({"package": package.name, "parameters": values}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _inputs(package: Package, items: tuple[pystac.Item, ...], asset: str | None) -> dict[str, str]:
    """The package inputs fed by `items`: their self links, or the href of their `asset`."""
    inputs = {}
    for name, item in zip(package.feed.inputs, items, strict=True):
        if package.feed.asset:
            if asset not in item.assets:
                have = ", ".join(sorted(item.assets)) or "none"
                raise InputError(f"asset {asset!r}: item {item.id!r} has none (its assets: {have})")
            inputs[name] = item.assets[asset].get_absolute_href()
        elif not (href := item.get_self_href()):
            raise InputError(f"item {item.id!r}: the API gave it no self link to pass to the package")
        else:
            inputs[name] = href
    return inputs


def units(package: Package, items: list[pystac.Item], pairs: list[Pair], asset: str | None, tag: str) -> list[Unit]:
    """The runs to make: one per item, or one per complete pre-/post-event pair (ids and digest name its folder)."""
    groups = [(p.pre, p.post) for p in pairs if p.pre and p.post] if package.feed.pair else [(i,) for i in items]
    made = []
    for group in groups:
        key = "_".join(i.id for i in group)
        run_id = f"{file_name(key)}_{tag}"
        try:
            made.append(Unit(key, group, _inputs(package, group, asset), run_id))
        except InputError as e:
            made.append(Unit(key, group, {}, run_id, problem=str(e)))
    return made


def flow_run_link(run_id: Any, name: str) -> str:
    """A markdown link to a flow run in the Prefect UI (its name alone when no UI URL is known)."""
    ui = PREFECT_UI_URL.value()
    return f"[{name}]({ui}/runs/flow-run/{run_id})" if ui else name


@task(name="run-package", cache_policy=NO_CACHE, task_run_name="run {deployment} on {unit.key}")
def run_unit(deployment: str, unit: Unit, parameters: dict[str, Any], limit: str, poll: float) -> str:
    """Run the package's deployment on one unit, holding a slot of the concurrency limit; its flow run link."""
    log = get_run_logger()
    with concurrency(limit, occupy=1, strict=True):
        log.info("Starting %s on %s", deployment, unit.key)
        child = run_deployment(
            deployment,
            parameters={**unit.inputs, **parameters, "run_id": unit.run_id},
            flow_run_name=f"{deployment.split('/')[0]} {unit.key}",
            tags=["eoflows-monitor"],
            idempotency_key=f"{runtime.flow_run.id}:{unit.run_id}",
            poll_interval=poll,
        )
    link = flow_run_link(child.id, child.name)
    if not child.state.is_completed():
        raise RemoteRunError(f"{link} ended {child.state.name}: {child.state.message}")
    log.info("Done: %s on %s (%s)", deployment, unit.key, child.name)
    return link


def run_all(
    deployment: str, to_run: list[Unit], parameters: dict[str, Any], limit: str, at_once: int
) -> dict[str, tuple[str, str]]:
    """Run every unit, `at_once` at a time (and as the limit allows); (processed, flow run link) or (failed, error).

    Only `at_once` units wait on the limit at a time, the next submitted as one ends: a unit blocked on a full
    limit asks the server again after its Retry-After (the limit's average slot occupancy times the units
    denied, up to 30 s), so twenty units all waiting would leave a freed slot idle for seconds.
    """
    log = get_run_logger()
    outcome: dict[str, tuple[str, str]] = {}
    queued = list(reversed(to_run))
    running: dict[PrefectFuture, Unit] = {}

    def submit_next() -> None:
        unit = queued.pop()
        running[run_unit.submit(deployment, unit, parameters, limit, max(POLL_S, at_once / POLLS_PER_S))] = unit

    if not queued:
        return outcome
    with progress(len(queued), f"{deployment} runs") as advance:
        while queued and len(running) < at_once:
            submit_next()
        while running:
            future = next(as_completed(list(running)))
            unit = running.pop(future)
            if queued:
                submit_next()
            future.wait()
            if future.state.is_completed():
                outcome[unit.key] = ("processed", future.result())
            else:
                error = future.state.result(raise_on_failure=False)
                outcome[unit.key] = ("failed", " ".join(str(error).split())[:500])
                log.error("Failed: %s on %s: %s", deployment, unit.key, outcome[unit.key][1])
            advance()
    return outcome


def pairs_markdown(pairs: list[Pair], event: dt.date, max_cloud_cover: float | None) -> str:
    """Which items each tile's pair is made of, and why each candidate was taken or not."""
    lines = [
        f"Event date **{event}**; cloud threshold {max_cloud_cover if max_cloud_cover is not None else 'none'}%.",
        "",
    ]
    for pair in pairs:
        state = pair.missing or "paired"
        lines += [
            f"### {pair.tile}: {state}",
            "",
            "| item | acquired | cloud cover | chosen | why |",
            "|---|---|---|---|---|",
        ]
        for v in pair.verdicts:
            cloud = v.item.properties.get("eo:cloud_cover")
            when = v.item.datetime.isoformat() if v.item.datetime else v.item.properties.get("start_datetime")
            lines.append(
                f"| {v.item.id} | {when} | {'-' if cloud is None else f'{cloud:g}%'} | {v.role or '-'} | {v.why} |"
            )
        lines.append("")
    return "\n".join(lines)


@flow(
    name="monitor",
    version=__version__,
    description="Search a STAC API and run a package's deployment on each new item (or burned-area pre-/post-event "
    "pair), skipping what is already published at the destination; a summary artifact lists found, skipped, "
    "processed and failed runs.",
    task_runner=ThreadPoolTaskRunner(max_workers=64),
    validate_parameters=True,
)
def monitor(
    stac_api: str,
    package: PackageName,
    destination: str,
    collections: list[str] = [],
    bbox: list[float] | None = None,
    intersects: dict[str, Any] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    last_days: float | None = None,
    max_cloud_cover: float | None = None,
    query: dict[str, dict[str, Any]] | None = None,
    event_date: dt.date | None = None,
    window_days: float = 30,
    asset: str | None = None,
    parameters: dict[str, Any] = {},
    deployment: str = "local",
    max_concurrent: int = 2,
    concurrency_limit: str = "eoflows-monitor",
    max_items: int = 200,
    storage: S3Block | str | None = None,
) -> dict[str, int]:
    """Search a STAC API and run an eoflows package on each new item (or pre/post pair), skipping published ones.

    Args:
        stac_api: URL of the STAC API to search (its landing page).
        package: The eoflows package to run on each item.
        destination: Folder or s3:// prefix the package publishes to; <item id>_<digest>/ per item.
        collections: Collections to search (all when empty).
        bbox: Area as [west, south, east, north] in degrees (or give intersects).
        intersects: Area as a GeoJSON geometry (or give bbox).
        start: Start of the time window (open when empty).
        end: End of the time window (open when empty).
        last_days: Time window of the last N days before the run's scheduled time (instead of start/end).
        max_cloud_cover: Keep items with eo:cloud_cover at most this percentage.
        query: More property filters, STAC API query form, such as {"s2:nodata_pixel_percentage": {"lt": 10}}.
        event_date: burned-area: the date of the event; pairs the latest item before it with the earliest after.
        window_days: burned-area: days searched on each side of event_date (unless start/end are given).
        asset: downsample: the asset of each item to downsample, such as "red".
        parameters: The package's other inputs (e.g. {"products": ["ndvi"]}); the same ones count as done.
        deployment: Deployment of the package to run (local, kubernetes, ...).
        max_concurrent: How many package runs may run at once (the Prefect concurrency limit's size).
        concurrency_limit: Name of the Prefect global concurrency limit that holds max_concurrent.
        max_items: At most this many items are searched for.
        storage: A saved 'eoflows-s3-storage' block or its name (in the UI: pick one), for an s3:// destination
            (AWS_* variables otherwise).
    """
    log = get_run_logger()
    spec = installed()[package]
    if spec.feed.pair != (event_date is not None):
        raise InputError(
            f"event_date: {package} takes a pre-/post-event pair, give the event date"
            if spec.feed.pair
            else f"event_date: {package} takes one item at a time, it has no event date"
        )
    if spec.feed.asset and not asset:
        raise InputError(f"asset: {package} takes one asset of each item; name it (such as 'red')")
    if not 1 <= max_concurrent <= 64:
        raise InputError(f"max_concurrent {max_concurrent}: expected 1 to 64")
    values, settings = package_parameters(spec, parameters)
    tag = digest(spec, values)
    name = f"{package}/{deployment}"
    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(name)
        except ObjectNotFound:
            raise InputError(f"deployment {name!r}: not found on this Prefect server (run `eoflows deploy`)") from None
        client.upsert_global_concurrency_limit_by_name(concurrency_limit, max_concurrent)

    if event_date is not None and start is None and end is None and last_days is None:
        around = dt.datetime.combine(event_date, dt.time(), dt.UTC)
        start, end = around - dt.timedelta(days=window_days), around + dt.timedelta(days=window_days + 1)
    window = time_window(start, end, last_days, runtime.flow_run.scheduled_start_time or dt.datetime.now(dt.UTC))
    filters = property_filter(None if spec.feed.pair else max_cloud_cover, query)
    area = f"bbox {bbox}" if bbox else ("a GeoJSON area" if intersects else "everywhere")
    log.info("Searching %s for %s items over %s from %s to %s", stac_api, collections or "all", area, *window)
    items, how = search(stac_api, collections, bbox, intersects, window, filters, max_items)
    log.info("Found %d items (property filter %s)", len(items), how)
    pairs = choose_pairs(items, event_date, max_cloud_cover) if spec.feed.pair else []
    if pairs:
        report_markdown(
            "monitor-pairs",
            f"Pre-/post-event pairs around {event_date}",
            pairs_markdown(pairs, event_date, max_cloud_cover),
        )

    todo = units(spec, items, pairs, asset, tag)
    fs, _ = filesystem(destination, saved_or_env(S3Block, storage, "storage"))
    catalog = {u.key: join(destination, u.run_id, "catalog.json") for u in todo}
    done = {u.key for u in todo if fs.exists(catalog[u.key])}
    to_run = [u for u in todo if u.key not in done and not u.problem]
    log.info("%d runs: %d already published, %d to run, at most %d at once (limit %r)",
             len(todo), len(done), len(to_run), max_concurrent, concurrency_limit)  # fmt: skip

    common = {**values, **settings, "destination": destination, **({"storage": block_name(storage)} if storage else {})}
    outcome: dict[str, tuple[str, str]] = {k: ("skipped", "already published") for k in done}
    outcome |= {u.key: ("failed", u.problem) for u in todo if u.problem and u.key not in done}
    outcome |= run_all(name, to_run, common, concurrency_limit, max_concurrent)

    failed = sorted(k for k, (status, _) in outcome.items() if status == "failed")
    counts = {
        "found": len(items),
        "runs": len(todo),
        "skipped": len(done),
        "processed": sum(s == "processed" for s, _ in outcome.values()),
        "failed": len(failed),
    }
    report_markdown(
        "monitor-summary", f"{package} on {stac_api}", summary_markdown(todo, pairs, outcome, catalog, counts)
    )
    if failed:
        raise RemoteRunError(f"{len(failed)} of {len(todo) - len(done)} {package} runs failed: {', '.join(failed)}")
    return counts


def summary_markdown(
    todo: list[Unit],
    pairs: list[Pair],
    outcome: dict[str, tuple[str, str]],
    catalog: dict[str, str],
    counts: dict[str, int],
) -> str:
    """The summary artifact: counts, then one row per run with its items, status and links."""
    head = (
        f"**{counts['found']}** items found · **{counts['skipped']}** skipped (already published) · "
        f"**{counts['processed']}** processed · **{counts['failed']}** failed"
    )
    lines = [head, "", "| run | items | status | published | flow run / error |", "|---|---|---|---|---|"]
    for unit in todo:
        status, detail = outcome[unit.key]
        items = "<br>".join(f"[{i.id}]({i.get_self_href()})" for i in unit.items)
        published = f"[catalog.json]({catalog[unit.key]})" if status != "failed" else "-"
        lines.append(f"| {unit.run_id} | {items} | {status} | {published} | {detail.replace('|', '/')} |")
    for pair in pairs:
        if pair.missing:
            lines.append(f"| - | tile {pair.tile} | no pair | - | {pair.missing} |")
    return "\n".join(lines)

"""The `monitor` flow end to end: a real STAC API (`rustac serve`), the session's Prefect server, the
deployments of prefect.yaml and a process worker running every package run (and the scheduled monitor)."""

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.client.schemas.sorting import FlowRunSort

from eoflows.local.stac_api import LocalStacApi, api_item, local_stac_api
from eoflows.samples.s2_eopf import write_sample
from flows.monitor import monitor

UTC = dt.UTC
JUNE = (dt.datetime(2025, 6, 1, tzinfo=UTC), dt.datetime(2025, 7, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Sentinel-2 L2A EOPF sample (120 px) that the API's items point at."""
    return write_sample(tmp_path_factory.mktemp("monitor-scene"), size=120, seed=5)


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory, scene: Path, burn_pair: tuple[Path, Path]) -> dict[str, Path]:
    """Item files for the API: Sentinel-2 scenes in June 2025 (two clear, one cloudy), one in August for the
    schedule; burned-area candidates around 10 July 2025 on tile 33TWL."""
    folder = tmp_path_factory.mktemp("api-items")
    june = lambda day, cloud: {"datetime": dt.datetime(2025, 6, day, 10, tzinfo=UTC), "eo:cloud_cover": cloud}  # noqa: E731
    made = {name: api_item(scene, folder, name, **june(day, cloud))
            for name, day, cloud in (("S2-june-03", 3, 5.0), ("S2-june-08", 8, 12.0), ("S2-june-13-cloudy", 13, 80.0),
                                     ("S2-june-18", 18, 1.0))}  # fmt: skip
    made["S2-august-01"] = api_item(scene, folder, "S2-august-01", datetime=dt.datetime(2025, 8, 1, 10, tzinfo=UTC))
    broken = json.loads(made["S2-june-18"].read_text())
    broken["id"] = "S2-june-20-broken"
    for asset in broken["assets"].values():
        asset["href"] = asset["href"].replace(".zarr", "-missing.zarr")
    made["S2-june-20-broken"] = folder / "S2-june-20-broken.json"
    made["S2-june-20-broken"].write_text(json.dumps(broken))
    pre, post = burn_pair
    for name, source, day, cloud in (("BA-0620-old", pre, 20, 2.0), ("BA-0703-pre", pre, 3, 4.0),
                                     ("BA-0708-cloudy", pre, 8, 70.0), ("BA-0710-on-the-day", post, 10, 0.0),
                                     ("BA-0712-cloudy", post, 12, 95.0), ("BA-0718-post", post, 18, 8.0),
                                     ("BA-0725-late", post, 25, 0.0)):  # fmt: skip
        month = 6 if name.startswith("BA-06") else 7
        when = dt.datetime(2025, month, day, 10, tzinfo=UTC)
        made[name] = api_item(source, folder, name, datetime=when, **{"eo:cloud_cover": cloud})
    return made


@pytest.fixture(scope="module")
def api(items: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStacApi]:
    """The STAC API, first without the items that arrive later (S2-june-18 and the broken one)."""
    later = ("S2-june-18", "S2-june-20-broken")
    log = tmp_path_factory.mktemp("rustac") / "serve.log"
    with local_stac_api([p for name, p in items.items() if name not in later], log=log) as server:
        yield server


@pytest.fixture(scope="module")
def worker(deployed: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A process worker on the eoflows-local pool, polling every second; its log file."""
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    prefect = str(Path(sys.executable).with_name("prefect"))
    env = {**os.environ, "PREFECT_WORKER_QUERY_SECONDS": "1"}
    with open(log, "w") as out:
        process = subprocess.Popen([prefect, "worker", "start", "--pool", "eoflows-local", "--type", "process"],
                                   env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            yield log
        finally:
            process.terminate()
            process.wait(30)


def artifact(flow_run_id: uuid.UUID, key: str) -> str:
    with get_client(sync_client=True) as client:
        (found,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]), key=ArtifactFilterKey(any_=[key])
            )
        )
    return found.data


def children(flow_run_id: uuid.UUID) -> list[FlowRun]:
    """The package runs a monitor run started."""
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run_id]))
        )


def published(destination: Path) -> set[str]:
    return {p.parent.name for p in destination.glob("*/catalog.json")}


def test_new_items_run_once_each_and_a_broken_one_fails_alone(
    api: LocalStacApi, worker: Path, scene: Path, items: dict[str, Path], tmp_path: Path
) -> None:
    destination = tmp_path / "published"
    limit = f"monitor-test-{uuid.uuid4().hex[:6]}"
    bbox = json.loads(items["S2-june-03"].read_text())["bbox"]
    params = dict(stac_api=api.url, package="s2-indices", collections=["sentinel-2-l2a"], bbox=bbox,
                  start=JUNE[0], end=JUNE[1], max_cloud_cover=30, parameters={"products": ["ndvi", "rgb"]},
                  destination=str(destination), concurrency_limit=limit)  # fmt: skip

    first = monitor(**params, max_concurrent=2, return_state=True)
    assert first.is_completed(), first.message + worker.read_text()[-3000:]
    assert first.result() == {"found": 2, "runs": 2, "skipped": 0, "processed": 2, "failed": 0}
    runs = published(destination)
    assert {r.rsplit("_", 1)[0] for r in runs} == {"S2-june-03", "S2-june-08"}  # the cloudy one was not found
    assert len({r.rsplit("_", 1)[1] for r in runs}) == 1  # one digest: same package and parameters
    first_runs = children(first.state_details.flow_run_id)
    assert sorted(r.parameters["item"].rsplit("/", 1)[1] for r in first_runs) == ["S2-june-03", "S2-june-08"]
    assert all(r.state.is_completed() and r.parameters["products"] == ["ndvi", "rgb"] for r in first_runs)
    summary = artifact(first.state_details.flow_run_id, "monitor-summary")
    assert "**2** items found · **0** skipped (already published) · **2** processed · **0** failed" in summary
    assert "/collections/sentinel-2-l2a/items/S2-june-03)" in summary and "/runs/flow-run/" in summary

    again = monitor(**params, max_concurrent=2, return_state=True)
    assert again.result() == {"found": 2, "runs": 2, "skipped": 2, "processed": 0, "failed": 0}
    assert children(again.state_details.flow_run_id) == []
    assert "| skipped | [catalog.json](" in artifact(again.state_details.flow_run_id, "monitor-summary")

    api.add(items["S2-june-18"], items["S2-june-20-broken"])
    third = monitor(**params, max_concurrent=1, return_state=True)
    assert third.is_failed()
    assert third.message.endswith("1 of 2 s2-indices runs failed: S2-june-20-broken")
    assert published(destination) == runs | {r.replace("S2-june-03", "S2-june-18") for r in runs if "june-03" in r}
    new_runs = {r.parameters["item"].rsplit("/", 1)[1]: r for r in children(third.state_details.flow_run_id)}
    assert new_runs["S2-june-18"].state.is_completed() and new_runs["S2-june-20-broken"].state.is_failed()
    ordered = sorted(new_runs.values(), key=lambda r: r.start_time)
    assert ordered[0].end_time <= ordered[1].start_time  # max_concurrent=1: one after the other
    with get_client(sync_client=True) as client:
        units = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[third.state_details.flow_run_id]))
        )
    first_unit, second_unit = sorted((u for u in units if u.name.startswith("run s2-indices/local")),
                                     key=lambda u: u.created)  # fmt: skip
    assert second_unit.created >= first_unit.end_time  # the next unit is started when one ends, not left to wait
    summary = artifact(third.state_details.flow_run_id, "monitor-summary")
    assert "**4** items found · **2** skipped (already published) · **1** processed · **1** failed" in summary
    (broken_row,) = [line for line in summary.splitlines() if "S2-june-20-broken" in line]
    assert "| failed | - |" in broken_row and "ended Failed: " in broken_row and "no Zarr store there" in broken_row
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name(limit).limit == 1


def test_burned_area_by_date_runs_the_pair_it_explains(
    api: LocalStacApi, worker: Path, items: dict[str, Path], tmp_path: Path
) -> None:
    area = json.loads(items["BA-0703-pre"].read_text())["geometry"]  # the S2 scenes of June are elsewhere
    state = monitor(stac_api=api.url, package="burned-area", collections=["sentinel-2-l2a"], intersects=area,
                    event_date="2025-07-10", window_days=30, max_cloud_cover=30, destination=str(tmp_path),
                    return_state=True)  # fmt: skip
    assert state.is_completed(), state.message + worker.read_text()[-3000:]
    assert state.result()["processed"] == 1
    (run,) = children(state.state_details.flow_run_id)
    assert run.parameters["pre_item"].endswith("/BA-0703-pre") and run.parameters["post_item"].endswith("/BA-0718-post")
    assert [p.name for p in tmp_path.glob("*/catalog.json")] == ["catalog.json"]
    why = artifact(state.state_details.flow_run_id, "monitor-pairs")
    assert "### MGRS-33TWL: paired" in why
    assert (
        "| BA-0703-pre | 2025-07-03T10:00:00+00:00 | 4% | pre | pre-event: the latest acquired before 2025-07-10" in why
    )
    assert "| BA-0708-cloudy | 2025-07-08T10:00:00+00:00 | 70% | - | cloud cover 70% above 30% |" in why
    assert "| BA-0725-late |" in why and "after the event, but BA-0718-post is earlier" in why


def test_a_schedule_made_through_the_api_triggers_a_monitor_run(
    api: LocalStacApi, worker: Path, items: dict[str, Path], tmp_path: Path
) -> None:
    bbox = json.loads(items["S2-august-01"].read_text())["bbox"]
    parameters = {"stac_api": api.url, "package": "s2-indices", "collections": ["sentinel-2-l2a"], "bbox": bbox,
                  "start": "2025-07-25T00:00:00Z", "end": "2025-08-05T00:00:00Z", "destination": str(tmp_path),
                  "parameters": {"products": ["ndvi"]}}  # fmt: skip
    soon = dt.datetime.now(UTC) + dt.timedelta(seconds=10)  # the scheduler (every 3 s here) plans runs after now
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("monitor/local")
        (schedule,) = client.create_deployment_schedules(
            deployment.id, [(IntervalSchedule(interval=dt.timedelta(hours=1), anchor_date=soon), True)],
            parameters=parameters,
        )  # fmt: skip
        try:
            deadline, run = time.monotonic() + 240, None
            while time.monotonic() < deadline and not (run and run.state.is_final()):
                time.sleep(2)
                only = FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment.id]))
                first = client.read_flow_runs(flow_run_filter=only, sort=FlowRunSort.EXPECTED_START_TIME_ASC, limit=1)
                run = next(iter(first), None)
        finally:
            client.delete_deployment_schedule(deployment.id, schedule.id)
    assert run is not None, "the scheduler made no monitor run: " + worker.read_text()[-3000:]
    assert run.state.is_completed(), f"{run.state}: " + worker.read_text()[-3000:]
    assert run.auto_scheduled and run.parameters["start"] == "2025-07-25T00:00:00Z"
    assert [p.parent.name.rsplit("_", 1)[0] for p in tmp_path.glob("*/catalog.json")] == ["S2-august-01"]
    assert "**1** processed" in artifact(run.id, "monitor-summary")


def test_eoflows_schedule_gives_the_schedule_checked_parameters(deployed: str, tmp_path: Path) -> None:
    eoflows = str(Path(sys.executable).with_name("eoflows"))
    base = [eoflows, "schedule", "monitor/local", "--cron", "0 6 * * *", "--timezone", "Europe/Rome", "--inactive",
            "-p", "stac_api=http://127.0.0.1:1/", "-p", "package=s2-indices", "-p", f"destination={tmp_path}",
            "-p", "last_days=2", "-p", 'collections=["sentinel-2-l2a"]']  # fmt: skip
    bad = subprocess.run([*base, "-p", "package=evi"], capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "Validation failed for field 'package'" in bad.stderr
    done = subprocess.run(base, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("monitor/local")
    assert deployment.global_concurrency_limit.limit == 1  # one monitor run at a time (prefect.yaml)
    assert deployment.concurrency_options.collision_strategy == "ENQUEUE"
    (made,) = [s for s in deployment.schedules if str(s.id) in done.stdout]
    assert (made.schedule.cron, made.schedule.timezone, made.active) == ("0 6 * * *", "Europe/Rome", False)
    assert made.parameters == {"stac_api": "http://127.0.0.1:1/", "package": "s2-indices", "last_days": 2,
                               "destination": str(tmp_path), "collections": ["sentinel-2-l2a"]}  # fmt: skip

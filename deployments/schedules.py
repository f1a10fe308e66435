"""Schedules that carry their own parameters, as the Prefect UI makes them, from the command line.

`prefect deployment schedule create` gives a schedule no parameters; a `monitor` schedule needs them (which
API, area and package, where to publish). `eoflows schedule` checks them against the deployment's parameter
schema (with the deployment's own parameters under them) before creating the schedule.
"""

import datetime as dt
import json
from typing import Any

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import DeploymentSchedule
from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule
from prefect.exceptions import ObjectNotFound
from prefect.utilities.schema_tools.validation import ValidationError, validate

from eoflows.errors import InputError


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as parameters; a VALUE that parses as JSON is taken as JSON, otherwise as text."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"parameter {pair!r}: expected KEY=VALUE")
        try:
            parameters[key] = json.loads(value)
        except json.JSONDecodeError:
            parameters[key] = value
    return parameters


def create_schedule(
    deployment: str,
    parameters: dict[str, Any],
    cron: str | None = None,
    interval_s: float | None = None,
    timezone: str = "UTC",
    active: bool = True,
) -> DeploymentSchedule:
    """Add a cron or interval schedule with `parameters` to `deployment` ("flow/name"); return it."""
    if (cron is None) == (interval_s is None):
        raise InputError("schedule: give either --cron or --interval")
    schedule = CronSchedule(cron=cron, timezone=timezone) if cron else IntervalSchedule(
        interval=dt.timedelta(seconds=interval_s), timezone=timezone
    )  # fmt: skip
    with get_client(sync_client=True) as client:
        try:
            found = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise InputError(f"deployment {deployment!r}: not found on this Prefect server") from None
        try:
            validate({**found.parameters, **parameters}, found.parameter_openapi_schema, raise_on_error=True)
        except ValidationError as e:
            raise InputError(f"schedule parameters of {deployment!r}: {e}") from None
        (created,) = client.create_deployment_schedules(found.id, [(schedule, active)], parameters=parameters)
    return created

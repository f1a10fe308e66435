"""What the `monitor` flow asks a STAC API for, and which items it keeps.

Pure functions (testable without a server): the time window, property filters in the STAC API *query*
form (sent to the API when it supports query or CQL2 filter, always re-checked here), the tile of an item,
and the choice of pre-/post-event pairs per tile. `search` asks the API with pystac-client.
"""

import datetime as dt
import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pystac
from pystac_client import Client
from pystac_client.conformance import ConformanceClasses
from pystac_client.exceptions import APIError

from eoflows.errors import InputError, StageError

Query = dict[str, dict[str, Any]]  # {"eo:cloud_cover": {"lte": 20}}: the STAC API query extension's form
CLOUD = "eo:cloud_cover"

#: query operator -> (test on a property value, CQL2 operator)
OPERATORS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "eq": (operator.eq, "="),
    "neq": (operator.ne, "<>"),
    "lt": (operator.lt, "<"),
    "lte": (operator.le, "<="),
    "gt": (operator.gt, ">"),
    "gte": (operator.ge, ">="),
    "in": (lambda value, choices: value in choices, "in"),
}


def time_window(
    start: dt.datetime | None, end: dt.datetime | None, last_days: float | None, now: dt.datetime
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The search interval: `start`..`end` (either may be open), or the `last_days` days before `now`."""
    if last_days is not None:
        if start is not None or end is not None:
            raise InputError("last_days: give either last_days or start/end, not both")
        if last_days <= 0:
            raise InputError(f"last_days {last_days}: expected a positive number of days")
        return now - dt.timedelta(days=last_days), now
    start, end = (_utc(t) for t in (start, end))
    if start and end and start > end:
        raise InputError(f"start {start.isoformat()} is after end {end.isoformat()}")
    return start, end


def _utc(t: dt.datetime | None) -> dt.datetime | None:
    """`t` with a time zone (UTC when it has none)."""
    return t.replace(tzinfo=dt.UTC) if t is not None and t.tzinfo is None else t


def property_filter(max_cloud_cover: float | None, query: Query | None) -> Query:
    """The property filter of a search: `query`, plus eo:cloud_cover <= `max_cloud_cover`; checked."""
    merged: Query = {name: dict(tests) for name, tests in (query or {}).items()}
    for name, tests in merged.items():
        if not isinstance(tests, dict) or not tests:
            raise InputError(f"query[{name!r}]: expected operators and values, such as {{'lt': 20}}")
        for op, value in tests.items():
            if op not in OPERATORS:
                raise InputError(f"query[{name!r}]: unknown operator {op!r} (expected one of {', '.join(OPERATORS)})")
            if op == "in" and not isinstance(value, list):
                raise InputError(f"query[{name!r}]['in']: expected a list of values, got {value!r}")
    if max_cloud_cover is not None:
        if not 0 <= max_cloud_cover <= 100:
            raise InputError(f"max_cloud_cover {max_cloud_cover}: expected a percentage between 0 and 100")
        merged.setdefault(CLOUD, {})["lte"] = max_cloud_cover
    return merged


def matches(properties: dict[str, Any], query: Query) -> bool:
    """True when the item properties pass every test of `query` (a missing property passes none)."""
    for name, tests in query.items():
        value = properties.get(name)
        if value is None:
            return False
        for op, expected in tests.items():
            try:
                if not OPERATORS[op][0](value, expected):
                    return False
            except TypeError:  # comparing a string to a number, for instance
                return False
    return True


def cql2(query: Query) -> dict[str, Any]:
    """`query` as a CQL2-JSON filter (for APIs with the filter extension but not query)."""
    args = [
        {"op": OPERATORS[op][1], "args": [{"property": name}, value]}
        for name, tests in query.items()
        for op, value in tests.items()
    ]
    return args[0] if len(args) == 1 else {"op": "and", "args": args}


def search(
    api: str,
    collections: list[str],
    bbox: list[float] | None,
    intersects: dict[str, Any] | None,
    window: tuple[dt.datetime | None, dt.datetime | None],
    query: Query,
    max_items: int,
) -> tuple[list[pystac.Item], str]:
    """Items of `api` matching the search, oldest first, and how the property filter was applied.

    The filter is sent as *query* or CQL2 *filter* when the API conforms to either, and always re-checked
    on the items returned (so an API that ignores it cannot let other items through).
    """
    if bbox is not None and intersects is not None:
        raise InputError("bbox and intersects: give one area, not both")
    if bbox is not None and len(bbox) not in (4, 6):
        raise InputError(f"bbox {bbox}: expected [west, south, east, north]")
    try:
        client = Client.open(api)
        kwargs: dict[str, Any] = {}
        how = "no property filter"
        if query and client.conforms_to(ConformanceClasses.QUERY):
            kwargs, how = {"query": query}, "sent to the API (query extension)"
        elif query and client.conforms_to(ConformanceClasses.FILTER):
            kwargs, how = {"filter": cql2(query), "filter_lang": "cql2-json"}, "sent to the API (CQL2 filter)"
        elif query:
            how = "applied here (the API supports neither query nor filter)"
        found = client.search(
            collections=collections or None,
            bbox=bbox,
            intersects=intersects,
            datetime=[t.isoformat() if t else None for t in window] if any(window) else None,
            max_items=max_items,
            **kwargs,
        ).item_collection()
    except APIError as e:
        raise StageError(f"stac_api {api!r}: the search failed: {' '.join(str(e).split())[:400]}") from e
    except OSError as e:  # connection refused, name not resolved, ...
        raise StageError(f"stac_api {api!r}: cannot reach the API: {e}") from e
    items = [i for i in found if matches(i.properties, query)]
    return sorted(items, key=lambda i: (acquired(i), i.id)), how


def acquired(item: pystac.Item) -> dt.datetime:
    """When the item was acquired (its datetime, or the start of its interval), in UTC."""
    when = item.datetime or pystac.utils.str_to_datetime(item.properties["start_datetime"])
    return _utc(when).astimezone(dt.UTC)


def tile_of(item: pystac.Item) -> str:
    """The tile (grid cell) of an item: grid:code, the MGRS properties, or the item's footprint."""
    p = item.properties
    if p.get("grid:code"):
        return str(p["grid:code"])
    for keys in (("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"),
                 ("sentinel:utm_zone", "sentinel:latitude_band", "sentinel:grid_square")):  # fmt: skip
        if all(p.get(k) is not None for k in keys):
            return "MGRS-" + "".join(str(p[k]) for k in keys)
    if p.get("s2:mgrs_tile"):
        return f"MGRS-{p['s2:mgrs_tile']}"
    return "bbox " + ",".join(f"{v:.2f}" for v in item.bbox or ())


@dataclass(frozen=True)
class Verdict:
    """What the pair choice made of one item, and why."""

    item: pystac.Item
    role: str  # "pre", "post" or "" (not chosen)
    why: str


@dataclass(frozen=True)
class Pair:
    """The pre-/post-event pair of one tile (either side None when no item qualifies)."""

    tile: str
    pre: pystac.Item | None
    post: pystac.Item | None
    verdicts: tuple[Verdict, ...]

    @property
    def missing(self) -> str | None:
        """What keeps the tile from running ("no pre-event item", ...), None when paired."""
        return None if self.pre and self.post else f"no {'post' if self.pre else 'pre'}-event item"


def _cloud_problem(item: pystac.Item, max_cloud_cover: float | None) -> str | None:
    if max_cloud_cover is None:
        return None
    cloud = item.properties.get(CLOUD)
    if cloud is None:
        return f"no {CLOUD} (the threshold is {max_cloud_cover:g}%)"
    return f"cloud cover {cloud:g}% above {max_cloud_cover:g}%" if cloud > max_cloud_cover else None


def choose_pairs(items: Iterable[pystac.Item], event: dt.date, max_cloud_cover: float | None) -> list[Pair]:
    """Per tile: the latest item before the event date and the earliest after it, under the cloud threshold.

    Items acquired on the event date itself are neither (the fire may be before or after them).
    """
    tiles: dict[str, list[pystac.Item]] = {}
    for item in items:
        tiles.setdefault(tile_of(item), []).append(item)
    cloud = f" with cloud cover <= {max_cloud_cover:g}%" if max_cloud_cover is not None else ""
    pairs = []
    for tile, group in sorted(tiles.items()):
        usable = [i for i in group if _cloud_problem(i, max_cloud_cover) is None]
        pre = max((i for i in usable if acquired(i).date() < event), key=acquired, default=None)
        post = min((i for i in usable if acquired(i).date() > event), key=acquired, default=None)
        verdicts = []
        for item in sorted(group, key=acquired):
            day = acquired(item).date()
            if item is pre:
                verdict = Verdict(item, "pre", f"pre-event: the latest acquired before {event}{cloud}")
            elif item is post:
                verdict = Verdict(item, "post", f"post-event: the earliest acquired after {event}{cloud}")
            elif day == event:
                verdict = Verdict(item, "", "acquired on the event date: neither clearly before nor after")
            elif problem := _cloud_problem(item, max_cloud_cover):
                verdict = Verdict(item, "", problem)
            elif day < event:
                verdict = Verdict(item, "", f"before the event, but {pre.id if pre else '?'} is later")
            else:
                verdict = Verdict(item, "", f"after the event, but {post.id if post else '?'} is earlier")
            verdicts.append(verdict)
        pairs.append(Pair(tile, pre, post, tuple(verdicts)))
    return pairs

"""What the monitor searches for and keeps: time windows, property filters, pre/post pairs, run folders."""

import datetime as dt

import pystac
import pytest

from eoflows.discovery import installed
from eoflows.errors import InputError
from flows.monitor import digest, package_parameters, units
from tasks.remote.stac_search import choose_pairs, cql2, matches, property_filter, tile_of, time_window

PACKAGES = installed()

EVENT = dt.date(2025, 7, 10)


def item(name: str, day: int, cloud: float | None, tile: str = "MGRS-33TWL", month: int = 7) -> pystac.Item:
    properties = {"grid:code": tile} | ({"eo:cloud_cover": cloud} if cloud is not None else {})
    found = pystac.Item(name, None, None, dt.datetime(2025, month, day, 10, 0, tzinfo=dt.UTC), properties)
    found.set_self_href(f"http://api/collections/s2/items/{name}")
    return found


def test_the_latest_clear_item_before_and_the_earliest_after_are_paired_per_tile() -> None:
    candidates = [
        item("old-clear", 1, 2.0),
        item("pre-chosen", 5, 10.0),
        item("pre-cloudy", 8, 70.0),  # later than pre-chosen, but cloudy
        item("on-the-day", 10, 0.0),  # acquired on the event date: ambiguous
        item("post-cloudy", 12, 90.0),
        item("post-unknown", 13, None),  # no cloud cover: cannot be trusted under a threshold
        item("post-chosen", 15, 30.0),  # the threshold is inclusive
        item("post-late", 20, 0.0),
        item("other-tile-pre", 4, 1.0, tile="MGRS-33TWM"),
    ]
    pairs = {p.tile: p for p in choose_pairs(candidates, EVENT, 30.0)}
    assert (pairs["MGRS-33TWL"].pre.id, pairs["MGRS-33TWL"].post.id) == ("pre-chosen", "post-chosen")
    why = {v.item.id: v.why for v in pairs["MGRS-33TWL"].verdicts}
    assert why["pre-cloudy"] == "cloud cover 70% above 30%"
    assert why["old-clear"] == "before the event, but pre-chosen is later"
    assert why["post-late"] == "after the event, but post-chosen is earlier"
    assert why["on-the-day"].startswith("acquired on the event date")
    assert why["post-unknown"].startswith("no eo:cloud_cover")
    assert why["pre-chosen"] == "pre-event: the latest acquired before 2025-07-10 with cloud cover <= 30%"
    assert pairs["MGRS-33TWM"].pre.id == "other-tile-pre" and pairs["MGRS-33TWM"].post is None

    without_threshold = {p.tile: p for p in choose_pairs(candidates, EVENT, None)}["MGRS-33TWL"]
    assert (without_threshold.pre.id, without_threshold.post.id) == ("pre-cloudy", "post-cloudy")


def test_a_pair_becomes_one_run_and_an_unpaired_tile_none() -> None:
    pairs = choose_pairs([item("a", 5, 1.0), item("b", 15, 1.0), item("c", 5, 1.0, tile="T2")], EVENT, 20.0)
    (run,) = units(PACKAGES["burned-area"], [], pairs, None, "0badcafe")
    assert run.inputs == {
        "pre_item": "http://api/collections/s2/items/a",
        "post_item": "http://api/collections/s2/items/b",
    }
    assert run.run_id == "a_b_0badcafe" and run.problem is None


def test_tiles_are_read_from_grid_mgrs_or_earth_search_v0_properties() -> None:
    found = item("x", 1, 1.0)
    assert tile_of(found) == "MGRS-33TWL"
    found.properties = {"mgrs:utm_zone": 33, "mgrs:latitude_band": "T", "mgrs:grid_square": "WL"}
    assert tile_of(found) == "MGRS-33TWL"
    found.properties = {"sentinel:utm_zone": 10, "sentinel:latitude_band": "T", "sentinel:grid_square": "FK"}
    assert tile_of(found) == "MGRS-10TFK"


def test_property_filters_are_checked_and_evaluated_like_the_query_extension() -> None:
    query = property_filter(20, {"platform": {"in": ["sentinel-2a", "sentinel-2c"]}, "view:sun_elevation": {"gt": 30}})
    assert query["eo:cloud_cover"] == {"lte": 20}
    ok = {"eo:cloud_cover": 20, "platform": "sentinel-2a", "view:sun_elevation": 31.5}
    assert matches(ok, query)
    assert not matches(ok | {"eo:cloud_cover": 20.1}, query)
    assert not matches(ok | {"platform": "sentinel-2b"}, query)
    assert not matches({k: v for k, v in ok.items() if k != "view:sun_elevation"}, query)
    assert not matches(ok | {"view:sun_elevation": "high"}, query)  # a string is not above 30
    assert cql2({"eo:cloud_cover": {"lte": 20}}) == {"op": "<=", "args": [{"property": "eo:cloud_cover"}, 20]}
    assert cql2(query)["op"] == "and" and len(cql2(query)["args"]) == 3

    with pytest.raises(InputError, match=r"query\['eo:cloud_cover'\]: unknown operator 'le'"):
        property_filter(None, {"eo:cloud_cover": {"le": 5}})
    with pytest.raises(InputError, match="max_cloud_cover 120"):
        property_filter(120, None)


def test_time_windows_absolute_open_or_the_last_days_before_the_scheduled_time() -> None:
    now = dt.datetime(2026, 11, 23, 6, 0, tzinfo=dt.UTC)
    assert time_window(None, None, 2, now) == (dt.datetime(2026, 11, 21, 6, 0, tzinfo=dt.UTC), now)
    start = dt.datetime(2025, 1, 1)
    assert time_window(start, None, None, now) == (start.replace(tzinfo=dt.UTC), None)
    with pytest.raises(InputError, match="last_days: give either"):
        time_window(start, None, 2, now)
    with pytest.raises(InputError, match="is after end"):
        time_window(now, start.replace(tzinfo=dt.UTC), None, now)


def test_the_same_parameters_give_the_same_run_folder_and_other_ones_another() -> None:
    s2 = PACKAGES["s2-indices"]
    defaults, _ = package_parameters(s2, {})
    explicit, _ = package_parameters(s2, {"products": defaults["products"]})
    assert digest(s2, defaults) == digest(s2, explicit)
    assert digest(s2, package_parameters(s2, {"products": ["ndvi"]})[0]) != digest(s2, defaults)
    assert digest(PACKAGES["downsample"], {}) != digest(s2, {})
    values, settings = package_parameters(s2, {"products": ["ndvi"], "dask": "my-gateway"})
    assert settings == {"dask": "my-gateway"} and "dask" not in values
    with pytest.raises(InputError, match=r"parameters \['item', 'product'\]: not inputs of s2-indices"):
        package_parameters(s2, {"item": "x", "product": ["ndvi"]})


def test_an_item_without_the_asset_to_feed_cannot_run_and_says_why() -> None:
    with_red, without = item("with-red", 1, 1.0), item("without", 2, 1.0)
    with_red.add_asset("red", pystac.Asset("http://data/red.tif"))
    ok, bad = units(PACKAGES["downsample"], [with_red, without], [], "red", "12345678")
    assert ok.inputs == {"url": "http://data/red.tif"} and ok.problem is None
    assert bad.problem == "asset 'red': item 'without' has none (its assets: none)"

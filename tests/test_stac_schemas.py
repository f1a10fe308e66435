"""The vendored STAC JSON schemas (eoflows/testing/schemas/) and the offline validators of eoflows.testing."""

import datetime as dt
import functools
import http.server
import json
import re
import socket
import threading
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urldefrag, urljoin

import pystac
import pytest
from pystac.extensions.classification import ClassificationExtension
from pystac.extensions.eo import EOExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.grid import GridExtension
from pystac.extensions.processing import ProcessingExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.extensions.sat import SatExtension
from pystac.extensions.xarray_assets import XarrayAssetsExtension
from pystac.validation import RegisteredValidator

from eoflows.testing.stac_schemas import (
    ID_EXCEPTIONS,
    SCHEMAS,
    SchemaNotVendoredError,
    local_schema,
    validate_with_pystac,
    validate_with_stac_validator,
    vendored_uris,
)

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}
# the extension classes eoflows' items use (tasks/data/stac_items.py)
EXTENSIONS = [
    ClassificationExtension,
    EOExtension,
    FileExtension,
    GridExtension,
    ProcessingExtension,
    ProjectionExtension,
    RasterExtension,
    SatExtension,
    XarrayAssetsExtension,
]


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[object]]:
    """Block every name lookup and connection beyond this machine during the test; the test fails if any was tried.

    This blocks (never fakes) network I/O: loopback servers still work.
    """
    attempts: list[object] = []
    connect, connect_ex, getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def remote(address: object) -> bool:
        return isinstance(address, tuple) and address[0] not in LOCAL_HOSTS

    def guarded(real: Callable[[socket.socket, Any], Any]) -> Callable[[socket.socket, Any], Any]:
        @functools.wraps(real)
        def call(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6) and remote(address):
                attempts.append(address)
                raise OSError(f"network blocked by the test: {address}")
            return real(self, address)

        return call

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if isinstance(host, bytes):
            host = host.decode()
        if host is not None and host not in LOCAL_HOSTS:
            attempts.append(host)
            raise socket.gaierror(f"name lookup blocked by the test: {host}")
        return getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    yield attempts
    assert attempts == [], f"the test tried to reach the network: {attempts}"


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


# --- (a) the vendored files -------------------------------------------------------------------------------------


def test_the_schemas_eoflows_items_declare_are_vendored() -> None:
    uris = set(vendored_uris())
    assert len(uris) >= 30
    for ext in EXTENSIONS:  # every version pystac's installed extension classes name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # get_schema_uris: "will be removed in v2"
            named = {ext.get_schema_uri(), *ext.get_schema_uris()}
        hooks = pystac.EXTENSION_HOOKS.hooks.get(ext.get_schema_uri())
        named |= {uri for uri in (hooks.prev_extension_ids if hooks else ()) if "://" in uri}
        assert named <= uris, f"{ext.__name__}: not vendored: {sorted(named - uris)}"
    for name in [
        "item-spec/json-schema/item",
        "catalog-spec/json-schema/catalog",
        "collection-spec/json-schema/collection",
    ]:
        assert f"https://schemas.stacspec.org/v{pystac.get_stac_version()}/{name}.json" in uris
    for ext, version in [("raster", "v2.0.0"), ("eo", "v2.0.0"), ("product", "v0.1.0")]:  # STAC 1.1 bands, EOPF
        assert f"https://stac-extensions.github.io/{ext}/{version}/schema.json" in uris


@pytest.mark.parametrize("uri", vendored_uris())
def test_a_vendored_schema_parses_and_its_id_is_the_url_its_path_mirrors(uri: str) -> None:
    schema = json.loads(local_schema(uri).read_bytes())
    assert schema["$schema"].startswith("http://json-schema.org/")
    assert schema["$id"].removesuffix("#") == ID_EXCEPTIONS.get(uri, uri)
    # every schema it refers to is vendored too (JSON Schema's own meta-schemas come with jsonschema)
    for ref in _refs(schema):
        target = urldefrag(urljoin(schema["$id"], ref)).url
        if not ref.startswith("#") and not target.startswith("http://json-schema.org/"):
            assert local_schema(target).is_file()


def test_the_readme_and_licences_cover_every_vendored_schema() -> None:
    readme = (SCHEMAS / "README.md").read_text()
    rows = [line for line in readme.splitlines() if line.startswith("| http")]
    assert sorted(row.split("|")[1].strip() for row in rows) == vendored_uris()
    licences = set(re.findall(r"LICENSES/([\w.-]+\.LICENSE)", readme))
    assert licences == {path.name for path in (SCHEMAS / "LICENSES").iterdir()}
    for row in rows:
        assert re.search(r"LICENSES/[\w.-]+\.LICENSE", row), row


def test_local_schema_names_a_schema_that_is_not_vendored() -> None:
    uri = "https://stac-extensions.github.io/projection/v9.9.9/schema.json"
    with pytest.raises(SchemaNotVendoredError, match=re.escape(uri)):
        local_schema(uri)
    assert local_schema(uri.replace("v9.9.9", "v2.0.0") + "#") == (
        SCHEMAS / "stac-extensions.github.io/projection/v2.0.0/schema.json"
    )


# --- (b) items ----------------------------------------------------------------------------------------------------


def _item(item_id: str = "scene") -> pystac.Item:
    """A small item with the projection and raster extensions, as eoflows writes them."""
    item = pystac.Item(
        id=item_id,
        geometry={
            "type": "Polygon",
            "coordinates": [[[9.0, 45.1], [9.1, 45.1], [9.1, 45.2], [9.0, 45.2], [9.0, 45.1]]],
        },
        bbox=[9.0, 45.1, 9.1, 45.2],
        datetime=dt.datetime(2025, 6, 1, 10, 23, 11, tzinfo=dt.UTC),
        properties={},
    )
    item.add_asset("data", pystac.Asset(href=f"./{item_id}.tif", media_type=pystac.MediaType.COG, roles=["data"]))
    ProjectionExtension.ext(item, add_if_missing=True).apply(
        code="EPSG:32632", bbox=[499980, 4996380, 503640, 5000040], shape=[366, 366]
    )
    RasterExtension.ext(item.assets["data"], add_if_missing=True).bands = [
        RasterBand.create(data_type=DataType.UINT16, nodata=0, spatial_resolution=10.0)
    ]
    return item


def _write(tmp_path: Path, stac: dict[str, Any], name: str = "item.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(stac, indent=2))
    return path


def test_a_valid_item_passes_both_validators_offline(tmp_path: Path, offline: list[object]) -> None:
    item = _item()
    path = _write(tmp_path, item.to_dict(include_self_link=False))
    validate_with_pystac(item)
    validate_with_pystac(path)
    validate_with_stac_validator(str(path))
    validate_with_stac_validator(str(path), recursive=False)


def _set_proj_code(stac: dict[str, Any]) -> None:
    stac["properties"]["proj:code"] = 5


def _set_raster_bands(stac: dict[str, Any]) -> None:
    stac["assets"]["data"]["raster:bands"] = {"data_type": "uint16"}


@pytest.mark.parametrize(
    ("change", "where", "why"),
    [
        (_set_proj_code, "properties -> proj:code", "5 is not of type 'string', 'null'"),
        (_set_raster_bands, "assets -> data -> raster:bands", "{'data_type': 'uint16'} is not of type 'array'"),
    ],
    ids=["proj:code", "raster:bands"],
)
def test_an_invalid_item_fails_both_validators_naming_the_field(
    tmp_path: Path, offline: list[object], change: Any, where: str, why: str
) -> None:
    stac = _item().to_dict(include_self_link=False)
    change(stac)
    path = _write(tmp_path, stac)
    for invalid in (path, pystac.Item.from_dict(stac)):
        with pytest.raises(pystac.STACValidationError, match=re.escape(f"at {where}: {why}")) as failed:
            validate_with_pystac(invalid)
        assert failed.value.source  # jsonschema's errors
    with pytest.raises(AssertionError, match=re.escape(f"{why}. Error is in {where}")) as failed:
        validate_with_stac_validator(str(path))
    assert str(path) in str(failed.value)


def test_pystac_validator_is_restored_after_a_call(tmp_path: Path, offline: list[object]) -> None:
    before = RegisteredValidator._validator
    stac = _item().to_dict(include_self_link=False)
    stac["properties"]["proj:code"] = 5
    with pytest.raises(pystac.STACValidationError):
        validate_with_pystac(_write(tmp_path, stac))
    validate_with_pystac(_item())
    assert RegisteredValidator._validator is before


def test_a_schema_that_is_not_vendored_is_named_never_downloaded(tmp_path: Path, offline: list[object]) -> None:
    uri = "https://stac-extensions.github.io/unknown/v1.0.0/schema.json"
    stac = _item().to_dict(include_self_link=False)
    stac["stac_extensions"].append(uri)
    path = _write(tmp_path, stac)
    with pytest.raises(SchemaNotVendoredError, match=re.escape(uri)):
        validate_with_pystac(path)
    with pytest.raises(SchemaNotVendoredError, match=re.escape(uri)):
        validate_with_stac_validator(str(path))


def test_the_network_guard_blocks(offline: list[object]) -> None:
    """The `offline` fixture does block: a schema download fails, and is recorded."""
    with pytest.raises(OSError, match="blocked by the test"):
        urllib.request.urlopen("https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/item.json", timeout=1)
    assert offline == ["schemas.stacspec.org"]
    offline.clear()


# --- (c) catalogs -------------------------------------------------------------------------------------------------


def _catalog(tmp_path: Path, *items: pystac.Item) -> Path:
    catalog = pystac.Catalog(id="results", description="Processing results")
    for item in items:
        catalog.add_item(item)
    catalog.normalize_hrefs(str(tmp_path))
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return tmp_path / "catalog.json"


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 (a thread of this process) serving tmp_path; its URL."""
    handler = functools.partial(QuietHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{server.server_address[1]}"
        server.shutdown()
        thread.join()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


def test_a_catalog_validates_recursively_with_both(tmp_path: Path, offline: list[object], http_folder: str) -> None:
    catalog = _catalog(tmp_path, _item())
    validate_with_pystac(pystac.Catalog.from_file(str(catalog)))
    validate_with_pystac(catalog)
    validate_with_stac_validator(str(catalog))
    validate_with_stac_validator(f"{http_folder}/catalog.json")


@pytest.mark.parametrize("over_http", [False, True], ids=["path", "url"])
def test_every_invalid_item_of_a_catalog_is_listed(
    tmp_path: Path, offline: list[object], http_folder: str, over_http: bool
) -> None:
    catalog = _catalog(tmp_path, _item("a"), _item("b"), _item("c"))
    for name in ("a", "c"):
        item = tmp_path / name / f"{name}.json"
        stac = json.loads(item.read_text())
        stac["properties"]["proj:code"] = 5
        item.write_text(json.dumps(stac))
    with pytest.raises(pystac.STACValidationError, match=re.escape("at properties -> proj:code: 5 is not of type")):
        validate_with_pystac(catalog)
    root = f"{http_folder}/catalog.json" if over_http else str(catalog)
    base = http_folder if over_http else str(tmp_path)
    with pytest.raises(AssertionError, match="2 invalid object") as failed:
        validate_with_stac_validator(root)
    lines = str(failed.value).splitlines()[1:]
    assert [line.split(": ")[0] for line in lines] == [f"{base}/a/a.json", f"{base}/c/c.json"]
    assert all("Error is in properties -> proj:code" in line for line in lines)
    validate_with_stac_validator(root, recursive=False)  # the catalog itself is valid

"""Validate the STAC that eoflows publishes, offline, against the JSON schemas vendored under eoflows/testing/schemas/.

eoflows/testing/schemas/ mirrors each schema's URL (``https://HOST/PATH`` is ``schemas/HOST/PATH``); README.md there
says where every file comes from. Two validators read them, and neither reaches the network:

- ``validate_with_pystac(obj)``: pystac's own ``JsonSchemaSTACValidator`` (``validate_all``), registered for the
  duration of the call only;
- ``validate_with_stac_validator(path_or_url)``: stac-validator's ``StacValidate`` with every vendored URL mapped
  to its file (``schema_map``).

A schema that is not vendored is an error naming its URI (``SchemaNotVendoredError``), never a download: vendor it
(see eoflows/testing/schemas/README.md) when eoflows starts declaring a new extension or version.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import posixpath
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pystac
from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator, validate_all, validate_all_dict

with warnings.catch_warnings():  # stac_validator 4.1.2 is a shim over stac_valid (same package) that warns on import
    warnings.filterwarnings("ignore", "The 'stac_validator' package has been deprecated", DeprecationWarning)
    from stac_validator.utilities import fetch_and_parse_file, set_schema_addr
    from stac_validator.validate import StacValidate

SCHEMAS = Path(__file__).resolve().parent / "schemas"

# The published https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/common.json says "$id": ".../commonjson"
# (upstream typo, kept byte for byte); every other vendored schema's $id is its URL (maybe with a trailing "#").
ID_EXCEPTIONS = {
    "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/common.json": (
        "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/commonjson"
    ),
}


class SchemaNotVendoredError(LookupError):
    """A JSON schema the validation needs is not under eoflows/testing/schemas/."""


def local_schema(uri: str) -> Path:
    """The vendored file of the schema at `uri` (an http(s) URL; a fragment is ignored).

    Raises SchemaNotVendoredError naming the URI when eoflows/testing/schemas/ does not hold it.
    """
    parts = urlsplit(uri)
    if parts.scheme in ("http", "https") and parts.netloc and parts.path not in ("", "/"):
        path = (SCHEMAS / parts.netloc / parts.path.lstrip("/")).resolve()
        if path.is_relative_to(SCHEMAS) and path.is_file():
            return path
    raise SchemaNotVendoredError(
        f"JSON schema {uri} is not vendored: add it as {SCHEMAS}/{parts.netloc or '?'}{parts.path or '/?'} "
        "(byte for byte as published, with its licence) and list it in eoflows/testing/schemas/README.md"
    )


def vendored_uris() -> list[str]:
    """The URL of every vendored schema (from the folder layout)."""
    return sorted(
        "https://" + path.relative_to(SCHEMAS).as_posix()
        for path in SCHEMAS.rglob("*.json")
        if path.relative_to(SCHEMAS).parts[0] != "LICENSES"
    )


@functools.cache
def _vendored_schemas() -> dict[str, dict[str, Any]]:
    return {uri: json.loads(local_schema(uri).read_bytes()) for uri in vendored_uris()}


# --- pystac -----------------------------------------------------------------------------------------------------


class VendoredSchemaValidator(JsonSchemaSTACValidator):
    """pystac's JSON-schema validator, its schema cache filled from eoflows/testing/schemas/ (not pystac's copies).

    Every schema, and every $ref between schemas, is found in the cache (pystac's registry is built from it); a URI
    missing from it raises SchemaNotVendoredError instead of being downloaded.
    """

    def __init__(self) -> None:
        super().__init__()  # DefaultSchemaUriMap: the core schema URIs of schemas.stacspec.org
        self.schema_cache = dict(_vendored_schemas())

    def _get_schema(self, schema_uri: str) -> dict[str, Any]:
        if schema_uri not in self.schema_cache:
            local_schema(schema_uri)  # raises, naming the URI (every vendored schema is already cached)
        return self.schema_cache[schema_uri]


@contextlib.contextmanager
def pystac_validator() -> Iterator[VendoredSchemaValidator]:
    """Register VendoredSchemaValidator as pystac's validator in the block, then restore the previous one."""
    previous = RegisteredValidator._validator  # None until pystac first validates; set_validator refuses None
    validator = VendoredSchemaValidator()
    pystac.validation.set_validator(validator)
    try:
        yield validator
    finally:
        RegisteredValidator._validator = previous


def validate_with_pystac(obj_or_catalog: pystac.STACObject | str | os.PathLike[str]) -> None:
    """Validate with pystac, offline: an item, or a catalog/collection with every child and item under it.

    Takes a pystac object (a catalog must have been saved: its links are read from their files) or the path of a
    STAC JSON file (validated as written, links followed on disk). Raises pystac.STACValidationError on the first
    invalid object (its message names the object, the schema, and each failing field with the reason; `source` holds
    jsonschema's errors), SchemaNotVendoredError naming a schema that is not vendored.
    """
    with pystac_validator():
        try:
            if isinstance(obj_or_catalog, pystac.STACObject):
                validate_all(obj_or_catalog)
            else:
                href = os.path.abspath(os.fspath(obj_or_catalog))
                validate_all_dict(json.loads(Path(href).read_text()), href)
        except pystac.STACValidationError as error:
            raise pystac.STACValidationError(_explain(error), source=error.source) from error


def _leaves(error: Any) -> Iterator[Any]:
    """The innermost jsonschema errors under `error`; of a oneOf/anyOf, those of the branch that got deepest."""
    if not error.context:
        yield error
        return
    branches: dict[object, list[Any]] = {}
    for sub in error.context:  # relative_schema_path[0]: the index of the branch the sub-error belongs to
        branches.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
    deepest = max(branches.values(), key=lambda errors: max(len(sub.absolute_path) for sub in errors))
    for sub in deepest:
        yield from _leaves(sub)


def _explain(error: pystac.STACValidationError) -> str:
    """pystac's first line (object, schema), then each failing field and why.

    (pystac's best match of a oneOf is the whole object.)
    """
    header = str(error).split("\n", 1)[0]
    lines = []
    for leaf in (leaf for source in error.source or [] for leaf in _leaves(source)):
        where = " -> ".join(map(str, leaf.absolute_path)) or "(the object)"
        message = leaf.message if len(leaf.message) <= 300 else leaf.message[:300] + "..."
        lines.append(f"  at {where}: {message}")
    return "\n".join([header, *dict.fromkeys(lines)]) if lines else str(error)


# --- stac-validator ---------------------------------------------------------------------------------------------


def stac_validator_schema_map() -> dict[str, str]:
    """stac-validator's schema_map: each vendored URL, and each bundled core schema it would use, to its file."""
    mapping = {uri: str(local_schema(uri)) for uri in vendored_uris()}
    for uri in list(mapping):  # a stac-validator release may read its own copies of the core schemas instead
        core = re.fullmatch(
            r"https://schemas\.stacspec\.org/v([^/]+)/(item|catalog|collection)-spec/json-schema/\2\.json", uri
        )
        if core:
            mapping.setdefault(set_schema_addr(core[1], core[2]), mapping[uri])
    return mapping


def _is_url(href: str) -> bool:
    return urlsplit(href).scheme in ("http", "https")


def _read(href: str) -> dict[str, Any]:
    return fetch_and_parse_file(href)


def _resolve(base: str, href: str) -> str:
    if _is_url(href) or _is_url(base):
        return urljoin(base, href)
    href = href.removeprefix("file://")
    return os.path.normpath(os.path.join(os.path.dirname(base), href))


def _objects(root: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every STAC object from `root` on along child and item links (as stac-validator's recursive mode follows)."""
    pending, seen = [root], set()
    while pending:
        href = pending.pop(0)
        if href in seen:
            continue
        seen.add(href)
        stac = _read(href)
        yield href, stac
        if stac.get("type") != "Feature":
            pending += [
                _resolve(href, link["href"]) for link in stac.get("links", []) if link.get("rel") in ("child", "item")
            ]


def _required_schemas(stac: dict[str, Any]) -> list[str]:
    kind = {"Feature": "item", "Collection": "collection"}.get(stac.get("type", ""), "catalog")
    core = f"https://schemas.stacspec.org/v{stac.get('stac_version')}/{kind}-spec/json-schema/{kind}.json"
    return [core, *stac.get("stac_extensions", [])]


def _where(path: str) -> str:
    """`path` normalised (stac-validator joins links as "folder/./name"), to name each object once."""
    if _is_url(path):
        parts = urlsplit(path)
        return parts._replace(path=posixpath.normpath(parts.path)).geturl()
    return os.path.normpath(path) if path else path


def _schema_url(schema: str) -> str:
    """The URL of a vendored schema given by its file (as stac-validator reports it), else `schema` itself."""
    path = Path(schema)
    return (
        "https://" + path.relative_to(SCHEMAS).as_posix()
        if path.is_absolute() and path.is_relative_to(SCHEMAS)
        else schema
    )


def _describe(message: dict[str, Any]) -> str:
    where = _where(str(message.get("path", "")))
    schemas = [message["failed_schema"]] if message.get("failed_schema") else message.get("schema") or ["?"]
    schema = ", ".join(_schema_url(str(s)) for s in schemas)
    return (
        f"{where}: {message.get('error_type', 'invalid')}: {message.get('error_message', message)} [schema: {schema}]"
    )


def validate_with_stac_validator(path_or_url: str, recursive: bool = True) -> None:
    """Validate with stac-validator (core and extension schemas), offline, every schema read from the vendored ones.

    `path_or_url`: a local path or an http(s) URL of an item, a catalog or a collection. With `recursive`, the
    objects under a catalog too: stac-validator's recursive mode on the root (it stops at the first invalid item),
    and each object on its own so that every invalid one is listed. Raises AssertionError listing the messages of
    every invalid object, SchemaNotVendoredError naming a schema that is not vendored (before any validation).
    """
    root = path_or_url if _is_url(path_or_url) else os.path.abspath(os.fspath(path_or_url))
    objects = list(_objects(root)) if recursive else [(root, _read(root))]
    for _, stac in objects:  # stac-validator would download a schema it cannot map: refuse first
        for uri in _required_schemas(stac):
            local_schema(uri)
    mapping = stac_validator_schema_map()
    problems: dict[str, list[str]] = {}  # object -> messages
    for href, _ in objects:
        run = StacValidate(href, schema_map=dict(mapping))
        if not run.run():
            problems[_where(href)] = [_describe(m) for m in run.message if not m.get("valid_stac", False)] or [
                f"{_where(href)}: invalid (stac-validator gave no message)"
            ]
    if recursive and objects[0][1].get("type") != "Feature":
        run = StacValidate(root, recursive=True, schema_map=dict(mapping))
        if not run.run():  # report what its own walk finds beyond the objects already reported
            for message in run.message:
                if not message.get("valid_stac", False) and _where(str(message.get("path", ""))) not in problems:
                    problems.setdefault(_where(str(message.get("path", ""))), []).append(
                        "(recursive) " + _describe(message)
                    )
    lines = [line for messages in problems.values() for line in messages]
    if lines:  # raised, not asserted: pytest rewrites the asserts of a plugin's modules, adding its own lines
        raise AssertionError(
            f"stac-validator: {len(problems)} invalid object(s) under {path_or_url}:\n" + "\n".join(lines)
        )

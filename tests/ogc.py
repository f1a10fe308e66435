"""OGC API - Processes test helpers: the standard's schemas (1.0 vendored in tests/ogc_schemas, the 2.0 draft
from ../shared) as validators of what eoflows serve answers."""

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

ROOT = Path(__file__).resolve().parents[1]
SCHEMAS = Path(__file__).with_name("ogc_schemas")
SHARED = ROOT.parent / "shared"
DRAFT = json.loads((SHARED / "ogcapi-processes/part2-draft/ogcapi-processes.bundled.json").read_text())


def ogc_schema(name: str) -> jsonschema.Draft4Validator:
    """A validator of the OGC schema `name` (schemas/NAME.yaml), its relative $refs read from the vendored files."""

    def retrieve(uri: str) -> Resource:
        path = SCHEMAS / uri.split("#")[0].removeprefix("file://").rsplit("/", 1)[-1]
        return Resource.from_contents(yaml.safe_load(path.read_text()), default_specification=DRAFT4)

    base = f"file://{SCHEMAS}/{name}.yaml"
    registry = Registry(retrieve=retrieve)
    return jsonschema.Draft4Validator({"$ref": base}, registry=registry)


def check(name: str, document: Any) -> None:
    errors = sorted(ogc_schema(name).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


def check_draft(name: str, document: Any) -> None:
    """`document` against the schema `name` of the OGC API - Processes 2.0 draft (Part 2 bodies)."""
    validator = jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{name}", "components": DRAFT["components"]})
    errors = sorted(validator.iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])

"""CWL application packages deployed through OGC API - Processes Part 2 (Deploy, Replace, Undeploy).

A deploy request's package (an `application/ogcapppkg+json` document whose executionUnit is inline CWL or an
href, or a bare `application/cwl+yaml` / `application/cwl+json` body) is packed into one self-contained document
(cwltool's packer: what `w` picks of a `$graph`, with everything it runs, references fetched with a timeout and
a size limit), checked by cwltool (with the schema of Calrissian's Dask requirement; the OGC best-practice rules
of `eoflows cwl validate` are advice, not a condition: many packages in use miss their metadata), described by
cwl2ogc (inputs and outputs from the CWL types) and kept in the Prefect database as a block `ogc-process-ID`
(blocks.ogc_process): every server on that Prefect API sees it, and a restart loses nothing. A job of it is a
flow run of the `run-cwl` deployment with the packed document itself as its `cwl` parameter: what a job ran
stays with the job, whatever is replaced later.
"""

import hashlib
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from blocks.ogc_process import OgcProcessBlock
from eoflows.errors import InputError
from tasks.cwl.documents import declared_inputs, entry_process

ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BLOCK_PREFIX = "ogc-process-"
MEDIA_TYPES = ("application/ogcapppkg+json", "application/cwl+yaml", "application/cwl+json", "application/cwl")


class PackageError(ValueError):
    """A deploy request that cannot be deployed: `status` 400 (the package) or 409/403/404 (the id)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class Deployed:
    """A deployed CWL application package: its OGC description and its packed CWL document."""

    id: str
    cwl: dict[str, Any]  # packed: `main` is the entry of a `$graph`
    process: dict[str, Any]  # title, description, version, keywords, inputs, outputs (no id, no links)

    @property
    def entry(self) -> dict[str, Any]:
        """The CWL process a job runs."""
        return entry_process(self.cwl)


def block_name(process_id: str) -> str:
    """The name of the block that keeps process `process_id` (block names: lowercase, digits, dashes)."""
    if re.fullmatch(r"[a-z0-9-]+", process_id):
        return BLOCK_PREFIX + process_id
    slug = re.sub(r"[^a-z0-9]+", "-", process_id.lower()).strip("-")
    return f"{BLOCK_PREFIX}{slug}-{hashlib.sha256(process_id.encode()).hexdigest()[:8]}"


def _cwl_text(value: Any, where: str) -> str:
    if isinstance(value, dict):
        return yaml.safe_dump(value, sort_keys=False)
    if isinstance(value, str):
        return value
    raise PackageError(400, f"{where}: expected a CWL document (an object or a YAML/JSON string)")


def package_source(body: bytes, media_type: str) -> tuple[str, str | None, dict[str, Any]]:
    """(kind, CWL text or href, the processDescription's process) of a deploy request's body.

    `kind` is "inline" (the text) or "href" (the URL to fetch).
    """
    media = media_type.split(";")[0].strip().lower()
    if media not in MEDIA_TYPES:
        raise PackageError(400, f"Content-Type {media_type!r}: expected one of {', '.join(MEDIA_TYPES)}")
    if media != "application/ogcapppkg+json":
        return "inline", body.decode("utf-8", "replace"), {}
    try:
        document = yaml.safe_load(body)
    except yaml.YAMLError:
        document = None
    if not isinstance(document, dict) or "executionUnit" not in document:
        raise PackageError(400, "application package: expected a JSON object with an executionUnit")
    described = document.get("processDescription") or {}
    process = described.get("process", described) if isinstance(described, dict) else {}
    units = document["executionUnit"]
    for unit in units if isinstance(units, list) else [units]:
        if not isinstance(unit, dict):
            continue
        unit = unit.get("unit", unit)  # a qualified unit (as weaver writes it) or the unit itself
        if "href" in unit and isinstance(unit["href"], str):
            return "href", unit["href"], process
        if "value" in unit:
            return "inline", _cwl_text(unit["value"], "executionUnit value"), process
        if unit.get("cwlVersion") or unit.get("$graph"):
            return "inline", _cwl_text(unit, "executionUnit"), process
    raise PackageError(400, "executionUnit: only CWL is deployed here (inline as `value`, or by `href`); "
                            "container images alone are not")  # fmt: skip


def _entry(content: dict[str, Any], w: str | None, where: str) -> str | None:
    """The process of a document to deploy: `w`, the only Workflow of a `$graph`, or the document itself."""
    if "$graph" not in content:
        if w and str(content.get("id", "")).lstrip("#") != w:
            raise PackageError(400, f"{where}: no process {w!r} (w) in it")
        return None
    ids = {str(p.get("id", "")).lstrip("#"): p.get("class") for p in content["$graph"] if isinstance(p, dict)}
    if w:
        if w not in ids:
            raise PackageError(400, f"{where}: no process {w!r} (w); it has {', '.join(sorted(ids))}")
        return w
    workflows = sorted(i for i, kind in ids.items() if kind == "Workflow")
    if len(workflows) != 1:
        raise PackageError(400, f"{where}: {len(workflows)} workflows ({', '.join(workflows)}); pick one with w")
    return workflows[0]


def _told(message: str, folder: str) -> str:
    """A checker's message without the temporary folder the package was checked in."""
    return re.sub(r"(file://)?[\w./-]*" + re.escape(Path(folder).name) + r"/(given|packed)/", "", message)


def deployable(body: bytes, media_type: str, w: str | None) -> Deployed:
    """The package of a deploy request, packed, checked and described; a PackageError (400) naming the problem."""
    from tasks.cwl.check import check
    from tasks.cwl.documents import fetch_cwl, parsed

    kind, source, given = package_source(body, media_type)
    with tempfile.TemporaryDirectory(prefix="eoflows-deploy-") as folder:
        if kind == "inline":
            where = "the CWL of the request"
            try:
                content = parsed(source, where, None)
            except InputError as exc:
                raise PackageError(400, str(exc)) from None
            path = Path(folder, "given", "package.cwl")
            path.parent.mkdir()
            path.write_text(source)
            location = str(path)
        else:
            where = f"CWL document {source!r}"
            location = source.split("#")[0]
            if not re.match(r"https?://", location):
                raise PackageError(400, f"executionUnit href {source!r}: expected an http(s) URL")
            from tasks.cwl.extensions import http_text

            try:
                content = parsed(http_text(location), source, None)
            except InputError as exc:
                raise PackageError(400, str(exc)) from None
            w = w or (source.split("#")[1] if "#" in source else None)
        entry = _entry(content, w, where)
        try:
            document = fetch_cwl(f"{location}#{entry}" if entry else location, Path(folder, "packed"))
            problems = check(document.path, ogc=False)
        except InputError as exc:
            raise PackageError(400, _told(str(exc), folder)) from None
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise PackageError(400, f"{where}: {_told(problems[0], folder)}{more}")
        packed = document.content()
        process_id = str(given.get("id") or entry or str(content.get("id", "")).lstrip("#"))
        if not ID.fullmatch(process_id):
            raise PackageError(400, f"process id {process_id!r}: expected 1 to 64 letters, digits, '_', '.' or '-', "
                                    "starting with a letter or digit")  # fmt: skip
        return Deployed(process_id, packed, described(document.target, packed, given))


def described(target: str, packed: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The OGC description of the CWL process `target`: inputs and outputs by cwl2ogc, the rest from the request.

    Or from the CWL where the request does not say: label, doc, s:softwareVersion, s:keywords.
    """
    from cwl2ogc import BaseCWLtypes2OGCConverter
    from cwl_utils.parser import load_document_by_uri

    process = load_document_by_uri(target)
    converter = BaseCWLtypes2OGCConverter(process)
    defaulted = {name for name, i in declared_inputs(entry_process(packed)).items() if i.get("default") is not None}
    version = packed.get("s:softwareVersion") or packed.get("http://schema.org/softwareVersion")
    keywords = packed.get("s:keywords")
    return {
        "title": given.get("title") or process.label or process.id.split("#")[-1],
        "description": given.get("description") or process.doc or "",
        "version": str(given.get("version") or version or "0.0.0"),
        "keywords": given.get("keywords") or ([keywords] if isinstance(keywords, str) else keywords or []),
        "inputs": {
            k: {**v, "schema": _local(v["schema"]), **({"minOccurs": 0} if k in defaulted else {})}
            for k, v in converter.get_inputs().items()
        },  # fmt: skip
        "outputs": {k: {**v, "schema": _local(v["schema"])} for k, v in converter.get_outputs().items()},
    }


def _local(schema: Any) -> Any:
    """A cwl2ogc schema without its alternatives that are only a remote `$ref` (a File as a STAC item's schema).

    The OGC 1.0 schema of a description cannot hold them (a `$ref` inside `oneOf` matches two of its
    alternatives), and a job takes a File or Directory as an href: the `uri` alternative stays.
    """
    if isinstance(schema, list):
        return [_local(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    found = {k: _local(v) for k, v in schema.items()}
    for key in ("oneOf", "anyOf"):
        if isinstance(found.get(key), list):
            kept = [s for s in found[key] if not (isinstance(s, dict) and set(s) == {"$ref"})]
            if len(kept) == 1:
                found = {**{k: v for k, v in found.items() if k != key}, **kept[0]}
            else:
                found[key] = kept
    return found


def _type_name(kind: Any) -> tuple[str, bool]:
    """(the base CWL type of an input, whether it is an array), of a type as the packed document writes it."""
    if isinstance(kind, list):  # a union: the first non-null type
        return _type_name(next((k for k in kind if k != "null"), "null"))
    if isinstance(kind, dict):
        if kind.get("type") == "array":
            return _type_name(kind.get("items"))[0], True
        return str(kind.get("type")), False
    text = str(kind).rstrip("?")
    return (text[:-2], True) if text.endswith("[]") else (text, False)


def cwl_inputs(deployed: Deployed, given: Any) -> dict[str, Any]:
    """The CWL job of an execute request's inputs, or an InputError naming the input.

    Every input given is declared, required ones are given, File and Directory values (an href or a URL string)
    become CWL objects.
    """
    if not isinstance(given, dict):
        raise InputError("inputs: expected an object of input values")
    types = {name: i.get("type") for name, i in declared_inputs(deployed.entry).items()}
    described = deployed.process["inputs"]
    unknown = sorted(set(given) - set(types))
    if unknown:
        raise InputError(f"input {unknown[0]!r}: not an input of process {deployed.id!r}; its inputs: "
                         f"{', '.join(types)}")  # fmt: skip
    missing = [n for n in types if described.get(n, {}).get("minOccurs", 0) and n not in given]
    if missing:
        raise InputError(f"input {missing[0]!r}: required by process {deployed.id!r}")
    job = {}
    for name, value in given.items():
        base, many = _type_name(types[name])
        values = value if many and isinstance(value, list) else [value]
        if many and not isinstance(value, list):
            raise InputError(f"input {name!r}: expected an array")
        converted = [_cwl_value(name, base, v) for v in values]
        job[name] = converted if many else converted[0]
    return job


def _cwl_value(name: str, base: str, value: Any) -> Any:
    if isinstance(value, dict) and "value" in value and "href" not in value:
        value = value["value"]  # a qualified value
    if base in ("File", "Directory"):
        href = value.get("href") if isinstance(value, dict) else value
        if not isinstance(href, str) or not href:
            raise InputError(f"input {name!r}: expected a {base} reference (an href or a URL)")
        return {"class": base, "location": href}
    checks = {"string": str, "boolean": bool, "int": int, "long": int, "float": (int, float), "double": (int, float)}
    wanted = checks.get(base)
    if wanted and (not isinstance(value, wanted) or (base != "boolean" and isinstance(value, bool))):
        raise InputError(f"input {name!r}: expected {base}, got {type(value).__name__}")
    return value


async def stored(client: Any) -> dict[str, Deployed]:
    """Every deployed process, by id (one request to the Prefect API)."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    try:
        documents = await client.read_block_documents_by_type(OgcProcessBlock.get_block_type_slug())
    except (ObjectNotFound, PrefectHTTPStatusError) as exc:  # no such block type yet: nothing deployed here
        if isinstance(exc, PrefectHTTPStatusError) and exc.response.status_code != 404:
            raise
        return {}
    found = {}
    for doc in documents:
        data = doc.data or {}
        if {"process_id", "cwl", "process"} <= set(data):
            found[data["process_id"]] = Deployed(data["process_id"], data["cwl"], data["process"])
    return found


async def save(deployed: Deployed) -> None:
    """Keep (or replace) a deployed process in the Prefect database."""
    block = OgcProcessBlock(process_id=deployed.id, process=deployed.process, cwl=deployed.cwl)
    await block.asave(block_name(deployed.id), overwrite=True)


async def remove(client: Any, process_id: str) -> None:
    """Forget a deployed process (its jobs and their results stay)."""
    document = await client.read_block_document_by_name(block_name(process_id), OgcProcessBlock.get_block_type_slug())
    await client.delete_block_document(document.id)

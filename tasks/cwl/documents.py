"""CWL documents to run: fetch them, check they load, and read what resources their steps ask for."""

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from blocks.s3 import S3Block
from eoflows.errors import InputError
from tasks.data.stac_io import read_bytes
from tasks.data.storage import scheme


@dataclass(frozen=True)
class CwlDocument:
    """A CWL document on local disk, and the process to run (`None`: the document's only or `#main` one)."""

    path: Path
    entry: str | None

    @property
    def target(self) -> str:
        """What cwltool and Calrissian are given: FILE or FILE#entry."""
        return f"{self.path}#{self.entry}" if self.entry else str(self.path)

    def content(self) -> dict[str, Any]:
        """The parsed document."""
        return yaml.safe_load(self.path.read_text())


def fetch_cwl(location: str, folder: Path, storage: S3Block | None = None) -> CwlDocument:
    """The CWL document at `location` (path, URL or s3://, optionally #entry), packed into one file in `folder`.

    The document is read where it is, so what it references relatively (`run: tool.cwl`, `$import`, `$include`,
    `SchemaDefRequirement` types) is found as cwltool finds it; cwltool's packer then makes one self-contained
    document (what Calrissian's ConfigMap holds and what runs everywhere), its entry `main` when it has several
    processes.
    """
    where, _, entry = location.partition("#")
    uri = where if scheme(where) != "file" else Path(where).absolute().as_uri()
    text = read_bytes(where if scheme(where) != "file" else str(Path(where).absolute()), storage, "CWL document")
    parsed(text, location, entry or None)  # errors in the user's terms before cwltool's
    packed = pack(f"{uri}#{entry}" if entry else uri, storage, location)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (Path(where).name or "package.cwl")
    if "$graph" not in packed and str(packed.get("id", "")).lstrip("#") == "main":
        packed["id"] = path.name  # a lone tool keeps its name (cwltool names its job after it), not `main`
    path.write_text(yaml.safe_dump(packed, sort_keys=False))
    return CwlDocument(path, "main" if "$graph" in packed else None)


def pack(uri: str, storage: S3Block | None, location: str) -> dict[str, Any]:
    """cwltool's packed form of the document at `uri` (file://, http(s):// or s3://, with its references)."""
    from cwltool.context import LoadingContext
    from cwltool.load_tool import fetch_document, resolve_and_validate_document
    from cwltool.main import print_pack

    from tasks.cwl.extensions import register_extensions, remote_fetcher

    register_extensions()
    context = LoadingContext({
        "fetcher_constructor": remote_fetcher(storage),
        "resolver": lambda _loader, ref: ref if ref.startswith("s3://") else None,  # cwltool knows http(s), file
        "do_update": False,
    })  # fmt: skip
    try:
        context, document, found = fetch_document(uri, context)
        context, found = resolve_and_validate_document(context, document, found)
        return json.loads(print_pack(context, found))
    except Exception as exc:
        raise InputError(f"CWL document {location!r}: does not load ({' '.join(str(exc).split())[:500]})") from exc


def parsed(text: bytes | str, location: str, entry: str | None) -> dict[str, Any]:
    """A CWL document's content, checked to be a YAML mapping holding the process `entry` (when given)."""
    try:
        content = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"CWL document {location!r}: not YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(content, dict):
        raise InputError(f"CWL document {location!r}: not a CWL document (expected a mapping)")
    ids = [p.get("id", "").lstrip("#") for p in processes(content)]
    if entry and entry not in ids:
        raise InputError(f"CWL document {location!r}: no process {entry!r} (it has {', '.join(ids)})")
    return content


def check_loads(document: CwlDocument, location: str) -> None:
    """Fail with a clear error unless cwl-utils loads the document (and the entry exists)."""
    import requests
    from cwl_utils.parser import LoadingOptions, load_document_by_uri

    from tasks.cwl.extensions import LocalSchemas

    parsed(document.path.read_bytes(), location, document.entry)
    try:
        load_document_by_uri(document.target, LoadingOptions(fetcher=LocalSchemas({}, requests.Session())))
    except Exception as exc:
        raise InputError(f"CWL document {location!r}: does not load ({' '.join(str(exc).split())[:500]})") from exc


def processes(content: dict[str, Any]) -> list[dict[str, Any]]:
    """Every process of a document: the `$graph` entries, or the document itself, with inline step processes."""
    found: list[dict[str, Any]] = []
    pending = list(content["$graph"]) if "$graph" in content else [content]
    while pending:
        process = pending.pop(0)
        found.append(process)
        steps = process.get("steps") or []
        for step in steps.values() if isinstance(steps, dict) else steps:
            if isinstance(step, dict) and isinstance(step.get("run"), dict):
                pending.append(step["run"])
    return found


def entry_process(content: dict[str, Any], entry: str | None = None) -> dict[str, Any]:
    """The process a run of `content` starts with: `entry`, else `main`, else the first (or only) one."""
    found = list(content["$graph"]) if "$graph" in content else [content]
    ids = [str(p.get("id", "")).lstrip("#") for p in found]
    return found[ids.index(entry)] if entry in ids else found[ids.index("main")] if "main" in ids else found[0]


def entry_inputs(content: dict[str, Any], entry: str | None) -> set[str]:
    """The input ids of the process a run starts with (`entry_process`)."""
    return set(declared_inputs(entry_process(content, entry)))


def declared_inputs(process: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A CWL process's inputs by id, each as a mapping (`type`, `default`...), in either of CWL's two forms."""
    declared = process.get("inputs") or {}
    pairs = declared.items() if isinstance(declared, dict) else ((i.get("id", ""), i) for i in declared)
    return {str(k).split("/")[-1].split("#")[-1]: v if isinstance(v, dict) else {"type": v} for k, v in pairs}


def _requirement(process: dict[str, Any], name: str) -> dict[str, Any] | None:
    for key in ("requirements", "hints"):
        section = process.get(key) or []
        if isinstance(section, dict):  # map form: {ResourceRequirement: {...}}
            if name in section:
                return section[name] or {}
        else:
            for item in section:
                if isinstance(item, dict) and item.get("class") == name:
                    return item
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None  # expressions: not known before running


def resource_needs(content: dict[str, Any]) -> list[tuple[str, float | None, float | None]]:
    """(process id, cores asked, RAM MiB asked) of every process declaring a ResourceRequirement.

    What a step asks is its minimum (coresMin/ramMin), or its maximum when it only gives that.
    """
    needs = []
    for process in processes(content):
        res = _requirement(process, "ResourceRequirement")
        if res:
            cores = _number(res.get("coresMin", res.get("coresMax")))
            ram = _number(res.get("ramMin", res.get("ramMax")))
            needs.append((str(process.get("id", "?")).lstrip("#"), cores, ram))
    return needs


def step_resources(content: dict[str, Any]) -> dict[str, tuple[float | None, float | None]]:
    """(cores, RAM MiB) asked by the process each workflow step runs, by step id (steps may share a name)."""
    asked = {pid: (cores, ram) for pid, cores, ram in resource_needs(content)}
    found: dict[str, tuple[float | None, float | None]] = {}
    for process in processes(content):
        steps = process.get("steps") or []
        for step_id, step in steps.items() if isinstance(steps, dict) else ((s.get("id"), s) for s in steps):
            run = step.get("run")
            run_id = str(run.get("id", "") if isinstance(run, dict) else run or "").lstrip("#")
            if run_id in asked:
                found[str(step_id).split("/")[-1].lstrip("#")] = asked[run_id]
    return found


def secret_inputs(content: dict[str, Any]) -> set[str]:
    """Input ids the document marks as secrets (`cwltool:Secrets`)."""
    found: set[str] = set()
    for process in processes(content):
        for key in ("requirements", "hints"):
            for item in process.get(key) or []:
                if isinstance(item, dict) and re.search(r"(^|[:#])Secrets$", str(item.get("class", ""))):
                    found |= {s.split("/")[-1].lstrip("#") for s in item.get("secrets", [])}
    return found

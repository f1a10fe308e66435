"""CWL documents to run: fetch them, check they load, and read what resources their steps ask for."""

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from blocks.s3 import S3Storage
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


def fetch_cwl(location: str, folder: Path, storage: S3Storage | None = None) -> CwlDocument:
    """Copy the CWL document at `location` (path, URL or s3://, optionally #entry) into `folder` and load it."""
    where, _, entry = location.partition("#")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (Path(where).name or "package.cwl")
    path.write_bytes(read_bytes(where if scheme(where) != "file" else str(Path(where).absolute()), storage,
                                "CWL document"))  # fmt: skip
    document = CwlDocument(path, entry or None)
    check_loads(document, location)
    return document


def check_loads(document: CwlDocument, location: str) -> None:
    """Fail with a clear error unless cwl-utils loads the document (and the entry exists)."""
    import requests
    from cwl_utils.parser import LoadingOptions, load_document_by_uri

    from tasks.cwl.extensions import LocalSchemas

    try:
        content = document.content()
    except yaml.YAMLError as exc:
        raise InputError(f"CWL document {location!r}: not YAML ({' '.join(str(exc).split())})") from exc
    ids = [p.get("id", "").lstrip("#") for p in processes(content)]
    if document.entry and document.entry not in ids:
        raise InputError(f"CWL document {location!r}: no process {document.entry!r} (it has {', '.join(ids)})")
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


def entry_inputs(content: dict[str, Any], entry: str | None) -> set[str]:
    """The input ids of the process a run starts with: `entry`, else `main`, else the first (or only) one."""
    found = list(content["$graph"]) if "$graph" in content else [content]
    ids = [str(p.get("id", "")).lstrip("#") for p in found]
    process = found[ids.index(entry)] if entry in ids else found[ids.index("main")] if "main" in ids else found[0]
    inputs = process.get("inputs") or []
    names = inputs.keys() if isinstance(inputs, dict) else [str(i.get("id", "")) for i in inputs]
    return {name.split("/")[-1].split("#")[-1] for name in names}


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

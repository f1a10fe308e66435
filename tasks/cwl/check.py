"""Check exported CWL: cwltool's own validation (with Calrissian's Dask extension known), and the OGC rules.

cwltool accepts one extension schema per CWL version; eoflows gives it cwltool's own extensions (for
`cwltool:Secrets`) plus the record of `calrissian:DaskGatewayRequirement`: the five fields Calrissian reads,
each an int/string or an expression, all required, nothing else allowed (a misspelt `clusterMaxCore` fails,
as it would silently fall back to a plain pod in Calrissian).

eoap-validator (the OGC best-practice checks) runs on a copy without extension classes: it rejects the Dask
requirement (cwltool validation first) and crashes on it as a hint (eoap-validator 0.3.1). `stock_tool_advice`
says which `--dask` form to export for the stock tools that would refuse the document as it is.
"""

import copy
import io
import json
import logging
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from eoflows.errors import InputError
from tasks.cwl.documents import processes
from tasks.cwl.extensions import DASK_CLASS, cwltool_main


def cwltool_problems(target: str) -> list[str]:
    """cwltool's validation of `target` (FILE or FILE#id) with the extensions; returns its error lines."""
    out, err = io.StringIO(), io.StringIO()
    handler = logging.StreamHandler(err)
    # cwltool's messages go to `err` only: not to the root logger (which Prefect prints), no warnings at all
    quiet = [logging.getLogger(name) for name in ("cwltool", "salad")]
    before = [q.propagate for q in quiet]
    logging.disable(logging.WARNING)
    for q in quiet:
        q.propagate = False
    try:
        code = cwltool_main(["--enable-ext", "--validate", target], stdout=out, stderr=err, logger_handler=handler)
    finally:
        logging.disable(logging.NOTSET)
        for q, propagate in zip(quiet, before, strict=True):
            q.propagate = propagate
    if code == 0:
        return []
    text = re.sub(r"\x1b\[[0-9;]*m", "", err.getvalue())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if line.startswith("ERROR")), 0)
    return _unwrapped([line for line in lines[first:] if not line.startswith(("WARNING", "Warning"))]) or [
        f"cwltool exited with status {code}"
    ]


def _unwrapped(lines: list[str]) -> list[str]:
    """cwltool's messages, one per line: it wraps them at a width that depends on the file path's length."""
    messages: list[str] = []
    for line in lines:
        starts = line.startswith(("ERROR", "*", "tried", "but")) or re.match(r"^\S+:\d+:\d+:", line)
        if messages and not starts:
            messages[-1] += f" {line}"
        else:
            messages.append(line)
    return messages


def without_extensions(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a CWL document without namespaced requirement/hint classes (e.g. for eoap-validator)."""
    clean = copy.deepcopy(document)
    for process in clean.get("$graph", [clean]):
        for key in ("requirements", "hints"):
            kept = [r for r in process.get(key, []) if ":" not in str(r.get("class", ""))]
            if kept:
                process[key] = kept
            else:
                process.pop(key, None)
    return clean


def ogc_findings(document: dict[str, Any], entry: str) -> list[dict[str, Any]]:
    """eoap-validator's findings (OGC EO Application Package rules) for the entry workflow of `document`."""
    with tempfile.TemporaryDirectory(prefix="eoflows-cwl-") as folder:
        path = Path(folder) / "package.cwl"
        path.write_text(yaml.safe_dump(without_extensions(document), sort_keys=False))
        validator = str(Path(sys.executable).with_name("eoap-validator"))
        done = subprocess.run([validator, "--profile", "eoap-package", "--profile", "metadata", "--format", "json",
                               f"{path}#{entry}"], capture_output=True, text=True,
                              timeout=300)  # fmt: skip
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return [
            {
                "rule_id": "EOAP.VALIDATOR",
                "severity": "error",
                "status": "failed",
                "message": (done.stdout + done.stderr).strip()[-2000:] or f"exit status {done.returncode}",
            }
        ]
    return report.get("findings", [])


def entry_id(document: dict[str, Any]) -> str:
    """The id of the (single) Workflow of a `$graph` document."""
    return next(p["id"].lstrip("#") for p in document["$graph"] if p.get("class") == "Workflow")


def _hinted(document: dict[str, Any]) -> dict[str, Any]:
    """A copy with the Dask requirement moved to hints (cwltool checks whole workflows only in that form)."""
    moved = copy.deepcopy(document)
    for process in moved.get("$graph", [moved]):
        dask = [r for r in process.get("requirements", []) if r.get("class") == "calrissian:DaskGatewayRequirement"]
        if dask:
            process["requirements"] = [r for r in process["requirements"] if r not in dask]
            process["hints"] = [*process.get("hints", []), *dask]
    return moved


def dask_placements(document: dict[str, Any]) -> set[str]:
    """Where the document's processes put `calrissian:DaskGatewayRequirement`: `requirements`, `hints`, both, none."""
    found = set()
    for process in processes(document):
        for key in ("requirements", "hints"):
            items = process.get(key) or []  # a list of {class: ...}, or a map keyed by class
            classes = list(items) if isinstance(items, dict) else [r.get("class") for r in items if isinstance(r, dict)]
            if any(c in ("calrissian:DaskGatewayRequirement", DASK_CLASS) for c in classes):
                found.add(key)
    return found


def stock_tool_advice(document: dict[str, Any]) -> list[str]:
    """What to export instead when a stock runner or validator would refuse the document's Dask requirement.

    Measured (README, "CWL"): under `requirements` only Calrissian >= 0.19 (with --dask-gateway-url) and
    eoflows' cwltool take it; under `hints` stock cwltool takes it, eoap-validator 0.3.1 crashes and
    Calrissian 0.19 fails the step; without it (`--dask none`) every runner and validator does.
    """
    placements = dask_placements(document)
    advice = []
    if "requirements" in placements:
        advice.append("stock cwltool and eoap-validator reject calrissian:DaskGatewayRequirement under requirements "
                      "(only Calrissian >= 0.19 with --dask-gateway-url and eoflows read it there): export with "
                      "--dask none to hand this file to them (--dask hints is enough for stock cwltool)")  # fmt: skip
    if "hints" in placements:
        advice.append("eoap-validator 0.3.1 crashes on calrissian:DaskGatewayRequirement under hints, and Calrissian "
                      "0.19 fails the step (it reads the requirement only under requirements): export with --dask "
                      "none for eoap-validator, --dask requirements for Calrissian")  # fmt: skip
    return advice


def check(path: Path, ogc: bool = True) -> list[str]:
    """Every problem cwltool and the OGC rules find in the CWL document at `path` (empty: valid).

    cwltool checks the whole document (the Dask requirement in its hint form: cwltool cannot check a custom
    requirement across a `$graph`), then each tool as written, with Calrissian's schema, so the exact
    fields of `DaskGatewayRequirement` are enforced; eoap-validator checks the OGC rules unless `ogc` is
    false (a package wrapped by eoap-cwlwrap is what a platform runs, its entry is `main`).
    """
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"CWL document {str(path)!r}: not YAML ({' '.join(str(exc).split())})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("$graph", []), list):
        raise InputError(f"CWL document {str(path)!r}: expected a CWL process or a $graph of processes")
    problems = []
    with tempfile.TemporaryDirectory(prefix="eoflows-cwl-") as folder:
        hinted = Path(folder) / path.name
        hinted.write_text(yaml.safe_dump(_hinted(document), sort_keys=False))
        problems += [f"cwltool: {line.replace(str(hinted), str(path)).replace(folder, str(path.parent))}"
                     for line in cwltool_problems(str(hinted))]  # fmt: skip
    for process in document.get("$graph", []):
        if process.get("class") == "CommandLineTool":
            target = f"{path}#{process['id'].lstrip('#')}"
            problems += [f"cwltool {process['id']}: {line}" for line in cwltool_problems(target)]
    for finding in ogc_findings(document, entry_id(document)) if ogc else []:
        if finding.get("status") in ("failed", "blocked") and finding.get("severity") == "error":
            problems.append(
                f"OGC {finding['rule_id']} at {finding.get('location', {}).get('path')}: {finding['message']}"
            )
    return problems

"""Wrap the OGC application package with eoap-cwlwrap, eoflows' own stage-in and stage-out around it.

eoap-cwlwrap (its Python API, `eoap_cwlwrap.wrap`) turns each `Directory` input of the package's entry
workflow into a `URI` (a record of the eoap string-format schema) that a stage-in tool stages, and the
`Directory` output into the `URI` a stage-out tool publishes, all run by its workflow `main`. The stage tools
are the package's first and last steps as `--mode full` exports them, typed as eoap-cwlwrap asks:

- stage-in: its first user input (the item or file reference) is a `URI`, given to the step as its `value`;
  its storage settings are strings defaulting to empty (eoap-cwlwrap 0.32 fails on optional stage-in inputs);
- stage-out: the published catalog's URI is a `URI`.

eoap-cwlwrap copies every input of the three processes to `main`, as loaded. `main` keeps the first input of
each id (the stage tools and the package read the same storage settings), the types as declared (loaded named
types carry absolute names) and no tool bindings; its `URI` input takes the stage-in reference's label and doc.

```python
from tasks.cwl.wrap import wrap_package, wrapped_job_template
print(to_yaml(wrap_package(S2_INDICES)))
print(yaml.safe_dump(wrapped_job_template(S2_INDICES)))  # input: {value: <item URL>}, products, ...
```
"""

import copy
from dataclasses import replace
from typing import Any

from eoflows.errors import EoflowsError, InputError
from eoflows.package import Package, Param, Role
from tasks.cwl.export import CwlOptions, document, env_inputs, export, job_template, label, secret_inputs, tool_document
from tasks.cwl.extensions import STRING_FORMAT, URI

WRAPPER = "main"  # the id of eoap-cwlwrap's workflow


def _schema_def() -> dict[str, Any]:
    return {"class": "SchemaDefRequirement", "types": [{"$import": STRING_FORMAT}]}


def _reference(package: Package) -> Param:
    """The stage-in parameter naming what to stage (an item or a file)."""
    return package.stage_in.by_role(Role.INPUT)[0]


def stage_in_tool(package: Package, options: CwlOptions) -> dict[str, Any]:
    """The package's stage-in tool for eoap-cwlwrap: one `URI` input (its reference), a `Directory` out."""
    step = package.stage_in
    settings = {e.id for p in step.by_role(Role.SETTINGS) for e in env_inputs(p)}
    tool = tool_document(package, step, options)
    for parameter in tool["inputs"]:
        if parameter["id"] == _reference(package).name:
            parameter["type"] = URI
            parameter["inputBinding"]["valueFrom"] = "$(self.value)"
        elif parameter["id"] in settings:
            parameter.update(type="string", default="")
    tool["requirements"].append(_schema_def())
    return tool


def stage_out_tool(package: Package, options: CwlOptions) -> dict[str, Any]:
    """The package's stage-out tool for eoap-cwlwrap: a `Directory` in, the catalog's `URI` out."""
    tool = tool_document(package, package.stage_out, replace(options, folders_in_place=False))
    (output,) = tool["outputs"]
    output["type"] = URI
    output["outputBinding"]["outputEval"] = '$({"value": self[0].contents.trim()})'
    tool["requirements"].append(_schema_def())
    return tool


def _wrapper(graph: list[dict[str, Any]], entry: str, stage_in: str, stage_out: str) -> dict[str, Any]:
    """eoap-cwlwrap's `main` around process `entry` of `graph`, with the stage tools `stage_in`, `stage_out`."""
    try:
        from cwl_loader import load_cwl_from_yaml
        from cwl_utils.parser import save
        from eoap_cwlwrap import wrap
        from loguru import logger
    except ImportError as exc:
        raise EoflowsError(f"wrapping needs eoap-cwlwrap ({exc}): pip install eoap-cwlwrap "
                           "transpiler-mate-runtime") from exc  # fmt: skip
    # the loader would fetch what SchemaDefRequirements import; eoap-cwlwrap reads types by name only
    loadable = [{**p, "requirements": [r for r in p.get("requirements", []) if r["class"] != "SchemaDefRequirement"]}
                for p in graph]  # fmt: skip
    for name in ("cwl_loader", "eoap_cwlwrap"):  # their debug log is not ours to print
        logger.disable(name)
    try:
        processes = {p.id: p for p in load_cwl_from_yaml({"cwlVersion": "v1.2", "$graph": loadable})}
        wrapper = wrap(workflow=processes[entry], directory_stage_in=processes[stage_in],
                       directory_stage_out=processes[stage_out])  # fmt: skip
    except Exception as exc:
        raise InputError(f"eoap-cwlwrap cannot wrap {entry!r}: {type(exc).__name__}: {exc}") from exc
    finally:
        for name in ("cwl_loader", "eoap_cwlwrap"):
            logger.enable(name)
    return save(wrapper, relative_uris=False)


def _wrapper_inputs(copied: list[dict[str, Any]], sources: list[dict[str, Any]], reference: Param) -> list[dict]:
    """One input per id, typed as in `sources` (the first process declaring it), without tool bindings."""
    declared: dict[str, Any] = {}
    for process in sources:
        for parameter in process["inputs"]:
            declared.setdefault(parameter["id"], parameter["type"])
    inputs: dict[str, dict[str, Any]] = {}
    for parameter in copied:
        parameter.pop("inputBinding", None)
        if parameter["type"] == URI:
            parameter.update(label=label(reference), doc=reference.doc)
        else:
            parameter["type"] = copy.deepcopy(declared[parameter["id"]])
        inputs.setdefault(parameter["id"], parameter)
    return list(inputs.values())


def wrap_package(package: Package, options: CwlOptions = CwlOptions()) -> dict[str, Any]:
    """The package's OGC application package wrapped by eoap-cwlwrap: entry `main`, URIs in and out."""
    if options.entry_id == WRAPPER:
        raise InputError(f"entry id {WRAPPER!r}: taken by eoap-cwlwrap's workflow; choose another for the package")
    app = export(package, replace(options, mode="app"))
    entry = app["$graph"][0]
    stage_in, stage_out = stage_in_tool(package, options), stage_out_tool(package, options)
    wrapper = _wrapper([*app["$graph"], stage_in, stage_out], entry["id"], stage_in["id"], stage_out["id"])
    wrapper["inputs"] = _wrapper_inputs(wrapper["inputs"], [stage_in, entry, stage_out], _reference(package))
    ids = {i["id"] for i in wrapper["inputs"]}
    if secrets := [i for i in secret_inputs(package, "full") if i in ids]:
        wrapper["hints"] = [{"class": "cwltool:Secrets", "secrets": secrets}]
    return document(package, [wrapper, stage_in, *app["$graph"], stage_out])


def wrapped_job_template(package: Package) -> dict[str, Any]:
    """Example inputs of the wrapped package's `main` (credentials left out: give them at run time).

    Those of `--mode full`, except the stage-in reference: each staged folder of the package is an eoap `URI`
    record holding it (`input: {value: <item URL, path or s3://>}`), which stage-in stages.
    """
    job = job_template(package, "full")
    reference = job.pop(_reference(package).name, None)
    staged = {p.name: {"value": reference} for p in package.compute.by_role(Role.STAGED) if reference is not None}
    return {**staged, **job}

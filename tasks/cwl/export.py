"""Export application packages as CWL (OGC EO Application Packages), built with cwl-utils' typed objects.

Everything comes from the package declaration: each step becomes a `CommandLineTool` running
`eoflows step <package> <step>` in the eoflows image, each user parameter an input with its type, default,
label and doc, each settings block the environment variables it is read from (credentials as
`cwltool:Secrets` inputs, never defaults), and the Dask step carries `calrissian:DaskGatewayRequirement`.

- ``app`` mode: the OGC application package: one entry `Workflow` and the compute tool; staged products in
  and out as `Directory` (what eoap-cwlwrap wraps with stage-in and stage-out: `tasks.cwl.wrap`).
- ``full`` mode: stage-in -> compute -> stage-out; item URLs in, the published catalog's URI out.

```python
from tasks.cwl.export import CwlOptions, export, to_yaml
print(to_yaml(export(S2_INDICES, CwlOptions(mode="full"))))
```
"""

import datetime as dt
import re
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import cwl_utils.parser.cwl_v1_2 as cwl
import yaml
from prefect.blocks.core import Block
from pydantic import SecretStr

from blocks import input_id
from eoflows import IMAGE, __version__
from eoflows.errors import InputError
from eoflows.package import Package, Param, Role, Step, settings_class

BASE = "file:///eoflows.cwl"
NAMESPACES = {
    "s": "https://schema.org/",
    "cwltool": "http://commonwl.org/cwltool#",
    "calrissian": "https://calrissian-cwl.github.io/schema#",
}
SCHEMAS = ["http://schema.org/version/9.0/schemaorg-current-http.rdf"]
REPOSITORY = "https://github.com/eoflows/eoflows"
#: Who answers for the packages (a team address; schema.org Person as the OGC metadata profile asks).
MAINTAINERS = {"@type": "s:Person", "s:givenName": "eoflows", "s:familyName": "maintainers",
               "s:email": "maintainers@eoflows.dev",
               "s:affiliation": {"@type": "s:Organization", "s:name": "eoflows", "s:url": REPOSITORY}}  # fmt: skip
MEMORY = re.compile(r"^\d+[A-Za-z]+$")  # what Calrissian parses: integer and unit, no space

Mode = Literal["app", "full"]
#: Where an extension requirement goes in a tool: its `requirements`, its `hints`, or nowhere.
RequirementPlace = Literal["requirements", "hints", "none"]


@dataclass(frozen=True)
class CwlOptions:
    """How to export: mode, image, entry workflow id, where the Dask and Docker requirements go."""

    mode: Mode = "app"
    image: str = IMAGE
    entry_id: str | None = None  # default: the package name (the newest OGC validator refuses `main`)
    dask: RequirementPlace = "requirements"  # Calrissian >= 0.19 reads it there; `hints` for stock cwltool
    docker: Literal["requirements", "hints"] = "requirements"  # hints: runnable with cwltool --no-container
    #: A folder a step writes into (`Destination`) may be a `Directory`, written in place (off for eoap-cwlwrap,
    #: whose stage-out takes one `Directory`: the results)
    folders_in_place: bool = True

    def params(self, step: Step) -> list[Param]:
        """The parameters of `step` as this export declares them."""
        return [p if self.folders_in_place else replace(p, writable=False) for p in step.params]


@dataclass(frozen=True)
class EnvInput:
    """A workflow/tool input passed to the tool as an environment variable."""

    id: str
    env: str
    label: str
    doc: str
    secret: bool


def env_inputs(p: Param) -> list[EnvInput]:
    """The environment inputs of a settings parameter (none for settings the platform provides, e.g. Dask)."""
    cls = settings_class(p.annotation)
    fields = getattr(cls, "model_fields", {})
    found = []
    for name, variables in getattr(cls, "environment", {}).items():
        info = fields[name]
        secret = name in getattr(cls, "credentials", ()) or SecretStr in (info.annotation, *get_args(info.annotation))
        found.append(EnvInput(input_id(variables), variables[0], variables[0], info.description or name, secret))
    return found


def settings_inputs(block: Block) -> dict[str, str]:
    """The values of the CWL inputs that carry `block`'s settings (those that are set), as `env_inputs` names them."""
    found = {}
    for name, variables in getattr(type(block), "environment", {}).items():
        value = getattr(block, name)
        value = value.get_secret_value() if isinstance(value, SecretStr) else value
        if value:
            found[input_id(variables)] = str(value)
    return found


def label(p: Param) -> str:
    """A short label for a parameter."""
    return p.name.replace("_", " ").capitalize()


def _base_type(annotation: Any, tool: bool, prefix: str, owner: str) -> Any:
    if get_origin(annotation) is Literal:  # named: cwltool fails on anonymous enums inside arrays
        schema = cwl.CommandInputEnumSchema if tool else cwl.InputEnumSchema
        return schema(symbols=list(get_args(annotation)), type_="enum", name=f"{owner}_values")
    if get_origin(annotation) is list:
        (item,) = get_args(annotation)
        # strings, not enums, in arrays: cwltool crashes on arrays of enums (cwltool issues #821, #1285);
        # the tool's own command line checks the values, and the input's doc lists them (see `doc`)
        items = "string" if get_origin(item) is Literal else _base_type(item, tool, prefix, owner)
        if tool:  # each item gets the option: --products a --products b
            binding = cwl.CommandLineBinding(prefix=prefix)
            return cwl.CommandInputArraySchema(items=items, type_="array", inputBinding=binding)
        return cwl.InputArraySchema(items=items, type_="array")
    simple = {str: "string", int: "int", float: "double", bool: "boolean", Path: "Directory"}
    if annotation in simple:
        return simple[annotation]
    raise TypeError(f"no CWL type for {annotation!r}")


def cwl_type(p: Param, tool: bool, owner: str) -> Any:
    """The CWL type of a parameter of process `owner` (an id URI); optional when it may be None."""
    prefix = f"--{p.name.replace('_', '-')}"
    args = get_args(p.annotation) if get_origin(p.annotation) in (Union, types.UnionType) else (p.annotation,)
    base = [a for a in args if a is not type(None)]
    if len(base) != 1:
        raise TypeError(f"parameter {p.name!r}: no CWL type for {p.annotation!r}")
    typ = _base_type(base[0], tool, prefix, f"{owner}/{p.name}")
    types_ = [typ, "Directory"] if p.writable else [typ]  # a writable folder: also a Directory, written in place
    types_ = ["null", *types_] if type(None) in args else types_
    return types_ if len(types_) > 1 else typ


def doc(p: Param) -> str:
    """The doc of a parameter; for a list of choices, also the choices (arrays are typed string[])."""
    (item,) = get_args(p.annotation) if get_origin(p.annotation) is list else (None,)
    return f"{p.doc} Values: {', '.join(get_args(item))}." if get_origin(item) is Literal else p.doc


def _default(p: Param) -> Any:
    return None if p.required or p.default is None else p.default


def _uri(*parts: str) -> str:
    return f"{BASE}#{'/'.join(parts)}"


#: A writable folder input's value as the step's command line takes it: text as given, a `Directory` by its path.
PATH_OF = '(function (d) { return d !== null && d.class === "Directory" ? d.path : d; })'


def _folders(names: list[str]) -> str:
    listed = ", ".join(f"inputs.{n}" for n in names)
    return f'[{listed}].filter(function (d) {{ return d !== null && d.class === "Directory"; }})'


def writable_listing(names: list[str]) -> str:
    """The `InitialWorkDirRequirement` listing: the inputs `names` that are `Directory`s, mounted writable."""
    return f'${{ return {_folders(names)}.map(function (d) {{ return {{"entry": d, "writable": true}}; }}); }}'


def printed_result(writable: list[str]) -> str:
    """The `outputEval` of a printed result: a path inside a writable `Directory` given back as the host's path.

    The step prints the path it wrote as the container sees it; its `location` says where that is for the caller.
    """
    if not writable:
        return "$(self[0].contents.trim())"
    return (
        "${ var printed = self[0].contents.trim(); var found = "
        f"{_folders(writable)}.filter(function (d) {{ return printed.indexOf(d.path + '/') === 0; }});\n"
        "  if (found.length === 0) { return printed; }\n"
        "  return decodeURIComponent(found[0].location.replace(/^file:\\/\\//, '')) + "
        "printed.slice(found[0].path.length); }"
    )


def tool_id(package: Package, step: Step) -> str:
    """The id of a step's CommandLineTool."""
    return f"{package.name}-{step.name}"


def returns_folder(step: Step) -> bool:
    """True when the step writes a folder (its output is a `Directory`), else it prints a value (a string)."""
    return bool(step.by_role(Role.OUTPUT))


def command_line_tool(package: Package, step: Step, options: CwlOptions) -> tuple[cwl.CommandLineTool, dict]:
    """The tool running one step, and the extension requirements and hints to add (not cwl-utils classes)."""
    tid = tool_id(package, step)
    inputs, env_defs, secrets, writable = [], [], [], []
    switches = False
    for p in options.params(step):
        binding = cwl.CommandLineBinding(prefix=f"--{p.name.replace('_', '-')}")
        if p.role is Role.STAGED:
            inputs.append(cwl.CommandInputParameter(id=_uri(tid, p.name), type_="Directory", label=label(p), doc=p.doc,
                                                    inputBinding=binding))  # fmt: skip
        elif p.role is Role.INPUT:
            is_list = get_origin(p.annotation) is list
            typ = cwl_type(p, tool=True, owner=_uri(tid))
            if p.writable:  # the folder's path as the container sees it
                binding = cwl.CommandLineBinding(prefix=binding.prefix, valueFrom=f"$({PATH_OF}(self))")
                writable.append(p.name)
            elif bool in (p.annotation, *get_args(p.annotation)):  # false must reach the step: --x or --no-x
                flag = binding.prefix[2:]
                binding = cwl.CommandLineBinding(valueFrom=f"$(self ? '--{flag}' : '--no-{flag}')")
                switches = True
            inputs.append(cwl.CommandInputParameter(
                id=_uri(tid, p.name), type_=typ, label=label(p), doc=doc(p), default=_default(p),
                inputBinding=cwl.CommandLineBinding() if is_list else binding))  # fmt: skip
        elif p.role is Role.SETTINGS:
            for e in env_inputs(p):
                inputs.append(cwl.CommandInputParameter(id=_uri(tid, e.id), type_=["null", "string"], label=e.label,
                                                        doc=e.doc))  # fmt: skip
                env_defs.append(cwl.EnvironmentDef(envName=e.env, envValue=f'$(inputs.{e.id} || "")'))
                secrets += [e.id] if e.secret else []
    if returns_folder(step):
        outputs = [cwl.CommandOutputParameter(id=_uri(tid, "output"), type_="Directory", label="Output folder",
                                              doc="The folder the step wrote (STAC catalog and assets).",
                                              outputBinding=cwl.CommandOutputBinding(glob="."))]  # fmt: skip
        arguments = [cwl.CommandLineBinding(prefix="--output", valueFrom="$(runtime.outdir)")]
        stdout = None
    else:
        outputs = [cwl.CommandOutputParameter(
            id=_uri(tid, "result"), type_="string", label="Result", doc="What the step printed (a URI).",
            outputBinding=cwl.CommandOutputBinding(glob="result.txt", loadContents=True,
                                                   outputEval=printed_result(writable)))]  # fmt: skip
        arguments, stdout = [], "result.txt"
    res = step.resources
    requirements: list[Any] = [
        cwl.ResourceRequirement(
            coresMin=res.cores[0], coresMax=res.cores[1], ramMin=res.ram_mb[0], ramMax=res.ram_mb[1]
        )
    ]
    hints: list[Any] = []
    docker = cwl.DockerRequirement(dockerPull=options.image)
    (requirements if options.docker == "requirements" else hints).append(docker)
    if step.network:
        requirements.append(cwl.NetworkAccess(networkAccess=True))
    if writable:
        requirements.append(cwl.InitialWorkDirRequirement(listing=writable_listing(writable)))
        requirements.append(cwl.InplaceUpdateRequirement(inplaceUpdate=True))
    if env_defs or writable or switches or not returns_folder(step):
        requirements.append(cwl.InlineJavascriptRequirement())
    if env_defs:
        requirements.append(cwl.EnvVarRequirement(envDef=env_defs))
    tool = cwl.CommandLineTool(
        id=_uri(tid), label=f"{package.name} {step.name}", doc=step.doc, inputs=inputs, outputs=outputs,
        baseCommand=["eoflows", "step", package.name, step.name], arguments=arguments or None, stdout=stdout,
        requirements=requirements, hints=hints or None,
    )  # fmt: skip
    extra: dict[str, list[dict]] = {"requirements": [], "hints": []}
    if secrets:
        extra["hints"].append({"class": "cwltool:Secrets", "secrets": secrets})
    if step.dask and options.dask != "none":
        extra[options.dask].append(dask_requirement(step))
    return tool, extra


def dask_requirement(step: Step) -> dict[str, Any]:
    """`calrissian:DaskGatewayRequirement` with exactly the five fields Calrissian reads."""
    sizes = step.dask
    assert sizes is not None
    for name, value in (("worker_memory", sizes.worker_memory), ("cluster_max_memory", sizes.cluster_max_memory)):
        if not MEMORY.match(value):
            raise InputError(f"step {step.name!r}: Dask {name} {value!r}: expected an integer and a unit, like '4G'")
    return {"class": "calrissian:DaskGatewayRequirement", "workerCores": sizes.worker_cores,
            "workerCoresLimit": sizes.worker_cores_limit, "workerMemory": sizes.worker_memory,
            "clusterMaxCores": sizes.cluster_max_cores, "clusterMaxMemory": sizes.cluster_max_memory}  # fmt: skip


def _steps(package: Package, mode: Mode) -> list[Step]:
    if mode == "full":
        return list(package.steps)
    return [package.compute]


def workflow(package: Package, options: CwlOptions) -> cwl.Workflow:
    """The entry workflow: in `app` mode the compute step alone, in `full` mode all steps chained."""
    wid = options.entry_id or package.name
    steps = _steps(package, options.mode)
    inputs: dict[str, cwl.WorkflowInputParameter] = {}
    wf_steps, previous = [], None
    for step in steps:
        tid = tool_id(package, step)
        step_in = []
        for p in options.params(step):
            if p.role is Role.STAGED and previous is not None:
                source = _uri(wid, previous.name, "output")
            elif p.role is Role.STAGED:
                inputs.setdefault(p.name, cwl.WorkflowInputParameter(
                    id=_uri(wid, p.name), type_="Directory", label=label(p), doc=p.doc))  # fmt: skip
                source = _uri(wid, p.name)
            elif p.role is Role.INPUT:
                typ = cwl_type(p, tool=False, owner=_uri(wid))
                inputs.setdefault(p.name, cwl.WorkflowInputParameter(
                    id=_uri(wid, p.name), type_=typ, label=label(p), doc=doc(p), default=_default(p)))  # fmt: skip
                source = _uri(wid, p.name)
            else:
                for e in env_inputs(p) if p.role is Role.SETTINGS else []:
                    inputs.setdefault(e.id, cwl.WorkflowInputParameter(
                        id=_uri(wid, e.id), type_=["null", "string"], label=e.label, doc=e.doc))  # fmt: skip
                    step_in.append(cwl.WorkflowStepInput(id=_uri(wid, step.name, e.id), source=_uri(wid, e.id)))
                continue
            step_in.append(cwl.WorkflowStepInput(id=_uri(wid, step.name, p.name), source=source))
        out = "output" if returns_folder(step) else "result"
        wf_steps.append(cwl.WorkflowStep(id=_uri(wid, step.name), label=step.name, doc=step.doc, in_=step_in,
                                         out=[_uri(wid, step.name, out)], run=_uri(tid)))  # fmt: skip
        previous = step
    assert previous is not None
    if returns_folder(previous):
        output = cwl.WorkflowOutputParameter(
            id=_uri(wid, "results"), type_="Directory", label="Results",
            doc="STAC catalog (catalog.json) of the results, with their assets.",
            outputSource=_uri(wid, previous.name, "output"))  # fmt: skip
    else:
        output = cwl.WorkflowOutputParameter(
            id=_uri(wid, "catalog_uri"), type_="string", label="Published catalog",
            doc="URI of the published catalog.json (s3://... or a path).",
            outputSource=_uri(wid, previous.name, "result"))  # fmt: skip
    return cwl.Workflow(id=_uri(wid), label=package.label, doc=package.description, inputs=list(inputs.values()),
                        outputs=[output], steps=wf_steps)  # fmt: skip


def secret_inputs(package: Package, mode: Mode) -> list[str]:
    """Ids of the inputs that carry credentials (for `cwltool:Secrets`)."""
    found = {e.id: e for step in _steps(package, mode) for p in step.by_role(Role.SETTINGS) for e in env_inputs(p)}
    return [e.id for e in found.values() if e.secret]


def metadata(package: Package) -> dict[str, Any]:
    """schema.org metadata of the package (OGC EOAP best practice, eoap-validator's metadata profile)."""
    return {
        "s:name": package.label,
        "s:description": package.description,
        "s:softwareVersion": package.version,
        "s:dateCreated": dt.date.today().isoformat(),
        "s:license": {"@type": "s:CreativeWork", "s:identifier": "Apache-2.0",
                      "s:url": "https://www.apache.org/licenses/LICENSE-2.0"},
        "s:codeRepository": REPOSITORY,
        "s:softwareHelp": {"@type": "s:CreativeWork", "s:name": "User manual", "s:url": f"{REPOSITORY}#readme"},
        "s:keywords": ["CWL", "Earth Observation", "Earth Observation application package", "Sentinel-2", "Prefect"],
        "s:publisher": {"@type": "s:Organization", "s:name": "eoflows developers", "s:url": REPOSITORY},
        "s:author": [{"@type": "s:Role", "s:roleName": "Maintainer", "s:author": MAINTAINERS}],
        "s:softwareRequirements": [f"eoflows {__version__}"],
    }  # fmt: skip


def strip_blank_names(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: strip_blank_names(v) for k, v in node.items()
                if not (k == "name" and isinstance(v, str) and v.startswith("_:"))}  # fmt: skip
    if isinstance(node, list):
        return [strip_blank_names(v) for v in node]
    return node


def _fix_references(doc: dict[str, Any], wid: str) -> dict[str, Any]:
    """Make cwl-utils' relative references what CWL expects in a $graph: sources local, `run` fragments."""
    for step in doc.get("steps", []):
        step["run"] = "#" + step["run"].lstrip("#")
        for item in step["in"]:
            item["source"] = item["source"].removeprefix(f"{wid}/")
    for output in doc.get("outputs", []):
        if "outputSource" in output:
            output["outputSource"] = output["outputSource"].removeprefix(f"{wid}/")
    return doc


def tool_document(package: Package, step: Step, options: CwlOptions) -> dict[str, Any]:
    """The `CommandLineTool` of one step as a plain dict, extension requirements and hints included."""
    tool, extra = command_line_tool(package, step, options)
    saved = strip_blank_names(cwl.save(tool, relative_uris=True, base_url=BASE))
    for key, items in extra.items():
        if items:
            saved[key] = [*saved.get(key, []), *items]
    return saved


def document(package: Package, graph: list[dict[str, Any]]) -> dict[str, Any]:
    """A CWL document of `package`: its processes as a `$graph`, with namespaces and schema.org metadata."""
    for node in graph:
        node.pop("cwlVersion", None)
    return {"cwlVersion": "v1.2", "$namespaces": dict(NAMESPACES), "$schemas": list(SCHEMAS), **metadata(package),
            "$graph": graph}  # fmt: skip


def export(package: Package, options: CwlOptions = CwlOptions()) -> dict[str, Any]:
    """The CWL document of `package` as a plain dict (see `to_yaml`)."""
    wid = options.entry_id or package.name
    entry = _fix_references(strip_blank_names(cwl.save(workflow(package, options), relative_uris=True,
                                                         base_url=BASE)), wid)  # fmt: skip
    if secrets := secret_inputs(package, options.mode):
        entry["hints"] = [{"class": "cwltool:Secrets", "secrets": secrets}]
    tools = [tool_document(package, step, options) for step in _steps(package, options.mode)]
    return document(package, [entry, *tools])


def to_yaml(document: dict[str, Any]) -> str:
    """A CWL document as YAML."""
    return yaml.safe_dump(document, sort_keys=False, width=120, allow_unicode=True)


def job_template(package: Package, mode: Mode = "full") -> dict[str, Any]:
    """Example inputs for a run of the package's CWL (credentials left out: give them at run time)."""
    steps = _steps(package, mode)
    job: dict[str, Any] = {}
    for step in steps:
        for p in step.params:
            if p.role is Role.STAGED and step is steps[0]:
                job[p.name] = {"class": "Directory", "path": "staged/"}
            elif p.role is Role.INPUT and p.name not in job:
                value = package.examples.get(p.name, _default(p))
                if value is not None:
                    job[p.name] = value
    return job

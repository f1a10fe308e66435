"""Notebook steps: a Jupyter notebook with a papermill `parameters` cell is a step of a package, unchanged.

`notebook_step(name, path)` reads the cell tagged ``parameters`` (with `ast`: nothing of it is run) and makes a
step whose user inputs are the cell's variables, typed from an annotation (``width: int = 100``) or a
``# type: int`` comment, else from the default read with `ast.literal_eval`; the trailing comment is the help.
A variable whose type cannot be known is an error naming it and saying how to annotate it. Those inputs become
flow parameters, CLI options and CWL inputs like a Python step's.

eoflows fills three names when the cell declares them: `input_dir` (the staged folder the previous step wrote),
`output_dir` (the folder the notebook writes: its STAC items and catalog.json, as any step's output) and
`dask_scheduler` (for a step declared with Dask: the address of the cluster to compute on). The notebook runs
with papermill in this environment's ``python3`` kernel, the values given as typed Python values, its working
folder `output_dir`. The executed notebook is kept as ``STEP.ipynb`` beside each output item, with its HTML
rendering, both assets of the item (the parameters and papermill's timings on the notebook's asset). A failing
cell stops the step with one line naming the notebook, the cell, the exception and where the executed notebook
is kept (in a flow run, whose work folder goes with it, a folder of its own); its traceback goes to the log and
to an artifact.
"""

import ast
import inspect
import io
import json
import os
import re
import shutil
import tempfile
import tokenize
import types
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from eoflows.errors import EoflowsError, InputError
from eoflows.package import DaskSizes, OutputDir, Param, Resources, Role, StagedDir, Step, with_signature
from eoflows.settings import DaskSettings
from tasks.data.stac_items import add_asset
from tasks.data.staging import staged_items
from tasks.reporting import flow_run_id, logger, report_markdown

INPUT_DIR, OUTPUT_DIR, SCHEDULER = "input_dir", "output_dir", "dask_scheduler"
NOTEBOOK = "application/x-ipynb+json"
#: The role of the executed notebook's assets: they record when and where it ran, so no two runs' bytes are equal.
EXECUTED = "executed-notebook"
SIMPLE = {"str": str, "int": int, "float": float, "bool": bool}
EMPTY = inspect.Parameter.empty
HOW = "annotate it (`name: int = 1`) or add a `# type: int` comment (str, int, float, bool, list[...], Literal[...])"


class NotebookError(EoflowsError):
    """A notebook step's notebook failed, or does not keep the step's contract."""


@dataclass(frozen=True)
class NotebookParam:
    """One variable of a notebook's parameters cell."""

    name: str
    annotation: Any
    default: Any
    help: str


def _source(cell: dict[str, Any]) -> str:
    """A cell's source as one text (nbformat stores it as a string or a list of lines)."""
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def parameters_source(notebook: dict[str, Any], where: str) -> str:
    """The source of the code cell tagged ``parameters`` of a notebook (nbformat 4, as JSON)."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return _source(cell)
    raise NotebookError(f"{where}: no code cell tagged 'parameters' (tag the cell that sets its parameters)")


def _type_of(node: ast.expr, name: str, where: str) -> Any:
    """The Python type an annotation's AST spells (only the types flows, the CLI and CWL take)."""
    if isinstance(node, ast.Name) and node.id in SIMPLE:
        return SIMPLE[node.id]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        nones = [s for s in sides if isinstance(s, ast.Constant) and s.value is None]
        if len(nones) == 1:
            other = next(s for s in sides if s is not nones[0])
            return _type_of(other, name, where) | None
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        inner = node.slice
        if node.value.id == "list":
            return list[_type_of(inner, name, where)]
        if node.value.id == "Optional":
            return _type_of(inner, name, where) | None
        if node.value.id == "Literal":
            values = inner.elts if isinstance(inner, ast.Tuple) else [inner]
            if all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
                return Literal[tuple(v.value for v in values)]  # type: ignore[misc]
    raise NotebookError(f"{where}: parameter {name!r} has the type {ast.unparse(node)!r}, not one eoflows takes; {HOW}")


def _inferred(value: Any) -> Any:
    """The type of a literal default, or None when it says nothing sure (None, an empty or mixed list)."""
    if type(value) in SIMPLE.values():
        return type(value)
    if isinstance(value, list) and value and len({type(v) for v in value}) == 1 and type(value[0]) in SIMPLE.values():
        return list[type(value[0])]  # type: ignore[misc]
    return None


def _fits(value: Any, annotation: Any) -> bool:
    """Whether a default is a value of `annotation`."""
    args = get_args(annotation)
    if get_origin(annotation) in (Union, types.UnionType):
        return any(_fits(value, a) for a in args)
    if get_origin(annotation) is Literal:
        return value in args
    if get_origin(annotation) is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return type(value) is annotation


def declared_parameters(source: str, where: str) -> list[NotebookParam]:
    """The variables the parameters cell `source` assigns, typed, with their literal defaults and help."""
    try:
        tree = ast.parse(source)
        comments = {t.start[0]: t.string for t in tokenize.generate_tokens(io.StringIO(source).readline)
                    if t.type == tokenize.COMMENT}  # fmt: skip
    except (SyntaxError, tokenize.TokenError) as exc:
        raise NotebookError(f"{where}: the parameters cell is not valid Python ({exc})") from exc
    found = []
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, annotation, value = node.target.id, node.annotation, node.value
        elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation, value = node.targets[0].id, None, node.value
        else:
            continue  # imports and other statements of the cell are not parameters
        comment = comments.get(node.end_lineno or node.lineno, "")
        typed = re.match(r"#\s*type:\s*(.+)$", comment)
        if typed and annotation is None:
            annotation = ast.parse(typed.group(1).strip(), mode="eval").body
        help_text = "" if typed else comment.lstrip("#").strip()
        if name in (INPUT_DIR, OUTPUT_DIR, SCHEDULER):
            found.append(NotebookParam(name, str, None, help_text))
            continue
        try:
            default = ast.literal_eval(value)
        except ValueError as exc:
            raise NotebookError(f"{where}: parameter {name!r} has the default {ast.unparse(value)!r}, not a literal "
                                "value (a number, text, True/False, None or a list of them)") from exc  # fmt: skip
        kind = _type_of(annotation, name, where) if annotation is not None else _inferred(default)
        if kind is None:
            raise NotebookError(f"{where}: parameter {name!r} has no type eoflows can know from its default "
                                f"{ast.unparse(value)}; {HOW}")  # fmt: skip
        if not _fits(default, kind):
            raise NotebookError(f"{where}: parameter {name!r} has the default {default!r}, not a value of its type")
        found.append(NotebookParam(name, kind, float(default) if kind is float else default, help_text))
    return found


def notebook_step(
    name: str,
    path: Path,
    resources: Resources | None = None,
    dask: DaskSizes | None = None,
    network: bool = False,
    required: tuple[str, ...] = (),
) -> Step:
    """A step that runs the notebook at `path` (see the module docstring); `required` inputs have no default."""
    where = f"notebook {path.name!r}"
    try:
        notebook = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise NotebookError(f"{where}: cannot be read as a notebook ({exc})") from exc
    declared = {p.name: p for p in declared_parameters(parameters_source(notebook, where), where)}
    if OUTPUT_DIR not in declared:
        raise NotebookError(f"{where}: its parameters cell sets no {OUTPUT_DIR} (the folder it writes its results "
                            "and their catalog.json into: eoflows fills it)")  # fmt: skip
    if SCHEDULER in declared and dask is None:
        raise NotebookError(f"{where}: it takes {SCHEDULER}, but the step asks for no Dask cluster (give dask=)")
    unknown = set(required) - set(declared)
    if unknown:
        raise NotebookError(f"{where}: required inputs {sorted(unknown)} are not parameters of the notebook")
    summary = _title(notebook) or f"Run the notebook {path.name}."

    def run(**values: Any) -> Path:
        output: Path = values.pop("output")
        output.mkdir(parents=True, exist_ok=True)
        wiring = {OUTPUT_DIR: str(output)}
        if "input" in values:
            wiring[INPUT_DIR] = str(values.pop("input"))
        settings: DaskSettings | None = values.pop("dask", None)
        with _scheduler(settings) if SCHEDULER in declared else nullcontext() as address:
            execute(path, name, output, values, {**wiring, **({SCHEDULER: address} if address else {})})
        return output

    return Step(name, with_signature(run, f"{name}-notebook", _step_params(declared, required), summary, Path),
                resources or Resources(), dask=dask, network=network)  # fmt: skip


def _step_params(declared: dict[str, NotebookParam], required: tuple[str, ...]) -> list[Param]:
    """The step function's parameters: the folders the cell asks for, its user inputs, the Dask settings."""
    params = []
    if INPUT_DIR in declared:
        params.append(Param("input", StagedDir, EMPTY, "Staged folder (the notebook's input_dir).", Role.STAGED))
    params.append(Param("output", OutputDir, EMPTY, "Folder the notebook writes (its output_dir).", Role.OUTPUT))
    for p in declared.values():
        if p.name not in (INPUT_DIR, OUTPUT_DIR, SCHEDULER):
            default = EMPTY if p.name in required else p.default
            params.append(Param(p.name, p.annotation, default, p.help or p.name.replace("_", " "), Role.INPUT))
    if SCHEDULER in declared:
        params.append(Param("dask", DaskSettings | None, None, "", Role.SETTINGS))
    return params


def _title(notebook: dict[str, Any]) -> str:
    """The first line of the notebook's first markdown cell, without its heading marks."""
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "markdown":
            first = next((line for line in _source(cell).splitlines() if line.strip()), "")
            return first.lstrip("#").strip()
    return ""


@contextmanager
def _scheduler(settings: DaskSettings | None) -> Iterator[str]:
    """The address of the Dask scheduler the notebook computes on: the one configured, else a local cluster's.

    The local cluster (threads of this process, one more than cores) listens on 127.0.0.1 for the kernel.
    """
    if settings is not None and settings.scheduler_address:
        yield settings.scheduler_address
        return
    if settings is not None and settings.enabled:
        raise InputError("dask: a Dask Gateway cluster cannot be handed to a notebook (it needs the gateway's TLS "
                         "credentials); give a running cluster's scheduler_address instead")  # fmt: skip
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=(os.cpu_count() or 1) + 1, processes=False,
                      protocol="tcp://", host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster:  # fmt: skip
        logger().info("Local Dask cluster for the notebook at %s", cluster.scheduler_address)
        yield cluster.scheduler_address


def execute(path: Path, step: str, output: Path, values: dict[str, Any], wiring: dict[str, str]) -> None:
    """Run the notebook with papermill into OUTPUT/STEP.ipynb, then keep it (and its HTML) with each output item."""
    import papermill

    executed = output / f"{step}.ipynb"
    log = logger()
    given = ", ".join(f"{k}={v!r}" for k, v in values.items()) or "its defaults"
    log.info("Running notebook %s with %s", path.name, given)
    try:
        with _kernel_home():
            papermill.execute_notebook(str(path), str(executed), parameters={**values, **wiring},
                                       kernel_name="python3", progress_bar=False, cwd=str(output))  # fmt: skip
    except papermill.PapermillExecutionError as exc:
        trace, value, kept = _plain("\n".join(exc.traceback)), " ".join(str(exc.evalue).split()), _kept(executed)
        log.error("Notebook %s failed in cell %d:\n%s", path.name, exc.cell_index, trace)
        report_markdown(f"notebook-{step}-failed", f"Failed notebook of the {step} step",
                        f"`{path.name}`, cell {exc.cell_index}: **{exc.ename}: {value}**\n\nThe executed notebook: "
                        f"`{kept}`\n\n```\n{trace[-6000:]}\n```")  # fmt: skip
        raise NotebookError(f"notebook {path.name!r}: cell {exc.cell_index} raised {exc.ename}: {value} (the "
                            f"executed notebook: {kept})") from None  # fmt: skip
    keep(executed, output, step, values, path.name)


@contextmanager
def _kernel_home() -> Iterator[None]:
    """Jupyter's and IPython's own files (connection file and keys, history) in a private temporary folder.

    Never in HOME, which may be unwritable (the image) or the step's output (CWL); removed after the run.
    """
    names = ("JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "IPYTHONDIR", "MPLCONFIGDIR")
    before = {name: os.environ.get(name) for name in names}
    with tempfile.TemporaryDirectory(prefix="eoflows-kernel-") as home:
        os.environ.update({name: str(Path(home, name.lower())) for name in names})
        try:
            yield
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _kept(executed: Path) -> Path:
    """Where a failed executed notebook stays: where it is (the step's output folder), but in a flow run.

    A flow run's work folder goes with it: there, a copy in TMPDIR/eoflows-notebooks/FLOW_RUN_ID/ is kept.
    """
    run = flow_run_id()
    if run is None:
        return executed
    kept = Path(tempfile.gettempdir(), "eoflows-notebooks", str(run), executed.name)
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(executed, kept)
    return kept


def _plain(text: str) -> str:
    """`text` without terminal colour codes (IPython colours its tracebacks)."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def keep(executed: Path, output: Path, step: str, values: dict[str, Any], name: str) -> None:
    """The executed notebook and its HTML, moved beside each item of the output catalog, as assets of the item."""
    if not (output / "catalog.json").is_file():
        raise NotebookError(f"notebook {name!r}: ran, but wrote no catalog.json into output_dir (a step's output is "
                            f"a STAC catalog of its results; the executed notebook: {executed})")  # fmt: skip
    import nbformat
    from nbconvert import HTMLExporter

    node = nbformat.read(str(executed), as_version=4)
    html, _ = HTMLExporter().from_notebook_node(node)
    timings = {k: node.metadata.get("papermill", {}).get(k) for k in ("start_time", "end_time", "duration")}
    for item in staged_items(output):
        folder = Path(item.get_self_href()).parent
        notebook, page = folder / f"{step}.ipynb", folder / f"{step}.html"
        shutil.copyfile(executed, notebook)
        page.write_text(html)
        asset = add_asset(item, f"{step}-notebook", notebook, f"Executed notebook {name} ({step} step)", NOTEBOOK,
                          ["metadata", EXECUTED])  # fmt: skip
        asset.extra_fields.update({"notebook:parameters": values, **{f"notebook:{k}": v for k, v in timings.items()}})
        add_asset(
            item,
            f"{step}-notebook-html",
            page,
            f"Executed notebook {name}, as HTML",
            "text/html",
            ["overview", EXECUTED],
        )
        item.save_object(include_self_link=False)
        report_markdown(f"notebook-{step}", f"Executed notebook of the {step} step",
                        f"`{name}` ran in {timings['duration'] or 0:.1f} s (papermill). It goes with item `{item.id}` "
                        f"as assets `{step}-notebook` ({notebook.name}) and `{step}-notebook-html` ({page.name}): "
                        "the run's products artifact links them where they are published.")  # fmt: skip
    executed.unlink()

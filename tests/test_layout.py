"""The import rules of the layout (README, "Layout"), read from the code's own import statements.

deployments -> flows -> tasks/<package> -> tasks/windows, tasks/cwl, tasks/remote -> tasks/data -> tasks/science
Every layer may use eoflows' core (errors, package declarations, settings, runtime) and blocks; nothing goes the
other way. The core reads no blocks, tasks or Prefect.
"""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eoflows", "flows", "tasks", "blocks", "deployments")
STEP_MODULES = ("tasks.s2_indices", "tasks.burned_area", "tasks.downsample", "tasks.downsample_notebook")
CORE = ("eoflows.settings", "eoflows.runtime")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether at module level) for every import statement of a file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in top) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(f"{node.module}.{alias.name}", id(node) in top) for alias in node.names]
    return found


def code() -> dict[str, list[tuple[str, bool]]]:
    """Every module of the project's packages and what it imports."""
    return {module_name(p): imports(p) for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))}


def under(name: str, *prefixes: str) -> bool:
    return any(name == p or name.startswith(f"{p}.") for p in prefixes)


def rules(module: str) -> list[tuple[str, ...]]:
    """Prefixes `module` must not import (project modules and third-party families)."""
    forbidden: list[tuple[str, ...]] = []
    if under(module, "tasks", "flows", "blocks", "eoflows.package", "eoflows.errors"):
        forbidden.append(("deployments", "eoflows.cli", "eoflows.demo"))
    if under(module, "tasks", "blocks", "eoflows.package", "eoflows.errors"):
        forbidden.append(("flows",))
    if under(module, "blocks", "eoflows.package", "eoflows.errors", "eoflows.samples"):
        forbidden.append(("tasks.windows", "tasks.cwl", "tasks.remote", *STEP_MODULES))
    if under(module, "blocks", "eoflows.package", "eoflows.errors"):
        forbidden.append(("tasks",))
    if under(module, "eoflows.package", "eoflows.errors"):
        forbidden.append(("blocks",))
    if under(module, *CORE):  # what steps are declared with and read, without Prefect
        forbidden.append(("blocks", "tasks", "flows", "deployments", "eoflows.cli", "prefect"))
    if under(module, "tasks.data", "tasks.cwl", "tasks.remote", "tasks.reporting", "tasks.windows", "tasks.notebook"):
        forbidden.append(STEP_MODULES)
    if under(module, "tasks.data"):
        forbidden.append(("tasks.windows", "tasks.cwl", "tasks.remote"))
    return forbidden


def broken(modules: dict[str, list[tuple[str, bool]]]) -> list[str]:
    """Every import against the rules, as 'module imports name (the rule)'."""
    found = []
    for module, names in modules.items():
        for name, top_level in names:
            for forbidden in rules(module):
                if under(name, *forbidden):
                    found.append(f"{module} imports {name} (not allowed: {', '.join(forbidden)})")
            if under(name, "eoflows.local") and not under(module, "eoflows.local", "eoflows.demo", "eoflows.testing"):
                found.append(f"{module} imports {name} (local servers are for the demo and the tests)")
            if under(name, "eoflows.local") and module == "eoflows.demo" and top_level:
                found.append(f"{module} imports {name} at module level (the demo imports its servers lazily)")
            if under(module, "tasks.science"):
                root = name.split(".")[0]
                if root not in sys.stdlib_module_names and root != "numpy" and not under(name, "tasks.science"):
                    found.append(f"{module} imports {name} (science is NumPy only: no Prefect, no I/O)")
    return found


def test_the_code_keeps_the_layering() -> None:
    modules = code()
    assert {"tasks.science.indices", "tasks.data.staging", "tasks.windows", "flows.build"} <= set(modules)
    problems = broken(modules)
    assert not problems, "imports against the layering rules (README, Layout):\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "name", "message"),
    [
        ("tasks.science.indices", "prefect.task", "science is NumPy only"),
        ("tasks.science.burn", "zarr.open", "science is NumPy only"),
        ("tasks.data.staging", "tasks.windows.run_windows", "not allowed"),
        ("tasks.s2_indices", "flows.build.package_flow", "not allowed: flows"),
        ("flows.run_cwl", "deployments.kubernetes.manifests", "not allowed: deployments"),
        ("blocks.s3", "tasks.data.storage.join", "not allowed: tasks"),
        ("flows.build", "eoflows.local.s3.local_s3", "local servers"),
        ("eoflows.settings.s3", "blocks.s3.S3Block", "not allowed: blocks"),
        ("eoflows.settings", "prefect.blocks.core.Block", "not allowed: blocks, tasks"),
        ("eoflows.runtime", "tasks.windows.Alone", "not allowed: blocks, tasks"),
    ],
)
def test_an_import_against_the_rules_is_reported(module: str, name: str, message: str) -> None:
    modules = code()
    modules[module] = [*modules[module], (name, True)]
    (problem,) = broken(modules)
    assert problem.startswith(f"{module} imports {name}") and message in problem


#: Methods that change a list, dict or set in place.
MUTATORS = {"append", "extend", "insert", "remove", "pop", "popitem", "clear", "update", "setdefault", "add",
            "discard", "sort", "reverse"}  # fmt: skip


def module_state(path: Path) -> list[str]:
    """Where a module keeps state of its own after import: a `ContextVar`, a `global` statement, or a function
    that assigns into, deletes from or mutates a module-level variable."""
    tree = ast.parse(path.read_text(), str(path))
    assigned = [node.targets if isinstance(node, ast.Assign) else [node.target]
                for node in tree.body if isinstance(node, ast.Assign | ast.AnnAssign)]  # fmt: skip
    names = {t.id for targets in assigned for t in targets if isinstance(t, ast.Name)}
    found = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Name | ast.Attribute) and "ContextVar" in (
            getattr(node, "id", None),
            getattr(node, "attr", None),
        ):
            found.append(f"{where} a ContextVar")
        elif isinstance(node, ast.Global):
            found.append(f"{where} global {', '.join(node.names)}")
    for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)):
        for node in ast.walk(function):
            targets = node.targets if isinstance(node, ast.Assign | ast.Delete) else []
            targets += [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []
            changed = [t.value for t in targets if isinstance(t, ast.Subscript | ast.Attribute)]
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
                changed.append(node.func.value)
            for value in changed:
                if isinstance(value, ast.Name) and value.id in names:
                    found.append(f"{path.name}:{node.lineno} changes module-level {value.id}")
    return found


def test_steps_and_flows_keep_no_state_of_their_own_between_calls() -> None:
    """State travels as arguments (a step's runtime) or in Prefect's own run context (README, Layout)."""
    paths = [p for package in ("tasks", "flows", "eoflows") for p in sorted((ROOT / package).rglob("*.py"))]
    found = [f"{path.parent.relative_to(ROOT)}/{problem}" for path in paths for problem in module_state(path)]
    assert not found, "module state:\n" + "\n".join(found)


def test_module_state_is_found(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("from contextvars import ContextVar\nX = ContextVar('x')\n_seen = {}\n_n = 0\n\n"
                      "def f(k):\n    global _n\n    _seen[k] = 1\n    _seen.pop(k)\n    local = {}\n"
                      "    local[k] = 1\n")  # fmt: skip
    found = sorted(problem.split(" ", 1)[1] for problem in module_state(module))
    assert found == ["a ContextVar", "changes module-level _seen", "changes module-level _seen", "global _n"]

"""`eoflows new package NAME`: a pip-installable application package to start from (the files of `template/`).

In the template, ``__NAME__`` is the package's name (its commands, flow and CWL ids), ``__MODULE__`` its Python
module and ``__TITLE__`` its label; a file or folder named with them is renamed too. Around a notebook, the files
of `notebook/` replace the template's, the Python science goes, and the notebook becomes the compute step
(``__MODULE__/compute.ipynb``), checked first: a compute step reads `input_dir` and writes `output_dir`.
"""

import shutil
from pathlib import Path

from eoflows.errors import InputError
from eoflows.package import Role

TEMPLATE = Path(__file__).with_name("template")
AROUND_NOTEBOOK = Path(__file__).with_name("notebook")
PYTHON_SCIENCE = ("__MODULE__/science.py",)  # what a package around a notebook has no use for


def new_package(name: str, dest: Path, notebook: Path | None = None) -> Path:
    """Write the package `name` into the new folder `dest`, around `notebook` if given; return `dest`."""
    from eoflows.discovery import NAME, RESERVED

    if not NAME.fullmatch(name):
        raise InputError(f"package name {name!r}: use lower-case words joined by '-' (such as 'my-index')")
    if name in RESERVED:
        raise InputError(f"package name {name!r}: taken by eoflows' {name} flow")
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"folder {str(dest)!r}: exists and is not empty; give a new folder")
    if notebook is not None:
        _check_notebook(notebook)
    files = _files(TEMPLATE)
    if notebook is not None:
        files = {k: v for k, v in files.items() if k not in PYTHON_SCIENCE} | _files(AROUND_NOTEBOOK)
    words = {"__NAME__": name, "__MODULE__": name.replace("-", "_"), "__TITLE__": name.replace("-", " ").capitalize()}
    for relative, source in sorted(files.items()):
        text = source.read_text()
        for word, value in words.items():
            relative, text = relative.replace(word, value), text.replace(word, value)
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if notebook is not None:
        shutil.copyfile(notebook, dest / words["__MODULE__"] / "compute.ipynb")
    return dest


def _files(root: Path) -> dict[str, Path]:
    """The files under `root` by relative path."""
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def _check_notebook(notebook: Path) -> None:
    """Refuse a notebook that cannot be a compute step, in one line (its parameters, input_dir, output_dir)."""
    from tasks.notebook import INPUT_DIR, notebook_step

    step = notebook_step("compute", notebook)  # a NotebookError names what is wrong with its parameters cell
    if not step.by_role(Role.STAGED):
        raise InputError(f"notebook {notebook.name!r}: its parameters cell sets no {INPUT_DIR} (a compute step reads "
                         "the staged folder there: eoflows fills it)")  # fmt: skip

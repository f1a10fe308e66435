"""A step command's Prefect home: a private temporary folder, so that a step writes only the output it owns.

Importing Prefect creates its home folder (`PREFECT_HOME`, by default `~/.prefect`: `prefect.context` makes it
when the settings are first read). CWL runners start each tool (`eoflows step PACKAGE STEP`) with `HOME` set
to the tool's output folder (cwltool, and Calrissian: `HOME` = working folder = output folder), so every
output `Directory` would hold an empty `.prefect/`. A step command runs outside any Prefect run and needs
nothing of a Prefect home (no profile, API, results or cache), so, before Prefect is first imported, it gets
`PREFECT_HOME` pointed at a private temporary folder (under `TMPDIR`, which the runner gives each tool),
removed when the command ends; the processes it starts (Dask workers) inherit it. A `PREFECT_HOME` set by
the user is kept. Every other command (`eoflows run`, `deploy`, `cwl ...`) uses the user's Prefect home.

`eoflows/__init__.py` calls `isolate_step_command()`: the `eoflows` console script imports the package
before `eoflows.cli` imports Prefect.
"""

import atexit
import os
import shutil
import sys
import tempfile
from collections.abc import MutableMapping, Sequence
from pathlib import Path


def is_step_command(argv: Sequence[str], orig_argv: Sequence[str] = ()) -> bool:
    """True for `eoflows step ...`: the console script, or `python -m eoflows.cli step ...`."""
    if len(argv) > 1 and Path(argv[0]).name == "eoflows" and argv[1] == "step":
        return True
    orig = list(orig_argv)
    return any(orig[i : i + 3] == ["-m", "eoflows.cli", "step"] for i in range(len(orig)))


def isolate_step_command(
    argv: Sequence[str] | None = None,
    environ: MutableMapping[str, str] | None = None,
    imported: Sequence[str] | None = None,
) -> str | None:
    """For a step command, point `PREFECT_HOME` at a private temporary folder; return it (else None).

    Nothing changes when Prefect is already imported (too late), when `PREFECT_HOME` is set, or for any
    other command.
    """
    environ = os.environ if environ is None else environ
    imported = sys.modules if imported is None else imported
    argv = sys.argv if argv is None else argv
    if "prefect" in imported or "PREFECT_HOME" in environ:
        return None
    if not is_step_command(argv, getattr(sys, "orig_argv", ())):
        return None
    home = tempfile.mkdtemp(prefix="eoflows-prefect-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    environ["PREFECT_HOME"] = home
    return home

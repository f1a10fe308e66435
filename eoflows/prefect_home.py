"""A step command's Prefect home: a private temporary folder, so that a step writes only the output it owns.

Importing Prefect creates its home folder (`PREFECT_HOME`, by default `~/.prefect`: `prefect.context` makes it
when the settings are first read). CWL runners start each tool (`eoflows step PACKAGE STEP`) with `HOME` set
to the tool's output folder (cwltool, and Calrissian: `HOME` = working folder = output folder), so every
output `Directory` would hold an empty `.prefect/`. A step command runs outside any Prefect run and needs
nothing of a Prefect home (no profile, API, results or cache), so, before Prefect is first imported, it gets
`PREFECT_HOME` pointed at a private temporary folder (under `TMPDIR`, which the runner gives each tool),
removed when the command ends (or, if it is killed, by the next run's `work_folder`); the processes it starts
(Dask workers) inherit it. A `PREFECT_HOME` set by
the user is kept. Every other command (`eoflows run`, `deploy`, `cwl ...`) uses the user's Prefect home.

Clusters that run steps as an arbitrary uid (OpenShift-style, some Calrissian set-ups) may leave `HOME` unset
with no passwd entry for the uid: Prefect cannot even be imported then (it resolves `Path.home()` for its
defaults), so a step without a home gets that same private folder as `HOME`.

`eoflows.cli.main` calls `private_prefect_home()` for `step` commands before it imports anything of Prefect
(the CLI imports Prefect only with the packages).
"""

import atexit
import os
import sys
from collections.abc import MutableMapping, Sequence
from contextlib import ExitStack

from tasks.data.work_folders import locked_folder


def private_prefect_home(
    environ: MutableMapping[str, str] | None = None, imported: Sequence[str] | None = None
) -> str | None:
    """Point `PREFECT_HOME` at a private temporary folder, removed at exit; return it (else None).

    Nothing changes when Prefect is already imported (too late) or when `PREFECT_HOME` is set (the user's).
    """
    environ = os.environ if environ is None else environ
    imported = sys.modules if imported is None else imported
    if "prefect" in imported or "PREFECT_HOME" in environ:
        return None
    held = ExitStack()  # locked for the process's life: if it is killed, the next run removes it
    home = str(held.enter_context(locked_folder("prefect-home", owner="a step's Prefect home")))
    atexit.register(held.close)
    environ["PREFECT_HOME"] = home
    if not environ.get("HOME") and not _passwd_home():
        environ["HOME"] = home
    return home


def _passwd_home() -> str | None:
    """The home folder of this uid in the passwd database (None for an arbitrary uid without an entry)."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_dir or None
    except KeyError:
        return None

"""Identifiers are data, never paths: item ids and run ids become file names only through here.

An item id (from a STAC item, a user, a STAC API search) is made a file name by `file_name`: itself when it is
a plain name, else a readable version with a short digest of the id, so distinct ids give distinct names and
nothing in an id (a slash, `..`, a leading `/`) can point a path elsewhere. The id itself stays in the JSON.
A run id names one folder of a destination: `check_run_id` refuses anything but one plain path segment.
Every path a step writes is checked with `inside` to resolve under its root.
"""

import hashlib
import re
import unicodedata
from pathlib import Path

from eoflows.errors import InputError

PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}")  # a name that is safe as it is, on any file system
RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,200}")


def file_name(identifier: str) -> str:
    """A file name standing for `identifier` (see the module docstring)."""
    if PLAIN.fullmatch(identifier):
        return identifier
    ascii_only = unicodedata.normalize("NFKD", identifier).encode("ascii", "ignore").decode()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_only).strip(".-")[:80] or "id"
    return f"{readable}-{hashlib.sha256(identifier.encode()).hexdigest()[:8]}"


def check_run_id(run_id: str) -> str:
    """`run_id`, checked to be one path segment: letters, digits, '.', '_' and '-', not '.' or '..'."""
    if not RUN_ID.fullmatch(run_id) or run_id in (".", ".."):
        raise InputError(
            f"run_id {run_id!r}: expected one path segment of letters, digits, '.', '_' and '-' (not '.' or '..')"
        )
    return run_id


def inside(root: Path, path: Path, what: str) -> Path:
    """`path`, checked to resolve under the folder `root` (`what` names it in the error)."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise InputError(f"{what} {str(path)!r}: resolves outside {str(root)!r}; refused")
    return path

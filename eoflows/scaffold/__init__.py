"""`eoflows new package NAME`: a pip-installable application package to start from (the files of `template/`).

In the template, ``__NAME__`` is the package's name (its commands, flow and CWL ids), ``__MODULE__`` its Python
module and ``__TITLE__`` its label; a file or folder named with them is renamed too.
"""

from pathlib import Path

from eoflows.errors import InputError

TEMPLATE = Path(__file__).with_name("template")


def new_package(name: str, dest: Path) -> Path:
    """Write the package `name` into the new folder `dest`; return `dest`."""
    from eoflows.discovery import NAME, RESERVED

    if not NAME.fullmatch(name):
        raise InputError(f"package name {name!r}: use lower-case words joined by '-' (such as 'my-index')")
    if name in RESERVED:
        raise InputError(f"package name {name!r}: taken by eoflows' {name} flow")
    if dest.exists() and any(dest.iterdir()):
        raise InputError(f"folder {str(dest)!r}: exists and is not empty; give a new folder")
    words = {"__NAME__": name, "__MODULE__": name.replace("-", "_"), "__TITLE__": name.replace("-", " ").capitalize()}
    for source in sorted(TEMPLATE.rglob("*")):
        if source.is_dir() or "__pycache__" in source.parts:
            continue
        relative = source.relative_to(TEMPLATE).as_posix()
        text = source.read_text()
        for word, value in words.items():
            relative, text = relative.replace(word, value), text.replace(word, value)
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return dest

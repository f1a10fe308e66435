"""`eoflows new package NAME`: start an application package of one's own."""

from pathlib import Path

from cyclopts import App

app = App(name="new", help="Start something of your own from a working example.")


@app.command(name="package")
def new_package(name: str, *, dest: Path | None = None, notebook: Path | None = None) -> None:
    """Write a pip-installable application package: entry point, steps, tests with eoflows' harness, README.

    Its compute step is a windowed normalised difference of two bands of a Sentinel-2 L2A item (COGs). Then:
    pip install -e NAME && eoflows sample burned-area sample && eoflows run NAME --item ITEM --destination DIR.

    Args:
        name: The package's name: lower-case words joined by '-' (its commands, flow and CWL ids).
        dest: The new folder to write it into; default ./NAME.
        notebook: A Jupyter notebook to make the compute step of (its cell tagged 'parameters' declares the
            inputs; it must set input_dir and output_dir, which eoflows fills); the notebook is copied in.
    """
    from eoflows.scaffold import new_package as write

    folder = write(name, dest or Path(name), notebook)
    print(f"package {name} written to {folder}; next: pip install -e {folder} && eoflows packages")

"""burned-area over HTTP: the requests its compute step makes of a COG server, and its time, on a 2196 px pair.

A real HTTP server with range requests (RangeHTTPServer, its request log kept) serves a synthetic pre-/post-fire
pair; `eoflows step burned-area stage-in` takes the items by URL, then `eoflows step burned-area compute` reads
the COGs window by window. Prints the compute's wall time and the GET and HEAD requests it made.

    .venv/bin/python bench/burned_area_http.py      (part of `make bench`)
"""

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from burned_area import CACHE, EOFLOWS, run  # noqa: E402

from eoflows.processes import free_port, http_process  # noqa: E402

SIZE = 2196  # a fifth of a tile: 4 x 4 windows


def pair() -> tuple[Path, Path]:
    """The cached sample pair (made on first use), pre then post."""
    folder = CACHE / f"burn-{SIZE}"
    items = sorted(folder.glob("*_L2A.json"))
    if len(items) != 2:
        shutil.rmtree(folder, ignore_errors=True)
        run("sample", [EOFLOWS, "sample", "burned-area", str(folder), "--size", str(SIZE)])
        items = sorted(folder.glob("*_L2A.json"))
    pre, post = sorted(items, key=lambda p: json.loads(p.read_text())["properties"]["datetime"])
    return pre, post


def main() -> None:
    pre, post = pair()
    with tempfile.TemporaryDirectory(prefix="eoflows-burn-http-") as tmp:
        log, work = Path(tmp) / "requests.log", Path(tmp) / "work"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = [sys.executable, "-m", "RangeHTTPServer", str(port), "--bind", "127.0.0.1"]
        with http_process(server, url, "RangeHTTPServer", cwd=pre.parent, log=log):
            run("stage-in", [EOFLOWS, "step", "burned-area", "stage-in", "--pre-item", f"{url}/{pre.name}",
                             "--post-item", f"{url}/{post.name}", "--output", str(work / "staged")])  # fmt: skip
            before = log.read_text(errors="replace")
            compute = run("compute", [EOFLOWS, "step", "burned-area", "compute", "--input", str(work / "staged"),
                                      "--output", str(work / "out")])  # fmt: skip
            requests = log.read_text(errors="replace")[len(before) :]
    gets, heads = (len(re.findall(rf'"{verb} ', requests)) for verb in ("GET", "HEAD"))
    print(f"\nburned-area compute over HTTP, a {SIZE} x {SIZE} pair (4 COGs), {len(requests.splitlines())} log lines\n")
    print(f"  compute wall time     {compute.wall_s:6.1f} s")
    print(f"  GET requests          {gets:6d}")
    print(f"  HEAD requests         {heads:6d}")


if __name__ == "__main__":
    main()

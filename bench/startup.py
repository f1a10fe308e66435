"""Start-up of the `eoflows` command: what a CWL tool pays before each step does any work.

    make bench            (or: .venv/bin/python bench/startup.py [--runs 5])

Times, each the median of several runs in this one benchmark run, against its target (issue 19):
- `eoflows --version` (target 0.3 s) and `eoflows step <package> compute --help` (target 1.0 s);
- a step's first read: from starting `eoflows step s2-indices compute` until its first log line, which it
  writes once it has opened the staged item and the source product's metadata (target 1.5 s);
- the floor: `python -c pass` of the same interpreter.
It also lists what a step command imports that it should not (Prefect, the flows, dask.array).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))
PACKAGES = ("s2-indices", "burned-area", "downsample")


def timed(command: list[str]) -> float:
    """Wall time of `command` (it must succeed)."""
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def first_line(command: list[str]) -> float:
    """Seconds from starting `command` until it writes its first line on standard error (then it runs to its end)."""
    t0 = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert child.stderr is not None
    line = child.stderr.readline()
    seconds = time.perf_counter() - t0
    rest = child.stderr.read()
    if child.wait() != 0 or not line:
        raise SystemExit(f"[bench] {' '.join(command)} failed:\n{line}{rest[-2000:]}")
    return seconds


def median(runs: int, measure, *args) -> float:
    """The median of `runs` measures (one more first, not counted: it warms the file cache)."""
    measure(*args)
    return statistics.median(measure(*args) for _ in range(runs))


#: Modules a step command should not need (but its own step module), and what imports them in a fresh interpreter.
HEAVY = ("prefect", "flows", "flows.build", "dask.array", "distributed", "papermill", "tasks.s2_indices",
         "tasks.burned_area", "tasks.downsample", "tasks.downsample_notebook")  # fmt: skip
PROBE = f"""
import sys
from eoflows.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as stop:  # --help
    status = stop.code
print("STATUS", status, "IMPORTED", *(m for m in {HEAVY!r} if m in sys.modules))
"""


def imported_by(*args: str) -> list[str]:
    """The `HEAVY` modules `eoflows ARGS` imports, run in a fresh interpreter (it must succeed)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)
    status, imported = done.stdout.splitlines()[-1].removeprefix("STATUS ").split(" IMPORTED")
    if status not in ("0", "None"):
        raise RuntimeError(f"eoflows {' '.join(args)} failed (status {status}): {done.stderr[-2000:]}")
    return imported.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    work = Path(tempfile.mkdtemp(prefix="eoflows-bench-startup-"))
    try:
        subprocess.run([EOFLOWS, "sample", "s2", str(work / "sample"), "--size", "366"], check=True,
                       capture_output=True)  # fmt: skip
        (item,) = [p for p in (work / "sample").glob("*.json") if p.name != "collection.json"]
        subprocess.run([EOFLOWS, "step", "s2-indices", "stage-in", "--item", str(item), "--output",
                        str(work / "staged")], check=True, capture_output=True)  # fmt: skip
        env_note = f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
        rows = [("python -c pass (floor)", median(runs, timed, [sys.executable, "-c", "pass"]), None),
                ("eoflows --version", median(runs, timed, [EOFLOWS, "--version"]), 0.3)]  # fmt: skip
        for package in PACKAGES:
            command = [EOFLOWS, "step", package, "compute", "--help"]
            rows.append((f"eoflows step {package} compute --help", median(runs, timed, command), 1.0))

        def compute() -> float:
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            return first_line([EOFLOWS, "step", "s2-indices", "compute", "--input", str(work / "staged"),
                               "--output", str(out), "--products", "ndvi"])  # fmt: skip

        rows.append(("s2-indices compute: start -> first read done", median(runs, compute), 1.5))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nstart-up of eoflows commands, median of {runs} runs ({env_note})\n")
    print(f"{'command':<48} {'seconds':>8} {'target':>7} {'ratio':>6}")
    for label, seconds, target in rows:
        ratio = f"{seconds / target:.2f}" if target else ""
        print(f"{label:<48} {seconds:>8.2f} {target or '':>7} {ratio:>6}")
    heavy = [m for m in imported_by("step", "s2-indices", "compute", "--help") if m != "tasks.s2_indices"]
    print(f"\nimported by a step command and not needed: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()

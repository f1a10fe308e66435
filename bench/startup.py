"""Start-up of the `eoflows` command: what a CWL tool pays before each step does any work.

    make bench            (or: .venv/bin/python bench/startup.py [--runs 5])

Times, each the median of several runs in this one benchmark run, as multiples of `python -c "import numpy"`
of the same interpreter (what any step pays at least), in two parts:
- parsing: `eoflows --version`, `eoflows step <package> compute --help` and a usage error of a step (goal of
  issue 32: <= 8x), which import nothing the step does not need to parse its arguments;
- running: from starting `eoflows step s2-indices compute` until its first log line, which it writes once it
  has opened the staged item and the source product's metadata.
It also lists what a step command imports that it should not (Prefect, the flows, Zarr, s3fs, xarray, Dask).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from eoflows.cli.exits import USAGE_ERROR

EOFLOWS = str(Path(sys.executable).with_name("eoflows"))
PACKAGES = ("s2-indices", "burned-area", "downsample")


def timed(command: list[str], status: int = 0) -> float:
    """Wall time of `command` (it must end with `status`)."""
    t0 = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != status:
        raise SystemExit(
            f"[bench] {' '.join(command)} ended with {done.returncode}, not {status}:\n{done.stderr[-2000:]}"
        )
    return seconds


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


def medians(runs: int, measures: dict[str, Callable[[], float]]) -> dict[str, float]:
    """The median of each measure over `runs` rounds, each round running every measure once (one more round first,
    not counted: it warms the file cache). Interleaved, a change in the machine's load hits them all alike."""
    rounds = [{name: measure() for name, measure in measures.items()} for _ in range(runs + 1)][1:]
    return {name: statistics.median(r[name] for r in rounds) for name in measures}


#: Modules a step command should not need to parse its arguments (but its own step module), and what imports them
#: in a fresh interpreter: what runs the step is imported when it runs.
HEAVY = ("prefect", "flows", "flows.build", "zarr", "s3fs", "aiohttp", "xarray", "dask", "distributed", "papermill",
         "tasks.s2_indices", "tasks.burned_area", "tasks.downsample", "tasks.downsample_notebook")  # fmt: skip
PROBE = f"""
import sys
from eoflows.cli import main
try:
    status = main(sys.argv[1:])
except SystemExit as stop:  # --help
    status = stop.code
print("STATUS", status, "IMPORTED", *(m for m in {HEAVY!r} if m in sys.modules))
"""


def imported_by(*args: str, status: int = 0) -> list[str]:
    """The `HEAVY` modules `eoflows ARGS` imports, run in a fresh interpreter (it must end with `status`)."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=300)
    ended, imported = done.stdout.splitlines()[-1].removeprefix("STATUS ").split(" IMPORTED")
    if int(ended if ended != "None" else 0) != status:
        raise RuntimeError(f"eoflows {' '.join(args)} ended with {ended}, not {status}: {done.stderr[-2000:]}")
    return imported.split()


#: Goals: a multiple of `python -c "import numpy"` ("x", issue 32) or seconds ("s", issue 19).
PARSE_GOAL, VERSION_GOAL, FIRST_READ_GOAL = (8.0, "x"), (0.3, "s"), (1.5, "s")


def report(rows: list[tuple[str, float, tuple[float, str] | None]], numpy: float) -> None:
    """One line per (label, seconds, goal): the seconds, their multiple of `numpy`, the goal and whether it is met."""
    for label, seconds, goal in rows:
        ratio = seconds / numpy
        met = "" if goal is None else "met" if (ratio if goal[1] == "x" else seconds) <= goal[0] else "NOT MET"
        shown = "" if goal is None else f"<= {goal[0]:g}{'x' if goal[1] == 'x' else ' s'}"
        print(f"{label:<58} {seconds:>7.2f} {ratio:>7.1f}x {shown:>8} {met}")


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
        wrong = [EOFLOWS, "step", "s2-indices", "compute", "--input", str(work / "staged"), "--output",
                 str(work / "out"), "--products", "nope"]  # fmt: skip

        def compute() -> float:
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            return first_line([EOFLOWS, "step", "s2-indices", "compute", "--input", str(work / "staged"),
                               "--output", str(out), "--products", "ndvi"])  # fmt: skip

        goals = {"eoflows --version": VERSION_GOAL} | {f"eoflows step {p} compute --help": PARSE_GOAL for p in PACKAGES}
        parsing = {label: (partial(timed, [EOFLOWS, *label.split()[1:]]), goal) for label, goal in goals.items()}
        parsing["eoflows step s2-indices compute --products nope (usage)"] = (partial(timed, wrong, USAGE_ERROR),
                                                                                PARSE_GOAL)  # fmt: skip
        running = {"eoflows step s2-indices compute: start -> first read done": (compute, FIRST_READ_GOAL)}
        reference = {"pass": partial(timed, [sys.executable, "-c", "pass"]),
                     "numpy": partial(timed, [sys.executable, "-c", "import numpy"])}  # fmt: skip
        seconds = medians(runs, reference | {label: m for label, (m, _) in (parsing | running).items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    numpy = seconds["numpy"]
    print(f"\nstart-up of eoflows commands, median of {runs} interleaved runs ({env_note}): seconds, and")
    print(f'multiples of python -c "import numpy" ({numpy:.3f} s; python -c pass: {seconds["pass"]:.3f} s)')
    for title, part in (("parsing: help and usage errors", parsing), ("running", running)):
        print(f"\n{title:<58} {'seconds':>7} {'x numpy':>8} {'goal':>8}")
        report([(label, seconds[label], goal) for label, (_, goal) in part.items()], numpy)
    heavy = [m for m in imported_by("step", "s2-indices", "compute", "--help") if m != "tasks.s2_indices"]
    print(f"\nimported by a step command's help and not needed: {', '.join(heavy) if heavy else 'none'}")


if __name__ == "__main__":
    main()

"""Run a command as a child process and measure it: wall, CPU, peak RSS and I/O, plus its RESULT lines."""

import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Measured:
    """What one command cost."""

    label: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    read_mb: float  # rchar: bytes through read() and friends
    written_mb: float  # wchar
    results: list[dict] = field(default_factory=list)  # RESULT {json} lines it printed
    stderr: str = ""

    @property
    def inner_wall_s(self) -> float:
        """The command's own timing of its body (its RESULT line), else the process wall time."""
        return self.results[-1]["inner_wall_s"] if self.results else self.wall_s


def _io(pid: int) -> dict[str, int]:
    try:
        with open(f"/proc/{pid}/io") as f:
            return {k: int(v) for k, v in (line.split(": ") for line in f)}
    except OSError:
        return {}


def run(label: str, command: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> Measured:
    """Run `command`, wait for it (reading its I/O counters before it is reaped), and measure it."""
    print(f"[bench] {label}: {' '.join(command)}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    child = subprocess.Popen(command, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)  # fmt: skip
    streams: dict[str, str] = {}
    readers = [threading.Thread(target=lambda n=n, f=f: streams.__setitem__(n, f.read()))
               for n, f in (("out", child.stdout), ("err", child.stderr))]  # fmt: skip
    for reader in readers:
        reader.start()
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped: /proc/<pid>/io still there
    io = _io(child.pid)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    for reader in readers:
        reader.join()
    out, err = streams["out"], streams["err"]
    wall = time.perf_counter() - t0
    if child.returncode != 0:
        raise SystemExit(f"[bench] {label} failed with status {child.returncode}:\n{err[-3000:]}")
    results = [json.loads(line[7:]) for line in (out + err).splitlines() if line.startswith("RESULT ")]
    return Measured(label, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                    io.get("rchar", 0) / 1e6, io.get("wchar", 0) / 1e6, results, err)  # fmt: skip

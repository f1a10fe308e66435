"""End to end to S3: `eoflows run s2-indices` on a full tile (10980 x 10980) to a moto S3 server, in one run:

- eoflows: the whole `eoflows run` (temporary Prefect server, local Dask cluster, stage-in, compute, stage-out);
- the compute floor: ../shared/bench/limits.py read (decode the inputs once) + write (our products once);
- the upload floor: the same files uploaded once with s3fs, in parallel, by a bare script.

    .venv/bin/python bench/end_to_end.py

Prints wall time and peak RSS of each, the run's compute and publish times (from its log), and the ratios to the
targets: whole run <= 1.3 x (compute floor + upload floor), peak RSS <= 1.5 GiB. The sample tile is cached in
bench/.cache (made by bench/s2_indices.py's `sample()` on first use, about 3 minutes).
"""

import os
import re
import shutil
import sys
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from measure import run  # noqa: E402
from s2_indices import CACHE, EOFLOWS, PYTHON, SHARED_BENCH, compute_wall, sample  # noqa: E402

UPLOAD = """
import sys, time, s3fs
from pathlib import Path
src, dest, endpoint = sys.argv[1:4]
fs = s3fs.S3FileSystem(endpoint_url=endpoint)
files = [p for p in Path(src).rglob("*") if p.is_file()]
t0 = time.perf_counter()
fs.put([str(p) for p in files], [dest + "/" + p.relative_to(src).as_posix() for p in files], batch_size=16)
print('RESULT {"inner_wall_s": %.3f, "files": %d}' % (time.perf_counter() - t0, len(files)))
"""


def main() -> None:
    from eoflows.local.s3 import local_s3

    if not (SHARED_BENCH / "limits.py").is_file():
        raise SystemExit(f"[bench] baseline scripts not found in {SHARED_BENCH} (set EOFLOWS_SHARED)")
    item = sample()
    work = CACHE / "end-to-end"
    shutil.rmtree(work, ignore_errors=True)
    with local_s3(["eoflows-results"]) as s3:
        env = s3.env()
        run_id = uuid.uuid4().hex[:8]
        ours = run("eoflows run to S3", [EOFLOWS, "run", "s2-indices", "--item", str(item), "--destination",
                                         "s3://eoflows-results/e2e", "--run-id", run_id], env=env)  # fmt: skip
        if "Published s3://" not in ours.stderr:
            raise SystemExit(f"[bench] eoflows run failed:\n{ours.stderr[-3000:]}")
        # the floors, on the same machine in the same run
        run("stage-in", [EOFLOWS, "step", "s2-indices", "stage-in", "--item", str(item), "--output",
                         str(work / "staged")])  # fmt: skip
        step = run("compute step", [EOFLOWS, "step", "s2-indices", "compute", "--input", str(work / "staged"),
                                    "--output", str(work / "out")])  # fmt: skip
        (store,) = (work / "out").glob("*/*.zarr")
        read = run("floor: read", [PYTHON, "limits.py", "read", str(item.with_suffix(".zarr"))], cwd=SHARED_BENCH)
        write = run("floor: write", [PYTHON, "limits.py", "write", str(store), str(work / "floor.zarr")],
                    cwd=SHARED_BENCH)  # fmt: skip
        upload = run("floor: upload", [PYTHON, "-c", UPLOAD, str(work / "out"), f"eoflows-results/floor-{run_id}",
                                       s3.endpoint_url], env=env)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)

    compute_floor = read.inner_wall_s + write.inner_wall_s
    floor = compute_floor + upload.inner_wall_s
    flow_compute = compute_wall(ours)
    published = re.findall(r"Publishing (\d+) files", ours.stderr)
    print(f"\ns2-indices end to end to S3 (moto), 14 products of a full tile, {os.cpu_count()} cores\n")
    print(f"{'run':<40} {'wall s':>8} {'peak RSS MB':>12}")
    for name, wall, rss in (
        ("eoflows run (whole command)", ours.wall_s, ours.peak_rss_mb),
        ("  of which compute + chunks sent to S3", flow_compute, None),
        ("eoflows step compute (same tile)", compute_wall(step), step.peak_rss_mb),
        ("floor: read inputs once", read.inner_wall_s, None),
        ("floor: write products once", write.inner_wall_s, None),
        (f"floor: upload {upload.results[-1]['files']} files (s3fs)", upload.inner_wall_s, upload.peak_rss_mb),
    ):
        print(f"{name:<40} {wall:>8.1f} {f'{rss:.0f}' if rss else '-':>12}")
    print(f"\nfiles published by the run: {published[-1] if published else '?'}")
    ratio = ours.wall_s / floor
    print(f"whole run / (compute floor {compute_floor:.1f} s + upload floor {upload.inner_wall_s:.1f} s): "
          f"{ratio:.2f}x   target <= 1.3x   {'PASS' if ratio <= 1.3 else 'MISS'}")  # fmt: skip
    early = re.findall(r"\((\d+) of them sent while computing\)", ours.stderr)
    print(f"files the run sent while computing: {early[-1] if early else 0} (the compute's time includes "
          "them; bench/s2_indices.py compares the flow's compute with the step's, to a folder)")  # fmt: skip
    rss = ours.peak_rss_mb / 1024
    print(f"peak RSS of the whole run: {rss:.2f} GiB   target <= 1.5 GiB   {'PASS' if rss <= 1.5 else 'MISS'}")


if __name__ == "__main__":
    main()

"""Benchmark of the `burned-area` compute step on a full Sentinel-2 tile pair (10980 x 10980), in one run:

- eoflows: `eoflows step burned-area compute` (dNBR COG, as the original application writes; no severity);
- the floor: read the four inputs once (pre/post B08 at 10 m, B12 at 20 m; every tile decoded) + write the
  output once (our dNBR raster re-encoded as the same COG, overviews included).

    make bench            (or: .venv/bin/python bench/burned_area.py [--keep])

The sample pair is made once and cached in bench/.cache (a few minutes). Targets: peak RSS under 2 GiB,
wall time within 2x of the floor.
"""

import argparse
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import run  # noqa: E402

ROOT = HERE.parent
CACHE = HERE / ".cache"
PYTHON = sys.executable
EOFLOWS = str(Path(sys.executable).with_name("eoflows"))
SIZE = 10980


def sample() -> tuple[Path, Path]:
    """The cached full-size sample pair (made on first use)."""
    folder = CACHE / f"burn-{SIZE}"
    items = sorted(folder.glob("*_L2A.json"))
    if len(items) != 2:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"[bench] making the {SIZE} x {SIZE} sample pair once ...", file=sys.stderr, flush=True)
        run("sample", [EOFLOWS, "sample", "burned-area", str(folder), "--size", str(SIZE)])
        items = sorted(folder.glob("*_L2A.json"))
    pre, post = sorted(items, key=lambda p: json.loads(p.read_text())["properties"]["datetime"])
    return pre, post


def floor_read(paths: list[str]) -> None:
    """Decode every tile of every input once."""
    import rasterio

    t0 = time.perf_counter()
    for path in paths:
        with rasterio.open(path) as src:
            for _, window in src.block_windows(1):
                src.read(1, window=window)
    print("RESULT " + json.dumps({"inner_wall_s": time.perf_counter() - t0}))


def floor_write(source: str, target: str) -> None:
    """Write the output raster once as the same COG."""
    from tasks.data.geotiff import to_cog

    t0 = time.perf_counter()
    to_cog(Path(source), Path(target), "AVERAGE")
    print("RESULT " + json.dumps({"inner_wall_s": time.perf_counter() - t0}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the outputs in bench/.cache/burn-out")
    parser.add_argument("--floor-read", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--floor-write", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_read:
        return floor_read(args.floor_read)
    if args.floor_write:
        return floor_write(*args.floor_write)
    pre, post = sample()
    work = CACHE / "burn-out"
    shutil.rmtree(work, ignore_errors=True)
    run("stage-in", [EOFLOWS, "step", "burned-area", "stage-in", "--pre-item", str(pre), "--post-item", str(post),
                     "--output", str(work / "staged")])  # fmt: skip
    ours = run("eoflows compute", [EOFLOWS, "step", "burned-area", "compute", "--input", str(work / "staged"),
                                   "--output", str(work / "eoflows"), "--no-severity"])  # fmt: skip
    (dnbr,) = (work / "eoflows").glob("*/*-dnbr.tif")
    inputs = [str(p.with_suffix("") / name) for p in (pre, post) for name in ("B08.tif", "B12.tif")]
    read = run("floor: read", [PYTHON, __file__, "--floor-read", *inputs])
    write = run("floor: write", [PYTHON, __file__, "--floor-write", str(dnbr), str(work / "floor.tif")])
    found = re.findall(r"Wrote dNBR of .* in ([\d.]+) s", ours.stderr)
    ours_s = float(found[-1]) if found else ours.wall_s
    floor_s = read.inner_wall_s + write.inner_wall_s
    rows = [("eoflows compute (step's own timing)", ours_s, ours.cpu_s, ours.peak_rss_mb),
            ("eoflows compute (whole process)", ours.wall_s, ours.cpu_s, ours.peak_rss_mb),
            ("floor: read 4 inputs once", read.inner_wall_s, read.cpu_s, read.peak_rss_mb),
            ("floor: write the output once", write.inner_wall_s, write.cpu_s, write.peak_rss_mb)]  # fmt: skip
    print(f"\nburned-area, dNBR of a {SIZE} x {SIZE} tile pair, {os.cpu_count()} cores\n")
    print(f"{'run':<38} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}")
    for name, wall, cpu, rss in rows:
        print(f"{name:<38} {wall:>8.1f} {cpu:>8.1f} {rss:>12.1f}")
    print()
    verdict = {True: "PASS", False: "MISS"}
    print(f"eoflows / floor (read + write {floor_s:.1f} s): {ours_s / floor_s:.2f}x   target <= 2x   "
          f"{verdict[ours_s <= 2 * floor_s]}")  # fmt: skip
    print(f"eoflows peak RSS: {ours.peak_rss_mb:.0f} MB   target < 2048 MB   {verdict[ours.peak_rss_mb < 2048]}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

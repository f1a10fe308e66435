"""Benchmark of the `downsample` compute step on a full-size Landsat scene (7801 x 7711, uint16), both bands.

    make bench            (or: .venv/bin/python bench/downsample.py)

Shows that a full scene is downsampled without being read whole: the step's peak RSS stays far below the
size of the band (GDAL reads the file's overviews, or decimates block by block).
"""

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from measure import run  # noqa: E402

CACHE = HERE / ".cache"
EOFLOWS = str(Path(sys.executable).with_name("eoflows"))
WIDTH, HEIGHT = 7801, 7711


def main() -> None:
    folder = CACHE / f"landsat-{WIDTH}"
    if len(list(folder.glob("*.TIF"))) != 2:
        shutil.rmtree(folder, ignore_errors=True)
        run("sample", [EOFLOWS, "sample", "landsat", str(folder), "--width", str(WIDTH), "--height", str(HEIGHT)])
    band_mb = WIDTH * HEIGHT * 2 / 1e6
    print(f"\ndownsample of a {WIDTH} x {HEIGHT} uint16 band ({band_mb:.0f} MB decoded) to 100 pixels wide\n")
    print(f"{'band':<12} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'read MB':>9}")
    for tif in sorted(folder.glob("*.TIF")):
        work = CACHE / "downsample-out"
        shutil.rmtree(work, ignore_errors=True)
        run("stage-in", [EOFLOWS, "step", "downsample", "stage-in", "--url", str(tif), "--output", str(work / "in")])
        done = run("compute", [EOFLOWS, "step", "downsample", "compute", "--input", str(work / "in"), "--output",
                               str(work / "out")])  # fmt: skip
        band = tif.stem.split("_T1_")[-1]
        print(f"{band:<12} {done.wall_s:>8.1f} {done.cpu_s:>8.1f} {done.peak_rss_mb:>12.1f} {done.read_mb:>9.1f}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

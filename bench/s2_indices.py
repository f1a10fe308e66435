"""Benchmark of the `s2-indices` compute step on a full Sentinel-2 tile (10980 x 10980), in one run:

- eoflows: `eoflows step s2-indices compute` (all 14 products), and the same compute inside `eoflows run` (the
  flow: windows as Prefect tasks on a local Dask cluster), published to a folder;
- the reference style: ../shared/bench/s2_reference_style.py (the original application's execution style);
- the floor: ../shared/bench/limits.py read (decode the inputs once) + write (encode and write our products once);
- the compact encoding (`--encoding compact`: int16 indices): output size, step time and write floor beside float32.

    make bench            (or: .venv/bin/python bench/s2_indices.py [--keep])

The sample tile is made once and cached in bench/.cache (about 3 minutes, 0.8 GB). Targets: at least 4x faster
than the reference style, at most 1/8 of its peak memory, within 1.2x of the floor; the flow's compute within
1.15x of the step's.
"""

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from measure import Measured, run  # noqa: E402

ROOT = HERE.parent
CACHE = HERE / ".cache"
SHARED_BENCH = Path(os.environ.get("EOFLOWS_SHARED", ROOT.parent / "shared")) / "bench"
PYTHON = sys.executable
EOFLOWS = str(Path(sys.executable).with_name("eoflows"))
SIZE = 10980


def sample() -> Path:
    """The cached full-size sample item (made on first use)."""
    folder = CACHE / f"s2-{SIZE}"
    items = sorted(folder.glob("*.json"))
    if not items:
        shutil.rmtree(folder, ignore_errors=True)
        print(f"[bench] making the {SIZE} x {SIZE} sample once (about 3 minutes) ...", file=sys.stderr, flush=True)
        run("sample", [EOFLOWS, "sample", "s2", str(folder), "--size", str(SIZE)])
        items = sorted(folder.glob("*.json"))
    return items[0]


def compute_wall(measured: Measured) -> float:
    """The compute step's own wall time, from its log line 'Wrote N products (... MB) in X s'."""
    found = re.findall(r"Wrote \d+ products \(.*?\) in ([\d.]+) s", measured.stderr)
    return float(found[-1]) if found else measured.wall_s


def checksum_cost(store: Path, rounds: int = 3) -> tuple[float, float]:
    """Seconds to encode the store's ndvi and rgb arrays in memory without, then with zstd's content checksum
    (best of `rounds`, taken in turns)."""
    import time

    import zarr
    from zarr.codecs import ZstdCodec
    from zarr.storage import MemoryStore

    from tasks.data.products_store import CODECS

    group = zarr.open_group(str(store), mode="r")
    data = {name: group[name][:] for name in ("ndvi", "rgb")}
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for checked in (False, True):
            spent = 0.0
            for name, values in data.items():
                src = group[name]
                dst = zarr.create_array(MemoryStore(), shape=src.shape, chunks=src.chunks, dtype=src.dtype,
                                        compressors=CODECS if checked else (ZstdCodec(level=3),),
                                        fill_value=src.fill_value)  # fmt: skip
                t0 = time.perf_counter()
                dst[:] = values
                spent += time.perf_counter() - t0
            best[checked] = min(best[checked], spent)
    return best[False], best[True]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="keep the outputs in bench/.cache/out")
    parser.add_argument("--skip-reference", action="store_true", help="skip the (slow) reference-style run")
    args = parser.parse_args()
    if not (SHARED_BENCH / "limits.py").is_file():
        raise SystemExit(f"[bench] baseline scripts not found in {SHARED_BENCH} (set EOFLOWS_SHARED)")
    item = sample()
    product = item.with_suffix(".zarr")
    work = CACHE / "out"
    shutil.rmtree(work, ignore_errors=True)
    run("stage-in", [EOFLOWS, "step", "s2-indices", "stage-in", "--item", str(item), "--output", str(work / "staged")])

    ours = run("eoflows compute", [EOFLOWS, "step", "s2-indices", "compute", "--input", str(work / "staged"),
                                   "--output", str(work / "eoflows")])  # fmt: skip
    (store,) = (work / "eoflows").glob("*/*.zarr")
    compact = run("eoflows compute --encoding compact", [EOFLOWS, "step", "s2-indices", "compute", "--input",
                                                          str(work / "staged"), "--output", str(work / "compact"),
                                                          "--encoding", "compact"])  # fmt: skip
    (compact_store,) = (work / "compact").glob("*/*.zarr")
    flow = run("eoflows run (flow)", [EOFLOWS, "run", "s2-indices", "--item", str(item), "--destination",
                                      str(work / "published"), "--run-id", "bench"])  # fmt: skip
    read = run("floor: read", [PYTHON, "limits.py", "read", str(product)], cwd=SHARED_BENCH)
    write = run("floor: write", [PYTHON, "limits.py", "write", str(store), str(work / "floor.zarr")], cwd=SHARED_BENCH)
    # the same floor on the compact store: its indices load as their stored int16, and are written as such
    write_compact = run("floor: write compact", [PYTHON, "limits.py", "write", str(compact_store),
                                                 str(work / "floor-compact.zarr")], cwd=SHARED_BENCH)  # fmt: skip
    reference = None
    if not args.skip_reference:
        reference = run("reference style", [PYTHON, "s2_reference_style.py", str(product), str(work / "reference.zarr"),
                                            "--products", "all"], cwd=SHARED_BENCH)  # fmt: skip

    ours_s = compute_wall(ours)
    floor_s = read.inner_wall_s + write.inner_wall_s
    io = (ours.cpu_s, ours.peak_rss_mb, ours.read_mb, ours.written_mb)
    rows = [("eoflows compute (step's own timing)", ours_s, *io), ("eoflows compute (whole process)", ours.wall_s, *io),
            ("floor: read inputs once", read.inner_wall_s, read.cpu_s, None, read.read_mb, None),
            ("floor: write products once", write.inner_wall_s, write.cpu_s, None, None, write.written_mb)]  # fmt: skip
    if reference:
        rows.append(("reference style", reference.inner_wall_s, reference.cpu_s, reference.peak_rss_mb,
                     reference.read_mb, reference.written_mb))  # fmt: skip
    print(f"\ns2-indices, 14 products of a {SIZE} x {SIZE} tile, {os.cpu_count()} cores\n")
    print(f"{'run':<38} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12} {'read MB':>9} {'written MB':>11}")
    for name, wall, cpu, rss, rd, wr in rows:
        cells = [f"{v:>{w}.1f}" if v is not None else f"{'-':>{w}}" for v, w in ((rss, 12), (rd, 9), (wr, 11))]
        print(f"{name:<38} {wall:>8.1f} {cpu:>8.1f} {' '.join(cells)}")
    print()
    print(
        f"eoflows / floor (read + write {floor_s:.1f} s): {ours_s / floor_s:.2f}x   target <= 1.2x  "
        f"{'PASS' if ours_s <= 1.2 * floor_s else 'MISS'}"
    )
    if reference:
        speed, memory = reference.inner_wall_s / ours_s, reference.peak_rss_mb / ours.peak_rss_mb
        verdict = {True: "PASS", False: "MISS"}
        print(f"reference style / eoflows, time:   {speed:.1f}x faster   target >= 4x   {verdict[speed >= 4]}")
        print(f"reference style / eoflows, memory: {memory:.1f}x less     target >= 8x   {verdict[memory >= 8]}")
    flow_s = compute_wall(flow)
    print(f"flow compute / step compute: {flow_s:.1f} s / {ours_s:.1f} s = {flow_s / ours_s:.2f}x   target <= 1.15x  "
          f"{'PASS' if flow_s <= 1.15 * ours_s else 'MISS'}   (whole flow run {flow.wall_s:.1f} s, peak RSS "
          f"{flow.peak_rss_mb:.0f} MB)")  # fmt: skip
    sizes = [sum(f.stat().st_size for f in st.rglob("*") if f.is_file()) / 1e6 for st in (store, compact_store)]
    print(f"compact encoding (int16 indices, scale 1e-4): output {sizes[1]:.0f} MB vs {sizes[0]:.0f} MB float32 "
          f"({sizes[1] / sizes[0]:.2f}x); step compute {compute_wall(compact):.1f} s vs {ours_s:.1f} s; write floor "
          f"{write_compact.inner_wall_s:.1f} s vs {write.inner_wall_s:.1f} s")  # fmt: skip
    plain, checked = checksum_cost(store)
    extra = (checked - plain) / ours_s * 100
    print(f"zstd content checksums: encoding ndvi + rgb {plain:.1f} s without, {checked:.1f} s with: "
          f"{(checked / plain - 1) * 100:+.1f} % ({extra:+.1f} % of the compute)")  # fmt: skip
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

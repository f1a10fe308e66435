"""`make demo`: a sample scene through the `s2-indices` flow to S3 and back, with nothing to set up.

Makes a synthetic Sentinel-2 L2A scene, starts an S3 server (moto) on 127.0.0.1, runs the flow on a local
Dask cluster (and a temporary Prefect server unless PREFECT_API_URL is set), prints the catalog URI, the
products and a local copy of the results and the quicklook, then stops what it started.
Set DEMO_DEST to a local folder to publish there instead of S3.
"""

import os
import sys
import time
from pathlib import Path

import pystac

OUT = Path(os.environ.get("DEMO_OUTPUT", "demo-output")).absolute()


def _report(catalog_uri: str, storage, local_copy: Path) -> None:
    from tasks.data.stac_io import FsspecStacIO

    catalog = pystac.Catalog.from_file(catalog_uri, stac_io=FsspecStacIO(storage))
    print(f"\nCatalog: {catalog_uri}")
    for item in catalog.get_items(recursive=True):
        print(f"Item {item.id}:")
        for key, asset in item.assets.items():
            size = asset.extra_fields.get("file:size")
            print(f"  {key:<10} {asset.get_absolute_href()}" + (f"  ({size / 1e6:.1f} MB)" if size else ""))
    print(f"\nLocal copy of the results: {local_copy}")
    quicklooks = sorted(local_copy.rglob("*.png"))
    if quicklooks:
        print(f"Quicklook: {quicklooks[0]}")


def main() -> int:
    """Run the demo; return the exit status. The Prefect server starts while the sample and S3 server are made."""
    from eoflows.cli.run import in_prefect
    from eoflows.prefect_api import starting_early
    from eoflows.samples.s2_eopf import write_sample
    from tasks.data.storage import filesystem

    t0 = time.perf_counter()
    with starting_early() as early:
        OUT.mkdir(parents=True, exist_ok=True)
        print(f"Writing a synthetic Sentinel-2 L2A scene into {OUT / 'sample'} ...", flush=True)
        item = write_sample(OUT / "sample")
        dest = os.environ.get("DEMO_DEST")
        from flows.package_flows import s2_indices

        if dest:
            uri = in_prefect(lambda: s2_indices(item=str(item), destination=dest, run_id="demo"), early)
            _report(uri, None, Path(uri).parent)
            print(f"Done in {time.perf_counter() - t0:.0f} s.")
            return 0
        from eoflows.local.s3 import local_s3

        with local_s3(buckets=["eoflows-demo"]) as s3:
            print(f"S3 server (moto) at {s3.endpoint_url}, bucket eoflows-demo", flush=True)
            os.environ.update(s3.env())
            storage = s3.storage()
            uri = in_prefect(lambda: s2_indices(item=str(item), destination="s3://eoflows-demo/results",
                                                run_id=f"demo-{int(time.time())}"), early)  # fmt: skip
            local = OUT / "published"
            fs, path = filesystem(uri.rsplit("/", 1)[0], storage)
            fs.get(path, str(local), recursive=True)
            _report(uri, storage, local)
    print(f"\nThe S3 server is stopped; the results above were copied to {local}.")
    print(f"Done in {time.perf_counter() - t0:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

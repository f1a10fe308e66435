"""A step's runtime is an argument: a Dask step called from plain Python with a hand-made runtime."""

from pathlib import Path

import numpy as np
import pystac
import zarr

from eoflows.runtime import Runtime
from flows.package_flows import s2_indices
from tasks.s2_indices import compute_indices, stage_in_eopf
from tasks.windows import Threads

PRODUCTS = ["ndvi", "nbr", "rgb"]


class MemorySink:
    """An upload sink of the test's own: keeps every file put, by its path under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.sizes: dict[Path, int] = {}
        self.files: dict[Path, bytes] = {}

    def put(self, path: Path, data: bytes) -> None:
        self.sizes[path] = len(data)
        self.files[path.relative_to(self.root)] = data


def store_of(catalog: Path) -> zarr.Group:
    (item,) = pystac.Catalog.from_file(str(catalog)).get_items(recursive=True)
    return zarr.open_group(item.assets["product"].get_absolute_href(), mode="r")


def test_a_dask_step_from_plain_python_makes_the_flows_products(
    sample_item: Path, always_a_cluster: str, tmp_path: Path
) -> None:
    published = s2_indices(
        item=str(sample_item), destination=str(tmp_path / "flow"), run_id="r", products=PRODUCTS, dask=always_a_cluster
    )  # fmt: skip  (windows on the flow's local Dask cluster)
    staged = stage_in_eopf(str(sample_item), tmp_path / "staged")
    out = compute_indices(staged, tmp_path / "out", Runtime(Threads("threads of the test")), products=PRODUCTS)
    by_flow, by_hand = store_of(Path(published)), store_of(out / "catalog.json")
    assert sorted(by_hand.array_keys()) == sorted(by_flow.array_keys())
    for name in PRODUCTS:
        np.testing.assert_array_equal(by_hand[name][:], by_flow[name][:], err_msg=name)  # the same to the bit


def test_a_hand_made_upload_sink_takes_the_final_chunks_instead_of_the_disk(sample_item: Path, tmp_path: Path) -> None:
    staged = stage_in_eopf(str(sample_item), tmp_path / "staged")
    written = compute_indices(staged, tmp_path / "written", Runtime(Threads()), products=["ndvi"])
    sink = MemorySink(tmp_path / "sent")
    sent = compute_indices(staged, sink.root, Runtime(Threads(), uploads=sink), products=["ndvi"])
    chunks = {p.relative_to(written): p.read_bytes() for p in written.rglob("ndvi/c/**/*") if p.is_file()}
    assert len(chunks) == 9 and sink.files == chunks  # 3 x 3 windows, each chunk put once, byte for byte
    assert not [p for p in sent.rglob("ndvi/c/**/*") if p.is_file()]  # none of them written locally
    (item,) = pystac.Catalog.from_file(str(sent / "catalog.json")).get_items(recursive=True)
    assert item.assets["product"].extra_fields["file:size"] > sum(sink.sizes.values())  # chunks + metadata counted

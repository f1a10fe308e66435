"""Identifiers are data, never paths: hostile and unusual item ids and run ids, for every package and step."""

import json
import shutil
from pathlib import Path

import pystac
import pytest

from eoflows.errors import InputError
from eoflows.local.s3 import LocalS3
from eoflows.samples.landsat import write_landsat
from tasks.burned_area import compute_burned_area, stage_in_pair
from tasks.data.names import check_run_id, file_name
from tasks.data.stac_io import FsspecStacIO
from tasks.data.staging import stage_out
from tasks.downsample import downsample, stage_in_url
from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.steps import alone
from tests.test_cli import eoflows

#: Ids that must work, each published inside its destination with the id kept in the JSON.
IDS = ["/tmp/abs-evil", "../../evil", "a/b/c", "with space", "ünïcode", "dotted.id.v1"]


def files_under(*roots: Path) -> set[Path]:
    return {p.resolve() for root in roots for p in root.rglob("*") if p.is_file()}


def test_file_names() -> None:
    assert file_name("S2A_MSIL2A_20250601T102311") == "S2A_MSIL2A_20250601T102311"
    assert file_name("2025.06.01") == "2025.06.01"
    assert file_name("ünïcode").startswith("unicode-") and file_name("a/b") != file_name("a-b")
    names = [file_name(i) for i in [*IDS, ".", "..", ""]]
    assert len(set(names)) == len(IDS) + 3 and all("/" not in n and not n.startswith(".") for n in names)


@pytest.mark.parametrize("run_id", ["../../x", "/abs/x", "a/b", "..", ".", "", "with space"])
def test_run_ids_are_one_plain_path_segment(run_id: str) -> None:
    with pytest.raises(InputError, match=rf"run_id {run_id!r}: expected one path segment"):
        check_run_id(run_id)


def relabel(item_path: Path, new_id: str, folder: Path) -> Path:
    """A copy of a sample item (and its data) whose id is `new_id`."""
    shutil.copytree(item_path.parent, folder, dirs_exist_ok=True)
    doc = json.loads(item_path.read_text())
    doc["id"] = new_id
    copy = folder / f"relabelled-{abs(hash(new_id))}.json"
    copy.write_text(json.dumps(doc))
    return copy


def published_item(catalog_uri: str, storage=None) -> pystac.Item:
    (item,) = pystac.Catalog.from_file(catalog_uri, stac_io=FsspecStacIO(storage)).get_items(recursive=True)
    return item


@pytest.mark.parametrize("item_id", IDS)
def test_s2_indices_with_any_item_id(item_id: str, sample_item: Path, tmp_path: Path) -> None:
    source = relabel(sample_item, item_id, tmp_path / "source")
    staged = stage_in_eopf(str(source), tmp_path / "work" / "staged")
    out = compute_indices(staged, tmp_path / "work" / "out", alone(), products=["ndvi"])
    uri = stage_out(out, str(tmp_path / "dest"), alone(), run_id="r1")
    assert uri == str(tmp_path / "dest" / "r1" / "catalog.json")
    item = published_item(uri)
    assert item.id == f"{item_id}-processed"
    assert Path(item.assets["ndvi"].get_absolute_href()).resolve().is_relative_to(tmp_path / "dest" / "r1")
    roots = [tmp_path / name for name in ("source", "work", "dest")]
    assert files_under(tmp_path) == files_under(*roots)  # nothing beside the roots (../../evil would be)
    assert not list(Path("/tmp").glob("abs-evil*"))


def test_burned_area_and_downsample_with_hostile_ids(burn_pair: tuple[Path, Path], tmp_path: Path) -> None:
    pre, post = (relabel(path, new_id, tmp_path / "source")
                 for path, new_id in zip(burn_pair, ("../../pre", "/tmp/abs-post"), strict=True))  # fmt: skip
    staged = stage_in_pair(str(pre), str(post), tmp_path / "work" / "staged")
    out = compute_burned_area(staged, tmp_path / "work" / "out", alone())
    item = published_item(stage_out(out, str(tmp_path / "dest"), alone(), run_id="2025.06.01"))
    assert item.id == "/tmp/abs-post-burned-area" and not list(Path("/tmp").glob("abs-post*"))
    assert files_under(tmp_path) == files_under(*(tmp_path / name for name in ("source", "work", "dest")))
    assert Path(item.assets["dnbr"].get_absolute_href()).is_relative_to(tmp_path / "dest" / "2025.06.01")
    band = write_landsat(tmp_path / "landsat", width=120, height=100)[0]
    odd = band.with_name("an odd näme (v1).TIF")
    band.rename(odd)
    out = downsample(stage_in_url(str(odd), tmp_path / "ds" / "staged"), tmp_path / "ds" / "out", width=50)
    item = published_item(stage_out(out, str(tmp_path / "dest"), alone(), run_id="downsample.v1"))
    assert item.id == "an odd näme (v1)_downsampled"
    assert Path(item.assets["data"].get_absolute_href()).is_relative_to(tmp_path / "dest" / "downsample.v1")


def test_dotted_run_ids_and_folders_on_the_command_line(sample_item: Path, s3: LocalS3, tmp_path: Path) -> None:
    staged, out, dest = tmp_path / "staged.v1", tmp_path / "out.v2", tmp_path / "dest"
    done = eoflows("step", "s2-indices", "stage-in", "--item", str(sample_item), "--output", str(staged))
    assert done.returncode == 0 and (staged / "catalog.json").is_file() and not (tmp_path / "catalog.json").exists()
    done = eoflows("step", "s2-indices", "compute", "--input", str(staged), "--output", str(out), "--products", "ndvi")
    assert done.returncode == 0, done.stderr
    (dest / "catalog.json").parent.mkdir()
    (dest / "catalog.json").write_text("{}")  # somebody else's catalog in the destination: never touched
    done = eoflows("step", "s2-indices", "stage-out", "--input", str(out), "--destination", str(dest),
                   "--run-id", "2025.06.01")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(dest / "2025.06.01" / "catalog.json") and Path(done.stdout.strip()).is_file()
    assert (dest / "catalog.json").read_text() == "{}" and sorted(p.name for p in dest.iterdir()) == [
        "2025.06.01",
        "catalog.json",
    ]
    done = eoflows("step", "s2-indices", "stage-out", "--input", str(out), "--destination", "s3://eoflows-results/dots",
                   "--run-id", "2025.06.01", env=s3.env())  # fmt: skip
    assert done.stdout.strip() == "s3://eoflows-results/dots/2025.06.01/catalog.json", done.stderr
    assert published_item(done.stdout.strip(), s3.storage()).id.endswith("-processed")


@pytest.mark.parametrize("run_id", ["../../x", "/abs/x"])
def test_escaping_run_ids_are_refused_and_nothing_is_written(run_id: str, sample_item: Path, tmp_path: Path) -> None:
    dest = tmp_path / "a" / "b" / "dest"
    done = eoflows("run", "s2-indices", "--item", str(sample_item), "--destination", str(dest), "--run-id", run_id,
                   "--products", "ndvi")  # fmt: skip
    assert done.returncode == 1
    assert f"eoflows: error: run_id {run_id!r}: expected one path segment" in done.stderr
    assert "Beginning flow run" in done.stderr and "Step stage-in" not in done.stderr  # refused before any step
    assert not files_under(tmp_path)

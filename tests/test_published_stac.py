"""Every catalog and item eoflows publishes passes pystac's validation and stac-validator (vendored schemas,
offline), for the three packages, in a folder and on S3."""

from pathlib import Path

import pystac
import pytest

from eoflows.local.s3 import LocalS3
from eoflows.samples.landsat import write_landsat
from eoflows.testing.stac_schemas import pystac_validator, validate_with_pystac, validate_with_stac_validator
from tasks.burned_area import compute_burned_area, stage_in_pair
from tasks.data.stac_io import FsspecStacIO
from tasks.data.staging import stage_out
from tasks.downsample import downsample, stage_in_url
from tasks.s2_indices import compute_indices, stage_in_eopf
from tests.steps import alone


@pytest.fixture(scope="module")
def results(sample_item: Path, burn_pair: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The compute output folder of each package, on the test samples."""
    base = tmp_path_factory.mktemp("published-stac")
    pre, post = burn_pair
    sr_b5, _ = write_landsat(base / "landsat", width=256, height=256)
    return {
        "s2-indices": compute_indices(
            stage_in_eopf(str(sample_item), base / "s2-in"), base / "s2", alone(), ["ndvi", "rgb"]
        ),
        "burned-area": compute_burned_area(stage_in_pair(str(pre), str(post), base / "ba-in"), base / "ba", alone()),
        "downsample": downsample(stage_in_url(str(sr_b5), base / "ds-in"), base / "ds"),
    }


@pytest.mark.parametrize("package", ["s2-indices", "burned-area", "downsample"])
def test_a_published_folder_is_valid_stac(package: str, results: dict, tmp_path: Path) -> None:
    uri = stage_out(results[package], str(tmp_path), alone(), run_id="r1")
    validate_with_pystac(uri)
    validate_with_stac_validator(uri, recursive=True)


def test_a_publication_on_s3_is_valid_stac(results: dict, s3: LocalS3) -> None:
    for package, folder in results.items():
        uri = stage_out(folder, f"s3://eoflows-results/valid-{package}", alone(), run_id="r1", storage=s3.storage())
        catalog = pystac.Catalog.from_file(uri, stac_io=FsspecStacIO(s3.storage()))
        items = list(catalog.get_items(recursive=True))
        with pystac_validator():  # each object read from S3, validated against the vendored schemas
            catalog.validate()
            for item in items:
                item.validate()
        assert items and all(a.href.startswith("s3://") for item in items for a in item.assets.values())


def test_the_sample_input_items_are_valid_stac(sample_item: Path, burn_pair: tuple[Path, Path], tmp_path: Path) -> None:
    """The items the samples write (demo, tests, benchmarks) pass the same validators, their collection linked."""
    from eoflows.samples.burn_pair import write_pair

    for path in (sample_item, *burn_pair, *write_pair(tmp_path / "v0", size=120, layout="v0")):
        item = pystac.Item.from_file(str(path))
        assert item.get_collection().id == item.collection_id  # the link resolves, as a STAC API's would
        validate_with_pystac(str(path))
        validate_with_stac_validator(str(path))

"""The s2-indices science against the independent NumPy reference (tests/reference.py)."""

import numpy as np
import pytest

from tasks.science import indices as ix
from tests import reference as ref

CODING = ix.Coding("uint16", 1e-4, -0.1, 0)
# DN values that matter: no data (0), negative reflectance (< 1000), zero denominators (pairs summing to
# 2000), ordinary land, bright, saturated (65535)
SPECIAL = np.array([0, 1, 500, 999, 1000, 1001, 1500, 2000, 3456, 9000, 11000, 20000, 40000, 65534, 65535], np.uint16)


def special_pairs() -> tuple[np.ndarray, np.ndarray]:
    a, b = np.meshgrid(SPECIAL, SPECIAL)
    return a.astype(np.uint16), b.astype(np.uint16)


def test_reflectance_table_is_cf_decoding() -> None:
    dn = np.arange(65536, dtype=np.uint16)
    got = ix.lookup(dn, ix.reflectance_table(np.dtype("uint16"), 1e-4, -0.1, 0))
    expected = ref.reflectance(dn)
    assert got.dtype == np.float32
    assert np.isnan(got[0]) and np.isnan(expected[0])
    np.testing.assert_allclose(got[1:], expected[1:], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("gamma", [1.85, 1.95])
def test_gamma_table_equals_pow_per_pixel(gamma: float) -> None:
    dn = np.arange(65536, dtype=np.uint16)
    got = ix.lookup(dn, ix.gamma_table(np.dtype("uint16"), 1e-4, -0.1, 0, gamma))
    refl = np.clip(np.nan_to_num(ref.reflectance(dn), nan=0.0), 0, 1)
    np.testing.assert_array_equal(got, (refl ** (1 / gamma) * 255).astype(np.uint8))
    assert got[0] == 0 and got[999] == 0 and got[65535] == 255


def test_tables_for_signed_and_8_bit_data() -> None:
    dn = np.array([-32768, -5, 0, 7, 32767], np.int16)
    got = ix.lookup(dn, ix.reflectance_table(np.dtype("int16"), 0.5, 1.0, -5))
    np.testing.assert_allclose(got, [-16383.0, np.nan, 1.0, 4.5, 16384.5])
    dn8 = np.array([0, 255], np.uint8)
    assert list(ix.lookup(dn8, ix.gamma_table(np.dtype("uint8"), 1 / 255, 0.0, None, 1.0))) == [0, 255]


@pytest.mark.parametrize("name", sorted(ix.INDICES))
def test_index_matches_reference_on_special_values(name: str) -> None:
    a_dn, b_dn = special_pairs()
    band_a, band_b = ix.INDICES[name]
    dn = {band_a: a_dn, band_b: b_dn} if band_a != band_b else {band_a: a_dn}
    got = ix.compute_products([name], dn, dict.fromkeys(dn, CODING), dict.fromkeys(dn, 1))[name]
    expected = ref.index(ref.reflectance(dn[band_a]), ref.reflectance(dn[band_b]))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6, equal_nan=True)
    # no data in either input, and a + b == 0 (DN pairs summing to 2000), are NaN, never +-inf
    assert not np.isinf(got).any()
    assert np.isnan(got[(a_dn == 0) | (b_dn == 0)]).all()
    assert np.isnan(got[(a_dn.astype(int) + b_dn) == 2000]).all()


@pytest.mark.parametrize("name", sorted(ix.COMPOSITES))
def test_composite_matches_reference(name: str) -> None:
    rng = np.random.default_rng(7)
    dn = {b: rng.choice(SPECIAL, size=(12, 10)).astype(np.uint16) for b in ix.COMPOSITES[name]}
    got = ix.compute_products([name], dn, dict.fromkeys(dn, CODING), dict.fromkeys(dn, 1))[name]
    expected = ref.composite(*(ref.reflectance(dn[b]) for b in ix.COMPOSITES[name]))
    assert got.dtype == np.uint8 and got.shape == (3, 12, 10)
    np.testing.assert_array_equal(got, expected)


def test_twenty_metre_bands_are_repeated_onto_the_ten_metre_grid() -> None:
    rng = np.random.default_rng(3)
    dn = {b: rng.integers(0, 12000, (8, 8), dtype=np.uint16) for b in ("b02", "b03", "b04", "b08")}
    dn |= {b: rng.integers(0, 12000, (4, 4), dtype=np.uint16) for b in ("b11", "b12")}
    factors = {b: 2 if b in ("b11", "b12") else 1 for b in dn}
    got = ix.compute_products(list(ix.PRODUCTS), dn, dict.fromkeys(dn, CODING), factors)
    expected = ref.products(dn)
    for name in ix.PRODUCTS:
        assert got[name].shape[-2:] == (8, 8)
        np.testing.assert_allclose(got[name], expected[name], rtol=2e-5, atol=2e-6, equal_nan=True, err_msg=name)


def test_products_stream_one_at_a_time_in_the_requested_order() -> None:
    dn = {b: np.full((4, 4), 3000, np.uint16) for b in ix.bands_for(list(ix.PRODUCTS))}
    factors = dict.fromkeys(dn, 1)
    names = [name for name, _ in ix.iter_products(["rgb", "ndvi", "atp"], dn, dict.fromkeys(dn, CODING), factors)]
    assert names == ["rgb", "ndvi", "atp"]


def test_bands_for_lists_only_needed_bands() -> None:
    assert ix.bands_for(["ndvi"]) == ["b04", "b08"]
    assert ix.bands_for(["rgb", "ndmir"]) == ["b02", "b03", "b04", "b11", "b12"]


def test_upsample_repeats_blocks() -> None:
    a = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(ix.upsample(a, 2), [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
    assert ix.upsample(a, 1) is a


def test_the_compact_encoding_keeps_values_within_half_a_step() -> None:
    values = np.array([[-1.0, -0.12345, 0.0, 0.99995], [1.0, np.nan, 3.4, -3.4]], np.float32)
    steps = ix.compact(values)
    assert steps.dtype == np.int16 and steps[1, 1] == ix.COMPACT_NODATA
    decoded = np.where(steps == ix.COMPACT_NODATA, np.nan, steps * ix.COMPACT_SCALE)
    finite = np.abs(values) <= 1
    assert np.nanmax(np.abs(decoded - values)[finite]) <= ix.COMPACT_SCALE / 2 + 1e-7
    assert list(steps[1, 2:]) == [32767, -32767]  # out of int16's range: clipped, never the no-data value

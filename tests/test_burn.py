"""dNBR and severity classes against an independent NumPy computation."""

import numpy as np

from tasks.science.burn import CLOUD_SHADOW_SNOW, Moments, classify, colour, dnbr, masked, nbr, reflectance, summary


def expected_dnbr(pre_nir, pre_swir, post_nir, post_swir, pre_scl, post_scl, classes, nodata=0):
    """Straight from the definitions, pixel by pixel in float64."""
    out = np.full(pre_nir.shape, np.nan)
    for idx in np.ndindex(pre_nir.shape):
        ratios = []
        for nir, swir, scl in ((pre_nir, pre_swir, pre_scl), (post_nir, post_swir, post_scl)):
            if nir[idx] == nodata or swir[idx] == nodata or scl[idx] in classes:
                break
            n, s = nir[idx] * 1e-4 - 0.1, swir[idx] * 1e-4 - 0.1
            if abs(n + s) < 1e-6:  # a zero denominator, whatever the float32 rounding of each term
                break
            ratios.append((n - s) / (n + s))
        if len(ratios) == 2:
            out[idx] = ratios[0] - ratios[1]
    return out


def test_dnbr_matches_the_definition_with_no_data_masks_and_zero_denominators() -> None:
    rng = np.random.default_rng(3)
    shape = (40, 50)
    keys = ("pre_nir", "pre_swir", "post_nir", "post_swir")
    dn = {k: rng.integers(1001, 6000, shape).astype(np.uint16) for k in keys}
    dn["pre_nir"][0, :5] = 0  # no data before
    dn["post_swir"][1, :5] = 0  # no data after
    dn["pre_nir"][2, :5], dn["pre_swir"][2, :5] = 1000, 1000  # reflectance 0 + 0: zero denominator
    scl = {k: rng.integers(0, 12, shape).astype(np.uint8) for k in ("pre", "post")}
    for classes in ((), CLOUD_SHADOW_SNOW, (6,)):
        ratio = {}
        for when in ("pre", "post"):
            refl = {b: reflectance(dn[f"{when}_{b}"], 1e-4, -0.1, 0) for b in ("nir", "swir")}
            ratio[when] = nbr(*(masked(refl[b], scl[when], classes) for b in ("nir", "swir")))
        ours = dnbr(ratio["pre"], ratio["post"])
        want = expected_dnbr(dn["pre_nir"], dn["pre_swir"], dn["post_nir"], dn["post_swir"], scl["pre"], scl["post"],
                             classes)  # fmt: skip
        assert ours.dtype == np.float32
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(want))
        np.testing.assert_allclose(ours[~np.isnan(ours)], want[~np.isnan(want)], rtol=1e-5, atol=1e-5)
    assert np.isnan(ours[:3, :5]).all()


def test_severity_classes_follow_the_usgs_table() -> None:
    values = np.array([-0.6, -0.25, -0.2, -0.1, 0.0, 0.099, 0.1, 0.27, 0.3, 0.44, 0.5, 0.66, 1.2, np.nan], np.float32)
    bounds = [(-np.inf, -0.25, 1), (-0.25, -0.1, 2), (-0.1, 0.1, 3), (0.1, 0.27, 4), (0.27, 0.44, 5), (0.44, 0.66, 6),
              (0.66, np.inf, 7)]  # fmt: skip
    want = [next((c for lo, hi, c in bounds if np.float32(lo) <= v < np.float32(hi)), 0) for v in values]
    assert classify(values).tolist() == want
    picture = colour(values[None])
    assert picture.shape == (1, len(values), 4) and picture[0, -1, 3] == 0 and (picture[0, :-1, 3] == 255).all()


def test_summary_of_blocks_equals_numpy_over_the_whole_band() -> None:
    rng = np.random.default_rng(3)
    band = rng.normal(0.2, 0.3, (40, 50)).astype(np.float32)
    band[rng.random(band.shape) < 0.25] = np.nan  # no data
    blocks = [band[r : r + 16, c : c + 16] for r in range(0, 40, 16) for c in range(0, 50, 16)]
    stats = summary(sum((Moments.of(b) for b in blocks), Moments()), band.size)
    valid = band[~np.isnan(band)].astype(np.float64)
    assert stats["minimum"] == round(valid.min(), 4) and stats["maximum"] == round(valid.max(), 4)
    assert stats["mean"] == round(valid.mean(), 4) and abs(stats["stddev"] - valid.std()) < 1e-4
    assert stats["valid pixels"] == valid.size and stats["valid percent"] == round(100 * valid.size / band.size, 2)
    assert stats["burned share"] == round(float((valid >= 0.1).mean()), 4)
    assert summary(Moments.of(np.array([np.nan], np.float32)), 10)["mean"] is None

"""Batched SSIM against skimage.structural_similarity (1e-5), 2D and 3D, every option; Spearman."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity

from SaliencyTrustLib.metrics import (PAPER_SSIM, SSIM, count_reasons, spearman, ssim,
                                      ssim_pairs, summarize)
from SaliencyTrustLib.metrics._common import REASON_CONSTANT_MAP, REASON_NAN_MAP

OPTIONS = [
    dict(data_range=2.0),
    dict(data_range=1.0, win_size=5),
    dict(data_range=1.0, gaussian_weights=True),
    dict(data_range=1.0, gaussian_weights=True, sigma=0.8),
    dict(data_range=1.0, gaussian_weights=True, win_size=7),   # window narrower than the filter
    dict(data_range=1.0, gaussian_weights=True, sigma=0.8, win_size=9),   # and wider
    dict(data_range=1.0, use_sample_covariance=False),
    dict(data_range=0.5, K1=0.05, K2=0.1),
]


def _pair(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random(shape)
    b = 0.6 * a + 0.4 * rng.random(shape)
    return a.astype(dtype), b.astype(dtype)


@pytest.mark.parametrize("shape", [(4, 33, 29), (2, 15, 16, 17)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("options", OPTIONS)
def test_ssim_equals_skimage_for_each_option(shape, dtype, options):
    a, b = _pair(shape, dtype)
    ours = ssim(a, b, **options)
    ref = np.array([structural_similarity(x, y, **options) for x, y in zip(a, b)])
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    assert ours.shape == (shape[0],) and ours.dtype == np.float64


def test_paper_preset_is_skimage_defaults_with_data_range_2_and_accepts_torch():
    a, b = _pair((3, 24, 24), np.float32, seed=1)
    ours = ssim(torch.from_numpy(a), torch.from_numpy(b), preset="paper")
    ref = [structural_similarity(x, y, data_range=2) for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert PAPER_SSIM["data_range"] == 2.0
    assert SSIM(preset="paper").to_dict()["win_size"] == 7
    np.testing.assert_allclose(SSIM(preset="paper")(a, b), ours)
    # data_range changes the number, so it is never implicit
    assert not np.allclose(ssim(a, b, data_range=1.0), ours)
    with pytest.raises(ValueError, match="data_range"):
        ssim(a, b)


def test_ssim_pairs_share_statistics_and_match_skimage():
    a, _ = _pair((6, 20, 20), np.float32, seed=2)
    pairs = np.array([[0, 1], [1, 0], [2, 5], [5, 5], [3, 4]])
    ours = ssim_pairs(a, a, pairs, preset="paper")
    ref = [structural_similarity(a[i], a[j], data_range=2) for i, j in pairs]
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    assert ours[3] == pytest.approx(1.0)
    # threads split chunks of maps and pairs; the values do not depend on them
    many = np.tile(pairs, (40, 1))
    np.testing.assert_array_equal(ssim_pairs(a, a, many, preset="paper", workers=1),
                                  ssim_pairs(a, a, many, preset="paper", workers=3))


def test_constant_and_nan_maps_are_nan_with_reasons():
    a, b = _pair((4, 16, 16), np.float32, seed=3)
    b[1] = 0.0
    a[2, 0, 0] = np.nan
    values, reasons = ssim(a, b, preset="paper", return_reasons=True)
    assert np.isfinite(values[[0, 3]]).all()
    assert np.isnan(values[[1, 2]]).all()
    assert reasons[1] == REASON_CONSTANT_MAP and reasons[2] == REASON_NAN_MAP
    summary = summarize(values, reasons)
    assert summary["n_undefined"] == 2 and summary["n_valid"] == 2
    assert summary["undefined_reasons"] == count_reasons(reasons)
    assert summary["mean"] == pytest.approx(np.nanmean(values))
    computed = ssim(a[1:2], b[1:2], preset="paper", constant="compute")
    assert computed[0] == pytest.approx(structural_similarity(a[1], b[1], data_range=2), abs=1e-5)


def test_ssim_rejects_too_small_maps_even_windows_and_other_than_2d_or_3d():
    with pytest.raises(ValueError, match="1 spatial axes.*2D"):
        ssim(np.zeros((2, 30)), np.zeros((2, 30)), data_range=1)
    with pytest.raises(ValueError, match="singleton axis.*maps\\[:, 0\\]"):
        ssim(np.zeros((2, 1, 9, 9)), np.zeros((2, 1, 9, 9)), data_range=1)
    with pytest.raises(ValueError, match="4 spatial axes.*maps\\[:, 0\\]"):
        ssim(np.zeros((2, 1, 9, 9, 9)), np.zeros((2, 1, 9, 9, 9)), data_range=1)
    with pytest.raises(ValueError, match="win_size"):
        ssim(np.zeros((1, 5, 5)), np.zeros((1, 5, 5)), data_range=1)
    with pytest.raises(ValueError, match="odd"):
        ssim(np.zeros((1, 9, 9)), np.zeros((1, 9, 9)), data_range=1, win_size=4)


def test_spearman_equals_scipy_with_ties():
    a, b = _pair((3, 12, 12), np.float64, seed=4)
    a = np.round(a * 5)
    ours = spearman(a, b)
    ref = [spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    values, reasons = spearman(np.ones((1, 4, 4)), a[:1, :4, :4], return_reasons=True)
    assert np.isnan(values[0]) and reasons[0] == REASON_CONSTANT_MAP


def test_summary_statistics_and_seeded_bootstrap():
    values = np.array([0.1, 0.2, 0.4, 0.8, np.nan])
    s1 = summarize(values, seed=3)
    s2 = summarize(values, seed=3)
    assert s1 == s2
    assert s1["median"] == pytest.approx(0.3)
    assert s1["iqr"] == pytest.approx(np.percentile(values[:4], 75) - np.percentile(values[:4], 25))
    assert s1["ci_low"] <= s1["mean"] <= s1["ci_high"]
    assert s1["n_undefined"] == 1
    empty = summarize(np.array([np.nan]))
    assert np.isnan(empty["mean"]) and empty["n_valid"] == 0


def test_spearman_pairs_rank_each_map_once_and_match_scipy():
    from SaliencyTrustLib.metrics import spearman_pairs

    a, _ = _pair((5, 10, 10), np.float64, seed=6)
    a[2] = np.round(a[2] * 3)                 # ties
    a[4] = 1.0                                # constant: undefined
    pairs = np.array([[0, 1], [2, 3], [3, 2], [1, 1], [0, 4]])
    values, reasons = spearman_pairs(a, a, pairs, return_reasons=True)
    ref = [spearmanr(a[i].ravel(), a[j].ravel())[0] for i, j in pairs[:4]]
    np.testing.assert_allclose(values[:4], ref, atol=1e-12)
    assert np.isnan(values[4]) and reasons[4] == REASON_CONSTANT_MAP


def test_ssim_reference_reuses_statistics_and_equals_ssim():
    from SaliencyTrustLib.metrics import SSIMReference

    a, b = _pair((5, 18, 18), np.float32, seed=7)
    b[2] = 0.5                                     # constant: undefined
    reference = SSIMReference(a, preset="paper")
    for other in (b, a[::-1].copy(), b):
        values, reasons = reference(other, return_reasons=True)
        expected, expected_reasons = ssim(a, other, preset="paper", return_reasons=True)
        np.testing.assert_array_equal(values, expected)
        assert reasons == expected_reasons
    assert len(reference._prepared) == 1           # converted once, reused
    with pytest.raises(ValueError, match="shape"):
        reference(b[:2])


def test_kernel_bands_and_gathered_items_match_skimage(monkeypatch):
    """Large maps are cut into bands of rows (and 3D maps into planes), undefined items are
    skipped: every value still equals scikit-image's, float64 to rounding, whatever the threads."""
    from SaliencyTrustLib.metrics import _ssim_kernel

    monkeypatch.setattr(_ssim_kernel, "TASK_VALUES", 512)       # many small bands
    a, b = _pair((5, 61, 47), np.float64, seed=8)
    a[1, 3, 3] = np.nan                                          # item 1 undefined: 0, 2, 3, 4 run
    for options in (dict(data_range=1.0), dict(data_range=1.0, gaussian_weights=True, win_size=7)):
        values = ssim(a, b, workers=1, **options)
        ref = [structural_similarity(x, y, **options) for x, y in zip(a, b)]
        assert np.isnan(values[1])
        np.testing.assert_allclose(np.delete(values, 1), np.delete(ref, 1), atol=1e-12, rtol=0)
        np.testing.assert_array_equal(values, ssim(a, b, workers=2, **options))
    a3, b3 = _pair((2, 13, 29, 23), np.float32, seed=9)
    values = ssim(a3, b3, data_range=1.0, gaussian_weights=True, sigma=0.8)
    ref = [structural_similarity(x, y, data_range=1.0, gaussian_weights=True, sigma=0.8)
           for x, y in zip(a3, b3)]
    np.testing.assert_allclose(values, ref, atol=1e-6, rtol=0)


def test_spearman_reference_ranks_once_and_equals_spearman():
    from SaliencyTrustLib.metrics import SpearmanReference

    a, b = _pair((4, 12, 12), np.float32, seed=10)
    a[0] = np.round(a[0] * 4)                      # ties in the reference
    b[2] = 0.25                                    # constant: undefined
    reference = SpearmanReference(a)
    for other in (b, a[::-1].copy()):
        values, reasons = reference(other, return_reasons=True)
        expected, expected_reasons = spearman(a, other, return_reasons=True)
        np.testing.assert_array_equal(values, expected)
        assert reasons == expected_reasons
    ranks = reference._ranks
    reference(b)
    assert reference._ranks is ranks               # ranked once, reused
    ref = [spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(np.delete(reference(b), 2), np.delete(ref, 2), atol=1e-12)


def test_ssim_from_several_python_threads_at_once_equals_one_at_a_time():
    """numba's workqueue pool takes one launch at a time (a second one aborts the process):
    concurrent callers, e.g. a GUI worker beside a script, are queued, not crashed."""
    from concurrent.futures import ThreadPoolExecutor

    a, b = _pair((6, 90, 80), np.float32, seed=11)
    expected = ssim(a, b, preset="paper")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: ssim(a, b, preset="paper"), range(8)))
    for values in results:
        np.testing.assert_array_equal(values, expected)

"""AUPRC, average precision, ROC-AUC and friends against scikit-learn (1e-6) and by construction."""

import numpy as np
import pytest
import torch
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

from SaliencyTrustLib.metrics import (auprc, average_precision, count_reasons, energy_inside,
                                      hit_rate, iou, pointing_game, precision_recall_points,
                                      relevance_rank, roc_auc)
from SaliencyTrustLib.metrics._common import (REASON_ALL_POSITIVE, REASON_CONSTANT_MAP,
                                              REASON_EMPTY_MASK, REASON_NAN_MAP)


def _sk_auprc(m, g):
    precision, recall, _ = precision_recall_curve(g.ravel(), m.ravel())
    return auc(recall, precision)


def _cases(shape, seed, quantize=None, dtype=np.float32):
    rng = np.random.default_rng(seed)
    maps = rng.random(shape)
    if quantize:  # many ties
        maps = np.round(maps * quantize) / quantize
    masks = rng.random(shape) < 0.15
    # a correlated item so the curve is not random
    maps[0] = np.where(masks[0], maps[0] * 0.5 + 0.5, maps[0] * 0.6)
    return maps.astype(dtype), masks


@pytest.mark.parametrize("shape", [(7, 23, 19), (4, 9, 10, 11)])
@pytest.mark.parametrize("quantize", [None, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auprc_and_ap_equal_sklearn_2d_3d_ties(shape, quantize, dtype):
    maps, masks = _cases(shape, 1, quantize, dtype)
    ours = auprc(maps, masks)
    ap = average_precision(maps, masks)
    roc = roc_auc(maps, masks)
    ref = np.array([_sk_auprc(m, g) for m, g in zip(maps, masks)])
    ref_ap = np.array([average_precision_score(g.ravel(), m.ravel()) for m, g in zip(maps, masks)])
    ref_roc = np.array([roc_auc_score(g.ravel(), m.ravel()) for m, g in zip(maps, masks)])
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ap, ref_ap, atol=1e-6, rtol=0)
    np.testing.assert_allclose(roc, ref_roc, atol=1e-6, rtol=0)
    assert ours.dtype == np.float64 and ours.shape == (shape[0],)
    assert ours[0] > ours[1:].mean() + 0.2          # the informative item localizes better


def test_auprc_torch_input_threads_and_signed_zero():
    maps, masks = _cases((6, 16, 16), 2, quantize=4)
    maps[1, :4] = -0.0                              # -0.0 and 0.0 are one threshold for sklearn
    maps[1, 4:8] = 0.0
    masks[1, 0, 0] = True
    ref = np.array([_sk_auprc(m, g) for m, g in zip(maps, masks)])
    for workers in (1, 3):
        np.testing.assert_allclose(auprc(torch.from_numpy(maps), torch.from_numpy(masks),
                                         workers=workers), ref, atol=1e-6, rtol=0)


def test_integer_and_float64_only_maps_take_the_exact_path():
    rng = np.random.default_rng(3)
    maps = rng.integers(0, 5, (3, 12, 12)).astype(np.uint8)
    masks = rng.random((3, 12, 12)) < 0.3
    ref = [_sk_auprc(m, g) for m, g in zip(maps, masks)]
    np.testing.assert_allclose(auprc(maps, masks), ref, atol=1e-6)
    fine = rng.random((3, 12, 12)) * 1e-9 + 0.5      # distinct in float64 only
    ref = [_sk_auprc(m, g) for m, g in zip(fine, masks)]
    np.testing.assert_allclose(auprc(fine, masks), ref, atol=1e-6)


def test_precision_recall_points_equal_sklearn_curve():
    maps, masks = _cases((1, 20, 20), 4, quantize=10)
    precision, recall, thresholds = precision_recall_points(maps[0], masks[0])
    p, r, t = precision_recall_curve(masks[0].ravel(), maps[0].ravel())
    np.testing.assert_allclose(precision, p, atol=1e-12)
    np.testing.assert_allclose(recall, r, atol=1e-12)
    np.testing.assert_allclose(thresholds, t, atol=0)


def test_undefined_items_are_nan_with_reasons_and_counted():
    maps, masks = _cases((5, 12, 12), 5)
    masks[1] = False                       # empty mask
    maps[2, 3, 3] = np.nan                 # NaN in map
    maps[3] = 0.25                         # constant map
    masks[4] = True                        # all-positive mask: AUPRC defined (= 1)
    values, reasons = auprc(maps, masks, return_reasons=True)
    assert np.isfinite(values[0]) and reasons[0] is None
    assert np.isnan(values[1:4]).all()
    assert reasons[1:4] == [REASON_EMPTY_MASK, REASON_NAN_MAP, REASON_CONSTANT_MAP]
    assert values[4] == pytest.approx(1.0) and reasons[4] is None
    assert average_precision(maps, masks)[4] == pytest.approx(1.0)
    assert count_reasons(reasons) == {REASON_EMPTY_MASK: 1, REASON_NAN_MAP: 1,
                                      REASON_CONSTANT_MAP: 1}
    roc, roc_reasons = roc_auc(maps, masks, return_reasons=True)
    assert np.isnan(roc[4]) and roc_reasons[4] == REASON_ALL_POSITIVE
    # scikit-learn's value for the constant map, on request: (prevalence + 1) / 2
    computed = auprc(maps[3:4], masks[3:4], constant="compute")
    assert computed[0] == pytest.approx(_sk_auprc(maps[3], masks[3]))
    assert computed[0] == pytest.approx((masks[3].mean() + 1) / 2)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="shape"):
        auprc(np.zeros((2, 4, 4)), np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="batch"):
        auprc(np.zeros(4), np.zeros(4))
    with pytest.raises(ValueError, match="constant"):
        auprc(np.zeros((1, 4, 4)), np.ones((1, 4, 4)), constant="drop")


def test_pointing_game_iou_energy_rank_by_construction():
    maps = np.zeros((3, 10, 10), np.float32)
    masks = np.zeros((3, 10, 10), bool)
    masks[:, 2:5, 2:5] = True
    maps[0, 3, 3] = 1.0          # peak inside
    maps[1, 8, 8] = 1.0          # peak outside, 3+ px away
    maps[2, 6, 4] = 1.0          # peak 2 px below the mask
    maps += 0.01
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(pointing_game(maps, masks, tolerance=2.0), [1.0, 0.0, 1.0])
    assert hit_rate(maps, masks) == pytest.approx(1 / 3)
    np.testing.assert_allclose(iou(maps, masks, threshold=0.5), [1 / 9, 0.0, 0.0])
    full = masks.astype(np.float32)
    np.testing.assert_allclose(iou(full, masks), [1.0, 1.0, 1.0])
    values, reasons = iou(np.zeros((1, 4, 4)), np.zeros((1, 4, 4)), return_reasons=True)
    assert np.isnan(values[0]) and reasons[0] is not None
    energy = energy_inside(maps, masks)
    assert energy[0] == pytest.approx((1.0 + 9 * 0.01) / (1.0 + 100 * 0.01))
    np.testing.assert_allclose(relevance_rank(full, masks), [1.0, 1.0, 1.0])
    # ties at the K-th value count fractionally: a constant map scores the mask's prevalence
    np.testing.assert_allclose(relevance_rank(np.ones((1, 10, 10)), masks[:1]), [0.09])

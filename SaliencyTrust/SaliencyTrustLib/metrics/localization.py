"""Localization metrics of a saliency map against a ground-truth mask, batched.

Every function takes ``maps`` and ``masks`` as batches ``(B, *spatial)`` (2D ``(B, H, W)`` or 3D
``(B, D, H, W)``, axis order ``(K, J, I)`` like the rest of SaliencyTrust; numpy arrays or torch
tensors, never modified) and returns a float64 numpy array of ``B`` values. Masks are the ground
truth on the map's grid: any non-zero value is positive (boxes must be rasterized first, several
boxes unioned). Items whose value is undefined get ``NaN``; call with ``return_reasons=True`` to
also get one reason string (or ``None``) per item, e.g. ``values, reasons = auprc(m, g,
return_reasons=True)``, and :func:`SaliencyTrustLib.metrics.count_reasons` to count them.

AUPRC (:func:`auprc`) is the study's localization score (Arun et al. 2021): every pixel is a
prediction scored by its map value, **every distinct map value is a threshold**, and the score is
the trapezoidal area under the precision-recall curve, exactly
``sklearn.metrics.auc(recall, precision)`` of ``sklearn.metrics.precision_recall_curve(mask, map)``
(including its final point recall 0 / precision 1). Scikit-learn 0.23 (the study's) stopped the
curve at the first threshold of full recall; later versions keep the points below it, which all
have recall 1, so the trapezoid area is the same. :func:`average_precision` is
``sklearn.metrics.average_precision_score`` (step-wise sum, no interpolation).

Speed: the maps of a chunk of items are sorted at once (one ``np.sort`` along the rows, no
argsort); as only thresholds at a positive pixel's value move the recall, each item then needs
just two binary searches per distinct positive value, so the cost is one sort of the values plus
``O(P log N)`` for ``P`` positives, instead of scikit-learn's stable argsort and full-length passes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np

from ._common import (REASON_ALL_POSITIVE, REASON_CONSTANT_MAP, REASON_EMPTY_MASK,
                      REASON_EMPTY_UNION, REASON_NAN_MAP, REASON_ZERO_ENERGY, Reasons,
                      as_batch, as_mask_batch, check_same_shape, finish, finite_rows,
                      row_flags)

__all__ = ["auprc", "average_precision", "roc_auc", "pointing_game", "hit_rate", "iou",
           "energy_inside", "relevance_rank", "precision_recall_points"]

#: Rows are processed in chunks of about this many values (bounds the temporary memory to
#: roughly 40 bytes per value of a chunk).
CHUNK_VALUES = 1 << 22

_Result = Union[np.ndarray, Tuple[np.ndarray, Reasons]]


def _prepare(maps: Any, masks: Any, constant: str) -> Tuple[np.ndarray, np.ndarray, Reasons]:
    """Flatten to ``(B, N)``, validate, and record the undefined items common to all metrics."""
    maps_b = as_batch(maps, "maps")
    masks_b = as_mask_batch(masks, "masks")
    check_same_shape(maps_b, masks_b, "maps", "masks")
    if not (np.issubdtype(maps_b.dtype, np.floating) or np.issubdtype(maps_b.dtype, np.integer)
            or maps_b.dtype == bool):
        raise TypeError(f"maps: expected a real-valued array, got dtype {maps_b.dtype}")
    if constant not in ("nan", "compute"):
        raise ValueError(f"constant must be 'nan' (undefined, the default) or 'compute' "
                         f"(scikit-learn's value), got {constant!r}")
    batch = maps_b.shape[0]
    flat = maps_b.reshape(batch, -1)
    truth = masks_b.reshape(batch, -1)
    finite, const = row_flags(flat, constant)
    positives = truth.any(axis=1)
    reasons: Reasons = []
    for i in range(batch):
        if not finite[i]:
            reasons.append(REASON_NAN_MAP)
        elif not positives[i]:
            reasons.append(REASON_EMPTY_MASK)
        elif const[i]:
            reasons.append(REASON_CONSTANT_MAP)
        else:
            reasons.append(None)
    return flat, truth, reasons


def _float32_exact(flat: np.ndarray) -> Optional[np.ndarray]:
    """``flat`` as float32 when that loses nothing (distinct values stay distinct), else None."""
    if flat.dtype == np.float32:
        return flat
    if flat.dtype in (np.float16, np.uint8, np.int8, np.uint16, np.int16, bool):
        return flat.astype(np.float32)
    as32 = flat.astype(np.float32)
    if np.array_equal(as32.astype(flat.dtype), flat):
        return as32
    return None


def _group_starts(flat: np.ndarray, truth: np.ndarray):
    """Sort each row ascending and describe its groups of equal values.

    Returns ``(starts, n_per_row, positives_per_row, tps, totals)`` where ``starts`` are flat
    indices (row-major, ``row = starts // N``) of the first element of each group of equal values
    in the ascending order, and for each group ``tps`` / ``totals`` are the numbers of positive /
    all elements whose value is >= the group's value (the counts at that threshold).
    """
    batch, n = flat.shape
    as32 = _float32_exact(flat)
    if as32 is not None:
        # Order-preserving unsigned key of the float32 bit pattern; "+ 0" maps -0.0 to +0.0 so
        # that the two zeros form one group, as they compare equal for scikit-learn.
        bits = (as32 + np.float32(0)).view(np.uint32)
        flip = np.where(bits >> np.uint32(31), np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
        keys = ((bits ^ flip).astype(np.uint64) << np.uint64(1)) | truth.astype(np.uint64)
        keys.sort(axis=1)
        labels = (keys & np.uint64(1)).astype(np.int32)
        values = keys >> np.uint64(1)
        del keys
    else:  # values that float32 cannot hold exactly: argsort (slower, same result)
        order = np.argsort(flat, axis=1, kind="stable")
        values = np.take_along_axis(flat, order, axis=1)
        labels = np.take_along_axis(truth, order, axis=1).astype(np.int32)
        del order
    new_group = np.empty((batch, n), bool)
    new_group[:, 0] = True
    np.not_equal(values[:, 1:], values[:, :-1], out=new_group[:, 1:])
    del values
    starts = np.flatnonzero(new_group)
    del new_group
    cum = np.cumsum(labels, axis=1, dtype=np.int64).ravel()
    labels_flat = labels.ravel()
    positives = cum.reshape(batch, n)[:, -1]
    rows = starts // n
    below = cum[starts] - labels_flat[starts]          # positives strictly below the group
    tps = positives[rows] - below
    totals = n - (starts - rows * n)
    return starts, rows, positives, tps, totals


def _row_curve_sums(sorted_row: np.ndarray, positive_values: np.ndarray, kind: str) -> float:
    """One item's metric from its ascending-sorted values and the values of its positives.

    Only thresholds equal to a positive's value change the recall, so the trapezoid (and the
    average-precision sum) reduce to one term per distinct positive value ``v``, built from the
    counts of values ``>= v`` and ``> v`` (two binary searches in the sorted row).
    """
    n = sorted_row.size
    pos = np.sort(positive_values)
    p_total = pos.size
    distinct = np.empty(p_total, bool)
    distinct[0] = True
    np.not_equal(pos[1:], pos[:-1], out=distinct[1:])
    first = np.flatnonzero(distinct)
    values = pos[first]
    counts = np.diff(np.append(first, p_total))
    ge = n - np.searchsorted(sorted_row, values, side="left")      # elements >= v
    gt = n - np.searchsorted(sorted_row, values, side="right")     # elements >  v
    tp_ge = (p_total - first).astype(np.float64)                   # positives >= v
    if kind == "roc":
        # Mann-Whitney: AUC = (sum of the positives' mid-ranks - P(P+1)/2) / (P * negatives),
        # equal to the trapezoid under the ROC curve, ties included.
        negatives = n - p_total
        mid_rank = (n - ge) + (ge - gt + 1) / 2.0
        return float((np.dot(counts, mid_rank) - p_total * (p_total + 1) / 2.0)
                     / (p_total * float(negatives)))
    tp_gt = tp_ge - counts
    recall, recall_prev = tp_ge / p_total, tp_gt / p_total
    precision = tp_ge / ge
    with np.errstate(divide="ignore", invalid="ignore"):
        # above the highest value, scikit-learn's curve ends at the point (recall 0, precision 1)
        precision_prev = np.where(gt > 0, tp_gt / np.maximum(gt, 1), 1.0)
    if kind == "auprc":
        return float(np.sum((recall - recall_prev) * (precision + precision_prev)) * 0.5)
    return float(np.sum((recall - recall_prev) * precision))


def default_workers() -> int:
    """Threads used to sort chunks of items (``numpy`` releases the GIL while sorting)."""
    return max(1, min(4, os.cpu_count() or 1))


def _curve_metric(flat: np.ndarray, truth: np.ndarray, kind: str,
                  workers: Optional[int] = None) -> np.ndarray:
    batch, n = flat.shape
    out = np.zeros(batch, np.float64)
    workers = default_workers() if workers is None else max(1, int(workers))
    rows_per_chunk = max(1, min(CHUNK_VALUES // max(n, 1), -(-batch // workers)))
    if flat.dtype not in (np.float32, np.float64):
        flat = flat.astype(np.float64)

    def run_chunk(lo: int) -> None:
        hi = min(batch, lo + rows_per_chunk)
        sorted_rows = np.sort(flat[lo:hi], axis=1)       # one vectorized sort per chunk
        for i in range(lo, hi):
            out[i] = _row_curve_sums(sorted_rows[i - lo], flat[i][truth[i]], kind)

    chunk_starts = range(0, batch, rows_per_chunk)
    if workers == 1 or len(chunk_starts) == 1:
        for lo in chunk_starts:
            run_chunk(lo)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run_chunk, chunk_starts))
    return out


def _metric(maps, masks, kind, constant, return_reasons, workers=None) -> _Result:
    flat, truth, reasons = _prepare(maps, masks, constant)
    if kind == "roc":
        all_pos = truth.all(axis=1)
        reasons = [REASON_ALL_POSITIVE if (r is None and all_pos[i]) else r
                   for i, r in enumerate(reasons)]
    defined = np.array([r is None for r in reasons], bool)
    values = np.full(flat.shape[0], np.nan)
    if defined.any():
        index = np.flatnonzero(defined)
        sub_flat = flat if defined.all() else flat[index]
        sub_truth = truth if defined.all() else truth[index]
        values[index] = _curve_metric(sub_flat, sub_truth, kind, workers)
    return finish(values, reasons, return_reasons)


def auprc(maps: Any, masks: Any, *, constant: str = "nan", return_reasons: bool = False,
          workers: Optional[int] = None) -> _Result:
    """Per-item area under the precision-recall curve, as in Arun et al. 2021.

    Args:
        maps: saliency maps ``(B, *spatial)``, numpy or torch, any real dtype (higher = more
            salient). float32 values, or values float32 holds exactly, take the fast path; other
            float64 values are sorted with ``argsort`` (same result, slower).
        masks: ground truth ``(B, *spatial)`` on the same grid; non-zero = positive.
        constant: ``"nan"`` (default): a constant map has no ranking, its AUPRC is reported as
            NaN with a reason; ``"compute"``: return scikit-learn's value for it,
            ``(prevalence + 1) / 2`` (an artefact of the curve's final point).
        return_reasons: also return one reason string per item (``None`` where defined).
        workers: threads sorting chunks of items in parallel (default :func:`default_workers`,
            up to 4); the result does not depend on it.

    Returns:
        float64 array ``(B,)``, each the trapezoidal area under the curve of
        ``sklearn.metrics.precision_recall_curve(mask.ravel(), map.ravel())``, i.e.
        ``sklearn.metrics.auc(recall, precision)``. NaN (with a reason) for an empty mask
        (scikit-learn returns a meaningless number with a warning), a map with NaN/inf
        (scikit-learn raises) and, by default, a constant map. An all-positive mask gives 1.
    """
    return _metric(maps, masks, "auprc", constant, return_reasons, workers)


def average_precision(maps: Any, masks: Any, *, constant: str = "nan",
                      return_reasons: bool = False, workers: Optional[int] = None) -> _Result:
    """Per-item average precision, ``sklearn.metrics.average_precision_score(mask, map)``.

    ``AP = sum_k (R_k - R_{k+1}) P_k`` over the distinct thresholds (no interpolation). Arguments,
    undefined cases and return as :func:`auprc`.
    """
    return _metric(maps, masks, "ap", constant, return_reasons, workers)


def roc_auc(maps: Any, masks: Any, *, constant: str = "nan", return_reasons: bool = False,
          workers: Optional[int] = None) -> _Result:
    """Per-item area under the ROC curve, ``sklearn.metrics.roc_auc_score(mask, map)``.

    The same as Quantus 0.6 ``AUC`` (which loops ``roc_curve`` + ``auc`` per image). Also NaN for
    an all-positive mask (no negative pixel). Arguments as :func:`auprc`.
    """
    return _metric(maps, masks, "roc", constant, return_reasons, workers)


def precision_recall_points(map_: Any, mask: Any) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The precision-recall curve of one map, in scikit-learn's layout (for plots and checks).

    Args:
        map_: one saliency map ``(*spatial)``.
        mask: its ground truth ``(*spatial)``.

    Returns:
        ``(precision, recall, thresholds)`` as ``sklearn.metrics.precision_recall_curve``:
        thresholds increasing, ``precision``/``recall`` one longer, ending with 1 / 0.
    """
    flat, truth, reasons = _prepare(np.asarray(map_)[None] if not hasattr(map_, "detach")
                                    else map_[None], np.asarray(mask)[None]
                                    if not hasattr(mask, "detach") else mask[None], "compute")
    if reasons[0] is not None:
        raise ValueError(f"precision-recall curve undefined: {reasons[0]}")
    starts, rows, positives, tps, totals = _group_starts(flat, truth)
    thresholds = np.sort(flat[0])[starts]
    precision = np.append(tps / totals, 1.0)
    recall = np.append(tps / positives[0], 0.0)
    return precision, recall, thresholds


def _peak_in_mask(maps_b: np.ndarray, masks_b: np.ndarray, tolerance: float,
                  spacing: Optional[Sequence[float]]) -> np.ndarray:
    from scipy import ndimage

    batch = maps_b.shape[0]
    flat = maps_b.reshape(batch, -1)
    peak = np.argmax(flat, axis=1)
    hits = np.zeros(batch, np.float64)
    for i in range(batch):
        if tolerance > 0:
            distance = ndimage.distance_transform_edt(~masks_b[i], sampling=spacing)
            hits[i] = float(distance.reshape(-1)[peak[i]] <= tolerance)
        else:
            hits[i] = float(masks_b[i].reshape(-1)[peak[i]])
    return hits


def pointing_game(maps: Any, masks: Any, *, tolerance: float = 0.0,
                  spacing: Optional[Sequence[float]] = None, return_reasons: bool = False) -> _Result:
    """Pointing game / hit: 1 when the map's maximum lies in the mask (within ``tolerance``).

    Args:
        maps, masks: as :func:`auprc`.
        tolerance: distance from the mask that still counts as a hit, in the units of
            ``spacing`` (pixels when ``spacing`` is None). Zhang et al. 2018 used 15 px;
            CheXlocalize's hit rate uses 0 (the default).
        spacing: voxel size per spatial axis, in the arrays' axis order (``(K, J, I)``).
        return_reasons: as :func:`auprc`.

    Returns:
        float64 ``(B,)`` of 1.0 (hit) / 0.0 (miss). The maximum is the first one in C order when
        several pixels share it; constant maps (no maximum), maps with NaN and empty masks give
        NaN with a reason. :func:`hit_rate` is the mean over items.
    """
    flat, truth, reasons = _prepare(maps, masks, "nan")
    maps_b = as_batch(maps, "maps")
    shape = maps_b.shape
    values = np.full(shape[0], np.nan)
    defined = np.flatnonzero([r is None for r in reasons])
    if defined.size:
        values[defined] = _peak_in_mask(flat[defined].reshape((-1,) + shape[1:]),
                                        truth[defined].reshape((-1,) + shape[1:]),
                                        tolerance, spacing)
    return finish(values, reasons, return_reasons)


def hit_rate(maps: Any, masks: Any, **kwargs) -> float:
    """Fraction of hits of :func:`pointing_game` over the items where it is defined (NaN if none)."""
    values = pointing_game(maps, masks, **kwargs)
    return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")


def iou(maps: Any, masks: Any, *, threshold: float = 0.5, return_reasons: bool = False) -> _Result:
    """Intersection over union of the thresholded map ``map >= threshold`` and the mask.

    CheXlocalize (Saporta et al. 2022) binarizes maps normalized to [0, 1] at a threshold tuned per
    pathology on a validation set and reports the mean IoU (mIoU); pass that threshold here.

    Returns:
        float64 ``(B,)``; NaN with a reason for maps with NaN and when both the thresholded map
        and the mask are empty. An empty mask with a non-empty thresholded map gives 0.
    """
    flat, truth, _ = _prepare(maps, masks, "compute")
    finite = finite_rows(flat)
    with np.errstate(invalid="ignore"):
        predicted = flat >= threshold
    inter = np.count_nonzero(predicted & truth, axis=1)
    union = np.count_nonzero(predicted | truth, axis=1)
    reasons: Reasons = [REASON_NAN_MAP if not finite[i] else
                        (REASON_EMPTY_UNION if union[i] == 0 else None) for i in range(len(union))]
    with np.errstate(divide="ignore", invalid="ignore"):
        values = inter / union
    return finish(values, reasons, return_reasons)


def energy_inside(maps: Any, masks: Any, *, clip_negative: bool = True,
                  return_reasons: bool = False) -> _Result:
    """Fraction of the map's total inside the mask: ``sum(map * mask) / sum(map)``.

    The energy-based pointing game (Wang et al. 2020, Score-CAM) and Quantus'
    ``RelevanceMassAccuracy`` (Arras et al. 2022). With ``clip_negative`` (default) negative values
    are set to 0 first (maps after the study's post-processing are >= 0 anyway); Quantus does not
    clip, so the two agree on non-negative maps. For boxes, pass the rasterized box mask.

    Returns:
        float64 ``(B,)``; NaN with a reason for empty masks, maps with NaN and maps summing to 0.
    """
    flat, truth, reasons = _prepare(maps, masks, "compute")
    work = flat.astype(np.float64)
    if clip_negative:
        work = np.maximum(work, 0.0)
    total = work.sum(axis=1)
    inside = np.where(truth, work, 0.0).sum(axis=1)
    reasons = [r if r is not None else (REASON_ZERO_ENERGY if total[i] == 0 else None)
               for i, r in enumerate(reasons)]
    with np.errstate(divide="ignore", invalid="ignore"):
        values = inside / total
    return finish(values, reasons, return_reasons)


def relevance_rank(maps: Any, masks: Any, *, return_reasons: bool = False) -> _Result:
    """Fraction of the ``K`` highest-valued pixels that lie in the mask, ``K`` = mask size.

    Quantus' ``RelevanceRankAccuracy`` (Arras et al. 2022). Ties at the K-th value are counted
    fractionally (the expected value under random tie-breaking); Quantus breaks them by its
    ``argsort`` order, so the two agree exactly on maps without ties at that rank.

    Returns:
        float64 ``(B,)``; NaN with a reason for empty masks and maps with NaN.
    """
    flat, truth, reasons = _prepare(maps, masks, "compute")
    values = np.full(flat.shape[0], np.nan)
    for i, reason in enumerate(reasons):
        if reason is not None:
            continue
        k = int(truth[i].sum())
        row = flat[i].astype(np.float64)
        kth = np.partition(row, row.size - k)[row.size - k]      # K-th largest value
        above = row > kth
        tied = row == kth
        n_above = int(above.sum())
        hits = float((above & truth[i]).sum())
        if n_above < k:  # fill the remaining slots from the tied values, in expectation
            tied_pos = float((tied & truth[i]).sum())
            hits += (k - n_above) * tied_pos / float(tied.sum())
        values[i] = hits / k
    return finish(values, reasons, return_reasons)

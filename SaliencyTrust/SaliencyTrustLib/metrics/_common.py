"""Input handling shared by the metrics: batches in, numpy out, undefined items recorded.

Every metric takes a batch ``(B, *spatial)`` as a numpy array or a torch tensor (any device; it is
copied to host memory) and returns one float64 value per item. An item whose value is undefined
(empty mask, constant map, NaN in a map) gets ``NaN`` and a reason string; the reasons are
returned when the metric is called with ``return_reasons=True`` and can be counted with
:func:`count_reasons`. Nothing is ever silently averaged: the summaries in
:mod:`SaliencyTrustLib.metrics.statistics` drop NaN items and report how many they dropped.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Reason strings used by the metrics (stable: reports and tests match on them).
REASON_EMPTY_MASK = "empty mask (no positive pixel): precision-recall undefined"
REASON_NAN_MAP = "map contains NaN or inf"
REASON_CONSTANT_MAP = "constant map: no ranking / SSIM normalisation undefined"
REASON_ALL_POSITIVE = "mask covers every pixel: no negative pixel"
REASON_EMPTY_UNION = "both the thresholded map and the mask are empty: IoU undefined"
REASON_ZERO_ENERGY = "map sums to zero: energy fraction undefined"

Reasons = List[Optional[str]]


def to_numpy(batch: Any, name: str) -> np.ndarray:
    """Return ``batch`` (numpy array, torch tensor or nested sequence) as a numpy array.

    torch tensors are detached and copied to host memory; the caller's object is never modified.
    """
    if hasattr(batch, "detach") and hasattr(batch, "cpu"):
        batch = batch.detach().cpu().numpy()
    array = np.asarray(batch)
    if array.dtype == object:
        raise TypeError(f"{name}: expected a numeric array or tensor, got an object array; "
                        "pass a numpy array or torch tensor of shape (B, *spatial)")
    return array


def as_batch(batch: Any, name: str, min_spatial: int = 1) -> np.ndarray:
    """Validate a batch ``(B, *spatial)`` and return it as numpy.

    Raises:
        ValueError: when ``batch`` has fewer than ``1 + min_spatial`` dimensions.
    """
    array = to_numpy(batch, name)
    if array.ndim < 1 + min_spatial:
        raise ValueError(f"{name}: expected a batch of shape (B, *spatial) with at least "
                         f"{min_spatial} spatial dimension(s), got shape {array.shape}; add the "
                         "batch axis, e.g. maps[None] for a single map")
    return array


def check_same_shape(a: np.ndarray, b: np.ndarray, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} has shape {a.shape} but {name_b} has shape {b.shape}; they must "
                         "match item for item, (B, *spatial) on the same grid (resample the mask "
                         "onto the map grid first)")


def as_mask_batch(masks: Any, name: str = "masks") -> np.ndarray:
    """Ground truth as a bool batch; any non-zero value is positive (label maps are unioned)."""
    array = as_batch(masks, name)
    if array.dtype != bool:
        if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
            raise ValueError(f"{name} contains NaN or inf; a ground-truth mask must be finite "
                             "(0 = background, non-zero = abnormality)")
        array = array != 0
    return array


def finite_rows(flat: np.ndarray) -> np.ndarray:
    """Per row of ``(B, N)``: True when every value is finite."""
    if np.issubdtype(flat.dtype, np.floating):
        return np.isfinite(flat).all(axis=1)
    return np.ones(flat.shape[0], bool)


def row_flags(flat: np.ndarray, constant: str = "nan") -> Tuple[np.ndarray, np.ndarray]:
    """Per row of ``(B, N)``: ``(finite, constant)`` flags, from one min and one max per row
    (min and max propagate NaN, and an inf is the min or the max). ``constant`` flags are all
    False when ``constant="compute"``; a NaN row is not constant."""
    if not flat.shape[1]:
        return np.ones(flat.shape[0], bool), np.zeros(flat.shape[0], bool)
    low, high = flat.min(axis=1), flat.max(axis=1)
    floating = np.issubdtype(flat.dtype, np.floating)
    finite = np.isfinite(low) & np.isfinite(high) if floating else np.ones(flat.shape[0], bool)
    with np.errstate(invalid="ignore"):
        const = low == high if constant == "nan" else np.zeros(flat.shape[0], bool)
    return finite, const


def count_reasons(reasons: Sequence[Optional[str]]) -> Dict[str, int]:
    """How many items are undefined, per reason: ``{reason: count}`` (defined items omitted)."""
    return dict(Counter(r for r in reasons if r is not None))


def finish(values: np.ndarray, reasons: Reasons, return_reasons: bool
           ) -> "np.ndarray | Tuple[np.ndarray, Reasons]":
    values = np.asarray(values, dtype=np.float64)
    for i, reason in enumerate(reasons):
        if reason is not None:
            values[i] = np.nan
    return (values, reasons) if return_reasons else values

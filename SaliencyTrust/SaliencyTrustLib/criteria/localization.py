"""Criterion 1, localization utility: per-image AUPRC of each method's maps against the ground truth,
and the study's baselines (Arun et al. 2021).

Baselines, each scored with the same AUPRC on the same images and masks:

* ``average_mask``: the pixel-wise mean of the **training** masks used as the map of every test
  image (needs ``training_masks`` on the test grid);
* ``localization_network``: a segmentation / detection network's output maps (``localization_maps``,
  e.g. U-Net probabilities or rasterized RetinaNet box scores);
* ``randomized_model``: the same method on the fully randomized model (``randomized_maps``, one
  entry per method);
* ``uniform_random``: i.i.d. U(0, 1) maps drawn with ``seed`` (chance level, ~ the prevalence).

Pass rule (:data:`LOCALIZATION_RULE`): a method passes when its mean AUPRC over images is higher
than the mean AUPRC of the average-training-mask baseline (the study's reference for "useful
localization"); without training masks, higher than the uniform-random baseline, and the rule text
says so. Items with undefined AUPRC (empty mask, NaN or constant map) are NaN, dropped from the
mean and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..metrics import auprc, average_precision, summarize
from ._common import MapsLike, as_maps_dict, versions

__all__ = ["LocalizationResult", "localization_utility", "average_mask_map", "LOCALIZATION_RULE",
           "masks_from_boxes"]

LOCALIZATION_RULE = ("pass when the method's mean per-image AUPRC (trapezoid under the "
                     "precision-recall curve, every distinct map value a threshold) is higher than "
                     "the mean AUPRC of the {baseline} baseline")


def average_mask_map(training_masks: Any, n_items: int) -> np.ndarray:
    """The average training mask (pixel-wise mean, float32 in [0, 1]) repeated ``n_items`` times."""
    from ..metrics._common import as_mask_batch

    masks = as_mask_batch(training_masks, "training_masks")
    mean = masks.mean(axis=0, dtype=np.float64).astype(np.float32)
    return np.broadcast_to(mean, (n_items,) + mean.shape)


def masks_from_boxes(boxes: Sequence[Sequence[Sequence[float]]], shape: Sequence[int],
                     **kwargs: Any) -> np.ndarray:
    """Rasterize per-image lists of ``(x, y, width, height)`` boxes (several boxes unioned) on a
    grid ``shape`` with :func:`SaliencyTrustLib.io.boxes_to_mask`; returns bool ``(B, *shape)``."""
    from ..io import boxes_to_mask

    return np.stack([boxes_to_mask(list(b), shape, **kwargs) for b in boxes]).astype(bool)


@dataclass
class LocalizationResult:
    """Per-image AUPRC (and AP) of every method and baseline, their summaries, and the verdicts.

    Attributes:
        per_image: ``{name: float64 (B,)}`` AUPRC per image for methods and baselines
            (baselines are named ``"baseline:<kind>"`` / ``"baseline:randomized_model:<method>"``).
        average_precision: the same for average precision.
        reasons: ``{name: [reason or None]}`` per image.
        summary: ``{name: summarize(...) dict}`` (mean, median, IQR, bootstrap CI, NaN count).
        passed: ``{method: bool}`` by :attr:`rule`.
        reference_baseline: the baseline name the rule compares with.
        rule: the pass rule, written out.
        params: seeds and settings; versions: package versions.
    """

    per_image: Dict[str, np.ndarray]
    average_precision: Dict[str, np.ndarray]
    reasons: Dict[str, List[Optional[str]]]
    summary: Dict[str, Dict[str, Any]]
    passed: Dict[str, bool]
    reference_baseline: str
    rule: str
    methods: List[str] = field(default_factory=list)
    params: Dict[str, Any] = field(default_factory=dict)
    versions: Dict[str, str] = field(default_factory=dict)

    def baseline_value(self, method: str) -> Dict[str, float]:
        """Mean AUPRC of every baseline relevant to ``method``."""
        out = {}
        for name, summary in self.summary.items():
            if name.startswith("baseline:randomized_model:"):
                if name.endswith(":" + method):
                    out["randomized_model"] = summary["mean"]
            elif name.startswith("baseline:"):
                out[name.split(":", 1)[1]] = summary["mean"]
        return out

    def to_dict(self) -> Dict[str, Any]:
        return {"criterion": "localization", "rule": self.rule,
                "reference_baseline": self.reference_baseline, "passed": dict(self.passed),
                "summary": self.summary,
                "per_image": {k: [None if not np.isfinite(x) else float(x) for x in v]
                              for k, v in self.per_image.items()},
                "params": self.params, "versions": self.versions}


def _score(maps: np.ndarray, masks: np.ndarray):
    values, reasons = auprc(maps, masks, return_reasons=True)
    ap = average_precision(maps, masks)
    return values, ap, reasons


def localization_utility(maps: MapsLike, masks: Any, *, training_masks: Any = None,
                         localization_maps: Any = None,
                         randomized_maps: Optional[Mapping[str, Any]] = None,
                         uniform_random: bool = True, seed: int = 0,
                         n_resamples: int = 10000) -> LocalizationResult:
    """Criterion 1 over a set of test images.

    Args:
        maps: ``{method: (B, *spatial)}`` saliency maps (numpy/torch), or one array.
        masks: ground truth ``(B, *spatial)`` on the maps' grid (boxes: :func:`masks_from_boxes`).
        training_masks: ``(N, *spatial)`` training-set masks for the average-mask baseline.
        localization_maps: ``(B, *spatial)`` output maps of a localization network.
        randomized_maps: ``{method: (B, *spatial)}`` maps of the fully randomized model.
        uniform_random: add the uniform-random-map baseline.
        seed: seed of the uniform-random maps and of the bootstrap CIs.
        n_resamples: bootstrap resamples of each summary's CI.

    Returns:
        :class:`LocalizationResult`.
    """
    from ..metrics._common import as_mask_batch

    methods = as_maps_dict(maps)
    gt = as_mask_batch(masks, "masks")
    for name, value in methods.items():
        if value.shape != gt.shape:
            raise ValueError(f"maps[{name!r}] has shape {value.shape} but masks {gt.shape}; "
                             "resample the masks onto the map grid")
    entries: Dict[str, np.ndarray] = dict(methods)
    if training_masks is not None:
        entries["baseline:average_mask"] = average_mask_map(training_masks, gt.shape[0])
        if entries["baseline:average_mask"].shape != gt.shape:
            raise ValueError(f"training_masks items have shape "
                             f"{entries['baseline:average_mask'].shape[1:]}, test masks "
                             f"{gt.shape[1:]}; resample them onto one grid")
    if localization_maps is not None:
        entries["baseline:localization_network"] = as_maps_dict(localization_maps,
                                                                "localization_maps")["map"]
    for name, value in (randomized_maps or {}).items():
        entries[f"baseline:randomized_model:{name}"] = as_maps_dict(value, "randomized_maps")["map"]
    if uniform_random:
        rng = np.random.default_rng(seed)
        entries["baseline:uniform_random"] = rng.random(gt.shape, dtype=np.float32)
    per_image, ap, reasons, summary = {}, {}, {}, {}
    for name, value in entries.items():
        per_image[name], ap[name], reasons[name] = _score(value, gt)
        summary[name] = summarize(per_image[name], reasons[name], seed=seed,
                                  n_resamples=n_resamples)
        summary[name]["average_precision_mean"] = float(np.nanmean(ap[name])) if np.isfinite(
            ap[name]).any() else float("nan")
    reference = ("baseline:average_mask" if "baseline:average_mask" in entries
                 else "baseline:uniform_random" if uniform_random else None)
    if reference is None:
        raise ValueError("localization_utility needs training_masks (average-mask baseline) or "
                         "uniform_random=True to decide pass/fail")
    ref_mean = summary[reference]["mean"]
    passed = {m: bool(summary[m]["mean"] > ref_mean) for m in methods}
    rule = LOCALIZATION_RULE.format(baseline=reference.split(":", 1)[1].replace("_", " "))
    if reference == "baseline:uniform_random":
        rule += " (no training masks were given: the average-mask baseline of the study is absent)"
    return LocalizationResult(per_image=per_image, average_precision=ap, reasons=reasons,
                              summary=summary, passed=passed, reference_baseline=reference,
                              rule=rule, methods=list(methods),
                              params={"seed": seed, "n_images": int(gt.shape[0]),
                                      "n_resamples": n_resamples, "metric": "auprc (trapezoid)"},
                              versions=versions())

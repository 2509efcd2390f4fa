"""Criteria 3 and 4: repeatability and reproducibility of saliency maps (Arun et al. 2021).

* **Repeatability**: per image, SSIM between the maps of two models of **one architecture**
  trained independently (different seeds).
* **Reproducibility**: the same between two **different architectures** (the study: InceptionV3
  and DenseNet121).

Baselines: (a) a user-given pair of map sets from two independently trained **localization
networks** (the study: two U-Nets, SSIM ~ 0.975; two RetinaNets ~ 0.80); when not given it is
reported as **absent**; (b) the **different-image** baseline (mean SSIM between maps of different
images, :func:`.sensitivity.different_image_baseline`), which any usable pair must beat.

Pass rule (:data:`CONSISTENCY_RULES`): with a localization baseline, a method passes when its
mean SSIM over images is at least the localization networks' mean SSIM; without it (absent), the
verdict falls back to the weaker comparison with the different-image baseline (mean SSIM above
it), and the rule text says so. Spearman correlations are reported beside SSIM.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..metrics import spearman, ssim, summarize
from ._common import MapsLike, as_maps_dict, mean_or_nan, versions
from .sensitivity import DifferentImageBaseline, different_image_baseline

__all__ = ["ConsistencyResult", "repeatability", "reproducibility", "CONSISTENCY_RULES"]

CONSISTENCY_RULES = {
    "localization": ("pass when the mean SSIM (over images) between the two models' maps is at "
                     "least the mean SSIM between the two localization networks' maps"),
    "different_image": ("no localization-network baseline given (absent): pass when the mean SSIM "
                        "(over images) between the two models' maps is above the different-image "
                        "baseline (mean SSIM between maps of different images)"),
}


@dataclass
class ConsistencyResult:
    """Repeatability or reproducibility of one method.

    Attributes:
        criterion: ``"repeatability"`` or ``"reproducibility"``; method: its name.
        per_image: ``(B,)`` SSIM per image; reasons: per-image undefined reasons.
        spearman: ``(B,)`` Spearman rank correlation per image.
        summary: :func:`SaliencyTrustLib.metrics.summarize` of ``per_image``.
        localization_baseline: mean SSIM of the localization networks' maps, or None (absent).
        different_image: the :class:`DifferentImageBaseline` of the first model's maps.
        passed, rule: verdict and rule text.
    """

    criterion: str
    method: str
    per_image: np.ndarray
    reasons: List[Optional[str]]
    spearman: np.ndarray
    summary: Dict[str, Any]
    localization_baseline: Optional[float]
    different_image: DifferentImageBaseline
    passed: bool
    rule: str
    params: Dict[str, Any] = field(default_factory=dict)
    versions: Dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return float(self.summary["mean"])

    @property
    def above_different_image(self) -> bool:
        return bool(self.value > self.different_image.mean)

    def to_dict(self) -> Dict[str, Any]:
        return {"criterion": self.criterion, "method": self.method, "value": self.value,
                "summary": self.summary, "spearman_mean": mean_or_nan(self.spearman),
                "localization_baseline": ("absent" if self.localization_baseline is None
                                          else self.localization_baseline),
                "different_image_baseline": self.different_image.to_dict(),
                "above_different_image": self.above_different_image,
                "passed": self.passed, "rule": self.rule, "params": self.params,
                "versions": self.versions}


def _consistency(criterion: str, maps_a: MapsLike, maps_b: MapsLike, localization_maps,
                 ssim_options, n_pairs, seed, n_resamples) -> Dict[str, ConsistencyResult]:
    options = dict(ssim_options or {"preset": "paper"})
    first = as_maps_dict(maps_a, "maps_a")
    second = as_maps_dict(maps_b, "maps_b")
    if set(first) != set(second):
        raise ValueError(f"maps_a has methods {sorted(first)} but maps_b {sorted(second)}; "
                         "give both models' maps for the same methods")
    loc_mean = None
    if localization_maps is not None:
        if len(localization_maps) != 2:
            raise ValueError("localization_maps must be a pair (maps of network 1, maps of "
                             "network 2), each (B, *spatial)")
        loc_a = as_maps_dict(localization_maps[0], "localization_maps[0]")["map"]
        loc_b = as_maps_dict(localization_maps[1], "localization_maps[1]")["map"]
        loc_mean = mean_or_nan(ssim(loc_a, loc_b, **options))
    results = {}
    for name in first:
        values, reasons = ssim(first[name], second[name], return_reasons=True, **options)
        rho = spearman(first[name], second[name])
        summary = summarize(values, reasons, seed=seed, n_resamples=n_resamples)
        diff = different_image_baseline(first[name], n_pairs=n_pairs, seed=seed,
                                        ssim_options=options)
        if loc_mean is not None:
            passed = bool(summary["mean"] >= loc_mean)
            rule = CONSISTENCY_RULES["localization"]
        else:
            passed = bool(summary["mean"] > diff.mean)
            rule = CONSISTENCY_RULES["different_image"]
        results[name] = ConsistencyResult(
            criterion=criterion, method=name, per_image=values, reasons=reasons, spearman=rho,
            summary=summary, localization_baseline=loc_mean, different_image=diff,
            passed=passed, rule=rule,
            params={"ssim_options": options, "n_pairs": n_pairs, "seed": seed,
                    "n_images": int(values.size),
                    "localization_baseline": "given" if loc_mean is not None else "absent"},
            versions=versions())
    return results


def repeatability(maps_a: MapsLike, maps_b: MapsLike, *, localization_maps: Any = None,
                  ssim_options: Optional[Dict[str, Any]] = None, n_pairs: int = 50, seed: int = 0,
                  n_resamples: int = 10000) -> Dict[str, ConsistencyResult]:
    """Criterion 3: maps of two independently trained models of one architecture.

    Args:
        maps_a, maps_b: ``{method: (B, *spatial)}`` (or one array each) of the same images, from
            model A and model B (compute them with
            :func:`SaliencyTrustLib.criteria.compute_maps`).
        localization_maps: optional pair ``(maps_net1, maps_net2)`` of two localization networks'
            output maps of the same images (the baseline); None -> "absent".
        ssim_options: :func:`SaliencyTrustLib.metrics.ssim` options (default preset "paper").
        n_pairs, seed: the different-image baseline's pairs per image and seed (also the
            bootstrap seed).
        n_resamples: bootstrap resamples of the summary's CI.

    Returns:
        ``{method: ConsistencyResult}``.
    """
    return _consistency("repeatability", maps_a, maps_b, localization_maps, ssim_options,
                        n_pairs, seed, n_resamples)


def reproducibility(maps_a: MapsLike, maps_b: MapsLike, *, localization_maps: Any = None,
                    ssim_options: Optional[Dict[str, Any]] = None, n_pairs: int = 50,
                    seed: int = 0, n_resamples: int = 10000) -> Dict[str, ConsistencyResult]:
    """Criterion 4: maps of two different architectures; arguments as :func:`repeatability`."""
    return _consistency("reproducibility", maps_a, maps_b, localization_maps, ssim_options,
                        n_pairs, seed, n_resamples)

"""Verdicts with their uncertainty: every pass / fail of the scorecard comes from here.

A criterion compares a method's per-image numbers with its baseline's on the **same images**
(paired): the difference ``d_i`` is oriented so that ``d_i > 0`` favours the method (higher AUPRC
than the baseline; lower SSIM to the original map than the different-image baseline; higher SSIM
between two models than the baseline). The verdict is decided by a seeded percentile-bootstrap 95%
confidence interval of the mean difference (:func:`SaliencyTrustLib.metrics.statistics.bootstrap_ci`):

* **pass** - the whole interval is above 0;
* **fail** - the whole interval is below 0;
* **undecided** - the interval contains 0, or fewer than ``min_images`` images have both numbers
  (default :data:`MIN_IMAGES`), with the reason.

Pairs where either number is undefined (NaN: an empty mask, a constant map) are dropped and counted.
A point estimate alone ("the mean is above the baseline") never decides: with 2 or 3 images, or a
margin inside the noise, the answer is "undecided".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence

import numpy as np

#: Fewest images with both numbers for a criterion to be decided (issue 12; the study used 100).
MIN_IMAGES = 20
#: Confidence level and resamples of the bootstrap interval.
LEVEL = 0.95
N_RESAMPLES = 10000

PASS, FAIL, UNDECIDED = "pass", "fail", "undecided"


@dataclass
class Verdict:
    """One decision.

    Attributes:
        status: ``"pass"``, ``"fail"`` or ``"undecided"``.
        difference: mean paired difference (> 0 favours the method), NaN without pairs.
        ci_low, ci_high: its bootstrap interval (``level``).
        n_images: pairs used; n_dropped: pairs with an undefined number.
        reason: why undecided (empty otherwise).
    """

    status: str
    difference: float
    ci_low: float
    ci_high: float
    n_images: int
    n_dropped: int
    reason: str = ""
    level: float = LEVEL

    @property
    def passed(self) -> Optional[bool]:
        """True / False, None when undecided (the scorecard's ``passed``)."""
        return None if self.status == UNDECIDED else self.status == PASS

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def paired_verdict(method: Sequence[Optional[float]], baseline: Sequence[Optional[float]], *,
                   higher_is_better: bool = True, min_images: int = MIN_IMAGES, seed: int = 0,
                   n_resamples: int = N_RESAMPLES, level: float = LEVEL) -> Verdict:
    """The verdict of per-image ``method`` numbers against per-image ``baseline`` numbers.

    Args:
        method, baseline: one number per image, same order (None / NaN = undefined).
        higher_is_better: True when a higher method number favours the method (AUPRC,
            repeatability SSIM); False for the randomization SSIM (lower is better).
        min_images: fewest defined pairs that can decide.
        seed, n_resamples, level: the bootstrap (same seed, same interval).

    Raises:
        ValueError: the two sequences have different lengths.
    """
    from ..metrics.statistics import bootstrap_ci

    a = np.array([np.nan if v is None else v for v in method], dtype=np.float64)
    b = np.array([np.nan if v is None else v for v in baseline], dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_verdict: {a.size} method values but {b.size} baseline values; "
                         "give one of each per image.")
    difference = (a - b) if higher_is_better else (b - a)
    defined = difference[np.isfinite(difference)]
    dropped = int(difference.size - defined.size)
    if defined.size == 0:
        return Verdict(UNDECIDED, float("nan"), float("nan"), float("nan"), 0, dropped,
                       "no image has both numbers defined")
    low, high = bootstrap_ci(defined, n_resamples=n_resamples, level=level, seed=seed)
    mean = float(defined.mean())
    if defined.size < min_images:
        return Verdict(UNDECIDED, mean, low, high, int(defined.size), dropped,
                       f"{defined.size} image(s) with both numbers, fewer than the minimum {min_images}")
    if low > 0:
        return Verdict(PASS, mean, low, high, int(defined.size), dropped)
    if high < 0:
        return Verdict(FAIL, mean, low, high, int(defined.size), dropped)
    return Verdict(UNDECIDED, mean, low, high, int(defined.size), dropped,
                   f"the {int(level * 100)}% CI of the difference [{low:.4f}, {high:.4f}] includes 0")


def final_state_verdict(per_state: Sequence[Sequence[Optional[float]]], baseline: Sequence[Optional[float]], *,
                        higher_is_better: bool = False, min_images: int = MIN_IMAGES, seed: int = 0,
                        n_resamples: int = N_RESAMPLES, level: float = LEVEL) -> tuple:
    """The randomization verdict over a cascade of states: the paired verdict of the **last**
    state (the fully randomized model) against the baseline. Deciding at a state fixed in advance
    keeps uninformative maps from passing by the luck of the best-looking state (choosing the
    lowest of 10 noisy state means passed uniform noise on a 24-image cohort).

    Returns:
        ``(Verdict, state index)``; ``(undecided, None)`` without states.
    """
    if not per_state:
        return Verdict(UNDECIDED, float("nan"), float("nan"), float("nan"), 0, 0, "no state"), None
    last = len(per_state) - 1
    return paired_verdict(per_state[last], baseline, higher_is_better=higher_is_better, min_images=min_images,
                          seed=seed, n_resamples=n_resamples, level=level), last

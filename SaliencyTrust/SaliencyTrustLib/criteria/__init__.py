"""The four trust criteria of Arun et al. 2021, their baselines, and the scorecard.

* :func:`localization_utility` (criterion 1) - per-image AUPRC vs the average-mask,
  localization-network, randomized-model and uniform-random baselines.
* :func:`randomization_sensitivity` (criterion 2) - SSIM/Spearman curves under
  :func:`cascading_randomization` (or :func:`independent_randomization`) vs the
  :func:`different_image_baseline`.
* :func:`repeatability` / :func:`reproducibility` (criteria 3, 4).
* :class:`Scorecard` - value, baseline, pass/fail and rule per method and criterion.
"""

from ._common import compute_maps, predicted_classes
from .consistency import CONSISTENCY_RULES, ConsistencyResult, repeatability, reproducibility
from .localization import (LOCALIZATION_RULE, LocalizationResult, average_mask_map,
                           localization_utility, masks_from_boxes)
from .randomization import (BN_POLICIES, CascadingRandomization, IndependentRandomization,
                            RandomizationUnit, cascading_randomization, fully_randomized,
                            independent_randomization, layer_seed, randomization_units,
                            trace_forward_order)
from .scorecard import CRITERIA, Scorecard, ScorecardRow
from .sensitivity import (SENSITIVITY_RULES, DifferentImageBaseline, SensitivityResult,
                          different_image_baseline, randomization_sensitivity)

__all__ = ["compute_maps", "predicted_classes", "localization_utility", "LocalizationResult",
           "average_mask_map", "masks_from_boxes", "LOCALIZATION_RULE",
           "randomization_sensitivity", "SensitivityResult", "different_image_baseline",
           "DifferentImageBaseline", "SENSITIVITY_RULES", "repeatability", "reproducibility",
           "ConsistencyResult", "CONSISTENCY_RULES", "Scorecard", "ScorecardRow", "CRITERIA",
           "BN_POLICIES", "CascadingRandomization", "IndependentRandomization",
           "RandomizationUnit", "cascading_randomization", "independent_randomization",
           "fully_randomized", "layer_seed", "randomization_units", "trace_forward_order"]

"""Metrics of saliency maps: localization (AUPRC and friends), similarity (SSIM, Spearman), statistics,
faithfulness (deletion / insertion curves) and the input perturbations of the robustness criterion.

Every metric takes batches ``(B, *spatial)`` (numpy or torch, 2D or 3D) and returns a float64 numpy
array with one value per item; undefined items are NaN and their reasons are returned with
``return_reasons=True`` (count them with :func:`count_reasons`). :class:`DeletionInsertion` also
takes the model and its input images and returns curves (:class:`FaithfulnessCurves`); torch is
imported when these functions run, never by importing this package.
"""

from ._common import count_reasons
from .faithfulness import (FILLS, DeletionInsertion, FaithfulnessCurves, random_order_maps,
                           trapezoid_auc)
from .localization import (auprc, average_precision, energy_inside, hit_rate, iou, pointing_game,
                           precision_recall_points, relevance_rank, roc_auc)
from .perturbations import add_gaussian_noise, estimate_noise_sigma, shift_images, unshift_maps
from .similarity import (PAPER_SSIM, SSIM, SpearmanReference, SSIMOptions, SSIMReference, spearman,
                         spearman_pairs, ssim, ssim_pairs)
from .statistics import bootstrap_ci, summarize

__all__ = ["auprc", "average_precision", "roc_auc", "pointing_game", "hit_rate", "iou",
           "energy_inside", "relevance_rank", "precision_recall_points", "count_reasons",
           "ssim", "ssim_pairs", "SSIMReference", "spearman", "spearman_pairs", "SpearmanReference",
           "SSIM", "SSIMOptions", "PAPER_SSIM", "summarize", "bootstrap_ci",
           "DeletionInsertion", "FaithfulnessCurves", "FILLS", "random_order_maps", "trapezoid_auc",
           "estimate_noise_sigma", "add_gaussian_noise", "shift_images", "unshift_maps"]

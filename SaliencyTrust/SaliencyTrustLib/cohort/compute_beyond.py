"""The units of the criteria beyond the study, computed inside :mod:`.compute`'s batches: the
perturbed inputs of the robustness criterion and the deletion / insertion areas of faithfulness."""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np

from .prepare import PreparedStudy
from .settings import EvaluationSettings
from .units import NOISE, SHIFT, derive_seed


def perturbed_inputs(state: str, images, batch_ids: List[str], prepared: Dict[str, PreparedStudy],
                     settings: EvaluationSettings, sigmas: Dict[str, float]):
    """The robustness criterion's input: Gaussian noise of each image's own noise level (or
    ``robustness_noise_sigma``), seeded per study, or the image shifted by ``robustness_shift``
    pixels along every spatial axis (edge-replicated). The noise level used is put in ``sigmas``."""
    import torch

    from ..metrics.perturbations import add_gaussian_noise, estimate_noise_sigma, shift_images

    if state == SHIFT:
        return shift_images(images, shift_offset(settings, images.ndim - 2))
    noisy = []
    for i, study_id in enumerate(batch_ids):
        sigma = settings.robustness_noise_sigma
        if sigma is None:
            sigma = estimate_noise_sigma(prepared[study_id].image)
        sigmas[study_id] = float(sigma)
        noisy.append(add_gaussian_noise(images[i:i + 1], float(sigma), derive_seed(settings.seed, NOISE, study_id)))
    return torch.cat(noisy)


def shift_offset(settings: EvaluationSettings, spatial_dims: int) -> Tuple[int, ...]:
    """The robustness shift, pixels per spatial axis in array order (the same on every axis)."""
    return (int(settings.robustness_shift),) * spatial_dims


class Faithfulness:
    """Deletion / insertion areas of each map of the sample, and of a random pixel order (the
    baseline, one per study, drawn from ``(seed, study)`` so it is the same for every method)."""

    def __init__(self, settings: EvaluationSettings) -> None:
        from ..metrics.faithfulness import DeletionInsertion

        self.settings = settings
        self.curves = DeletionInsertion(steps=settings.faithfulness_steps, fill=settings.faithfulness_fill,
                                        internal_batch_size=settings.faithfulness_batch)
        self.random: Dict[str, Tuple[float, float]] = {}

    def numbers(self, model, images, maps: np.ndarray, targets, study_ids: List[str]) -> List[Dict[str, float]]:
        """Per study: the map's deletion / insertion areas and the random order's. ``images``
        ``(B, C, *spatial)``, ``maps`` ``(B, *spatial)``, ``targets`` ``(B,)`` explained classes."""
        from ..metrics.faithfulness import random_order_maps

        missing = [i for i, s in enumerate(study_ids) if s not in self.random]
        if missing:
            seeds = [derive_seed(self.settings.seed, "random order", study_ids[i]) for i in missing]
            random_maps = random_order_maps(maps.shape[1:], seeds)
            found = self.curves(model, images[missing], random_maps, targets[missing])
            for k, i in enumerate(missing):
                self.random[study_ids[i]] = (float(found.deletion_auc[k]), float(found.insertion_auc[k]))
        found = self.curves(model, images, maps, targets)
        return [{"deletion_auc": float(found.deletion_auc[i]), "insertion_auc": float(found.insertion_auc[i]),
                 "deletion_auc_random": self.random[s][0], "insertion_auc_random": self.random[s][1]}
                for i, s in enumerate(study_ids)]

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
    ``robustness_noise_sigma``), or the image shifted by ``robustness_shift`` pixels along every
    spatial axis (edge-replicated). The noise level used is put in ``sigmas``.

    The noise field is drawn from :func:`image_seed`: a new draw for every image, and the same for
    one image reviewed in Slicer as in the cohort run it came from."""
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
        noisy.append(add_gaussian_noise(images[i:i + 1], float(sigma), image_seed(settings.seed, NOISE, images[i])))
    return torch.cat(noisy)


def image_seed(seed: int, purpose: str, image) -> int:
    """The seed of a random draw made for one image: from the run's ``seed``, the draw's
    ``purpose`` and the image itself (SHA-256 of the network input ``(C, *spatial)`` rounded to 5
    decimals, and its shape), never its study id, which differs between a cohort and the same image
    reviewed in Slicer. Two different images get independent draws."""
    import hashlib

    values = np.round(np.asarray(image.detach().cpu() if hasattr(image, "detach") else image, np.float64), 5)
    digest = hashlib.sha256((values + 0.0).tobytes())            # + 0.0: -0.0 and 0.0 hash alike
    digest.update(repr(values.shape).encode())
    return derive_seed(seed, purpose, digest.hexdigest())


def shift_offset(settings: EvaluationSettings, spatial_dims: int) -> Tuple[int, ...]:
    """The robustness shift, pixels per spatial axis in array order (the same on every axis)."""
    return (int(settings.robustness_shift),) * spatial_dims


def deletion_insertion(settings: EvaluationSettings):
    """The run's :class:`~SaliencyTrustLib.metrics.faithfulness.DeletionInsertion` (ties in a seeded
    random order)."""
    from ..metrics.faithfulness import DeletionInsertion

    return DeletionInsertion(steps=settings.faithfulness_steps, fill=settings.faithfulness_fill,
                             internal_batch_size=settings.faithfulness_batch, ties="random")


class Faithfulness:
    """Deletion / insertion areas of each map of the sample, and of a random pixel order (the
    baseline, scored once per study and shared by every method).

    The random order is drawn from :func:`image_seed` (a new draw for every image, and the same
    for one image reviewed in Slicer as in the cohort). A map's tied pixels are taken in that same
    order (paired with the baseline): what a map scores above the baseline comes from the pixels
    it ranks, never from how its ties fall."""

    def __init__(self, settings: EvaluationSettings) -> None:
        self.settings = settings
        self.curves = deletion_insertion(settings)
        self.random: Dict[str, Tuple[float, float]] = {}
        self.seeds: Dict[str, int] = {}

    def numbers(self, model, images, maps: np.ndarray, targets, study_ids: List[str]) -> List[Dict[str, float]]:
        """Per study: the map's deletion / insertion areas and the random order's. ``images``
        ``(B, C, *spatial)``, ``maps`` ``(B, *spatial)``, ``targets`` ``(B,)`` explained classes."""
        from ..metrics.faithfulness import random_order_maps

        for i, study_id in enumerate(study_ids):        # hashed once per study, not once per method
            if study_id not in self.seeds:
                self.seeds[study_id] = image_seed(self.settings.seed, "random order", images[i])
        seeds = [self.seeds[s] for s in study_ids]
        missing = [i for i, s in enumerate(study_ids) if s not in self.random]
        if missing:
            random_maps = random_order_maps(maps.shape[1:], [seeds[i] for i in missing])
            found = self.curves(model, images[missing], random_maps, targets[missing])
            for k, i in enumerate(missing):
                self.random[study_ids[i]] = (float(found.deletion_auc[k]), float(found.insertion_auc[k]))
        found = self.curves(model, images, maps, targets, tie_seeds=np.asarray(seeds, np.int64))
        return [{"deletion_auc": float(found.deletion_auc[i]), "insertion_auc": float(found.insertion_auc[i]),
                 "deletion_auc_random": self.random[s][0], "insertion_auc_random": self.random[s][1]}
                for i, s in enumerate(study_ids)]

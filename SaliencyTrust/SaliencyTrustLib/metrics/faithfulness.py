"""Faithfulness of a map to the model: deletion and insertion curves (Petsiuk et al., BMVC 2018).

**Deletion** replaces the most salient pixels by a *fill* step by step and records the model's
score of the explained class; a faithful map makes it fall fast (small area). **Insertion** starts
from the fill and puts the most salient pixels back; a faithful map makes it rise fast (large
area). The random pixel order (:func:`random_order_maps`) is the baseline: a map no better than
chance gives the random order's areas.

Conventions: images ``(B, C, *spatial)`` (2D or 3D, one implementation), maps ``(B, *spatial)``
(only the ranking counts: the map min-max scaled and rounded to 5 decimals, so float noise never
reorders pixels; ties keep C order), targets ``(B,)``.
Step ``k`` of ``steps`` changes the ``round(k N / steps)`` top-ranked of the ``N`` pixels, in every
channel. Areas are trapezoids over the fraction 0 .. 1 (so a constant score ``s`` has area ``s``).
At most ``internal_batch_size`` perturbed inputs go through the model at once (the memory bound);
the numbers do not depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np

__all__ = ["FILLS", "FaithfulnessCurves", "DeletionInsertion", "random_order_maps"]

#: What a removed pixel becomes: the blurred image, zero, or the image's per-channel mean.
FILLS = ("blur", "zero", "mean")
SCORES = ("probability", "logit")
#: Decimals of the min-max scaled map that order the pixels (see :func:`_rank_values`).
RANK_DECIMALS = 5


@dataclass
class FaithfulnessCurves:
    """Deletion / insertion curves of a batch.

    Attributes:
        fractions: ``(steps + 1,)`` fraction of the pixels changed, 0 .. 1.
        deletion: ``(B, steps + 1)`` score of the target as the top fraction is replaced by the fill.
        insertion: ``(B, steps + 1)`` score as the top fraction of the image is put onto the fill.
        deletion_auc / insertion_auc: ``(B,)`` trapezoid areas over ``fractions``; NaN where the
            map is constant or not finite (no ranking).
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray


class DeletionInsertion:
    """Deletion and insertion curves of maps on a model (a component: plain keyword arguments).

    Args:
        steps: curve points less one (``steps + 1`` fractions from 0 to 1).
        fill: ``"blur"`` (Gaussian blur of the image, ``blur_sigma`` pixels; Petsiuk et al.'s
            insertion start), ``"zero"`` or ``"mean"`` (each channel's mean).
        blur_sigma: standard deviation of the blur, pixels of the model grid (default 5: removes
            lesion-sized detail at 224 px while keeping the image's layout).
        score: ``"probability"`` (softmax of the target class) or ``"logit"``.
        internal_batch_size: perturbed inputs per forward pass.
    """

    def __init__(self, steps: int = 20, fill: str = "blur", blur_sigma: float = 5.0, score: str = "probability",
                 internal_batch_size: int = 32) -> None:
        if int(steps) < 1:
            raise ValueError(f"steps must be >= 1, got {steps}.")
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {list(FILLS)}, got {fill!r}.")
        if score not in SCORES:
            raise ValueError(f"score must be one of {list(SCORES)}, got {score!r}.")
        if int(internal_batch_size) < 1:
            raise ValueError(f"internal_batch_size must be >= 1, got {internal_batch_size}.")
        if float(blur_sigma) <= 0:
            raise ValueError(f"blur_sigma must be > 0 pixels, got {blur_sigma}.")
        self.steps, self.fill, self.blur_sigma = int(steps), fill, float(blur_sigma)
        self.score, self.internal_batch_size = score, int(internal_batch_size)

    def fill_images(self, images):
        """The fill of each image, ``(B, C, *spatial)``."""
        import torch

        if self.fill == "zero":
            return torch.zeros_like(images)
        if self.fill == "mean":
            return images.mean(dim=tuple(range(2, images.ndim)), keepdim=True).expand_as(images).clone()
        from scipy.ndimage import gaussian_filter

        array = images.detach().cpu().double().numpy()
        sigma = (0, 0) + (self.blur_sigma,) * (images.ndim - 2)
        return torch.from_numpy(gaussian_filter(array, sigma=sigma, mode="nearest")).to(images.device, images.dtype)

    def __call__(self, model, images, maps, targets) -> FaithfulnessCurves:
        """Curves of ``maps`` ``(B, *spatial)`` explaining ``targets`` ``(B,)`` for ``images``
        ``(B, C, *spatial)`` on ``model`` (used as given, no gradients).

        Raises:
            ValueError: shapes that do not match (the message gives both).
        """
        import torch

        maps = maps.detach().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
        if images.ndim < 3 or maps.shape != (images.shape[0],) + tuple(images.shape[2:]):
            raise ValueError(f"maps of shape {maps.shape} do not match images {tuple(images.shape)}: give one "
                             "(B, *spatial) map per (B, C, *spatial) image.")
        targets = torch.as_tensor(targets, device=images.device).reshape(-1).long()
        if targets.numel() != images.shape[0]:
            raise ValueError(f"{targets.numel()} targets for {images.shape[0]} images; give one class per image.")
        batch, pixels = images.shape[0], int(np.prod(images.shape[2:]))
        counts = np.round(np.arange(self.steps + 1) * pixels / self.steps).astype(np.int64)
        fractions = counts / pixels
        fill = self.fill_images(images)
        deletion = np.full((batch, self.steps + 1), np.nan)
        insertion = np.full((batch, self.steps + 1), np.nan)
        ranked = np.array([np.isfinite(m).all() and np.ptp(m) > 0 for m in maps])
        for b in np.flatnonzero(ranked):
            order = torch.from_numpy(np.argsort(-_rank_values(maps[b]), kind="stable")).to(images.device)
            rank = torch.empty(pixels, dtype=torch.long, device=images.device)
            rank[order] = torch.arange(pixels, device=images.device)
            rank = rank.reshape(images.shape[2:])
            for curve, start, end in ((deletion, images[b], fill[b]), (insertion, fill[b], images[b])):
                curve[b] = self._scores(model, start, end, rank, counts, int(targets[b]))
        deletion_auc = _area(deletion, fractions)
        insertion_auc = _area(insertion, fractions)
        return FaithfulnessCurves(fractions, deletion, insertion, deletion_auc, insertion_auc)

    def _scores(self, model, start, end, rank, counts: np.ndarray, target: int) -> np.ndarray:
        """Scores of ``start`` with its ``counts[k]`` top-ranked pixels taken from ``end``."""
        import torch

        out = []
        with torch.no_grad():
            for first in range(0, len(counts), self.internal_batch_size):
                chunk = counts[first:first + self.internal_batch_size]
                changed = torch.stack([rank < int(c) for c in chunk])[:, None]          # (k, 1, *spatial)
                inputs = torch.where(changed, end[None], start[None])
                logits = model(inputs).float()
                values = torch.softmax(logits, dim=1)[:, target] if self.score == "probability" else logits[:, target]
                out.append(values.cpu().double().numpy())
        return np.concatenate(out)


def _rank_values(saliency_map: np.ndarray) -> np.ndarray:
    """The map min-max scaled and rounded to :data:`RANK_DECIMALS` decimals, flattened: pixels
    whose values differ by float noise only (a batch of 1 vs 8, 1 vs 2 threads) tie, and ties keep
    their C order, so the curves do not depend on how the map was computed."""
    values = saliency_map.astype(np.float64).ravel()
    return np.round((values - values.min()) / np.ptp(values), RANK_DECIMALS)


def _area(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    widths = np.diff(fractions)
    return ((curves[:, 1:] + curves[:, :-1]) / 2 * widths).sum(axis=1)


def random_order_maps(shape: Tuple[int, ...], seeds: Sequence[int]) -> np.ndarray:
    """Maps ``shape = (B, *spatial)`` float32 whose ranking is a uniformly random pixel order, map
    ``b`` drawn from ``numpy.random.default_rng(seeds[b])`` (a random permutation of 0 .. N-1)."""
    if len(seeds) != shape[0]:
        raise ValueError(f"random_order_maps: {len(seeds)} seeds for {shape[0]} maps; give one seed per map.")
    pixels = int(np.prod(shape[1:]))
    return np.stack([np.random.default_rng(int(s) % (2 ** 63)).permutation(pixels).astype(np.float32)
                     .reshape(shape[1:]) for s in seeds])

"""Deletion and insertion curves of saliency maps (Petsiuk et al. 2018, RISE), batched, 2D and 3D.

A map is faithful to the model when the pixels it ranks first are the ones the model's score
depends on. Following Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation
of Black-box Models", BMVC 2018 (section 4.1), each map orders the pixels of its image from most
to least salient (a sort of ``-map``, the map min-max scaled and rounded to 5 decimals so float
noise never reorders pixels (:func:`rank_values`): only the ranking counts), and for
``k = 0 .. steps``:

* **deletion**: the ``n_k`` most salient pixels of the image are replaced, in every channel, by
  the same pixels of a *fill* image; the model's score of the target class is recorded. A faithful
  map makes it fall fast: lower area = more faithful.
* **insertion**: the ``n_k`` most salient pixels of the image are put onto the fill image (which
  is the start, ``k = 0``); a faithful map makes the score rise fast: higher area = more faithful.

``n_k = floor(k N / steps)`` of the ``N`` pixels of the spatial grid, so ``fractions = n_k / N``
runs exactly from 0 to 1 (RISE steps by ``ceil(N / steps)`` pixels, which differs by less than one
pixel per step). The area under each curve is the trapezoid rule over ``fractions``; as the
fractions span [0, 1] it is the mean score along the curve, in the score's units (a probability
in [0, 1], or a logit), not divided by the clean image's score.

Fills (``fill``): ``"blur"`` = the image blurred by a Gaussian of ``blur_sigma`` pixels on every
spatial axis (``scipy.ndimage.gaussian_filter``, ``mode="reflect"``, truncated at 4 sigma; not
across channels); ``"zero"`` = 0; ``"mean"`` = the image's per-channel mean over its grid. RISE
used zeros for deletion and the blur for insertion (``scipy.ndimage.gaussian_filter`` of sigma 5
px on a delta, cut to an 11 x 11 window, at 224 px); here one fill serves both curves so that they
share their end points, and the default blur is RISE's sigma of 5 px with the untruncated
Gaussian: it removes detail finer than about a lesion's width at 224 px while keeping the image's
intensity range (a black fill is out of distribution for a radiograph classifier and measures the
fill as much as the map; Hooker et al. 2019).

Score (``score``): ``"probability"`` (RISE's choice) = the softmax probability of the target
class, ``"logit"`` = its pre-softmax logit (the quantity the study's saliency methods explain).

The random-order baseline is the same call with :func:`random_order_maps`, maps whose ranking is
a uniformly random permutation of the pixels: a map whose deletion area is not below (insertion
not above) the random order's carries no information about what the model uses.

Ties (``ties``): pixels of equal (rounded) value carry no order, so by default (``"random"``) they
are taken in a seeded random order: the order of :func:`random_order_maps` with the item's
``tie_seeds`` value, the same for every map given that seed. A map that is flat but for a few
pixels (a single-pixel control, the zero region of a ReLU'd GradCAM) then scores like the random
order on its flat part, instead of deleting it in raster order, which a model can tell from
random (the single-pixel control passed faithfulness on the demo cohort, 0.017 vs 0.000, with
raster ties). ``"flat"`` keeps the lower flat index first (array order ``(K, J, I)`` / ``(J, I)``),
as a stable ``argsort``, for hand-checked examples.

Cost and memory: ``2 * steps`` forward passes per image (the clean image and the fill image are
scored once and shared by both curves), at most ``internal_batch_size`` perturbed inputs per
forward pass, no gradient. Besides the model's activations for one such batch, the call holds
the images, their fill images and one int64 rank per pixel on the model's device, and about
``3 * internal_batch_size`` images' worth of perturbed inputs at a time. ``internal_batch_size``
does not change the perturbed inputs (bit for bit) nor the numbers, except that a network's
convolutions may order their float32 sums differently for another batch size (about 1e-8
relative on the CPU; a model that treats each input alone gives identical numbers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from ._common import REASON_CONSTANT_MAP, REASON_NAN_MAP, Reasons, row_flags, to_numpy

__all__ = ["FILLS", "SCORES", "TIES", "DEFAULT_BLUR_SIGMA", "FaithfulnessCurves", "DeletionInsertion",
           "random_order_maps", "trapezoid_auc"]

#: Values of ``DeletionInsertion(fill=...)``: what a removed pixel becomes.
FILLS = ("blur", "zero", "mean")

#: Values of ``DeletionInsertion(score=...)``: what is recorded of the target class.
SCORES = ("probability", "logit")

#: Values of ``DeletionInsertion(ties=...)``: the order of pixels of equal salience.
TIES = ("random", "flat")

#: Default Gaussian sigma of the ``"blur"`` fill, in pixels (RISE's evaluation: sigma 5 at 224 px).
DEFAULT_BLUR_SIGMA = 5.0
#: Decimals of the min-max scaled map that order its pixels (:func:`rank_values`).
RANK_DECIMALS = 5

#: The blur kernel is cut at this many sigmas (``scipy.ndimage.gaussian_filter``'s default).
BLUR_TRUNCATE = 4.0


@dataclass
class FaithfulnessCurves:
    """Deletion and insertion curves of a batch of maps.

    Attributes:
        fractions: float64 ``(steps + 1,)``, 0 to 1: fraction of the pixels removed (deletion) or
            inserted (insertion) at each step, ``n_k / N``.
        deletion: float64 ``(B, steps + 1)``: score of the target class as the most salient
            ``fractions[k]`` of the pixels are replaced by the fill; ``deletion[:, 0]`` is the
            clean image's score, ``deletion[:, -1]`` the fill image's.
        insertion: float64 ``(B, steps + 1)``: score as the most salient ``fractions[k]`` of the
            image are put onto the fill image; ``insertion[:, 0]`` is the fill image's score,
            ``insertion[:, -1]`` the clean image's.
        deletion_auc: float64 ``(B,)``: trapezoid area under ``deletion`` over ``fractions``
            (lower = more faithful); NaN for a constant map or one with NaN / inf.
        insertion_auc: float64 ``(B,)``: the same for ``insertion`` (higher = more faithful).
        reasons: one entry per item: None, or why the item is undefined (its curves and areas are
            NaN and it was not run through the model); count them with
            :func:`SaliencyTrustLib.metrics.count_reasons`.
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: np.ndarray
    insertion_auc: np.ndarray
    reasons: Reasons = field(default_factory=list)


def trapezoid_auc(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Trapezoid area under each row of ``curves`` ``(B, S)`` over ``fractions`` ``(S,)``,
    float64 ``(B,)``; NaN for a row with NaN."""
    curves = np.asarray(curves, dtype=np.float64)
    widths = np.diff(np.asarray(fractions, dtype=np.float64))
    return ((curves[:, 1:] + curves[:, :-1]) * 0.5 * widths).sum(axis=1)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class DeletionInsertion:
    """Deletion and insertion curves of saliency maps and their areas (RISE, Petsiuk et al. 2018).

    Constructible from plain keyword arguments (``_target_`` in a bundle config). See the module
    docstring for the definitions.

    Args:
        steps: number of steps ``S`` (int >= 1); the curves have ``S + 1`` points, at
            ``n_k = floor(k N / S)`` pixels, ``k = 0 .. S``. Default 20 (5 % of the pixels per step).
        fill: what a removed pixel becomes, in every channel: ``"blur"`` (default) the image blurred
            by a Gaussian of ``blur_sigma`` pixels, ``"zero"`` 0, ``"mean"`` the image's
            per-channel mean.
        blur_sigma: sigma of the ``"blur"`` fill in pixels, the same on every spatial axis
            (float > 0); default :data:`DEFAULT_BLUR_SIGMA` = 5 px, RISE's. Scale it with the
            input size (e.g. ~7 px at 320 px) to keep the same blur relative to the anatomy.
        score: ``"probability"`` (default, RISE's) the softmax probability of the target class,
            or ``"logit"`` its logit.
        internal_batch_size: at most this many perturbed inputs per forward pass (int >= 1,
            default 32); bounds memory, changes neither the perturbed inputs nor the numbers
            (beyond the model's float rounding for another batch size).
        ties: ``"random"`` (default) pixels of equal salience in the random order drawn from the
            call's ``tie_seeds``, or ``"flat"`` lower flat index first (see the module docstring).
    """

    def __init__(self, steps: int = 20, fill: str = "blur", blur_sigma: float = DEFAULT_BLUR_SIGMA,
                 score: str = "probability", internal_batch_size: int = 32, ties: str = "random"):
        if not _is_int(steps) or steps < 1:
            raise ValueError(f"DeletionInsertion: steps must be an integer >= 1 (the curve has "
                             f"steps + 1 points), got {steps!r}; 20 is RISE-like")
        if fill not in FILLS:
            raise ValueError(f"DeletionInsertion: unknown fill {fill!r}; choose one of {FILLS}")
        if isinstance(blur_sigma, bool) or not isinstance(blur_sigma, (int, float, np.number)) \
                or not math.isfinite(blur_sigma) or blur_sigma <= 0:
            raise ValueError(f"DeletionInsertion: blur_sigma must be a finite number of pixels > 0, "
                             f"got {blur_sigma!r}; the default is {DEFAULT_BLUR_SIGMA}")
        if score not in SCORES:
            raise ValueError(f"DeletionInsertion: unknown score {score!r}; choose one of {SCORES}")
        if not _is_int(internal_batch_size) or internal_batch_size < 1:
            raise ValueError(f"DeletionInsertion: internal_batch_size must be an integer >= 1 "
                             f"(perturbed inputs per forward pass), got {internal_batch_size!r}")
        if ties not in TIES:
            raise ValueError(f"DeletionInsertion: unknown ties {ties!r}; choose one of {TIES}")
        self.steps = int(steps)
        self.ties = ties
        self.fill = fill
        self.blur_sigma = float(blur_sigma)
        self.score = score
        self.internal_batch_size = int(internal_batch_size)

    def to_dict(self) -> Dict[str, Any]:
        """The parameters that change the numbers, as plain types (record them with results)."""
        return dict(steps=self.steps, fill=self.fill,
                    blur_sigma=self.blur_sigma if self.fill == "blur" else None,
                    blur_truncate=BLUR_TRUNCATE if self.fill == "blur" else None,
                    score=self.score, order="descending map rounded to 5 decimals of its range",
                    ties="seeded random order" if self.ties == "random" else "lower flat index first",
                    auc="trapezoid over fractions n_k / N in [0, 1]")

    def pixel_counts(self, n_pixels: int) -> np.ndarray:
        """``n_k = floor(k N / steps)`` for ``k = 0 .. steps``, int64 ``(steps + 1,)``."""
        return np.array([k * n_pixels // self.steps for k in range(self.steps + 1)], np.int64)

    def fill_images(self, images: Any) -> Any:
        """The fill image of each of ``images`` ``(B, C, *spatial)`` (torch), same shape, dtype
        and device; the input is not modified."""
        import torch

        if self.fill == "zero":
            return torch.zeros_like(images)
        spatial_axes = tuple(range(2, images.ndim))
        if self.fill == "mean":
            means = images.to(torch.float64).mean(dim=spatial_axes, keepdim=True)
            return means.to(images.dtype).expand_as(images).contiguous()
        from scipy.ndimage import gaussian_filter

        host = images.detach().to("cpu", torch.float64).numpy()
        sigmas = (0.0, 0.0) + (self.blur_sigma,) * (images.ndim - 2)   # sigma 0: axis not filtered
        blurred = gaussian_filter(host, sigma=sigmas, mode="reflect", truncate=BLUR_TRUNCATE)
        return torch.from_numpy(blurred).to(device=images.device, dtype=images.dtype)

    def __call__(self, model: Any, images: Any, maps: Any, targets: Any,
                 tie_seeds: Any = 0) -> FaithfulnessCurves:
        """Deletion and insertion curves of ``maps`` for ``model`` on ``images``.

        Args:
            model: a classifier, ``torch.nn.Module`` (or callable) mapping ``(m, C, *spatial)`` to
                ``(m, num_classes)`` logits. Run under ``torch.no_grad()`` in eval mode (switched
                for the call, its mode restored after it); inputs are moved to the device and
                floating dtype of its first parameter.
            images: torch tensor (or numpy array) ``(B, C, *spatial)``, the model's input: 2D
                ``(B, C, H, W)`` axes ``(J, I)`` or 3D ``(B, C, D, H, W)`` axes ``(K, J, I)``;
                floating point; not modified.
            maps: numpy array or torch tensor ``(B, *spatial)`` on the input grid, any real dtype
                and scale: only the ranking counts (descending ``map``, ties as ``ties``
                says). A constant map or one with NaN / inf gives NaN curves and areas, with a
                reason.
            targets: ``(B,)`` integer class indices (numpy, torch or a sequence), or one int for
                every image: the class whose score is recorded.
            tie_seeds: with ``ties="random"``, the seed of each item's tie order, ``(B,)``
                non-negative integers or one for all (default 0): tied pixels go in the order of
                ``random_order_maps(spatial, [seed])``. Give two maps of one image the same seed
                (and the random-order baseline too) to compare them on the same tie order.

        Returns:
            :class:`FaithfulnessCurves` (``fractions`` ``(steps + 1,)``; ``deletion``,
            ``insertion`` ``(B, steps + 1)``; ``deletion_auc``, ``insertion_auc`` ``(B,)``).

        Raises:
            ValueError: images not ``(B, C, *spatial)`` floating point, maps not ``(B,
                *spatial)`` on the same grid, targets not ``B`` class indices of the model's
                output, or a model output that is not ``(m, num_classes)``.
        """
        import torch

        x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
        if x.ndim < 3:
            raise ValueError(f"images: expected a batch (B, C, *spatial), got shape "
                             f"{tuple(x.shape)}; add the batch and channel axes, e.g. "
                             "image[None, None] for one grey 2D image")
        if not x.is_floating_point():
            raise ValueError(f"images: expected floating point values, got {x.dtype}; convert "
                             "with images.float() (the model's input, as it was trained)")
        batch, spatial = x.shape[0], tuple(x.shape[2:])
        saliency = to_numpy(maps, "maps")
        if saliency.shape != (batch,) + spatial:
            raise ValueError(f"maps has shape {saliency.shape} but images {tuple(x.shape)} need "
                             f"one map per image on the input grid, {(batch,) + spatial}; drop a "
                             "channel axis (maps[:, 0]) or resample a coarser map onto the input "
                             "grid first")
        if not (np.issubdtype(saliency.dtype, np.floating) or np.issubdtype(saliency.dtype, np.integer)
                or saliency.dtype == bool):
            raise ValueError(f"maps: expected real values, got dtype {saliency.dtype}")
        target = self._targets(targets, batch)
        seeds = self._tie_seeds(tie_seeds, batch)
        n_pixels = int(np.prod(spatial))
        counts = self.pixel_counts(n_pixels)
        fractions = counts / float(n_pixels)
        deletion = np.full((batch, self.steps + 1), np.nan)
        insertion = np.full((batch, self.steps + 1), np.nan)

        flat = saliency.reshape(batch, n_pixels)
        finite, constant = row_flags(flat, "nan")
        reasons: Reasons = [REASON_NAN_MAP if not finite[i] else
                            (REASON_CONSTANT_MAP if constant[i] else None) for i in range(batch)]
        defined = np.flatnonzero([r is None for r in reasons])
        if defined.size:
            scores = self._run(model, x[torch.as_tensor(defined)], flat[defined], target[defined],
                               counts, seeds[defined])
            steps = self.steps
            deletion[defined] = scores[:, :steps + 1]
            insertion[defined, 0] = scores[:, steps]                   # the fill image
            insertion[defined, 1:steps] = scores[:, steps + 1:]
            insertion[defined, steps] = scores[:, 0]                   # the clean image
        return FaithfulnessCurves(fractions=fractions, deletion=deletion, insertion=insertion,
                                  deletion_auc=trapezoid_auc(deletion, fractions),
                                  insertion_auc=trapezoid_auc(insertion, fractions),
                                  reasons=reasons)

    @staticmethod
    def _targets(targets: Any, batch: int) -> np.ndarray:
        if _is_int(targets):
            return np.full(batch, int(targets), np.int64)
        array = to_numpy(targets, "targets")
        if array.shape != (batch,) or not (np.issubdtype(array.dtype, np.integer)
                                           and array.dtype != bool):
            raise ValueError(f"targets: expected {batch} integer class indices, shape ({batch},), "
                             f"got shape {array.shape} dtype {array.dtype}; pass e.g. the "
                             "predicted classes, logits.argmax(1)")
        return array.astype(np.int64)

    @staticmethod
    def _tie_seeds(tie_seeds: Any, batch: int) -> np.ndarray:
        if _is_int(tie_seeds) and tie_seeds >= 0:
            return np.full(batch, int(tie_seeds), np.int64)
        array = np.asarray(tie_seeds)
        if array.shape != (batch,) or not np.issubdtype(array.dtype, np.integer) or array.dtype == bool \
                or (array < 0).any():
            raise ValueError(f"tie_seeds: expected one non-negative integer or {batch} of them (one per "
                             f"image), got {tie_seeds!r}")
        return array.astype(np.int64)

    def pixel_order(self, flat_map: np.ndarray, tie_seed: int = 0) -> np.ndarray:
        """The flat indices of a map's pixels, most salient first: descending
        :func:`rank_values`, ties in the random order of ``tie_seed`` (or flat order)."""
        values = rank_values(flat_map)
        if self.ties == "flat":
            return np.argsort(-values, kind="stable")
        tie_order = random_order_maps((values.size,), [int(tie_seed)])[0]
        return np.lexsort((-tie_order, -values))        # last key first: salience, then the tie order

    def _run(self, model: Any, images: Any, flat_maps: np.ndarray, target: np.ndarray,
             counts: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Scores ``(b, 2 * steps)`` of the defined items: columns ``0 .. steps`` deletion at
        ``counts[k]`` (0: clean image, steps: fill image), then insertion at ``counts[1 ..
        steps - 1]``."""
        import torch

        param = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        device = param.device if param is not None else images.device
        dtype = param.dtype if param is not None and param.is_floating_point() else images.dtype
        n_items, n_pixels = flat_maps.shape
        steps = self.steps

        # jobs, item-major: deletion with counts[0 .. steps] pixels taken, insertion with
        # counts[1 .. steps - 1] (its ends are the deletion's fill and clean images)
        per_item = 2 * steps
        job_item = np.repeat(np.arange(n_items), per_item)
        job_count = np.tile(np.concatenate([counts, counts[1:steps]]), n_items)
        job_insert = np.tile(np.arange(per_item) > steps, n_items)
        scores = np.empty(n_items * per_item)

        was_training = getattr(model, "training", None)
        if was_training is not None:
            model.eval()
        try:
            with torch.no_grad():
                image = images.to(device=device, dtype=dtype)
                fill = self.fill_images(image)
                ranks = torch.empty((n_items, n_pixels), dtype=torch.int64)
                for i in range(n_items):
                    order = self.pixel_order(flat_maps[i], int(seeds[i]))
                    ranks[i, torch.from_numpy(order)] = torch.arange(n_pixels)
                ranks = ranks.to(device)
                target_t = torch.as_tensor(target, device=device)
                view = (-1, 1) + tuple(image.shape[2:])
                for lo in range(0, job_item.size, self.internal_batch_size):
                    hi = min(lo + self.internal_batch_size, job_item.size)
                    item = torch.as_tensor(job_item[lo:hi], device=device)
                    count = torch.as_tensor(job_count[lo:hi], device=device)
                    insert = torch.as_tensor(job_insert[lo:hi], device=device)
                    taken = ranks[item] < count[:, None]          # among the most salient n_k
                    use_fill = (taken ^ insert[:, None]).view(view)
                    perturbed = torch.where(use_fill, fill[item], image[item])
                    scores[lo:hi] = self._scores(model(perturbed), target_t[item], hi - lo)
        finally:
            if was_training is not None:
                model.train(was_training)
        return scores.reshape(n_items, per_item)

    def _scores(self, logits: Any, target: Any, expected: int) -> np.ndarray:
        import torch

        if not isinstance(logits, torch.Tensor) or logits.ndim != 2 or logits.shape[0] != expected:
            shape = tuple(logits.shape) if hasattr(logits, "shape") else type(logits).__name__
            raise ValueError(f"model output: expected logits of shape ({expected}, num_classes), "
                             f"got {shape}; wrap the model so that it returns one row of class "
                             "logits per input")
        if int(target.min()) < 0 or int(target.max()) >= logits.shape[1]:
            raise ValueError(f"targets: class indices must lie in [0, {logits.shape[1] - 1}] for a "
                             f"model with {logits.shape[1]} outputs, got "
                             f"{int(target.min())} .. {int(target.max())}")
        values = logits.to(torch.float64)
        if self.score == "probability":
            values = torch.softmax(values, dim=1)
        return values.gather(1, target[:, None])[:, 0].cpu().numpy()


def rank_values(saliency_map: np.ndarray) -> np.ndarray:
    """The values that order a map's pixels: the map min-max scaled to [0, 1] (float64) and rounded
    to :data:`RANK_DECIMALS` decimals, flattened. Maps that differ by float noise only (a batch
    of 1 vs 8, 1 vs 2 threads: ~1e-7) rank their pixels alike; without the rounding, near-ties
    reordered and two front ends' faithfulness scores differed by 8e-4."""
    values = np.asarray(saliency_map, dtype=np.float64).ravel()
    spread = np.ptp(values)
    return np.round((values - values.min()) / spread, RANK_DECIMALS) if spread > 0 else values


def random_order_maps(shape: Tuple[int, ...], seeds: Sequence[int]) -> np.ndarray:
    """Maps whose ranking is a uniformly random order of the pixels: the random-order baseline.

    ``DeletionInsertion(...)(model, images, random_order_maps(images.shape[2:], seeds), targets)``
    gives the curves of a map that knows nothing; average over several seeds per image.

    Args:
        shape: the spatial shape of one map, ``(H, W)`` or ``(D, H, W)`` (axes ``(J, I)`` /
            ``(K, J, I)``) - without the batch axis.
        seeds: one non-negative integer seed per map; map ``j`` is a permutation of ``0 .. N - 1``
            drawn by ``numpy.random.default_rng(seeds[j])`` (no ties, so the order is exactly the
            permutation).

    Returns:
        ``(len(seeds), *shape)`` float32 (float64 beyond ``2 ** 24`` pixels, where float32 no
        longer holds every rank exactly).
    """
    shape = tuple(shape)
    if not shape or not all(_is_int(n) and n >= 1 for n in shape):
        raise ValueError(f"random_order_maps: shape must be the spatial shape of one map, "
                         f"positive integers such as (224, 224), got {shape!r}")
    seeds = list(seeds)
    if not all(_is_int(s) and s >= 0 for s in seeds):
        raise ValueError(f"random_order_maps: seeds must be non-negative integers, got {seeds!r}")
    n_pixels = int(np.prod(shape))
    dtype = np.float32 if n_pixels <= 1 << 24 else np.float64
    out = np.empty((len(seeds), n_pixels), dtype)
    for j, seed in enumerate(seeds):
        out[j] = np.random.default_rng(int(seed)).permutation(n_pixels)
    return out.reshape((len(seeds),) + shape)

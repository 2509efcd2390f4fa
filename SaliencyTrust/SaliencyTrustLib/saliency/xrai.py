"""XRAI (Kapishnikov et al., ICCV 2019, arXiv 1906.02825): region-based attribution.

captum has no XRAI; this follows the published algorithm as released in the PAIR ``saliency``
package (``saliency/core/xrai.py``, "full" algorithm) on our Integrated Gradients:

1. Attribution: Integrated Gradients from each baseline (study: black and white, 100 steps),
   averaged over baselines, then the maximum over channels.
2. Segments (scikit-image): in 2D, Felzenszwalb at several scales (study: 50, 100, 150, 250, 500,
   1200; sigma 0.8; min size 150) on the image rescaled to ``[-1, 1]`` and resized to 224 x 224
   (cubic), the labels resized back (nearest); in 3D, SLIC supervoxels at several segment counts.
   Every segment of every scale becomes a mask, dilated by a disk / ball of ``dilation_radius``.
3. Greedy ranking: repeatedly add the mask whose not-yet-covered part has the highest mean
   attribution ("gain density"), skipping masks that add fewer than ``min_pixel_diff`` new
   pixels, until the covered area exceeds ``area_threshold``; every pixel gets the gain of the
   region that first covered it, uncovered pixels the mean attribution over them.

The ranking is incremental: each mask's uncovered count and sum are updated, when pixels get
covered, from an index of which masks hold each pixel (:class:`RegionIndex`, segmented, built and
cached once per image by :func:`cached_region_index`, as the cascade explains the same image many
times), which gives the
same choices as recomputing every mask's gain at every step, in time proportional to the masks'
total size.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .engine import DEFAULT_INTERNAL_BATCH_SIZE, path_attributions, resolve_baselines, resolve_targets
from .gradients import integration_rule
from .validation import TargetLike, as_targets

SEGMENTATIONS = ("auto", "felzenszwalb", "slic")

#: Images whose regions are kept per process. The randomization cascade, the replicate and the
#: second architecture explain the same image many times; its regions depend on the image alone,
#: so they are segmented and indexed once (Felzenszwalb at six scales costs more than the IG
#: passes on a CPU). About 9.4 MB per 320 x 320 image with the paper's six scales.
SEGMENT_CACHE_SIZE = 32


class RegionIndex:
    """The candidate regions of one image, indexed both ways (built once, read-only).

    Attributes:
        n_pixels: pixels of the flat spatial grid.
        n_masks: candidate regions.
        mask_indptr, mask_pixels: mask -> pixels (CSR): the flat pixel indices of mask ``m`` are
            ``mask_pixels[mask_indptr[m]:mask_indptr[m + 1]]``, ascending, without repeats.
        pixel_indptr, pixel_masks: pixel -> masks (CSC): the masks holding pixel ``p``, ascending.
        sizes: int64 ``(n_masks,)`` pixels per mask.
    """

    def __init__(self, masks: Sequence[np.ndarray], n_pixels: int):
        from scipy import sparse

        self.n_pixels = int(n_pixels)
        self.n_masks = len(masks)
        rows = np.concatenate([np.full(len(m), i, dtype=np.int64) for i, m in enumerate(masks)] or [np.zeros(0, np.int64)])
        cols = np.concatenate([np.asarray(m, dtype=np.int64) for m in masks] or [np.zeros(0, np.int64)])
        if cols.size and (cols.min() < 0 or cols.max() >= self.n_pixels):
            raise ValueError(f"xrai_regions: a mask holds pixel indices outside 0 .. {self.n_pixels - 1}; "
                             "give flat indices of the attribution's grid")
        by_mask = sparse.csr_matrix((np.ones(cols.size, np.int8), (rows, cols)), shape=(self.n_masks, self.n_pixels))
        by_mask.sum_duplicates()                    # sorted pixels, repeats of a pixel merged
        by_pixel = by_mask.tocsc()
        by_pixel.sort_indices()
        by_mask.data[:] = 1                         # int8 ones: a mask's pixel counts once
        self._by_mask = by_mask
        self.mask_indptr, self.mask_pixels = by_mask.indptr.astype(np.int64), by_mask.indices
        self.pixel_indptr, self.pixel_masks = by_pixel.indptr.astype(np.int64), by_pixel.indices
        self.sizes = np.diff(self.mask_indptr)
        for array in (self.mask_indptr, self.mask_pixels, self.pixel_indptr, self.pixel_masks, self.sizes):
            array.setflags(write=False)

    def pixels_of(self, mask: int) -> np.ndarray:
        """The flat pixel indices of ``mask``, ascending."""
        return self.mask_pixels[self.mask_indptr[mask]:self.mask_indptr[mask + 1]]

    def sums(self, values: np.ndarray) -> np.ndarray:
        """float64 ``(n_masks,)``: each mask's sum of ``values`` (flat ``(n_pixels,)``), added in
        ascending pixel order."""
        return np.asarray(self._by_mask @ np.asarray(values, np.float64), np.float64)

    def masks_of(self, pixels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """``(masks, counts)``: the masks holding each of ``pixels`` one after another (pixel by
        pixel, in the given order), and how many masks hold each pixel."""
        starts = self.pixel_indptr[pixels]
        counts = self.pixel_indptr[pixels + 1] - starts
        offsets = np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return self.pixel_masks[np.arange(int(counts.sum())) + offsets], counts


_region_cache: "OrderedDict[tuple, RegionIndex]" = OrderedDict()
_region_cache_lock = threading.Lock()


def cached_region_index(image: np.ndarray, **options) -> RegionIndex:
    """:func:`segment_masks` of ``image`` ``(C, *spatial)`` as a :class:`RegionIndex` on its spatial
    grid, memoized on the image's bytes and the options (LRU, at most :data:`SEGMENT_CACHE_SIZE`
    images; thread-safe, so a pool may segment a group ahead of the model passes)."""
    image = np.ascontiguousarray(image)
    key = (hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest(), image.shape, image.dtype.str,
           tuple(sorted((name, repr(value)) for name, value in options.items())))
    with _region_cache_lock:
        if key in _region_cache:
            _region_cache.move_to_end(key)
            return _region_cache[key]
    index = RegionIndex(segment_masks(image, **options), int(np.prod(image.shape[1:])))
    with _region_cache_lock:
        _region_cache[key] = index
        while len(_region_cache) > SEGMENT_CACHE_SIZE:
            _region_cache.popitem(last=False)
    return index


def _footprint(radius: float, ndim: int) -> np.ndarray:
    """Euclidean ball of ``radius`` in ``ndim`` dimensions (``skimage.morphology.disk`` in 2D)."""
    r = int(np.floor(radius))
    grid = np.indices((2 * r + 1,) * ndim) - r
    return (grid ** 2).sum(axis=0) <= radius ** 2


def _label_masks(labels: np.ndarray, radius: float) -> List[np.ndarray]:
    """Flat pixel indices of every label of ``labels`` (each label one mask), dilated by a ball of
    ``radius`` (no dilation for 0). Cropping to each label's bounding box keeps this cheap."""
    from scipy import ndimage

    labels = np.asarray(labels, dtype=np.int64)
    labels = labels - labels.min()
    footprint = _footprint(radius, labels.ndim) if radius and radius > 0 else None
    pad = int(np.floor(radius)) if footprint is not None else 0
    masks = []
    for label_index, box in enumerate(ndimage.find_objects(labels + 1)):
        if box is None:
            continue
        padded = tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, labels.shape))
        crop = labels[padded] == label_index
        if footprint is not None:
            crop = ndimage.binary_dilation(crop, structure=footprint)
        coords = np.nonzero(crop)
        coords = tuple(c + s.start for c, s in zip(coords, padded))
        masks.append(np.ravel_multi_index(coords, labels.shape))
    return masks


def _rescale(image: np.ndarray, low: float, high: float) -> np.ndarray:
    lo, hi = float(image.min()), float(image.max())
    unit = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image, dtype=np.float64)
    return unit * (high - low) + low


def segment_masks(image: np.ndarray, *, segmentation: str = "auto",
                  felzenszwalb_scales: Sequence[float] = (50, 100, 150, 250, 500, 1200),
                  felzenszwalb_sigma: float = 0.8, felzenszwalb_min_size: int = 150,
                  resize_to: Optional[int] = 224, slic_segments: Sequence[int] = (64, 128, 256, 512, 1024),
                  slic_compactness: float = 0.1, dilation_radius: Optional[float] = None,
                  segmentation_channels: Optional[int] = None) -> List[np.ndarray]:
    """Multi-scale segment masks of one image ``(C, *spatial)``, as flat index arrays.

    ``segmentation_channels``: segment a grey image (``C == 1``) copied to this many channels, as
    the study's scripts segmented a 3-channel copy (``3``; Felzenszwalb's colour distance then
    differs from the grey one); None: the channels as given.

    ``segmentation``: ``"felzenszwalb"`` (2D only, ``skimage.segmentation.felzenszwalb``),
    ``"slic"`` (2D/3D, ``skimage.segmentation.slic``), ``"auto"`` (Felzenszwalb in 2D, SLIC in
    3D). ``resize_to``: Felzenszwalb runs on the image resized to this square size (study: 224;
    ``None``: native size). ``dilation_radius``: ``None`` means 5 px in 2D (the study) and 1
    voxel in 3D.
    """
    from skimage import segmentation as sk_segmentation
    from skimage.transform import resize

    image = np.asarray(image, dtype=np.float64)
    spatial = image.shape[1:]
    method = segmentation
    if method == "auto":
        method = "felzenszwalb" if len(spatial) == 2 else "slic"
    if method not in SEGMENTATIONS[1:]:
        raise ValueError(f"segmentation must be one of {SEGMENTATIONS}; got {segmentation!r}.")
    if method == "felzenszwalb" and len(spatial) != 2:
        raise ValueError("Felzenszwalb segmentation is 2D only; use segmentation='slic' (or 'auto') "
                         f"for images with {len(spatial)} spatial axes.")
    if dilation_radius is None:
        dilation_radius = 5 if len(spatial) == 2 else 1
    channels_last = np.moveaxis(image, 0, -1)
    if segmentation_channels and image.shape[0] == 1 and int(segmentation_channels) > 1:
        channels_last = np.repeat(channels_last, int(segmentation_channels), axis=-1)
    multichannel = channels_last.shape[-1] > 1
    label_images = []
    if method == "felzenszwalb":
        work = _rescale(channels_last, -1.0, 1.0)
        if resize_to:
            work = resize(work, (resize_to, resize_to) + work.shape[2:], order=3, mode="constant",
                          preserve_range=True, anti_aliasing=True)
        work = work if multichannel else work[..., 0]
        for scale in felzenszwalb_scales:
            labels = sk_segmentation.felzenszwalb(work, scale=scale, sigma=felzenszwalb_sigma,
                                                  min_size=felzenszwalb_min_size,
                                                  channel_axis=-1 if multichannel else None)
            if resize_to:
                labels = resize(labels, spatial, order=0, preserve_range=True, mode="constant",
                                anti_aliasing=False).astype(np.int64)
            label_images.append(labels)
    else:
        work = _rescale(channels_last, 0.0, 1.0)
        work = work if multichannel else work[..., 0]
        for n_segments in slic_segments:
            label_images.append(sk_segmentation.slic(work, n_segments=int(n_segments), compactness=slic_compactness,
                                                     channel_axis=-1 if multichannel else None, start_label=0))
    masks: List[np.ndarray] = []
    for labels in label_images:
        masks.extend(_label_masks(labels, dilation_radius))
    return masks


def xrai_regions(attribution: np.ndarray, masks: Union[Sequence[np.ndarray], RegionIndex], *,
                 min_pixel_diff: int = 50, area_threshold: float = 1.0) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Rank regions by gain density (the "full" XRAI algorithm).

    Args:
        attribution: ``(*spatial)`` per-pixel attribution.
        masks: flat pixel-index arrays (candidate regions; they may overlap), or their
            :class:`RegionIndex` (built once per image: the cascade ranks the same regions for
            every model state).
        min_pixel_diff: a mask adding fewer new pixels than this is dropped.
        area_threshold: stop once the covered fraction of the image exceeds this.

    Returns:
        ``(map (*spatial) float64, trace)``: the gain of the region that covered each pixel, and
        the regions' newly covered pixel indices in the order they were added (the uncovered rest
        last). Ties of gain go to the lower mask index.
    """
    flat = np.asarray(attribution, dtype=np.float64).ravel()
    n_pixels = flat.size
    index = masks if isinstance(masks, RegionIndex) else RegionIndex(masks, n_pixels)
    if index.n_pixels != n_pixels:
        raise ValueError(f"xrai_regions: the regions index {index.n_pixels} pixels, the attribution has "
                         f"{n_pixels}; build the RegionIndex on the attribution's grid")
    output = np.full(n_pixels, -np.inf)
    trace: List[np.ndarray] = []
    if index.n_masks:
        remaining_count = index.sizes.copy()
        remaining_sum = index.sums(flat)
        alive = np.ones(index.n_masks, dtype=bool)
        covered = np.zeros(n_pixels, dtype=bool)
        n_covered = 0
        while True:
            alive &= remaining_count >= min_pixel_diff
            if not alive.any():
                break
            with np.errstate(invalid="ignore", divide="ignore"):
                gain = np.where(alive, remaining_sum / np.maximum(remaining_count, 1), -np.inf)
            best = int(np.argmax(gain))
            region = index.pixels_of(best)
            added = region[~covered[region]]
            covered[added] = True
            n_covered += added.size
            output[added] = gain[best]
            trace.append(added)
            alive[best] = False
            holders, per_pixel = index.masks_of(added)      # every mask loses the newly covered pixels
            remaining_count -= np.bincount(holders, minlength=index.n_masks)
            remaining_sum -= np.bincount(holders, weights=np.repeat(flat[added], per_pixel),
                                         minlength=index.n_masks)
            if n_covered / n_pixels > area_threshold:
                break
    uncovered = output == -np.inf
    if uncovered.any():
        output[uncovered] = flat[uncovered].mean()
        trace.append(np.nonzero(uncovered)[0])
    return output.reshape(np.shape(attribution)), trace


def xrai(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
         n_steps: int = 100, baselines: Sequence[Union[str, float]] = ("min", "max"),
         approximation_method: str = "riemann_linspace", segmentation: str = "auto",
         felzenszwalb_scales: Sequence[float] = (50, 100, 150, 250, 500, 1200),
         felzenszwalb_sigma: float = 0.8, felzenszwalb_min_size: int = 150, resize_to: Optional[int] = 224,
         slic_segments: Sequence[int] = (64, 128, 256, 512, 1024), slic_compactness: float = 0.1,
         dilation_radius: Optional[float] = None, min_pixel_diff: int = 50, area_threshold: float = 1.0,
         internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE,
         segmentation_channels: Optional[int] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """XRAI maps ``(B, C, *spatial)`` (region gains, repeated on the C channels) and the targets.

    Args:
        n_steps, approximation_method: Integrated Gradients' (study: 100 steps).
        baselines: IG baselines whose attributions are averaged (study: black ``"min"`` and white
            ``"max"``); each as :func:`.engine.resolve_baselines` accepts.
        segmentation, felzenszwalb_*, resize_to, slic_*, dilation_radius, segmentation_channels: see
            :func:`segment_masks` (``segmentation_channels=3``: a grey image segmented as the study's
            3-channel copy).
        min_pixel_diff, area_threshold: see :func:`xrai_regions`.
        internal_batch_size: IG path points per forward/backward pass.
    """
    if isinstance(baselines, (str, float, int)):
        baselines = (baselines,)
    if target is None:
        targets = resolve_targets(model, x, None, internal_batch_size)
    else:
        targets = as_targets(target, x.shape[0], None, x.device)
    alphas, weights = integration_rule(n_steps, approximation_method)
    attribution = torch.zeros_like(x)
    for spec in baselines:
        base = resolve_baselines(spec, x)
        ig, targets = path_attributions(model, x, targets, alphas=alphas, step_weights=weights, baselines=base,
                                        multiply_by_inputs=True, internal_batch_size=internal_batch_size)
        attribution += ig / len(baselines)
    merged = attribution.max(dim=1).values.detach().cpu().numpy()
    images = x.detach().cpu().numpy()
    maps = []
    for b in range(x.shape[0]):
        regions = cached_region_index(images[b], segmentation=segmentation,
                                      felzenszwalb_scales=felzenszwalb_scales, felzenszwalb_sigma=felzenszwalb_sigma,
                                      felzenszwalb_min_size=felzenszwalb_min_size, resize_to=resize_to,
                                      slic_segments=slic_segments, slic_compactness=slic_compactness,
                                      dilation_radius=dilation_radius, segmentation_channels=segmentation_channels)
        region_map, _ = xrai_regions(merged[b], regions, min_pixel_diff=min_pixel_diff, area_threshold=area_threshold)
        maps.append(torch.as_tensor(region_map, dtype=x.dtype))
    out = torch.stack(maps).to(x.device).unsqueeze(1)
    return out.expand_as(x).clone(), targets

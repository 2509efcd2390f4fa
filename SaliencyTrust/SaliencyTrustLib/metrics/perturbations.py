"""Small input perturbations that should keep the diagnosis, for the robustness criterion.

Zhang et al. (Radiology: Artificial Intelligence 2024) judge a saliency method by how much its
maps change under input changes that do not change the model's decision. This module makes those
changes and aligns the maps back:

* :func:`estimate_noise_sigma` - the image's own noise level (Immerkaer 1996), so that added noise
  is expressed in multiples of what the scanner already puts there;
* :func:`add_gaussian_noise` - i.i.d. Gaussian noise, reproducible per image from a seed;
* :func:`shift_images` / :func:`unshift_maps` - an integer translation with edge replication, and
  its inverse on the maps, so that a map of the shifted image is compared with the clean map on
  the same anatomy.

Axis convention (the project's): arrays hold spatial axes in array order, ``(J, I)`` (rows,
columns) for 2D images and ``(K, J, I)`` (slices, rows, columns) for volumes; an ``offset`` has one
integer per spatial axis in that order, positive = content moves towards higher indices.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence, Tuple

import numpy as np

from ._common import to_numpy

__all__ = ["estimate_noise_sigma", "add_gaussian_noise", "shift_images", "unshift_maps"]

#: Slices are filtered in chunks of about this many values (bounds the float64 temporaries).
_CHUNK_VALUES = 1 << 22


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def estimate_noise_sigma(image: Any) -> float:
    """Standard deviation of the image's additive Gaussian noise (Immerkaer 1996), image units.

    J. Immerkaer, "Fast Noise Variance Estimation", Computer Vision and Image Understanding 64(2),
    1996: each 2D slice is filtered by the mask ``[[1, -2, 1], [-2, 4, -2], [1, -2, 1]]`` (the
    difference of two Laplacians; it is the product of the second differences along rows and
    columns, so it cancels any image of the form ``f(j) + g(i)``, ramps and smooth shading
    included), on the interior (no padding), and ``sigma = sqrt(pi / 2) / (6 (H - 2) (W - 2)) *
    sum |filtered|``. For i.i.d. Gaussian noise the estimate is unbiased; edges and texture add to
    it, so on a real image it is an upper bound of the noise.

    Args:
        image: numpy array or torch tensor ``(*spatial)`` or ``(C, *spatial)``, real valued,
            finite; the last two axes are the slice ``(J, I)`` (rows, columns), every leading axis
            (channels, slices ``K``) indexes slices.

    Returns:
        The median of the per-slice estimates (over channels and slices), a float >= 0 in the
        image's intensity units.

    Raises:
        ValueError: fewer than two axes, a slice smaller than 3 x 3, or NaN / inf values.
    """
    array = to_numpy(image, "image")
    if array.ndim < 2:
        raise ValueError(f"estimate_noise_sigma: expected an image (*spatial) or (C, *spatial) "
                         f"with at least 2 axes, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
            or array.dtype == bool):
        raise ValueError(f"estimate_noise_sigma: expected real values, got dtype {array.dtype}")
    rows, cols = array.shape[-2:]
    if rows < 3 or cols < 3:
        raise ValueError(f"estimate_noise_sigma: each slice (the last two axes) must be at least "
                         f"3 x 3 pixels, got {rows} x {cols}")
    slices = array.reshape((-1, rows, cols))
    step = max(1, _CHUNK_VALUES // (rows * cols))
    sigmas = np.empty(slices.shape[0])
    scale = math.sqrt(math.pi / 2.0) / (6.0 * (rows - 2) * (cols - 2))
    for lo in range(0, slices.shape[0], step):
        chunk = slices[lo:lo + step].astype(np.float64)
        if not np.isfinite(chunk).all():
            raise ValueError("estimate_noise_sigma: the image contains NaN or inf; mask or "
                             "replace those pixels first")
        # the mask is the outer product of [1, -2, 1] with itself: two second differences
        second = chunk[:, :-2] - 2.0 * chunk[:, 1:-1] + chunk[:, 2:]
        second = second[:, :, :-2] - 2.0 * second[:, :, 1:-1] + second[:, :, 2:]
        sigmas[lo:lo + step] = scale * np.abs(second).sum(axis=(1, 2))
    return float(np.median(sigmas))


def _item_seed(seed: int, index: int) -> int:
    """A 64-bit seed for image ``index`` of a run seeded ``seed`` (numpy's SeedSequence)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint64)[0])


def add_gaussian_noise(images: Any, sigma: Any, seed: int, *,
                       indices: Optional[Sequence[int]] = None) -> Any:
    """``images`` plus i.i.d. Gaussian noise of standard deviation ``sigma``, reproducibly.

    The noise of image ``b`` is drawn on the CPU, in float64, by a ``torch.Generator`` seeded from
    ``(seed, indices[b])`` (through ``numpy.random.SeedSequence``): it depends neither on the
    global RNG state, nor on the device, nor on the other images of the batch. With ``indices``
    a cohort processed in batches gets the same noise as in one batch
    (``indices=range(lo, hi)``). The sum is taken in float64 and rounded once to the images' dtype.

    Args:
        images: torch tensor ``(B, C, *spatial)``, floating point; not modified.
        sigma: the noise's standard deviation in image units: a float for every image, or ``(B,)``
            (numpy, torch or a sequence) one per image, each finite and >= 0 (e.g. a multiple of
            :func:`estimate_noise_sigma`).
        seed: a non-negative int.
        indices: ``B`` non-negative ints naming the images for the seeding; default
            ``0 .. B - 1``, their position in the batch.

    Returns:
        A new tensor of the shape, dtype and device of ``images``.

    Raises:
        ValueError: images not a floating ``(B, C, *spatial)`` tensor, sigma or indices of the
            wrong length or value, a negative or non-integer seed.
    """
    import torch

    if not isinstance(images, torch.Tensor) or images.ndim < 3 or not images.is_floating_point():
        raise ValueError(f"add_gaussian_noise: images must be a floating point torch tensor "
                         f"(B, C, *spatial), got {type(images).__name__} "
                         f"{tuple(getattr(images, 'shape', ()))}; e.g. torch.as_tensor(x).float()")
    batch = images.shape[0]
    sigmas = to_numpy(sigma, "sigma").astype(np.float64)
    if sigmas.ndim == 0:
        sigmas = np.full(batch, float(sigmas))
    if sigmas.shape != (batch,) or not np.isfinite(sigmas).all() or (sigmas < 0).any():
        raise ValueError(f"add_gaussian_noise: sigma must be one finite value >= 0 or {batch} of "
                         f"them, one per image, got {np.asarray(sigma).tolist()!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"add_gaussian_noise: seed must be a non-negative integer, got {seed!r}")
    names = list(range(batch)) if indices is None else list(indices)
    if len(names) != batch or not all(_is_int(i) and i >= 0 for i in names):
        raise ValueError(f"add_gaussian_noise: indices must be {batch} non-negative integers, "
                         f"one per image, got {names!r}")
    out = torch.empty_like(images)
    for b in range(batch):
        generator = torch.Generator().manual_seed(_item_seed(int(seed), int(names[b])))
        noise = torch.randn(tuple(images.shape[1:]), generator=generator, dtype=torch.float64)
        noisy = images[b].detach().to("cpu", torch.float64) + noise * sigmas[b]
        out[b] = noisy.to(device=images.device, dtype=images.dtype)
    return out


def _offsets(offset: Sequence[int], spatial: Tuple[int, ...], name: str) -> Tuple[int, ...]:
    values = tuple(offset)
    if len(values) != len(spatial) or not all(_is_int(o) for o in values):
        raise ValueError(f"{name}: offset must hold one integer per spatial axis, "
                         f"{len(spatial)} for spatial shape {spatial} (array order, (K, J, I) or "
                         f"(J, I)), got {offset!r}")
    for o, n in zip(values, spatial):
        if abs(o) >= n:
            raise ValueError(f"{name}: offset {values} moves the content by the whole extent "
                             f"{spatial} or more along an axis; each |offset| must be < its axis")
    return tuple(int(o) for o in values)


def shift_images(images: Any, offset: Sequence[int]) -> Any:
    """Translate ``images`` by whole pixels, replicating the edge (no wrap-around).

    ``out[..., j, i] = images[..., clamp(j - offset[0]), clamp(i - offset[1])]`` (likewise in 3D):
    a positive offset moves the content towards higher indices (2D ``(J, I)``: down, right), and
    the strip it uncovers repeats the last row / column of the image.

    Args:
        images: torch tensor ``(B, C, *spatial)``; not modified.
        offset: one int per spatial axis, in array order (``(dK, dJ, dI)`` or ``(dJ, dI)``),
            each ``|offset| < `` that axis' extent.

    Returns:
        A new tensor of the same shape, dtype and device.
    """
    import torch

    if not isinstance(images, torch.Tensor) or images.ndim < 3:
        raise ValueError(f"shift_images: images must be a torch tensor (B, C, *spatial), got "
                         f"{type(images).__name__} {tuple(getattr(images, 'shape', ()))}")
    shifts = _offsets(offset, tuple(images.shape[2:]), "shift_images")
    out = images
    for axis, shift in enumerate(shifts):
        if shift:
            n = images.shape[2 + axis]
            source = (torch.arange(n, device=images.device) - shift).clamp_(0, n - 1)
            out = out.index_select(2 + axis, source)
    return out.clone() if out is images else out


def unshift_maps(maps: Any, offset: Sequence[int]) -> np.ndarray:
    """Undo :func:`shift_images` on maps: translate by ``-offset``, replicating the edge.

    ``out[b, j, i] = maps[b, clamp(j + offset[0]), clamp(i + offset[1])]``, so the map of the
    shifted image lies on the clean image's pixels. It is exact wherever the shifted image holds
    real content (``0 <= j + offset[0] < H`` and so on), i.e. away from the ``|offset|`` pixels
    that were outside the shifted view; compare maps away from that strip.

    Args:
        maps: numpy array or torch tensor ``(B, *spatial)``; not modified.
        offset: the offset given to :func:`shift_images`, one int per spatial axis.

    Returns:
        A new numpy array ``(B, *spatial)`` of the maps' dtype.
    """
    array = to_numpy(maps, "maps")
    if array.ndim < 2:
        raise ValueError(f"unshift_maps: maps must be a batch (B, *spatial), got shape "
                         f"{array.shape}; add the batch axis, e.g. map[None]")
    shifts = _offsets(offset, array.shape[1:], "unshift_maps")
    out = array
    for axis, shift in enumerate(shifts):
        if shift:
            n = array.shape[1 + axis]
            out = np.take(out, np.clip(np.arange(n) + shift, 0, n - 1), axis=1 + axis)
    return out.copy() if out is array else out

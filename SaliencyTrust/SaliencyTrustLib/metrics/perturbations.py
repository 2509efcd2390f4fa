"""Input perturbations of the robustness criterion: noise the scanner could have added, small shifts.

A trustworthy map barely changes when the input changes in ways that keep the diagnosis (Zhang et
al., Radiology: AI 2024): Gaussian noise at the image's own noise level, a translation by a few
pixels. The map of a shifted input is shifted back (:func:`unshift_maps`) so that it is compared
with the clean map on the same pixels.

Axis order: arrays are ``(B, C, *spatial)`` (images) and ``(B, *spatial)`` (maps) with the spatial
axes in array order (``(J, I)`` for 2D, ``(K, J, I)`` for 3D, as everywhere in the project); an
offset gives one integer per spatial axis in that order, positive towards higher indices.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

__all__ = ["estimate_noise_sigma", "add_gaussian_noise", "shift_images", "unshift_maps"]

#: Immerkaer's Laplacian-difference mask (the difference of two Laplacians; zero on planes).
_IMMERKAER_MASK = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of additive white Gaussian noise in ``image``, in its own units.

    J. Immerkaer, "Fast noise variance estimation", CVIU 64(2), 1996: ``sigma = sqrt(pi / 2) /
    (6 (W - 2)(H - 2)) * sum |I * N|`` with ``N`` the 3 x 3 Laplacian-difference mask, which is
    zero on linear intensity ramps, so smooth anatomy barely contributes. Computed per 2D plane
    (the last two axes) and the median over planes / channels is returned.

    Args:
        image: ``(*spatial)`` or ``(C, *spatial)`` float array with at least two spatial axes of
            3 or more pixels.

    Raises:
        ValueError: fewer than 2 dimensions, a plane smaller than 3 x 3, or non-finite values.
    """
    from scipy.ndimage import convolve

    array = np.asarray(image, dtype=np.float64)
    if array.ndim < 2 or min(array.shape[-2:]) < 3:
        raise ValueError(f"estimate_noise_sigma: need planes of at least 3 x 3 pixels, got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError("estimate_noise_sigma: the image has NaN or infinite values; clean the input first.")
    planes = array.reshape((-1,) + array.shape[-2:])
    height, width = planes.shape[-2:]
    sigmas = [np.sqrt(np.pi / 2.0) * np.abs(convolve(p, _IMMERKAER_MASK, mode="nearest")[1:-1, 1:-1]).sum()
              / (6.0 * (width - 2) * (height - 2)) for p in planes]
    return float(np.median(sigmas))


def add_gaussian_noise(images, sigma: Union[float, Sequence[float]], seed: int):
    """``images`` plus N(0, sigma^2) noise, drawn from a generator seeded by ``(seed, item index)``.

    Args:
        images: ``(B, C, *spatial)`` tensor (not modified).
        sigma: one standard deviation, or one per item ``(B,)``, in the images' units.
        seed: decides the noise (independent of torch's global generator); call with one item and
            a per-study seed to make the noise independent of the batch.

    Returns:
        A new tensor of ``images``' shape, dtype and device.
    """
    import torch

    sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (images.shape[0],))
    if (sigmas < 0).any() or not np.isfinite(sigmas).all():
        raise ValueError(f"add_gaussian_noise: sigma must be finite and >= 0, got {sigma}.")
    noise = np.stack([np.random.default_rng([int(seed) % (2 ** 63), index]).standard_normal(images.shape[1:]) * s
                      for index, s in enumerate(sigmas)])
    return images + torch.from_numpy(noise).to(device=images.device, dtype=images.dtype)


def _shifted(array, offset: Sequence[int], spatial_start: int, pad, crop):
    """Translate the axes from ``spatial_start`` on by ``offset`` (edge-replicated)."""
    spatial = array.ndim - spatial_start
    offset = [int(o) for o in offset]
    if len(offset) != spatial:
        raise ValueError(f"shift: {len(offset)} offsets for {spatial} spatial axes; give one per axis "
                         "in array order (J, I) or (K, J, I).")
    for axis, step in enumerate(offset, start=spatial_start):
        size = array.shape[axis]
        if abs(step) >= size:
            raise ValueError(f"shift: offset {step} is not smaller than the axis length {size}.")
        if step == 0:
            continue
        padded = pad(array, axis, abs(step))
        start = 0 if step > 0 else 2 * abs(step)
        array = crop(padded, axis, start, size)
    return array


def shift_images(images, offset: Sequence[int]):
    """``images`` ``(B, C, *spatial)`` translated by ``offset`` pixels per spatial axis (positive
    towards higher indices), the border edge-replicated (no wrap-around). Returns a new tensor."""
    import torch

    def pad(array, axis, width):
        first = array.narrow(axis, 0, 1).expand(*[width if a == axis else -1 for a in range(array.ndim)])
        last = array.narrow(axis, array.shape[axis] - 1, 1).expand(
            *[width if a == axis else -1 for a in range(array.ndim)])
        return torch.cat([first, array, last], dim=axis)

    def crop(array, axis, start, size):
        return array.narrow(axis, start, size)

    return _shifted(images, offset, 2, pad, crop).clone()


def unshift_maps(maps: np.ndarray, offset: Sequence[int]) -> np.ndarray:
    """Maps ``(B, *spatial)`` of shifted inputs moved back by ``-offset`` (edge-replicated), so
    pixel ``p`` of the result belongs to pixel ``p`` of the clean input."""

    def pad(array, axis, width):
        widths = [(0, 0)] * array.ndim
        widths[axis] = (width, width)
        return np.pad(array, widths, mode="edge")

    def crop(array, axis, start, size):
        return np.take(array, np.arange(start, start + size), axis=axis)

    return np.ascontiguousarray(_shifted(np.asarray(maps), [-int(o) for o in offset], 1, pad, crop))

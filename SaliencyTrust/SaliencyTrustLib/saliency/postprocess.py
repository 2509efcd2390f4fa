"""Post-processing of raw attributions, a separate named step.

Raw attributions are signed ``(B, C, *spatial)``. The named steps:

``"none"``
    the raw signed ``(B, C, *spatial)`` attribution, unchanged.
``"paper"``
    the study's visualization (Arun et al. 2021, as in PAIR ``saliency``'s
    ``VisualizeImageGrayscale``): absolute value, sum over channels, clip at the 99th
    percentile of the map, min-max normalize to ``[0, 1]``. Returns ``(B, *spatial)`` float32.
    Each sample is normalized on its own (batch-independent). A constant map (no information)
    becomes all zeros.
``"abs_sum"``
    absolute value summed over channels, ``(B, *spatial)``, not normalized.
"""

from __future__ import annotations

from typing import Callable, Dict

import torch


def _percentile_per_sample(flat: torch.Tensor, percentile: float) -> torch.Tensor:
    """Linear-interpolation percentile (``numpy.percentile``'s default) of each row of
    ``flat`` ``(B, N)``; uses ``kthvalue`` so that it works on volumes above 2**24 voxels."""
    n = flat.shape[1]
    position = (n - 1) * percentile / 100.0
    low = int(position)
    high = min(low + 1, n - 1)
    frac = position - low
    low_values = torch.kthvalue(flat, low + 1, dim=1).values
    if frac == 0.0 or high == low:
        return low_values
    high_values = torch.kthvalue(flat, high + 1, dim=1).values
    return low_values + (high_values - low_values) * frac


def postprocess_none(maps: torch.Tensor) -> torch.Tensor:
    """Identity: the signed ``(B, C, *spatial)`` attribution."""
    return maps


def postprocess_abs_sum(maps: torch.Tensor) -> torch.Tensor:
    """``|maps|`` summed over channels: ``(B, C, *spatial)`` -> ``(B, *spatial)``."""
    return maps.abs().sum(dim=1)


def postprocess_paper(maps: torch.Tensor, percentile: float = 99.0) -> torch.Tensor:
    """The study's post-processing: ``(B, C, *spatial)`` signed -> ``(B, *spatial)`` in ``[0, 1]``.

    ``m = sum_c |maps|``; ``vmax`` = the ``percentile``-th percentile of ``m`` (linear
    interpolation), ``vmin = min(m)``; result ``clip((m - vmin) / (vmax - vmin), 0, 1)``, per
    sample. Where ``vmax == vmin`` the result is all zeros.
    """
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100]; got {percentile!r}.")
    summed = maps.abs().sum(dim=1).to(torch.float32)
    flat = summed.reshape(summed.shape[0], -1)
    vmax = _percentile_per_sample(flat, percentile)
    vmin = flat.min(dim=1).values
    span = (vmax - vmin)
    safe = torch.where(span > 0, span, torch.ones_like(span))
    view = (-1,) + (1,) * (summed.ndim - 1)
    out = ((summed - vmin.view(view)) / safe.view(view)).clamp_(0.0, 1.0)
    out = torch.where((span > 0).view(view), out, torch.zeros_like(out))
    return out


def postprocess_minmax(maps: torch.Tensor) -> torch.Tensor:
    """``|maps|`` summed over channels and min-max scaled to ``[0, 1]`` per sample, **without** the
    99th-percentile clip (:func:`postprocess_paper` at ``percentile=100``): a map that is already
    a normalized product (the study's Guided GradCAM) or XRAI's region gains as they rank."""
    return postprocess_paper(maps, percentile=100.0)


POSTPROCESSORS: Dict[str, Callable[..., torch.Tensor]] = {
    "paper": postprocess_paper,
    "minmax": postprocess_minmax,
    "none": postprocess_none,
    "abs_sum": postprocess_abs_sum,
}


def postprocess(maps: torch.Tensor, name: str = "paper", **options) -> torch.Tensor:
    """Apply the post-processing step ``name`` (one of :data:`POSTPROCESSORS`) to raw maps
    ``(B, C, *spatial)``; ``options`` go to that step (e.g. ``percentile`` for ``"paper"``)."""
    if name is None:
        name = "none"
    if name not in POSTPROCESSORS:
        raise ValueError(f"postprocess must be one of {sorted(POSTPROCESSORS)}; got {name!r}.")
    return POSTPROCESSORS[name](maps, **options)

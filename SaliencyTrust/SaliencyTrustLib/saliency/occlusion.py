"""Occlusion (Zeiler & Fergus 2014), wrapping ``captum.attr.Occlusion``.

A window slides over the image with a stride; at each position it is replaced by the baseline and
the drop of the target logit is credited to the occluded pixels (averaged over the windows that
cover each pixel, as captum does). Forward passes only; they are batched so that each forward sees
at most ``internal_batch_size`` occluded images (captum's ``perturbations_per_eval``).
"""

from __future__ import annotations

import numbers
from typing import Sequence, Tuple, Union

import torch

from .engine import DEFAULT_INTERNAL_BATCH_SIZE, resolve_targets
from .validation import TargetLike, as_targets, check_positive_int

SizeLike = Union[int, Sequence[int]]


def _window(value: SizeLike, x: torch.Tensor, name: str) -> Tuple[int, ...]:
    """``(C, *spatial)`` window/stride for captum from an int (every spatial axis), a spatial
    tuple, or a full ``(C, *spatial)`` tuple; spatial sizes are capped at the image's size."""
    spatial = tuple(x.shape[2:])
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        sizes = (int(value),) * len(spatial)
    else:
        sizes = tuple(int(v) for v in value)
        if len(sizes) == len(spatial) + 1:
            if sizes[0] != x.shape[1] and name == "sliding_window_shapes":
                raise ValueError(f"{name} {tuple(value)}: its first entry must be the channel count "
                                 f"{x.shape[1]} (or give spatial sizes only).")
            sizes = sizes[1:]
        if len(sizes) != len(spatial):
            raise ValueError(f"{name} must be an int or have one entry per spatial axis {spatial}; "
                             f"got {tuple(value)}.")
    if any(s < 1 for s in sizes):
        raise ValueError(f"{name} entries must be >= 1; got {sizes}.")
    sizes = tuple(min(s, n) for s, n in zip(sizes, spatial))
    return (x.shape[1],) + sizes


def occlusion(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
              sliding_window_shapes: SizeLike = 15, strides: SizeLike = 8,
              baselines: Union[float, str] = 0.0,
              internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Occlusion attribution ``(B, C, *spatial)`` (``captum.attr.Occlusion``).

    Args:
        sliding_window_shapes: window size in pixels/voxels: an int for every spatial axis, one
            per spatial axis, or captum's ``(C, *spatial)``; all channels are occluded together.
            Capped at the image size.
        strides: step of the window, same forms.
        baselines: value written into the window: a number (captum's default 0) or ``"min"``
            (each image's minimum).
        internal_batch_size: occluded images per forward pass.
    """
    from captum.attr import Occlusion

    internal_batch_size = check_positive_int("internal_batch_size", internal_batch_size)
    window = _window(sliding_window_shapes, x, "sliding_window_shapes")
    stride = _window(strides, x, "strides")
    if target is None:
        targets = resolve_targets(model, x, None, internal_batch_size)
    else:
        targets = as_targets(target, x.shape[0], _num_classes(model, x), x.device)
    explainer = Occlusion(model)
    maps = []
    for start in range(0, x.shape[0], internal_batch_size):
        chunk = x[start:start + internal_batch_size]
        if isinstance(baselines, str):
            if baselines != "min":
                raise ValueError(f"baselines must be a number or 'min'; got {baselines!r}.")
            base = chunk.flatten(1).min(dim=1).values.view(-1, *([1] * (x.ndim - 1))).expand_as(chunk).contiguous()
        else:
            base = float(baselines)
        maps.append(explainer.attribute(
            chunk, sliding_window_shapes=window, strides=stride, baselines=base,
            target=targets[start:start + internal_batch_size].tolist(),
            perturbations_per_eval=max(1, internal_batch_size // chunk.shape[0])).detach())
    return torch.cat(maps), targets


def _num_classes(model: torch.nn.Module, x: torch.Tensor) -> int:
    from .engine import checked_forward

    with torch.no_grad():
        return checked_forward(model, x[:1]).shape[1]

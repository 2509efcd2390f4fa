"""Input checks of the saliency engine: each failure is a ``ValueError`` / ``TypeError`` whose
message names the argument, what is wrong with it and how to fix it.

Conventions checked here: images are a batch ``(B, C, *spatial)`` with 1 to 3 spatial axes (2D
``(B, C, H, W)``, 3D ``(B, C, D, H, W)``), finite, and the model returns one row of pre-softmax
logits per sample, ``(B, classes)``.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch

TargetLike = Union[None, int, Sequence[int], np.ndarray, torch.Tensor]


def as_image_batch(images: Any) -> Tuple[torch.Tensor, bool]:
    """Return ``images`` as a float32 tensor ``(B, C, *spatial)`` (a copy never aliases the
    caller's memory) and whether the caller gave a numpy array.

    Raises:
        TypeError: ``images`` is neither a ``torch.Tensor`` nor a ``numpy.ndarray``.
        ValueError: wrong rank, empty batch, or a NaN / infinite value.
    """
    was_numpy = isinstance(images, np.ndarray)
    if was_numpy:
        tensor = torch.from_numpy(np.array(images, dtype=np.float32, copy=True))
    elif isinstance(images, torch.Tensor):
        # plain tensor (not a MONAI MetaTensor), a copy (so inference-mode tensors can be used
        # with autograd and the caller's memory is never aliased)
        tensor = images.detach().as_subclass(torch.Tensor).to(dtype=torch.float32).clone()
    else:
        raise TypeError(
            f"images must be a torch.Tensor or numpy.ndarray of shape (B, C, *spatial); got "
            f"{type(images).__name__}. Stack your images into one array, e.g. "
            "np.stack([img[None] for img in images])."
        )
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(
            f"images must have shape (B, C, *spatial) with 1 to 3 spatial axes (2D: (B, C, H, W), "
            f"3D: (B, C, D, H, W)); got shape {tuple(tensor.shape)}. Add the batch/channel axes, "
            "e.g. image[None, None] for one single-channel image."
        )
    if tensor.shape[0] == 0:
        raise ValueError("images is an empty batch (B = 0); give at least one image.")
    if not torch.isfinite(tensor).all():
        bad = (~torch.isfinite(tensor)).flatten(1).any(1).nonzero().flatten().tolist()
        raise ValueError(
            f"images contain NaN or infinite values (batch items {bad}); saliency of a non-finite "
            "input is undefined. Fix the reading/normalization step or replace them "
            "(e.g. torch.nan_to_num) before calling."
        )
    return tensor, was_numpy


def check_logits(output: Any, batch_size: int) -> torch.Tensor:
    """Check that a model output is a ``(B, classes)`` tensor of logits and return it.

    Raises:
        ValueError: the output is a tuple/dict, has another rank, or another batch size.
    """
    if not isinstance(output, torch.Tensor):
        raise ValueError(
            f"the model must return one tensor of pre-softmax logits of shape (B, classes); it "
            f"returned {type(output).__name__}. Wrap the model so that forward() returns the "
            "classification logits only (e.g. lambda x: model(x)[0])."
        )
    if output.ndim != 2 or output.shape[0] != batch_size:
        raise ValueError(
            f"the model output must have shape (B, classes) = ({batch_size}, classes); got "
            f"{tuple(output.shape)}. A classifier with one output unit per class is expected: "
            "for a single-logit binary model wrap it to return torch.cat([-z, z], dim=1); for a "
            "segmentation network, explain a pooled score instead."
        )
    return output


def warn_if_probabilities(logits: torch.Tensor) -> None:
    """Warn when the rows look like softmax probabilities: the study explains the pre-softmax
    logit, and gradients through a saturated softmax are near zero."""
    if logits.shape[1] < 2:
        return
    with torch.no_grad():
        rows = logits.detach()
        if rows.dtype in (torch.float16, torch.bfloat16):  # amp: CUDA autocast sums them in float32
            rows = rows.float()
        if bool(((rows >= 0) & (rows <= 1)).all()) and torch.allclose(
                rows.sum(1), torch.ones_like(rows[:, 0]), atol=1e-4):
            warnings.warn(
                "the model output rows are in [0, 1] and sum to 1: they look like softmax "
                "probabilities. The explained output should be the pre-softmax logit; remove "
                "the final softmax layer.", stacklevel=3)


def as_targets(target: TargetLike, batch_size: int, num_classes: Optional[int],
               device: torch.device) -> torch.Tensor:
    """Return one class index per sample as a long tensor ``(B,)``.

    ``target`` is an int (same class for every sample) or one int per sample (list, numpy
    array or tensor of length B). ``num_classes=None`` skips the range check.

    Raises:
        ValueError: wrong length, non-integer, or a class outside ``[0, num_classes)``.
    """
    if isinstance(target, (bool, np.bool_)):
        raise ValueError(f"target must be a class index (int), not a bool ({target!r}).")
    if isinstance(target, numbers.Integral):
        values = torch.full((batch_size,), int(target), dtype=torch.long)
    else:
        values = torch.as_tensor(np.asarray(target.detach().cpu() if isinstance(
            target, torch.Tensor) else target))
        if values.ndim == 0:
            values = values.reshape(1).expand(batch_size)
        if values.ndim != 1 or values.shape[0] != batch_size:
            raise ValueError(
                f"target must be an int or one class index per sample (length B = {batch_size}); "
                f"got shape {tuple(values.shape)}.")
        if values.dtype.is_floating_point or values.dtype == torch.bool:
            if values.dtype == torch.bool or not torch.equal(values, values.round()):
                raise ValueError(f"target must hold integer class indices; got {values.tolist()}.")
        values = values.to(torch.long)
    if num_classes is None:
        num_classes = np.iinfo(np.int64).max
        if bool((values < 0).any()):
            raise ValueError(f"target must hold class indices >= 0; got {values.tolist()}.")
    bad = ((values < 0) | (values >= num_classes)).nonzero().flatten().tolist()
    if bad:
        raise ValueError(
            f"target out of range: the model has {num_classes} classes (valid indices 0 to "
            f"{num_classes - 1}) but target = {values.tolist()} (bad batch items {bad}).")
    return values.to(device)


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int >= 1 or raise a ``ValueError`` naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)

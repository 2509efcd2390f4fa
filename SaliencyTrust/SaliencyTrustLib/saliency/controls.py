"""Negative controls: maps that carry no knowledge of what the model uses, scored like methods.

They run beside the methods through every criterion (issue 12), so a reader sees what an
uninformative map scores, and a method passes a criterion only if it beats every control that the
criterion itself cannot reject (:mod:`SaliencyTrustLib.criteria.verdicts`).

* ``control_uniform`` - i.i.d. U(0, 1) pixels, redrawn for every image **and every model state**
  (a different model gives a different map: the "sensitive but meaningless" map of Binder et al.
  2023 that a randomization test must not accept);
* ``control_single_pixel`` - one bright pixel at a position redrawn per image and model state;
* ``control_constant`` - the same value everywhere (undefined for every metric: dropped, counted);
* ``control_edge`` - the Sobel gradient magnitude of the input (Adebayo et al. 2018: an edge
  detector looks like a saliency map and ignores the model).

Draws are seeded by a CRC32 of the image's bytes and of the model's parameters, so they are
reproducible, independent of the batch and of the global RNG. Every function returns
``(attributions (B, 1, *spatial) in [0, 1], targets (B,))`` like the methods; the study pipeline
post-processes them with ``"abs_sum"`` only (the ``"paper"`` 99th-percentile clip would erase a
single pixel).
"""

from __future__ import annotations

import zlib
from typing import Tuple

import torch

from .engine import DEFAULT_INTERNAL_BATCH_SIZE, resolve_targets
from .validation import TargetLike

#: Controls whose map does not depend on the model (repeatable by construction).
MODEL_INDEPENDENT = ("control_constant", "control_edge")


def _model_crc(model: torch.nn.Module) -> int:
    crc = 0
    for tensor in model.state_dict().values():          # weights and BatchNorm statistics
        crc = zlib.crc32(tensor.detach().float().cpu().contiguous().numpy().tobytes(), crc)
    return crc


def _generators(model: torch.nn.Module, x: torch.Tensor):
    model_crc = _model_crc(model)
    for item in x:
        seed = zlib.crc32(item.detach().float().cpu().contiguous().numpy().tobytes(), model_crc)
        yield torch.Generator().manual_seed(seed)


def control_uniform(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None
                    ) -> Tuple[torch.Tensor, torch.Tensor]:
    """U(0, 1) per pixel, redrawn per image and model state."""
    targets = resolve_targets(model, x, target, DEFAULT_INTERNAL_BATCH_SIZE)
    maps = torch.stack([torch.rand(x.shape[2:], generator=g) for g in _generators(model, x)])
    return maps[:, None].to(x.device), targets


def control_single_pixel(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None
                         ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Zeros but one pixel (value 1) at a position redrawn per image and model state."""
    targets = resolve_targets(model, x, target, DEFAULT_INTERNAL_BATCH_SIZE)
    maps = torch.zeros((x.shape[0], 1) + tuple(x.shape[2:]))
    for index, generator in enumerate(_generators(model, x)):
        flat = maps[index, 0].view(-1)
        flat[int(torch.randint(flat.numel(), (1,), generator=generator))] = 1.0
    return maps.to(x.device), targets


def control_constant(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None
                     ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The same value everywhere."""
    targets = resolve_targets(model, x, target, DEFAULT_INTERNAL_BATCH_SIZE)
    return torch.ones((x.shape[0], 1) + tuple(x.shape[2:]), device=x.device), targets


def control_edge(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Sobel gradient magnitude of the input (channels summed), any number of spatial axes."""
    import numpy as np
    from scipy import ndimage

    targets = resolve_targets(model, x, target, DEFAULT_INTERNAL_BATCH_SIZE)
    images = x.detach().float().sum(dim=1).cpu().numpy()
    maps = []
    for image in images:
        squares = sum(ndimage.sobel(image, axis=axis, mode="nearest") ** 2 for axis in range(image.ndim))
        magnitude = np.sqrt(squares)
        maps.append(magnitude / magnitude.max() if magnitude.max() > 0 else magnitude)
    return torch.from_numpy(np.stack(maps)[:, None]).to(x.device), targets

"""Guided Backprop and Guided GradCAM.

* ``guided_backprop``: the computation of ``captum.attr.GuidedBackprop`` (Springenberg et al.
  2015): the gradient with every ``torch.nn.ReLU``'s backward gated on a positive incoming gradient
  as well as a positive activation. Networks built with in-place ReLUs (MONAI's default) work as
  they are: instead of module backward hooks (which in-place ReLUs break) each ReLU module gets a
  forward hook that registers a gradient hook ``clamp(grad, min=0)`` on its output; the ReLU's
  own backward then multiplies by ``(activation > 0)``. Hooks are removed afterwards. ReLUs called functionally (``F.relu`` inside ``forward``) cannot be
  hooked; a model without any ``nn.ReLU`` module is refused with an error.
* ``guided_gradcam``: ``captum.attr.GuidedGradCam`` (Selvaraju et al. 2017): Guided Backprop times
  the upsampled GradCAM; with ``normalize_parts=True`` (the study) the product of the two maps each
  normalized with the study's post-processing.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Tuple

import torch

from .cam import LayerLike, gradcam
from .engine import DEFAULT_INTERNAL_BATCH_SIZE, path_attributions
from .postprocess import postprocess_paper
from .validation import TargetLike


def _positive_part(grad: torch.Tensor) -> torch.Tensor:
    return grad.clamp(min=0)


def _guide(_module: torch.nn.Module, _inputs, output):
    # The gradient arriving at the ReLU's output is clamped at 0; the ReLU's own backward then
    # gates it on a positive activation: together, Guided Backprop's rule. A tensor hook needs
    # no extra copy of the activation and works on in-place ReLUs.
    if isinstance(output, torch.Tensor) and output.requires_grad:
        output.register_hook(_positive_part)


@contextlib.contextmanager
def guided_relus(model: torch.nn.Module) -> Iterator[int]:
    """Within the block, every ``nn.ReLU`` of ``model`` back-propagates as Guided Backprop;
    yields the number of ReLU modules hooked. The model is unchanged afterwards."""
    handles = [module.register_forward_hook(_guide) for module in model.modules()
               if isinstance(module, torch.nn.ReLU)]
    try:
        yield len(handles)
    finally:
        for handle in handles:
            handle.remove()


def guided_backprop(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
                    internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Guided Backprop, as ``captum.attr.GuidedBackprop``; ``(B, C, *spatial)`` signed gradients
    with guided ReLUs, and the targets (predicted class from the same forward pass by default).

    Raises:
        ValueError: the model has no ``torch.nn.ReLU`` module to guide.
    """
    with guided_relus(model) as count:
        if count == 0:
            raise ValueError(
                "guided_backprop needs torch.nn.ReLU modules to gate, and the model has none (ReLUs "
                "called as torch.nn.functional.relu cannot be hooked; other activations are not "
                "guided). Use 'gradient' or 'gradcam', or build the model with nn.ReLU modules.")
        return path_attributions(model, x, target, internal_batch_size=internal_batch_size)


def guided_gradcam(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
                   layer: LayerLike = None, relu_attributions: bool = True, interpolate_mode: str = "linear",
                   normalize_parts: bool = True,
                   internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Guided GradCAM: Guided Backprop x GradCAM (``captum.attr.GuidedGradCam``).

    Args:
        layer, relu_attributions, interpolate_mode: GradCAM's (see :func:`.cam.gradcam`).
        normalize_parts: ``True`` (the study): the product of the two maps each post-processed
            with the study's step (abs, channel sum, 99th-percentile clip, min-max), repeated on
            the C channels; ``False`` (captum): signed Guided Backprop times GradCAM per channel.

    Both parts explain the same class: GradCAM's (the predicted class by default).
    """
    cam, targets = gradcam(model, x, target, layer=layer, relu_attributions=relu_attributions,
                           interpolate_mode=interpolate_mode, internal_batch_size=internal_batch_size)
    guided, _ = guided_backprop(model, x, targets, internal_batch_size=internal_batch_size)
    if not normalize_parts:
        return guided * cam, targets
    product = postprocess_paper(guided) * postprocess_paper(cam[:, :1])
    return product.unsqueeze(1).expand_as(x).clone(), targets

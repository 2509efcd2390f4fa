"""The registry of saliency methods: one name -> one function with the common signature
``fn(model, x, target=None, **params) -> (attributions (B, C, *spatial), targets (B,))``.

Methods are imported lazily (``"module:function"``) so that listing them stays cheap.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple


@dataclass(frozen=True)
class MethodSpec:
    """A registered method: its ``name``, where its function lives (``"module:function"``,
    relative to this package), the library whose computation it reproduces or wraps, whether it
    is one of the study's eight, a one-line description, and whether it may run under
    ``compute_saliency(..., amp="bf16")`` (methods built on input gradients may; a method whose
    map is a difference of logits may not: bfloat16 logits carry 8 significant bits)."""

    name: str
    entry: str
    library: str
    in_study: bool
    description: str
    supports_amp: bool = True

    @property
    def function(self) -> Callable:
        module_name, function_name = self.entry.split(":")
        module = importlib.import_module(f"{__package__}.{module_name}")
        return getattr(module, function_name)

    def parameters(self) -> Tuple[str, ...]:
        """Names of the method's own keyword parameters (after ``model, x, target``)."""
        signature = inspect.signature(self.function)
        return tuple(name for name, p in signature.parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY)


METHODS: Dict[str, MethodSpec] = {spec.name: spec for spec in (
    MethodSpec("gradient", "gradients:gradient", "captum.attr.Saliency (abs=False)", True,
               "d logit / d input"),
    MethodSpec("smoothgrad", "gradients:smoothgrad", "captum.attr.NoiseTunnel(Saliency)", True,
               "mean of squared gradients of noisy copies"),
    MethodSpec("integrated_gradients", "gradients:integrated_gradients",
               "captum.attr.IntegratedGradients", True, "path integral of gradients from a baseline"),
    MethodSpec("smoothgrad_ig", "gradients:smoothgrad_ig", "captum.attr.NoiseTunnel(IntegratedGradients)",
               True, "SmoothGrad over Integrated Gradients"),
    MethodSpec("gradcam", "cam:gradcam", "captum.attr.LayerGradCam + upsampling", True,
               "gradient-weighted class activation map of the last conv block"),
    MethodSpec("guided_backprop", "guided:guided_backprop", "captum.attr.GuidedBackprop", True,
               "gradient with ReLU backward gated on positive gradient and activation"),
    MethodSpec("guided_gradcam", "guided:guided_gradcam", "captum.attr.GuidedGradCam", True,
               "Guided Backprop x GradCAM"),
    MethodSpec("xrai", "xrai:xrai", "PAIR saliency XRAI algorithm on our IG + scikit-image segments",
               True, "segments ranked by attribution density gain"),
    MethodSpec("occlusion", "occlusion:occlusion", "captum.attr.Occlusion", False,
               "logit drop when a sliding window is replaced by a baseline", supports_amp=False),
    MethodSpec("gradcam_pp", "cam:gradcam_pp", "monai.visualize.GradCAMpp", False,
               "GradCAM++ channel weights"),
    MethodSpec("input_x_gradient", "gradients:input_x_gradient", "captum.attr.InputXGradient", False,
               "input times gradient"),
    MethodSpec("control_uniform", "controls:control_uniform", "negative control", False,
               "uniform noise, redrawn per image and model state"),
    MethodSpec("control_single_pixel", "controls:control_single_pixel", "negative control", False,
               "one bright pixel, redrawn per image and model state"),
    MethodSpec("control_constant", "controls:control_constant", "negative control", False,
               "the same value everywhere"),
    MethodSpec("control_edge", "controls:control_edge", "negative control (Adebayo et al. 2018)", False,
               "Sobel gradient magnitude of the input"),
)}

#: The negative controls (:mod:`.controls`), run beside the methods in every study.
CONTROLS = ("control_uniform", "control_single_pixel", "control_constant", "control_edge")


def available_methods(include_controls: bool = False) -> List[str]:
    """Names of the registered methods, the study's eight first, in a stable order:
    ``gradient, smoothgrad, integrated_gradients, smoothgrad_ig, gradcam, guided_backprop,
    guided_gradcam, xrai, occlusion, gradcam_pp, input_x_gradient`` (then the negative
    :data:`CONTROLS` when ``include_controls``)."""
    return [name for name, spec in METHODS.items()
            if _is_available(spec) and (include_controls or name not in CONTROLS)]


def _is_available(spec: MethodSpec) -> bool:
    module_name = spec.entry.split(":")[0]
    return importlib.util.find_spec(f"{__package__}.{module_name}") is not None


def get_method(name: str) -> MethodSpec:
    """The :class:`MethodSpec` registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the available ones).
    """
    if not isinstance(name, str) or name not in METHODS or not _is_available(METHODS[name]):
        raise ValueError(f"unknown saliency method {name!r}; available: {available_methods()}.")
    return METHODS[name]

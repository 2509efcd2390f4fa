"""Public entry points: :func:`compute_saliency` and :class:`SaliencyMethod`."""

from __future__ import annotations

import contextlib
from typing import Any, ContextManager, Dict, Optional, Union

import numpy as np
import torch

from .engine import DEFAULT_INTERNAL_BATCH_SIZE, explaining, model_device_dtype, resolve_targets
from .postprocess import POSTPROCESSORS, postprocess as apply_postprocess
from .presets import preset_params
from .registry import get_method
from .validation import TargetLike, as_image_batch, check_positive_int

ArrayLike = Union[np.ndarray, torch.Tensor]


def _check_params(method: str, params: Dict[str, Any]) -> None:
    allowed = get_method(method).parameters()
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"saliency method {method!r} has no parameter(s) {unknown}; "
                        f"its parameters are {list(allowed)}.")


def _check_postprocess(postprocess: Optional[str]) -> str:
    name = "none" if postprocess is None else postprocess
    if name not in POSTPROCESSORS:
        raise ValueError(f"postprocess must be one of {sorted(POSTPROCESSORS)}; got {postprocess!r}.")
    return name


#: Mixed-precision modes of :func:`compute_saliency` (``amp=``): name -> autocast dtype.
#: float16 is left out on purpose: input gradients of a logit are often below float16's
#: smallest normal number (6e-5) and would flush to zero without loss scaling; bfloat16 has
#: float32's exponent range.
AMP_MODES: Dict[str, torch.dtype] = {"bf16": torch.bfloat16}


def _check_amp(amp: Optional[str]) -> Optional[str]:
    if amp is None or amp in AMP_MODES:
        return amp
    hint = " (float16 is not offered: input gradients underflow it without loss scaling)" \
        if amp in ("fp16", "float16", "half") else ""
    raise ValueError(f"amp must be None (float32, the default) or one of {sorted(AMP_MODES)}; "
                     f"got {amp!r}{hint}.")


def _check_amp_for(spec, amp: Optional[str]) -> Optional[str]:
    amp = _check_amp(amp)
    if amp is not None and not spec.supports_amp:
        raise ValueError(f"saliency method {spec.name!r} does not run under amp={amp!r}: its map is "
                         "a difference of logits, which bfloat16 rounds to about 1/256 of their size; "
                         "use amp=None for it.")
    return amp


def autocast_context(amp: Optional[str], device: torch.device) -> ContextManager:
    """The autocast block of ``amp`` on ``device`` (a no-op context for ``amp=None``).

    Raises:
        ValueError: unknown ``amp``, or a device type autocast does not support.
    """
    amp = _check_amp(amp)
    if amp is None:
        return contextlib.nullcontext()
    available = getattr(torch.amp, "is_autocast_available", lambda device_type: device_type in ("cpu", "cuda"))
    if not available(device.type):
        raise ValueError(f"amp={amp!r}: torch.autocast does not support device type {device.type!r}; "
                         "use amp=None there.")
    return torch.autocast(device_type=device.type, dtype=AMP_MODES[amp])


def compute_saliency(model: torch.nn.Module, images: ArrayLike, method: str, target: TargetLike = None,
                     postprocess: Optional[str] = "paper", *, preset: Optional[str] = "paper",
                     return_targets: bool = False, amp: Optional[str] = None, **params: Any):
    """Saliency maps of a batch of images for a classifier.

    Args:
        model: a ``torch.nn.Module`` returning pre-softmax logits ``(B, classes)``. It is run in
            eval mode (BatchNorm running statistics, no dropout) and left as it was found:
            training flags restored, hooks removed, weights and ``.grad`` untouched.
        images: ``(B, C, *spatial)`` tensor or numpy array, 2D ``(B, C, H, W)`` or 3D
            ``(B, C, D, H, W)`` (for ImageVolume arrays: ``(K, J, I)`` = ``(D, H, W)``). Not
            modified. Moved to the model's device for the computation.
        method: a name from :func:`available_methods`.
        target: class explained per sample: ``None`` (the predicted class, ``argmax`` of the
            logits of the unperturbed image), an int, or one int per sample.
        postprocess: ``"paper"`` -> ``(B, *spatial)`` float32 in ``[0, 1]`` (abs, channel sum,
            99th-percentile clip, min-max); ``"none"`` -> signed ``(B, C, *spatial)``;
            ``"abs_sum"`` -> ``(B, *spatial)``. See :mod:`.postprocess`.
        preset: ``"paper"`` (the study's settings, default), ``"captum"`` (captum's defaults) or
            ``None`` (the method function's own defaults); see :mod:`.presets`.
        return_targets: also return the explained class of each sample.
        amp: ``None`` (default): float32 as the model is (no autocast; results unchanged).
            ``"bf16"``: opt-in mixed precision: the model's forward and backward passes run
            under ``torch.autocast(dtype=torch.bfloat16)`` on the model's device (DenseNet121
            at 320 x 320 on an H200: 1.35x the pass rate, 1.17x the study's 8 methods; maps
            within a stated SSIM of float32's, see ``docs/gpu.md``),
            while the inputs, noise, path points, accumulated gradients, GradCAM's weighting and
            the post-processing stay float32. With ``target=None`` the explained class is the
            float32 prediction (one extra forward pass without gradients), so that both
            precisions explain the same class.
        **params: the method's own parameters (captum's names where captum has them:
            ``n_steps``, ``baselines``, ``nt_samples``, ``stdevs``, ``nt_type``, ``layer``,
            ``sliding_window_shapes``, ``strides``, ``internal_batch_size``, ``seed``...); they
            override the preset.

    Returns:
        maps of the same type as ``images`` (numpy array, or tensor on ``images``' device), float32,
        spatial shape equal to the input's; with ``return_targets`` a tuple ``(maps, targets)``
        (targets: numpy int64 ``(B,)``).

    Raises:
        ValueError / TypeError: bad images (rank, NaN), model output not ``(B, classes)``, target
        out of range, unknown method, layer, parameter or ``amp``; the message says which and
        how to fix.
    """
    spec = get_method(method)
    post = _check_postprocess(postprocess)
    _check_amp_for(spec, amp)
    merged = {**preset_params(preset, method), **params}
    _check_params(method, merged)
    # Works when called under torch.no_grad() / torch.inference_mode() (e.g. inside an evaluator).
    with torch.inference_mode(False), torch.enable_grad():
        x, was_numpy = as_image_batch(images)
        device, dtype = model_device_dtype(model)
        x = x.to(device=device, dtype=dtype)
        with explaining(model):
            if amp is not None and target is None:
                # The class explained must not depend on the precision: close logits can swap
                # their order in bfloat16.
                chunk = check_positive_int("internal_batch_size",
                                           merged.get("internal_batch_size", DEFAULT_INTERNAL_BATCH_SIZE))
                target = resolve_targets(model, x, None, chunk)
            with autocast_context(amp, device):
                raw, targets = spec.function(model, x, target, **merged)
        maps = apply_postprocess(raw.detach(), post).to(torch.float32)
    if was_numpy:
        result: ArrayLike = maps.cpu().numpy()
    else:
        result = maps.to(images.device)
    if return_targets:
        return result, targets.detach().cpu().numpy().astype(np.int64)
    return result


class SaliencyMethod:
    """A configured saliency method, callable as ``method(model, images, target=None) -> maps``.

    Constructible from plain keyword arguments, so a MONAI bundle config can build it::

        {"_target_": "SaliencyTrustLib.saliency.SaliencyMethod", "method": "smoothgrad",
         "preset": "paper", "postprocess": "paper", "nt_samples": 25}

    Args:
        method: a name from :func:`available_methods`.
        preset: ``"paper"``, ``"captum"`` or ``None`` (see :func:`compute_saliency`).
        postprocess: ``"paper"``, ``"none"`` or ``"abs_sum"``.
        amp: ``None`` (float32, default) or ``"bf16"`` (see :func:`compute_saliency`).
        **params: the method's parameters; checked here, so a bad config fails at construction.
    """

    def __init__(self, method: str, preset: Optional[str] = "paper", postprocess: Optional[str] = "paper",
                 amp: Optional[str] = None, **params: Any) -> None:
        spec = get_method(method)
        self.method = method
        self.preset = preset
        self.postprocess = _check_postprocess(postprocess)
        self.amp = _check_amp_for(spec, amp)
        preset_params(preset, method)  # validates the preset name
        _check_params(method, params)
        self.params = dict(params)

    @property
    def name(self) -> str:
        """The registry name of the method."""
        return self.method

    @property
    def settings(self) -> Dict[str, Any]:
        """The method's effective parameters: preset merged with the explicit ones (and
        ``amp`` when mixed precision is on, so that it reaches reports and fingerprints)."""
        amp = {} if self.amp is None else {"amp": self.amp}
        return {**preset_params(self.preset, self.method), **self.params, **amp}

    def __call__(self, model: torch.nn.Module, images: ArrayLike, target: TargetLike = None):
        return compute_saliency(model, images, self.method, target, self.postprocess,
                                preset=self.preset, amp=self.amp, **self.params)

    def to_config(self) -> Dict[str, Any]:
        """A JSON-serializable ``_target_`` config that rebuilds this object."""
        amp = {} if self.amp is None else {"amp": self.amp}
        return {"_target_": f"{__package__}.SaliencyMethod", "method": self.method, "preset": self.preset,
                "postprocess": self.postprocess, **amp, **self.params}

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.params.items())
        extra = (f", amp={self.amp!r}" if self.amp is not None else "") + extra
        return (f"SaliencyMethod({self.method!r}, preset={self.preset!r}, "
                f"postprocess={self.postprocess!r}{extra})")

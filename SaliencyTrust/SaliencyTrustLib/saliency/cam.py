"""Class activation maps: GradCAM and GradCAM++, with the layer found automatically.

* ``gradcam``: the computation of ``captum.attr.LayerGradCam`` (Selvaraju et al. 2017) followed
  by ``captum.attr.LayerAttribution.interpolate``-style upsampling; checked against captum in the
  tests. Implemented on our own forward hook so that the predicted class is read from the same
  forward pass (captum needs the target before it runs) and in-place activations after the layer
  cannot rewrite the captured feature map.
* ``gradcam_pp``: GradCAM++ (Chattopadhay et al. 2018), the closed form used by
  ``monai.visualize.GradCAMpp`` without its positive per-sample factor ``exp(score)`` (which only
  rescales each map and overflows for large logits).

Layer: ``layer=None`` picks the last convolutional feature map: for MONAI ``DenseNet`` the
``class_layers.relu`` output, ``ResNet`` / ``SENet`` (SEResNet) ``layer4``, ``EfficientNet``
``_swish``; for any other network the last module (in forward order) whose output is
``(B, K, *spatial)`` with the input's spatial rank and more than one spatial element. A name from
``model.named_modules()`` or a module of the model may be given instead.

Return: ``(B, C, *spatial)``: the map upsampled to the input's spatial shape (``interpolate_mode``)
and repeated on each of the ``C`` input channels (a CAM has no per-channel meaning).
"""

from __future__ import annotations

import difflib
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F

from .engine import DEFAULT_INTERNAL_BATCH_SIZE, checked_forward
from .validation import TargetLike, as_targets, check_positive_int

LayerLike = Union[None, str, torch.nn.Module]

#: (MONAI class name, attribute path of its last convolutional feature map).
KNOWN_LAYERS = (
    ("DenseNet", "class_layers.relu"),
    ("ResNet", "layer4"),
    ("SENet", "layer4"),
    ("EfficientNet", "_swish"),
)
INTERPOLATE_MODES = ("linear", "nearest", "area", "bilinear", "bicubic", "trilinear")


def _monai_default_layer(model: torch.nn.Module) -> Optional[str]:
    """The known layer of the first MONAI classifier found in ``model`` (checked by class name in
    the MRO, so that monai is not imported for non-MONAI models)."""
    known = dict(KNOWN_LAYERS)
    modules = dict(model.named_modules())
    for prefix, module in modules.items():
        for cls in type(module).__mro__:
            if cls.__module__.startswith("monai.") and cls.__name__ in known:
                name = f"{prefix}.{known[cls.__name__]}" if prefix else known[cls.__name__]
                if name in modules:
                    return name
    return None


def _traced_default_layer(model: torch.nn.Module, x: torch.Tensor) -> str:
    """The last leaf module (in forward completion order) returning an N-D feature map."""
    found: List[str] = []
    names = {module: name for name, module in model.named_modules()}
    spatial_rank = x.ndim - 2

    def hook(module, _inputs, output):
        if (isinstance(output, torch.Tensor) and output.ndim == spatial_rank + 2
                and output.shape[2:].numel() > 1):
            found.append(names[module])

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            checked_forward(model, x[:1])
    finally:
        for handle in handles:
            handle.remove()
    if not found:
        raise ValueError(
            "could not find a convolutional feature map in the model for GradCAM (no module returns "
            f"a (B, K, *spatial) tensor with {spatial_rank} spatial axes); pass layer='<name>' with "
            "a name from model.named_modules().")
    return found[-1]


def resolve_layer(model: torch.nn.Module, layer: LayerLike, x: torch.Tensor) -> Tuple[str, torch.nn.Module]:
    """``(name, module)`` of the layer to explain (see the module docstring).

    Raises:
        ValueError: ``layer`` names no module of the model (the message suggests close names).
    """
    modules = dict(model.named_modules())
    if isinstance(layer, torch.nn.Module):
        for name, module in modules.items():
            if module is layer:
                return name, module
        raise ValueError("layer is a torch.nn.Module that is not part of the model; pass one of "
                         "model's submodules or its name from model.named_modules().")
    if layer is None:
        name = _monai_default_layer(model) or _traced_default_layer(model, x)
        return name, modules[name]
    if not isinstance(layer, str):
        raise TypeError(f"layer must be None, a module name (str) or a torch.nn.Module; got {type(layer).__name__}.")
    if layer not in modules or layer == "":
        close = difflib.get_close_matches(layer, [n for n in modules if n], n=5)
        last = [n for n in modules if n][-5:]
        raise ValueError(f"layer {layer!r} does not exist in the model; "
                         f"close names: {close or 'none'}; the last modules are {last}. "
                         "Use a name from model.named_modules(), or layer=None for automatic choice.")
    return layer, modules[layer]


def layer_activations_and_gradients(model: torch.nn.Module, x: torch.Tensor, module: torch.nn.Module,
                                    target: TargetLike, layer_name: str = "layer"
                                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward + backward: the layer's output ``A`` ``(B, K, *s)``, ``d logit_target / d A``
    and the targets ``(B,)`` (predicted class of the same forward when ``target`` is ``None``)."""
    captured = {}

    def hook(_module, _inputs, output):
        if not isinstance(output, torch.Tensor):
            raise ValueError(f"layer {layer_name!r} returns {type(output).__name__}, not a tensor; "
                             "choose a layer whose output is a (B, K, *spatial) feature map.")
        captured["activation"] = output
        # Later in-place operations (e.g. ReLU(inplace=True)) act on the copy, not on A.
        return output.clone()

    handle = module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            inputs = x.detach().requires_grad_(True)  # so A has a graph even with frozen weights
            logits = checked_forward(model, inputs.clone())  # clone: in-place first ops
            if "activation" not in captured:
                raise ValueError(f"layer {layer_name!r} was not run by the model's forward pass.")
            if target is None:
                targets = logits.detach().argmax(dim=1)
            else:
                targets = as_targets(target, x.shape[0], logits.shape[1], x.device)
            activation = captured["activation"]
            selected = logits.gather(1, targets[:, None]).sum()
            (grads,) = torch.autograd.grad(selected, activation)
    finally:
        handle.remove()
    if activation.ndim != x.ndim:
        raise ValueError(f"layer {layer_name!r} outputs shape {tuple(activation.shape)}; GradCAM needs "
                         f"a (B, K, *spatial) map with {x.ndim - 2} spatial axes like the input.")
    # Under amp="bf16" both come out in bfloat16: the channel weighting and the sum over
    # channels are done in the input's precision (a no-op in float32).
    return activation.detach().to(x.dtype), grads.detach().to(x.dtype), targets


def upsample(maps: torch.Tensor, size: Tuple[int, ...], interpolate_mode: str) -> torch.Tensor:
    """Resize ``(B, 1, *s)`` to ``(B, 1, *size)``; ``"linear"`` means linear / bilinear /
    trilinear by the number of spatial axes (``align_corners=False``)."""
    if interpolate_mode not in INTERPOLATE_MODES:
        raise ValueError(f"interpolate_mode must be one of {INTERPOLATE_MODES}; got {interpolate_mode!r}.")
    spatial_rank = maps.ndim - 2
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[spatial_rank] if interpolate_mode == "linear" else interpolate_mode
    expected = {"bilinear": 2, "bicubic": 2, "trilinear": 3}
    if mode in expected and expected[mode] != spatial_rank:
        raise ValueError(f"interpolate_mode {interpolate_mode!r} needs {expected[mode]} spatial axes; the "
                         f"input has {spatial_rank}. Use 'linear' to pick the mode from the rank.")
    if tuple(maps.shape[2:]) == tuple(size):
        return maps
    kwargs = {"align_corners": False} if mode in ("linear", "bilinear", "bicubic", "trilinear") else {}
    return F.interpolate(maps, size=tuple(size), mode=mode, **kwargs)


def _cam_batched(weighting: str, model, x, target, layer, relu_attributions, interpolate_mode,
                 internal_batch_size) -> Tuple[torch.Tensor, torch.Tensor]:
    internal_batch_size = check_positive_int("internal_batch_size", internal_batch_size)
    name, module = resolve_layer(model, layer, x)
    target_vector = None if target is None else as_targets(target, x.shape[0], None, x.device)
    maps, all_targets = [], []
    spatial_rank = x.ndim - 2
    for start in range(0, x.shape[0], internal_batch_size):
        chunk = x[start:start + internal_batch_size]
        chunk_target = None if target_vector is None else target_vector[start:start + internal_batch_size]
        activation, grads, targets = layer_activations_and_gradients(model, chunk, module, chunk_target, name)
        dims = tuple(range(2, 2 + spatial_rank))
        if weighting == "gradcam":
            weights = grads.mean(dim=dims, keepdim=True)
        else:  # GradCAM++ closed form (Chattopadhay et al. 2018, eq. 19 with exp-score gradients)
            grads_2, grads_3 = grads.pow(2), grads.pow(3)
            denominator = 2 * grads_2 + activation.sum(dim=dims, keepdim=True) * grads_3
            denominator = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
            alpha = grads_2 / denominator
            weights = (alpha * F.relu(grads)).sum(dim=dims, keepdim=True)
        cam = (weights * activation).sum(dim=1, keepdim=True)
        if relu_attributions:
            cam = F.relu(cam)
        maps.append(upsample(cam, tuple(x.shape[2:]), interpolate_mode))
        all_targets.append(targets)
    cam = torch.cat(maps)
    return cam.expand(-1, x.shape[1], *cam.shape[2:]).clone(), torch.cat(all_targets)


def gradcam(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
            layer: LayerLike = None, relu_attributions: bool = True, interpolate_mode: str = "linear",
            internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """GradCAM (Selvaraju et al. 2017), as ``captum.attr.LayerGradCam`` + upsampling.

    ``cam = ReLU(sum_k mean_spatial(dS/dA_k) * A_k)`` at ``layer``, upsampled to the input.

    Args:
        layer: ``None`` (automatic, see module docstring), a name from ``model.named_modules()``
            or a submodule.
        relu_attributions: apply the ReLU (study: yes). Without it the map is signed.
        interpolate_mode: ``"linear"`` (bilinear in 2D, trilinear in 3D; the study's), or
            ``"nearest"``, ``"area"``, ``"bicubic"`` (2D)...
        internal_batch_size: images per forward/backward pass.

    Returns ``(maps (B, C, *spatial), targets (B,))``; the map is repeated on the C channels.
    """
    return _cam_batched("gradcam", model, x, target, layer, relu_attributions, interpolate_mode,
                        internal_batch_size)


def gradcam_pp(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
               layer: LayerLike = None, relu_attributions: bool = True, interpolate_mode: str = "linear",
               internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """GradCAM++ (Chattopadhay et al. 2018), as ``monai.visualize.GradCAMpp`` (up to a positive
    factor per sample): channel weights ``sum_spatial(alpha * ReLU(dS/dA))`` with
    ``alpha = g^2 / (2 g^2 + sum_spatial(A) g^3)``. Parameters as :func:`gradcam`."""
    return _cam_batched("gradcam_pp", model, x, target, layer, relu_attributions, interpolate_mode,
                        internal_batch_size)

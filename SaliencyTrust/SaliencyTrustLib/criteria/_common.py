"""Shared plumbing of the criteria: computing maps through a callable, method sets, versions."""

from __future__ import annotations

import platform
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import numpy as np

#: ``saliency_fn(model, images, method, target) -> maps (B, *spatial)``.
SaliencyFn = Callable[..., Any]
MapsLike = Union[np.ndarray, Mapping[str, Any]]


def default_saliency_fn(model, images, method, target=None):
    """:func:`SaliencyTrustLib.saliency.compute_saliency` with the study's post-processing."""
    from ..saliency import compute_saliency

    return compute_saliency(model, images, method, target=target, postprocess="paper")


def method_name(method: Any) -> str:
    """A printable name for a method given as a string or a callable object."""
    if isinstance(method, str):
        return method
    return str(getattr(method, "name", None) or getattr(method, "method", None)
               or getattr(method, "__name__", None) or type(method).__name__)


def compute_maps(model, images, method: Any, *, target: Any = None,
                 saliency_fn: Optional[SaliencyFn] = None, batch_size: int = 16) -> np.ndarray:
    """Maps of ``images`` for ``model``, computed in batches of ``batch_size`` images.

    Args:
        model: the classifier.
        images: ``(B, C, *spatial)`` tensor or numpy array.
        method: a method name for ``saliency_fn``, or a callable ``(model, images, target) ->
            maps`` (e.g. a :class:`SaliencyTrustLib.saliency.SaliencyMethod`).
        target: None (predicted class), an int, or one int per image.
        saliency_fn: ``(model, images, method, target) -> maps``; default
            :func:`default_saliency_fn` (``compute_saliency``, ``postprocess="paper"``).
        batch_size: images per call (bounds memory).

    Returns:
        float32 numpy ``(B, *spatial)``.
    """
    import torch

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    fn = saliency_fn or default_saliency_fn
    out = []
    n = images.shape[0]
    for lo in range(0, n, batch_size):
        batch = images[lo:lo + batch_size]
        tgt = target
        if target is not None and not np.isscalar(target):
            tgt = target[lo:lo + batch_size]
        if callable(method) and not isinstance(method, str):
            maps = method(model, batch, tgt)
        else:
            maps = fn(model, batch, method, tgt)
        if isinstance(maps, torch.Tensor):
            maps = maps.detach().cpu().numpy()
        out.append(np.asarray(maps, dtype=np.float32))
    return np.concatenate(out, axis=0)


def predicted_classes(model, images, batch_size: int = 16) -> np.ndarray:
    """``argmax`` of the model's logits per image (the class the study explains), int64 ``(B,)``."""
    import torch

    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        dtype = param.dtype if param is not None else torch.float32
        out = []
        with torch.no_grad():
            for lo in range(0, images.shape[0], batch_size):
                x = torch.as_tensor(np.asarray(images[lo:lo + batch_size]) if not isinstance(
                    images, torch.Tensor) else images[lo:lo + batch_size])
                out.append(model(x.to(device=device, dtype=dtype)).argmax(dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out).astype(np.int64)


def as_maps_dict(maps: MapsLike, name: str = "maps") -> Dict[str, np.ndarray]:
    """``{method: (B, *spatial) numpy}`` from a dict or from one array (named ``"map"``)."""
    from ..metrics._common import as_batch

    if isinstance(maps, Mapping):
        return {str(k): as_batch(v, f"{name}[{k!r}]") for k, v in maps.items()}
    return {"map": as_batch(maps, name)}


def versions() -> Dict[str, str]:
    """Versions of the packages that produce the numbers (recorded in every result)."""
    out = {"python": platform.python_version()}
    for package in ("SaliencyTrustLib", "numpy", "scipy", "torch", "skimage", "sklearn", "monai",
                    "captum"):
        try:
            module = __import__(package)
            out[package] = str(getattr(module, "__version__", "unknown"))
        except Exception:  # pragma: no cover - optional package missing
            out[package] = "absent"
    return out


def mean_or_nan(values: Sequence[float]) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")

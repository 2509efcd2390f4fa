"""The calls a cohort run makes into the rest of the core, in one place.

Saliency (:mod:`SaliencyTrustLib.saliency`), metrics (:mod:`SaliencyTrustLib.metrics`), weight
randomization and baselines (:mod:`SaliencyTrustLib.criteria`) and the classifiers
(:mod:`SaliencyTrustLib.networks`). Everything here works on batches: maps ``(B, H, W)`` float32
in [0, 1], masks ``(B, H, W)`` bool, one value per item out (float64, NaN when undefined).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Iterator, Optional, Tuple

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used, not when the cohort package loads
    import torch


def make_method(name: str, preset: str, params: Dict[str, Any]):
    """A :class:`SaliencyTrustLib.saliency.SaliencyMethod` ``(model, images, target) -> maps``."""
    from ..saliency import SaliencyMethod

    return SaliencyMethod(name, preset=preset, postprocess="paper", **params)


def method_settings(method) -> Dict[str, Any]:
    """The resolved settings of a method object (for the report and the fingerprint)."""
    for attribute in ("settings", "params"):
        value = getattr(method, attribute, None)
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if isinstance(v, (int, float, str, bool, type(None), list, tuple))}
    return {}


def compute_maps(method, model, images, targets) -> np.ndarray:
    """Maps ``(B, H, W)`` float32 in [0, 1] for ``images`` ``(B, 1, H, W)`` explaining ``targets``."""
    import torch

    maps = method(model, images, target=targets)
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    maps = np.asarray(maps, dtype=np.float32)
    if maps.ndim == images.ndim:  # (B, 1, H, W) -> (B, H, W)
        maps = maps[:, 0]
    return maps


def predicted_class(model, images) -> "torch.Tensor":
    """Index of the largest logit per item, ``(B,)`` int64 (the study explains the predicted class)."""
    import torch

    with torch.no_grad():
        return model(images).argmax(dim=1)


def auprc(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-item AUPRC of ``maps`` against ``masks`` (NaN for an empty mask)."""
    from ..metrics import auprc as _auprc

    return np.asarray(_auprc(maps, masks), dtype=np.float64).reshape(len(maps))


def ssim(maps_a: np.ndarray, maps_b: np.ndarray, data_range: float) -> np.ndarray:
    """Per-item SSIM (scikit-image defaults, explicit ``data_range``; NaN for constant maps)."""
    from ..metrics import ssim as _ssim

    return np.asarray(_ssim(maps_a, maps_b, data_range=data_range), dtype=np.float64).reshape(len(maps_a))


def spearman(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Per-item Spearman rank correlation of the pixel values."""
    from ..metrics import spearman as _spearman

    return np.asarray(_spearman(maps_a, maps_b), dtype=np.float64).reshape(len(maps_a))


def cascade(model, granularity: str, seed: int, bn_policy: str) -> Iterator[Tuple[str, Any]]:
    """Cumulative top-down randomization of a *copy* of ``model``: ``(state_name, model)``,
    first ``"original"`` (see :func:`SaliencyTrustLib.criteria.cascading_randomization`)."""
    from ..criteria import cascading_randomization

    yield from cascading_randomization(model, granularity=granularity, seed=seed, bn_policy=bn_policy)


def cascade_state_names(model, granularity: str, seed: int, bn_policy: str) -> list:
    """The cascade's state names, ``"original"`` first, without randomizing anything."""
    from ..criteria import cascading_randomization

    return list(cascading_randomization(model, granularity=granularity, seed=seed, bn_policy=bn_policy).state_names)


def different_image_baseline(maps: np.ndarray, n_pairs: int, seed: int, data_range: float) -> Dict[str, float]:
    """Mean SSIM between maps of different images of the trained model (the randomization
    baseline, :func:`SaliencyTrustLib.criteria.different_image_baseline`): ``{"ssim": mean,
    "n_pairs": pairs used, ...}`` (the result's numeric fields)."""
    from ..criteria import different_image_baseline as _baseline

    value = _baseline(maps, n_pairs=n_pairs, seed=seed, data_range=data_range)
    return {"ssim": float(value.mean), **{k: float(v) for k, v in value.to_dict().items()
                                          if isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and k not in ("mean", "seed")}}


def load_model(path: str, name: Optional[str], device: str):
    """A classifier from a weight file or bundle folder, in eval mode on ``device``."""
    from ..networks import load_classifier

    return load_classifier(path, name=name, device=device)


def default_input_size(path: str) -> int:
    """Model input edge when not given: 224 pixels for a 2D model (the study's), 64 voxels for a
    3D one (from the rank of the weights' convolution kernels)."""
    from ..networks import weights_spatial_dims

    return 64 if weights_spatial_dims(path) == 3 else 224


def versions() -> Dict[str, str]:
    """Versions of the packages that change numbers, for the fingerprint and the report."""
    from importlib import metadata

    found = {}
    for package in ("saliency-trust", "torch", "monai", "captum", "numpy", "scipy", "scikit-image", "scikit-learn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found

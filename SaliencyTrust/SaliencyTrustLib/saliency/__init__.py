"""The saliency engine: every method of the study (and a few more) for any PyTorch classifier,
2D ``(B, C, H, W)`` or 3D ``(B, C, D, H, W)``, batched, memory-bounded and deterministic.

Public API::

    from SaliencyTrustLib.saliency import compute_saliency, available_methods, SaliencyMethod
    maps = compute_saliency(model, images, "gradcam")          # (B, *spatial) in [0, 1]
    raw = compute_saliency(model, images, "integrated_gradients", postprocess="none")

Layout: :mod:`.registry` (names -> functions), :mod:`.presets` (the study's settings),
:mod:`.engine` (batched gradients), :mod:`.gradients`, :mod:`.cam`, :mod:`.guided`,
:mod:`.occlusion`, :mod:`.xrai` (the methods), :mod:`.postprocess`, :mod:`.validation`.
"""

from .api import SaliencyMethod, compute_saliency
from .postprocess import POSTPROCESSORS, postprocess
from .presets import PRESETS, available_presets
from .registry import METHODS, available_methods, get_method

__all__ = ["compute_saliency", "available_methods", "SaliencyMethod", "postprocess", "POSTPROCESSORS",
           "PRESETS", "available_presets", "METHODS", "get_method"]

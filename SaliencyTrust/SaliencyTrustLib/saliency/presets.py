"""Named parameter presets: the study's settings ("paper") and captum's documented defaults
("captum"). A preset maps method name -> keyword parameters; explicit parameters override it.

"paper" (Arun et al. 2021, ../shared/reference/PROTOCOL.md):

============================  ===============================================================
gradient                      d logit / d input
smoothgrad                    25 samples, sd = 0.15 x (max - min), mean of squared gradients
integrated_gradients          10 steps, baseline = image minimum (black), PAIR linspace rule
smoothgrad_ig                 SmoothGrad (25, 0.15, squared) over IG (10 steps, black)
gradcam                       automatic last conv block, ReLU, bilinear/trilinear upsampling
guided_backprop               ReLU backward gated on positive gradient and activation
guided_gradcam                product of the normalized Guided Backprop and GradCAM maps
xrai                          IG 100 steps from black and white; Felzenszwalb scales 50..1200,
                              sigma 0.8, min size 150, on the image resized to 224; dilation 5 px
                              (3D: SLIC supervoxels 64..1024, dilation 1 voxel)
occlusion (not in the study)  window 15 px, stride 8 px per spatial axis, baseline 0
gradcam_pp (not in the study) as gradcam
============================  ===============================================================
"""

from __future__ import annotations

from typing import Any, Dict, Optional

PAPER_SMOOTHGRAD = {"nt_samples": 25, "noise_level": 0.15, "nt_type": "smoothgrad_sq", "seed": 0}
PAPER_IG = {"n_steps": 10, "baselines": "min", "approximation_method": "riemann_linspace"}
PAPER_CAM = {"layer": None, "relu_attributions": True, "interpolate_mode": "linear"}

PRESETS: Dict[str, Dict[str, Dict[str, Any]]] = {
    "paper": {
        "gradient": {},
        "input_x_gradient": {},
        "smoothgrad": dict(PAPER_SMOOTHGRAD),
        "integrated_gradients": dict(PAPER_IG),
        "smoothgrad_ig": {**PAPER_SMOOTHGRAD, **PAPER_IG},
        "gradcam": dict(PAPER_CAM),
        "gradcam_pp": dict(PAPER_CAM),
        "guided_backprop": {},
        "guided_gradcam": {**PAPER_CAM, "normalize_parts": True},
        "xrai": {"n_steps": 100, "baselines": ("min", "max"), "approximation_method": "riemann_linspace",
                 "segmentation": "auto", "felzenszwalb_scales": (50, 100, 150, 250, 500, 1200),
                 "felzenszwalb_sigma": 0.8, "felzenszwalb_min_size": 150, "resize_to": 224,
                 "dilation_radius": None, "min_pixel_diff": 50, "area_threshold": 1.0},
        "occlusion": {"sliding_window_shapes": 15, "strides": 8, "baselines": 0.0},
    },
    # captum's documented defaults (where captum has the method).
    "captum": {
        "gradient": {},
        "input_x_gradient": {},
        "smoothgrad": {"nt_samples": 5, "stdevs": 1.0, "nt_type": "smoothgrad", "seed": 0},
        "integrated_gradients": {"n_steps": 50, "baselines": "zero", "approximation_method": "gausslegendre"},
        "smoothgrad_ig": {"nt_samples": 5, "stdevs": 1.0, "nt_type": "smoothgrad", "seed": 0,
                          "n_steps": 50, "baselines": "zero", "approximation_method": "gausslegendre"},
        "gradcam": {"layer": None, "relu_attributions": False, "interpolate_mode": "nearest"},
        "gradcam_pp": {"layer": None, "relu_attributions": True, "interpolate_mode": "nearest"},
        "guided_backprop": {},
        "guided_gradcam": {"layer": None, "interpolate_mode": "nearest", "normalize_parts": False},
        "occlusion": {"sliding_window_shapes": 15, "strides": 8, "baselines": 0.0},
    },
}


def available_presets() -> list:
    """Names of the presets (``"paper"``, ``"captum"``); ``None`` means no preset."""
    return sorted(PRESETS)


def preset_params(preset: Optional[str], method: str) -> Dict[str, Any]:
    """Keyword parameters of ``method`` under ``preset`` (a copy; ``{}`` for ``preset=None``)."""
    if preset is None:
        return {}
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {available_presets()} or None.")
    return dict(PRESETS[preset].get(method, {}))

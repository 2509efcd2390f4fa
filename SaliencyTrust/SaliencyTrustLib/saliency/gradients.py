"""Gradient-family methods: Gradient, Input x Gradient, SmoothGrad, Integrated Gradients,
SmoothGrad-IG.

Each is the computation of the captum class named in its docstring (the tests compare them with
captum), run by our batched engine (:mod:`.engine`) so that all noisy / path points go through the
model ``internal_batch_size`` at a time, the predicted class comes from the pass that is needed
anyway, and SmoothGrad noise comes from a per-call seeded ``torch.Generator``.

Every function takes ``(model, x, target)`` with ``x`` ``(B, C, *spatial)`` on the model's device
(model in eval mode) and returns ``(attributions (B, C, *spatial) signed, targets (B,))``.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import torch

from .engine import DEFAULT_INTERNAL_BATCH_SIZE, path_attributions, resolve_baselines
from .validation import TargetLike, check_positive_int

Baselines = Union[str, float, int, np.ndarray, torch.Tensor, None]

#: Integration rules of Integrated Gradients: captum's (``captum.attr._utils.approximation_methods``)
#: plus ``"riemann_linspace"``: positions ``linspace(0, 1, n)`` with equal weights ``1/n``, the
#: rule of the PAIR ``saliency`` package used by the study.
APPROXIMATION_METHODS = ("riemann_linspace", "gausslegendre", "riemann_trapezoid", "riemann_left",
                         "riemann_right", "riemann_middle")


def integration_rule(n_steps: int, approximation_method: str) -> Tuple[list, list]:
    """``(alphas, weights)`` of an ``n_steps`` rule on ``[0, 1]``; the weights sum to 1."""
    n_steps = check_positive_int("n_steps", n_steps)
    if approximation_method == "riemann_linspace":
        alphas = np.linspace(0.0, 1.0, n_steps).tolist() if n_steps > 1 else [1.0]
        return alphas, [1.0 / n_steps] * n_steps
    if approximation_method not in APPROXIMATION_METHODS:
        raise ValueError(f"approximation_method must be one of {APPROXIMATION_METHODS}; "
                         f"got {approximation_method!r}.")
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = approximation_parameters(approximation_method)
    return list(alphas(n_steps)), list(step_sizes(n_steps))


def noise_std_per_sample(x: torch.Tensor, noise_level: Optional[float],
                         stdevs: Optional[float]) -> torch.Tensor:
    """SmoothGrad noise standard deviation ``(B,)``: ``stdevs`` (absolute, captum's
    ``NoiseTunnel`` parameter) when given, else ``noise_level * (max - min)`` of each sample
    (the PAIR ``stdev_spread``; the study used 0.15)."""
    if stdevs is not None:
        if float(stdevs) < 0:
            raise ValueError(f"stdevs must be >= 0; got {stdevs!r}.")
        return torch.full((x.shape[0],), float(stdevs), dtype=x.dtype, device=x.device)
    if noise_level is None or float(noise_level) < 0:
        raise ValueError(f"noise_level must be a number >= 0 (or give stdevs); got {noise_level!r}.")
    flat = x.flatten(1)
    return float(noise_level) * (flat.max(dim=1).values - flat.min(dim=1).values)


def gradient(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
             internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Gradient (Simonyan et al. 2014): ``d logit_target / d x``, signed.

    Same as ``captum.attr.Saliency(model).attribute(x, target, abs=False)``. One forward +
    backward per chunk of ``internal_batch_size`` images; the predicted class is taken from that
    same forward pass.
    """
    return path_attributions(model, x, target, internal_batch_size=internal_batch_size)


def input_x_gradient(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
                     internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Input x Gradient (Shrikumar et al. 2016): ``x * d logit / d x``; as
    ``captum.attr.InputXGradient``."""
    grads, targets = gradient(model, x, target, internal_batch_size=internal_batch_size)
    return grads * x, targets


def smoothgrad(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
               nt_samples: int = 25, noise_level: Optional[float] = 0.15,
               stdevs: Optional[float] = None, nt_type: str = "smoothgrad_sq", seed: int = 0,
               internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """SmoothGrad (Smilkov et al. 2017) of the gradient: ``captum.attr.NoiseTunnel(Saliency)``.

    Args:
        nt_samples: number of noisy copies ``N`` (study: 25).
        noise_level: noise sd relative to each image's ``max - min`` (study: 0.15); ignored when
            ``stdevs`` is given.
        stdevs: absolute noise standard deviation (captum's name), or ``None``.
        nt_type: ``"smoothgrad_sq"`` (mean of squared gradients, the study's), ``"smoothgrad"``
            (mean) or ``"vargrad"`` (variance), as captum.
        seed: noise seed; noise sample ``n`` is ``N(0, 1)`` from a generator seeded with
            ``(seed, n)``, the same for every image of the batch.
        internal_batch_size: noisy images per forward/backward pass.

    Returns ``N`` gradients combined; the target (default: predicted class of the clean image)
    is the same for all noisy copies.
    """
    std = noise_std_per_sample(x, noise_level, stdevs)
    return path_attributions(model, x, target, nt_samples=nt_samples, noise_std=std, nt_type=nt_type,
                             seed=seed, internal_batch_size=internal_batch_size)


def integrated_gradients(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
                         n_steps: int = 10, baselines: Baselines = "min",
                         approximation_method: str = "riemann_linspace",
                         internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """Integrated Gradients (Sundararajan et al. 2017), as ``captum.attr.IntegratedGradients``:
    ``(x - baseline) * sum_s w_s * grad(baseline + alpha_s (x - baseline))``.

    Args:
        n_steps: path points (study: 10).
        baselines: ``"min"`` (each image's minimum: the study's black image), ``"max"``,
            ``"zero"`` (captum's default), a number, or an array broadcastable to ``x``.
        approximation_method: integration rule, one of :data:`APPROXIMATION_METHODS` (captum's
            names, captum's default is ``"gausslegendre"``; the study's PAIR code used
            ``"riemann_linspace"``).
        internal_batch_size: path points per forward/backward pass.

    Completeness: ``attributions.sum() ~= logit(x) - logit(baseline)``, up to the integration
    error of the rule.
    """
    alphas, weights = integration_rule(n_steps, approximation_method)
    base = resolve_baselines(baselines, x)
    return path_attributions(model, x, target, alphas=alphas, step_weights=weights, baselines=base,
                             multiply_by_inputs=True, internal_batch_size=internal_batch_size)


def smoothgrad_ig(model: torch.nn.Module, x: torch.Tensor, target: TargetLike = None, *,
                  nt_samples: int = 25, noise_level: Optional[float] = 0.15,
                  stdevs: Optional[float] = None, nt_type: str = "smoothgrad_sq", seed: int = 0,
                  n_steps: int = 10, baselines: Baselines = "min",
                  approximation_method: str = "riemann_linspace",
                  internal_batch_size: int = DEFAULT_INTERNAL_BATCH_SIZE) -> Tuple[torch.Tensor, torch.Tensor]:
    """SmoothGrad over Integrated Gradients: ``captum.attr.NoiseTunnel(IntegratedGradients)``.

    Each noisy copy ``x + sd * eps_n`` is integrated from the same baseline (computed on the
    clean image); parameters as :func:`smoothgrad` and :func:`integrated_gradients`. Work:
    ``nt_samples * n_steps`` points per image.
    """
    std = noise_std_per_sample(x, noise_level, stdevs)
    alphas, weights = integration_rule(n_steps, approximation_method)
    base = resolve_baselines(baselines, x)
    return path_attributions(model, x, target, alphas=alphas, step_weights=weights, baselines=base,
                             multiply_by_inputs=True, nt_samples=nt_samples, noise_std=std,
                             nt_type=nt_type, seed=seed, internal_batch_size=internal_batch_size)

"""Correctness of the gradient family against closed forms and captum."""

import numpy as np
import pytest
import torch
from torch import nn

from SaliencyTrustLib.saliency import compute_saliency


def linear_model(shape, num_classes=3, seed=0):
    torch.manual_seed(seed)
    n = int(np.prod(shape))
    return nn.Sequential(nn.Flatten(), nn.Linear(n, num_classes))


@pytest.mark.parametrize("shape", [(2, 6, 5), (1, 4, 3, 5)])
def test_gradient_of_linear_model_equals_its_weights(shape):
    model = linear_model(shape)
    x = torch.randn(4, *shape)
    for target in (0, 2):
        grads = compute_saliency(model, x, "gradient", target=target, postprocess="none")
        expected = model[1].weight[target].detach().reshape(shape)
        for b in range(4):
            torch.testing.assert_close(grads[b], expected)


def test_integrated_gradients_of_linear_model_is_weight_times_input_difference():
    model = linear_model((1, 6, 6))
    x = torch.rand(2, 1, 6, 6)
    ig = compute_saliency(model, x, "integrated_gradients", target=1, postprocess="none")
    base = x.flatten(1).min(1).values.view(-1, 1, 1, 1)  # the paper preset's black baseline
    expected = model[1].weight[1].detach().reshape(1, 6, 6) * (x - base)
    torch.testing.assert_close(ig, expected, rtol=1e-5, atol=1e-6)


def smooth_net(spatial_dims=2):
    torch.manual_seed(3)
    conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
    pool = nn.AdaptiveAvgPool2d if spatial_dims == 2 else nn.AdaptiveAvgPool3d
    return nn.Sequential(conv(1, 4, 3, padding=1), nn.Softplus(), conv(4, 4, 3, padding=1), nn.Tanh(),
                         pool(1), nn.Flatten(), nn.Linear(4, 2))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_ig_attributions_sum_to_logit_difference(spatial_dims):
    """Completeness: sum(IG) = f(x) - f(baseline) within 0.5 % of |f(x) - f(baseline)| with 32
    Gauss-Legendre steps (the integration error of a smooth net)."""
    model = smooth_net(spatial_dims).eval()
    x = torch.rand((2, 1) + (6,) * spatial_dims) * 3
    ig, targets = compute_saliency(model, x, "integrated_gradients", postprocess="none", n_steps=32,
                                   approximation_method="gausslegendre", baselines="zero",
                                   return_targets=True)
    with torch.no_grad():
        logits = model(x)[torch.arange(2), torch.as_tensor(targets)]
        base = model(torch.zeros_like(x))[torch.arange(2), torch.as_tensor(targets)]
    difference = logits - base
    assert difference.abs().min() > 1e-3  # the check is not vacuous
    torch.testing.assert_close(ig.flatten(1).sum(1), difference, rtol=5e-3, atol=1e-5)


def test_integrated_gradients_matches_captum():
    from captum.attr import IntegratedGradients

    model = smooth_net().eval()
    x = torch.rand(3, 1, 6, 6)
    ours = compute_saliency(model, x, "integrated_gradients", target=[0, 1, 1], postprocess="none", preset="captum",
                            internal_batch_size=7)
    theirs = IntegratedGradients(model).attribute(x, target=[0, 1, 1], n_steps=50)
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


def test_gradient_matches_captum_saliency(tiny_net, images_2d):
    from captum.attr import Saliency

    model = tiny_net()
    ours = compute_saliency(model, images_2d, "gradient", target=2, postprocess="none")
    model.eval()
    theirs = Saliency(model).attribute(images_2d.clone(), target=2, abs=False)
    torch.testing.assert_close(ours, theirs)


def test_smoothgrad_with_zero_noise_equals_squared_gradient(tiny_net, images_2d):
    model = tiny_net()
    grads = compute_saliency(model, images_2d, "gradient", postprocess="none")
    smooth = compute_saliency(model, images_2d, "smoothgrad", postprocess="none", stdevs=0.0, nt_samples=4)
    torch.testing.assert_close(smooth, grads ** 2)
    # and the plain mean with zero noise is the gradient itself
    mean = compute_saliency(model, images_2d, "smoothgrad", postprocess="none", stdevs=0.0, nt_samples=3,
                            nt_type="smoothgrad")
    torch.testing.assert_close(mean, grads)


def test_smoothgrad_noise_changes_the_map_and_follows_the_seed(tiny_net, images_2d):
    model = tiny_net()
    a = compute_saliency(model, images_2d, "smoothgrad", postprocess="none", nt_samples=5, seed=7)
    b = compute_saliency(model, images_2d, "smoothgrad", postprocess="none", nt_samples=5, seed=7)
    c = compute_saliency(model, images_2d, "smoothgrad", postprocess="none", nt_samples=5, seed=8)
    grads = compute_saliency(model, images_2d, "gradient", postprocess="none")
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(a, grads ** 2)


def test_smoothgrad_does_not_touch_the_global_rng(tiny_net, images_2d):
    model = tiny_net()
    state = torch.get_rng_state()
    compute_saliency(model, images_2d, "smoothgrad", nt_samples=3)
    assert torch.equal(state, torch.get_rng_state())


def test_smoothgrad_ig_with_zero_noise_equals_squared_ig(tiny_net, images_2d):
    model = tiny_net()
    ig = compute_saliency(model, images_2d, "integrated_gradients", postprocess="none", n_steps=5)
    sgig = compute_saliency(model, images_2d, "smoothgrad_ig", postprocess="none", n_steps=5, nt_samples=3,
                            stdevs=0.0, internal_batch_size=4)
    torch.testing.assert_close(sgig, ig ** 2)


def test_paper_integrated_gradients_uses_the_pair_linspace_rule():
    """PAIR saliency: mean of the gradients at linspace(0, 1, n) times (x - baseline)."""
    model = smooth_net().eval()
    x = torch.rand(1, 1, 6, 6)
    ours = compute_saliency(model, x, "integrated_gradients", target=0, postprocess="none", n_steps=4)
    base = torch.full_like(x, float(x.min()))
    total = torch.zeros_like(x)
    for alpha in np.linspace(0, 1, 4):
        point = (base + float(alpha) * (x - base)).requires_grad_(True)
        (g,) = torch.autograd.grad(model(point)[0, 0], point)
        total += g
    torch.testing.assert_close(ours, total * (x - base) / 4, rtol=1e-5, atol=1e-7)

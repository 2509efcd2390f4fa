"""Guided Backprop / Guided GradCAM: gate semantics, in-place ReLU, captum agreement."""

import copy

import pytest
import torch
from torch import nn

from SaliencyTrustLib.saliency import compute_saliency


def relu_first_net():
    torch.manual_seed(5)
    return nn.Sequential(nn.ReLU(inplace=True), nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(4, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 2))


def test_guided_backprop_is_non_negative_where_the_gate_says_so():
    """The input goes through a ReLU first: its guided gradient is clamp(g, 0) * (x > 0), so it is
    >= 0 everywhere and exactly 0 where x <= 0; the plain gradient has negative entries."""
    model = relu_first_net()
    x = torch.randn(2, 1, 8, 8)
    guided = compute_saliency(model, x, "guided_backprop", postprocess="none")
    plain = compute_saliency(model, x, "gradient", postprocess="none")
    assert (guided >= 0).all()
    assert (guided[x <= 0] == 0).all()
    assert (guided[x > 0] > 0).any()
    assert (plain < 0).any()


def test_guided_backprop_with_in_place_relu_matches_captum_on_the_rebuilt_net(tiny_net, images_2d):
    from captum.attr import GuidedBackprop

    model = tiny_net()
    ours = compute_saliency(model, images_2d, "guided_backprop", target=1, postprocess="none")
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))  # flags untouched
    reference = copy.deepcopy(model).eval()
    for module in reference.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    theirs = GuidedBackprop(reference).attribute(images_2d.clone(), target=1)
    torch.testing.assert_close(ours, theirs)


def test_guided_backprop_works_on_monai_densenet_with_in_place_relu():
    from monai.networks.nets import DenseNet121

    torch.manual_seed(2)  # an initialization whose guided map is not all zero
    model = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2, init_features=4, growth_rate=2,
                        block_config=(1, 1, 1, 1))
    maps = compute_saliency(model, torch.rand(1, 1, 32, 32), "guided_backprop")
    assert maps.shape == (1, 32, 32) and float(maps.max()) == 1.0


def test_guided_backprop_refuses_a_model_without_relu_modules():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with pytest.raises(ValueError, match="no .*ReLU|has none"):
        compute_saliency(model, torch.rand(1, 1, 4, 4), "guided_backprop")


def test_guided_gradcam_is_the_product_of_its_parts(tiny_net, images_2d):
    model = tiny_net()
    guided = compute_saliency(model, images_2d, "guided_backprop", target=0, postprocess="none")
    cam = compute_saliency(model, images_2d, "gradcam", target=0, postprocess="none")
    product = compute_saliency(model, images_2d, "guided_gradcam", target=0, postprocess="none",
                               normalize_parts=False)
    torch.testing.assert_close(product, guided * cam)
    paper = compute_saliency(model, images_2d, "guided_gradcam", target=0, postprocess="none")
    gb_paper = compute_saliency(model, images_2d, "guided_backprop", target=0)
    cam_paper = compute_saliency(model, images_2d, "gradcam", target=0)
    torch.testing.assert_close(paper[:, 0], gb_paper * cam_paper)

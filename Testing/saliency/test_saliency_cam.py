"""GradCAM / GradCAM++: known feature maps, automatic layers of MONAI nets, captum / MONAI agreement."""

import copy

import pytest
import torch
from torch import nn

from SaliencyTrustLib.saliency import compute_saliency
from SaliencyTrustLib.saliency.cam import resolve_layer


class KnownFeatureNet(nn.Module):
    """features = 1x1 conv with fixed weights, so the last feature map is F_k = a_k * x + c_k;
    logits = W @ mean_spatial(F) (+ bias)."""

    def __init__(self, spatial_dims=2):
        super().__init__()
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.features = conv(1, 2, 1)
        with torch.no_grad():
            self.features.weight.copy_(torch.tensor([1.0, -2.0]).view(2, 1, *([1] * spatial_dims)))
            self.features.bias.copy_(torch.tensor([0.5, 1.0]))
        self.fc = nn.Linear(2, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[2.0, 0.5], [-1.0, 1.0]]))
            self.fc.bias.zero_()

    def forward(self, x):
        return self.fc(self.features(x).flatten(2).mean(2))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_gradcam_of_a_known_feature_map_gives_that_map(spatial_dims):
    model = KnownFeatureNet(spatial_dims)
    x = torch.rand((2, 1) + (5,) * spatial_dims)
    n = 5 ** spatial_dims
    feature = torch.cat([1.0 * x + 0.5, -2.0 * x + 1.0], dim=1)  # by construction
    for target in (0, 1):
        weights = model.fc.weight[target].detach() / n  # d logit / d F_k is W_tk / n everywhere
        expected = torch.relu((weights.view(1, 2, *([1] * spatial_dims)) * feature).sum(1, keepdim=True))
        cam = compute_saliency(model, x, "gradcam", target=target, postprocess="none", layer="features")
        torch.testing.assert_close(cam, expected, rtol=1e-5, atol=1e-7)
        assert (cam > 0).any()
    signed = compute_saliency(model, x, "gradcam", target=1, postprocess="none", layer="features",
                              relu_attributions=False)
    assert (signed < 0).any()  # relu_attributions is honoured


def test_gradcam_upsamples_a_coarse_map_to_the_input_shape():
    model = nn.Sequential(nn.Conv2d(1, 3, 2, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(3, 2))
    x = torch.rand(2, 1, 8, 6)
    nearest = compute_saliency(model, x, "gradcam", postprocess="none", layer="1", interpolate_mode="nearest")
    assert nearest.shape == (2, 1, 8, 6)
    torch.testing.assert_close(nearest[:, :, ::2, ::2], nearest[:, :, 1::2, 1::2])
    linear = compute_saliency(model, x, "gradcam", postprocess="none", layer="1")
    assert linear.shape == (2, 1, 8, 6)
    assert not torch.allclose(linear, nearest)


def test_gradcam_matches_captum_layergradcam(tiny_net, images_2d):
    from captum.attr import LayerAttribution, LayerGradCam

    model = tiny_net()
    ours = compute_saliency(model, images_2d, "gradcam", target=[0, 1, 2], postprocess="none",
                            layer="features.4", relu_attributions=False, interpolate_mode="nearest")
    reference = copy.deepcopy(model).eval()
    for module in reference.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = False
    coarse = LayerGradCam(reference, reference.features[4]).attribute(images_2d, target=[0, 1, 2])
    theirs = LayerAttribution.interpolate(coarse, (16, 16), interpolate_mode="nearest")
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-7)


def test_gradcam_pp_matches_monai_up_to_normalization():
    from monai.networks.nets import DenseNet121
    from monai.visualize import GradCAMpp

    torch.manual_seed(1)
    model = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2, init_features=8, growth_rate=4,
                        block_config=(1, 1, 1, 1)).eval()
    x = torch.rand(1, 1, 64, 64)
    ours = compute_saliency(model, x, "gradcam_pp", target=1, postprocess="none")[:, :1]
    assert ours.max() > ours.min()
    # MONAI's default normalizer maps max -> 0 (inverted); take its raw map.
    theirs = GradCAMpp(model, target_layers="class_layers.relu", postprocessing=lambda m: m)(x, class_idx=1)
    normalize = lambda m: (m - m.min()) / (m.max() - m.min())  # noqa: E731
    torch.testing.assert_close(normalize(ours), normalize(theirs), rtol=1e-4, atol=1e-4)


def test_automatic_layer_of_monai_classifiers():
    from monai.networks.nets import DenseNet121, EfficientNetBN, ResNet, SENet
    from monai.networks.blocks import SEResNetBottleneck

    x = torch.rand(1, 1, 32, 32)
    densenet = DenseNet121(spatial_dims=2, in_channels=1, out_channels=2, init_features=4, growth_rate=2,
                           block_config=(1, 1, 1, 1))
    resnet = ResNet("basic", [1, 1, 1, 1], [4, 4, 4, 4], spatial_dims=2, n_input_channels=1, num_classes=2)
    seresnet = SENet(spatial_dims=2, in_channels=1, block=SEResNetBottleneck, layers=(1, 1, 1, 1), groups=1,
                     reduction=4, inplanes=8, downsample_kernel_size=1, input_3x3=False, num_classes=2)
    efficientnet = EfficientNetBN("efficientnet-b0", pretrained=False, spatial_dims=2, in_channels=1, num_classes=2)
    assert resolve_layer(densenet, None, x)[0] == "class_layers.relu"
    assert resolve_layer(resnet, None, x)[0] == "layer4"
    assert resolve_layer(seresnet, None, x)[0] == "layer4"
    assert resolve_layer(efficientnet, None, x)[0] == "_swish"
    wrapped = nn.Sequential(densenet)
    assert resolve_layer(wrapped, None, x)[0] == "0.class_layers.relu"
    maps = compute_saliency(resnet, x, "gradcam")
    assert maps.shape == (1, 32, 32)


def test_automatic_layer_of_any_network_is_its_last_feature_map(tiny_net, images_3d):
    model = tiny_net(spatial_dims=3)
    assert resolve_layer(model, None, images_3d)[0] == "features.4"
    auto = compute_saliency(model, images_3d, "gradcam", postprocess="none")
    named = compute_saliency(model, images_3d, "gradcam", postprocess="none", layer="features.4")
    torch.testing.assert_close(auto, named)


def test_unknown_layer_name_is_a_clear_error(tiny_net, images_2d):
    with pytest.raises(ValueError, match=r"layer 'features\.9' does not exist.*features"):
        compute_saliency(tiny_net(), images_2d, "gradcam", layer="features.9")

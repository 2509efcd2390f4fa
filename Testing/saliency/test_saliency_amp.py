"""The opt-in mixed-precision mode ``compute_saliency(..., amp="bf16")``: off by default and then
bit-identical to the float32 path; when on, the passes run under bfloat16 autocast, the class
explained is the float32 prediction, and the maps stay within a stated SSIM of float32's
(docs/gpu.md gives the figures measured on a GPU)."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from SaliencyTrustLib.metrics import ssim
from SaliencyTrustLib.saliency import SaliencyMethod, compute_saliency, get_method
from SaliencyTrustLib.saliency.engine import explaining
from SaliencyTrustLib.saliency.postprocess import postprocess
from SaliencyTrustLib.saliency.presets import preset_params

STUDY_METHODS = ["gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam",
                 "guided_backprop", "guided_gradcam", "xrai"]
#: light settings so that every method runs in well under a second on one core
FAST = {
    "smoothgrad": {"nt_samples": 3},
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad_ig": {"nt_samples": 2, "n_steps": 3},
    "xrai": {"n_steps": 4, "felzenszwalb_min_size": 20, "felzenszwalb_scales": (20, 50), "resize_to": None,
             "min_pixel_diff": 10},
}
#: The SSIM (data_range 1, the strict value for maps in [0, 1]) that bf16 maps keep to float32 maps
#: on the CPU, mean over the images; docs/gpu.md states the GPU figures for DenseNet121 at 320.
#: XRAI's ranking of regions by gain can swap two close regions, so its floor is lower.
SSIM_FLOOR = {method: 0.9 for method in STUDY_METHODS} | {"xrai": 0.75}


def _autocast_on() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


class RecordingNet(nn.Module):
    """conv-ReLU-pool-linear that records, per forward call, whether CPU autocast was on."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 3)
        self.autocast_calls = []

    def forward(self, x):
        self.autocast_calls.append(_autocast_on())
        return self.fc(self.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def radiographs():
    """4 synthetic positive radiographs 48x48, 3 channels in [-1, 1], and a small MONAI DenseNet."""
    from SaliencyTrustLib.networks import build_classifier
    from SaliencyTrustLib.synthetic import make_cohort

    cases = make_cohort(4, seed=3, positive_fraction=1.0, size=48)
    images = torch.from_numpy(np.stack([case.image for case in cases]))[:, None].repeat(1, 3, 1, 1) * 2 - 1
    torch.manual_seed(0)
    return build_classifier("densenet_small", in_channels=3), images


@pytest.mark.parametrize("method", STUDY_METHODS)
def test_default_is_bit_identical_to_the_float32_path(method, tiny_net, images_2d):
    model = tiny_net()
    params = FAST.get(method, {})
    default = compute_saliency(model, images_2d, method, **params)
    explicit_off = compute_saliency(model, images_2d, method, amp=None, **params)
    # The float32 path as it was before amp existed: the method function, then the post-processing.
    with torch.enable_grad(), explaining(model):
        raw, _ = get_method(method).function(model, images_2d, None, **{**preset_params("paper", method), **params})
    before = postprocess(raw.detach(), "paper").to(torch.float32)
    assert torch.equal(default, explicit_off)
    assert torch.equal(default, before)


def test_default_runs_no_autocast_and_amp_bf16_runs_every_pass_under_it(images_2d):
    model = RecordingNet()
    compute_saliency(model, images_2d, "smoothgrad", nt_samples=2)
    assert model.autocast_calls and not any(model.autocast_calls)
    model.autocast_calls.clear()
    compute_saliency(model, images_2d, "smoothgrad", nt_samples=2, amp="bf16")
    # the first forward resolves the class in float32, every pass of the method runs in bf16
    assert model.autocast_calls[0] is False and all(model.autocast_calls[1:])
    assert not _autocast_on()


def test_amp_explains_the_float32_predicted_class(radiographs):
    model, images = radiographs
    _, targets32 = compute_saliency(model, images, "gradient", return_targets=True)
    _, targets16 = compute_saliency(model, images, "gradient", return_targets=True, amp="bf16")
    np.testing.assert_array_equal(targets16, targets32)


@pytest.mark.parametrize("method", STUDY_METHODS)
def test_bf16_maps_stay_within_the_stated_ssim_of_float32(method, radiographs):
    model, images = radiographs
    params = FAST.get(method, {})
    maps32 = compute_saliency(model, images, method, **params)
    maps16 = compute_saliency(model, images, method, amp="bf16", **params)
    assert maps16.dtype == torch.float32 and maps16.shape == maps32.shape
    assert torch.isfinite(maps16).all() and float(maps16.min()) >= 0 and float(maps16.max()) <= 1
    similarity = ssim(maps16, maps32, data_range=1.0)
    assert np.nanmean(similarity) >= SSIM_FLOOR[method], similarity


def test_amp_leaves_model_and_images_as_they_were(radiographs):
    model, images = radiographs
    before_images = images.clone()
    before_state = {k: v.clone() for k, v in model.state_dict().items()}
    compute_saliency(model, images, "guided_gradcam", amp="bf16")
    assert torch.equal(images, before_images)
    assert all(torch.equal(v, before_state[k]) for k, v in model.state_dict().items())
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("amp", ["fp16", "float16", "bfloat16x", True])
def test_unknown_or_float16_amp_is_refused_with_the_reason(amp, tiny_net, images_2d):
    with pytest.raises(ValueError, match="amp must be None") as error:
        compute_saliency(tiny_net(), images_2d, "gradient", amp=amp)
    if amp in ("fp16", "float16"):
        assert "underflow" in str(error.value)


def test_occlusion_refuses_amp_because_its_map_is_a_logit_difference(tiny_net, images_2d):
    with pytest.raises(ValueError, match="difference of logits"):
        compute_saliency(tiny_net(), images_2d, "occlusion", amp="bf16", sliding_window_shapes=4, strides=4)
    with pytest.raises(ValueError, match="difference of logits"):
        SaliencyMethod("occlusion", amp="bf16")


def test_saliency_method_carries_amp_through_its_json_config(tiny_net, images_2d):
    method = SaliencyMethod("integrated_gradients", amp="bf16", n_steps=4)
    config = json.loads(json.dumps(method.to_config()))
    assert config["amp"] == "bf16" and method.settings["amp"] == "bf16"
    rebuilt = SaliencyMethod(**{k: v for k, v in config.items() if k != "_target_"})
    model = tiny_net()
    assert torch.equal(rebuilt(model, images_2d), compute_saliency(model, images_2d, "integrated_gradients",
                                                                    amp="bf16", n_steps=4))
    plain = SaliencyMethod("integrated_gradients", n_steps=4)
    assert "amp" not in plain.to_config() and "amp" not in plain.settings and "amp" not in repr(plain)


def test_probability_check_accepts_bf16_rows_summed_in_float32(monkeypatch):
    # CUDA autocast sums bfloat16 rows in float32 (torch.sum is on its float32 list); comparing
    # that sum with a bfloat16 tensor of ones raised "Float did not match BFloat16" on an H200
    # whenever every logit of a chunk fell in [0, 1]. Reproduced here by the same promotion.
    from SaliencyTrustLib.saliency import validation

    real_sum = torch.Tensor.sum
    monkeypatch.setattr(torch.Tensor, "sum", lambda self, *a, **k: real_sum(self.float(), *a, **k))
    with pytest.warns(UserWarning, match="softmax"):
        validation.warn_if_probabilities(torch.tensor([[0.25, 0.75], [0.5, 0.5]], dtype=torch.bfloat16))


def test_amp_warns_about_softmax_outputs_instead_of_failing(images_2d):
    model = nn.Sequential(RecordingNet(), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="softmax"):
        maps = compute_saliency(model, images_2d, "gradient", amp="bf16")
    assert torch.isfinite(maps).all()

"""The public API: batch equivalence of every method (2D and 3D), targets, determinism, no side
effects, memory bound, post-processing, JSON construction and clear errors."""

import json

import numpy as np
import pytest
import torch
from torch import nn

from SaliencyTrustLib.saliency import SaliencyMethod, available_methods, compute_saliency, postprocess

#: small settings per method so that every method runs in well under a second here
FAST = {
    "smoothgrad": {"nt_samples": 3},
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad_ig": {"nt_samples": 2, "n_steps": 3},
    "xrai": {"n_steps": 3, "min_pixel_diff": 4, "slic_segments": (4, 8), "felzenszwalb_min_size": 10,
             "felzenszwalb_scales": (20, 50), "resize_to": 32},
    "occlusion": {"sliding_window_shapes": 4, "strides": 4},
}
STUDY_METHODS = ["gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam",
                 "guided_backprop", "guided_gradcam", "xrai"]


def test_available_methods_lists_the_study_eight_and_more():
    methods = available_methods()
    assert methods[:8] == STUDY_METHODS
    assert {"occlusion", "gradcam_pp"} <= set(methods)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("method", available_methods())
def test_batch_gives_what_separate_calls_give(method, spatial_dims, tiny_net, images_2d, images_3d):
    model = tiny_net(spatial_dims=spatial_dims)
    images = images_2d if spatial_dims == 2 else images_3d
    params = dict(FAST.get(method, {}), internal_batch_size=4)
    targets = [0, 2, 1]
    batch = compute_saliency(model, images, method, target=targets, postprocess="none", **params)
    assert batch.shape == images.shape
    singles = torch.cat([compute_saliency(model, images[b:b + 1], method, target=targets[b], postprocess="none",
                                          **params) for b in range(3)])
    scale = float(singles.abs().max()) or 1.0
    torch.testing.assert_close(batch, singles, rtol=1e-4, atol=1e-5 * scale)
    assert not torch.equal(batch[0], batch[1])  # samples really differ


def test_default_target_is_the_predicted_class_and_targets_select_the_logit(tiny_net, images_2d):
    model = tiny_net()
    with torch.no_grad():
        predicted = model.eval()(images_2d).argmax(1)
    model.train()
    for method in ("gradient", "gradcam", "integrated_gradients"):
        default, used = compute_saliency(model, images_2d, method, postprocess="none", return_targets=True,
                                         **FAST.get(method, {}))
        assert used.tolist() == predicted.tolist()
        explicit = compute_saliency(model, images_2d, method, target=predicted.tolist(), postprocess="none",
                                    **FAST.get(method, {}))
        torch.testing.assert_close(default, explicit)
        other = compute_saliency(model, images_2d, method, target=((predicted + 1) % 3).tolist(),
                                 postprocess="none", **FAST.get(method, {}))
        assert not torch.allclose(default, other)
    # one int applies to every sample; a numpy array / tensor per sample is accepted too
    a = compute_saliency(model, images_2d, "gradient", target=1, postprocess="none")
    b = compute_saliency(model, images_2d, "gradient", target=np.array([1, 1, 1]), postprocess="none")
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("method", ["smoothgrad", "smoothgrad_ig", "xrai", "occlusion", "gradcam"])
def test_same_seed_gives_the_same_maps(method, tiny_net, images_2d):
    model = tiny_net()
    first = compute_saliency(model, images_2d, method, **FAST.get(method, {}))
    torch.manual_seed(123)  # the global RNG must not matter
    second = compute_saliency(model, images_2d, method, **FAST.get(method, {}))
    assert torch.equal(first, second)


def test_no_side_effects_on_inputs_or_model(tiny_net, images_2d):
    model = tiny_net()  # training mode, BatchNorm with running statistics
    images = images_2d.clone()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for method in available_methods():
        compute_saliency(model, images, method, **FAST.get(method, {}))
    assert torch.equal(images, images_2d)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks and not m._forward_pre_hooks
               for m in model.modules())
    assert all(m.inplace for m in model.modules() if isinstance(m, nn.ReLU))


def test_explained_in_eval_mode(tiny_net, images_2d):
    """BatchNorm uses running statistics (eval), so a sample's map does not depend on the batch."""
    model = tiny_net()
    grads = compute_saliency(model, images_2d, "gradient", target=0, postprocess="none")
    x = images_2d.clone().requires_grad_(True)
    model.eval()(x)[:, 0].sum().backward()
    torch.testing.assert_close(grads, x.grad)


@pytest.mark.parametrize("method", ["integrated_gradients", "smoothgrad", "smoothgrad_ig", "xrai", "occlusion",
                                    "gradcam", "guided_backprop"])
def test_internal_batch_size_bounds_every_forward(method, tiny_net, images_2d):
    model = tiny_net()
    sizes = []
    model.register_forward_pre_hook(lambda _m, args: sizes.append(args[0].shape[0]))
    compute_saliency(model, images_2d, method, internal_batch_size=2, **FAST.get(method, {}))
    assert sizes and max(sizes) <= 2


def test_numpy_in_numpy_out_and_output_shapes(tiny_net, images_3d):
    model = tiny_net(spatial_dims=3)
    maps = compute_saliency(model, images_3d.numpy(), "gradient")
    assert isinstance(maps, np.ndarray) and maps.dtype == np.float32 and maps.shape == (3, 8, 8, 8)
    assert maps.min() >= 0 and maps.max() <= 1 and np.isclose(maps.max(), 1)
    raw = compute_saliency(model, images_3d.numpy(), "gradient", postprocess="none")
    assert raw.shape == (3, 1, 8, 8, 8) and (raw < 0).any()


def test_paper_postprocess_clips_the_99th_percentile_and_normalizes():
    raw = torch.zeros(1, 2, 10, 10)
    raw[0, 0] = torch.arange(100, dtype=torch.float32).reshape(10, 10)
    raw[0, 1] = -torch.arange(100, dtype=torch.float32).reshape(10, 10)  # abs then channel sum
    out = postprocess(raw, "paper")
    summed = 2 * np.arange(100, dtype=np.float64)
    vmax = np.percentile(summed, 99)
    expected = np.clip(summed / vmax, 0, 1).reshape(10, 10)
    np.testing.assert_allclose(out[0].numpy(), expected, rtol=1e-6)
    assert out.shape == (1, 10, 10)
    assert torch.equal(postprocess(torch.ones(2, 1, 4, 4), "paper"), torch.zeros(2, 4, 4))


def test_saliency_method_is_callable_and_built_from_a_monai_config(tiny_net, images_2d):
    from monai.bundle import ConfigParser

    config = {"saliency": {"_target_": "SaliencyTrustLib.saliency.SaliencyMethod", "method": "smoothgrad",
                           "preset": "paper", "postprocess": "paper", "nt_samples": 3, "seed": 4}}
    parser = ConfigParser(json.loads(json.dumps(config)))
    method = parser.get_parsed_content("saliency")
    assert isinstance(method, SaliencyMethod)
    model = tiny_net()
    torch.testing.assert_close(method(model, images_2d), compute_saliency(model, images_2d, "smoothgrad",
                                                                          nt_samples=3, seed=4))
    rebuilt = ConfigParser({"m": method.to_config()}).get_parsed_content("m")
    assert torch.equal(rebuilt(model, images_2d), method(model, images_2d))
    assert method.settings["noise_level"] == 0.15 and method.settings["nt_type"] == "smoothgrad_sq"


def test_bad_inputs_raise_clear_errors(tiny_net, images_2d):
    model = tiny_net()
    flat_model = nn.Sequential(nn.Flatten(), nn.Linear(256, 1), nn.Flatten(0))  # (B,) output
    with pytest.raises(ValueError, match=r"\(B, classes\)"):
        compute_saliency(flat_model, images_2d, "gradient")

    class TupleModel(nn.Module):
        def forward(self, x):
            return model(x), x

    with pytest.raises(ValueError, match=r"returned tuple"):
        compute_saliency(TupleModel(), images_2d, "integrated_gradients", n_steps=2)
    with pytest.raises(ValueError, match=r"target out of range.*3 classes"):
        compute_saliency(model, images_2d, "gradient", target=3)
    with pytest.raises(ValueError, match=r"target out of range"):
        compute_saliency(model, images_2d, "gradcam", target=[0, 1, 7])
    with pytest.raises(ValueError, match=r"length B = 3"):
        compute_saliency(model, images_2d, "smoothgrad", target=[0, 1], nt_samples=2)
    bad = images_2d.clone()
    bad[1, 0, 3, 3] = float("nan")
    with pytest.raises(ValueError, match=r"NaN.*batch items \[1\]"):
        compute_saliency(model, bad, "gradient")
    with pytest.raises(ValueError, match=r"\(B, C, \*spatial\)"):
        compute_saliency(model, images_2d[0, 0], "gradient")
    with pytest.raises(ValueError, match=r"unknown saliency method 'gradcum'"):
        compute_saliency(model, images_2d, "gradcum")
    with pytest.raises(TypeError, match=r"no parameter\(s\) \['n_step'\]"):
        compute_saliency(model, images_2d, "integrated_gradients", n_step=3)
    with pytest.raises(ValueError, match=r"internal_batch_size"):
        compute_saliency(model, images_2d, "integrated_gradients", internal_batch_size=0)
    with pytest.raises(ValueError, match=r"unknown saliency method"):
        SaliencyMethod("nope")
    assert model.training  # restored even after errors


def test_softmax_output_triggers_a_warning(tiny_net, images_2d):
    model = nn.Sequential(tiny_net(), nn.Softmax(dim=1))
    with pytest.warns(UserWarning, match="pre-softmax logit"):
        compute_saliency(model, images_2d, "gradient")


def test_works_inside_no_grad_and_inference_mode_and_on_metatensors(tiny_net, images_2d):
    from monai.data import MetaTensor

    model = tiny_net()
    expected = compute_saliency(model, images_2d, "gradient")
    with torch.no_grad():
        torch.testing.assert_close(compute_saliency(model, images_2d, "gradient"), expected)
    with torch.inference_mode():
        inference_images = images_2d.clone()
        torch.testing.assert_close(compute_saliency(model, inference_images, "gradcam"),
                                   compute_saliency(model, images_2d, "gradcam"))
    maps = compute_saliency(model, MetaTensor(images_2d), "gradient")
    assert type(maps) is torch.Tensor
    torch.testing.assert_close(maps, expected)


@pytest.mark.parametrize("method", ["smoothgrad", "smoothgrad_ig", "integrated_gradients", "occlusion"])
def test_internal_batch_size_does_not_change_the_maps(method, tiny_net, images_2d):
    model = tiny_net()
    small = compute_saliency(model, images_2d, method, postprocess="none", internal_batch_size=1,
                             **FAST.get(method, {}))
    large = compute_saliency(model, images_2d, method, postprocess="none", internal_batch_size=64,
                             **FAST.get(method, {}))
    torch.testing.assert_close(small, large, rtol=1e-4, atol=1e-6 * float(large.abs().max()))

"""SaliencyTrustLib.networks and SaliencyTrustLib.transforms: shapes, names, weights, and the
preprocessing's inversion back onto the input grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.networks import (available_classifiers, build_classifier, load_classifier,
                                       recalibrate_batchnorm)
from SaliencyTrustLib.transforms import (get_preprocessing, invert_map, ras_channel_first_to_kji, scale_intensity,
                                         volume_to_data)


@pytest.mark.parametrize("name", ["densenet_small", "resnet_small"])
def test_small_classifiers_give_two_logits_in_2d_and_3d_and_stay_small(name):
    model = build_classifier(name).eval()
    assert model(torch.rand(2, 1, 224, 224)).shape == (2, 2)
    assert sum(p.numel() for p in model.parameters()) * 4 < 4e6          # a few MB of float32
    assert not any(getattr(m, "inplace", False) for m in model.modules())  # hook-safe ReLUs
    assert build_classifier(name, spatial_dims=3).eval()(torch.rand(1, 1, 32, 32, 32)).shape == (1, 2)


def test_unknown_network_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="densenet_small"):
        build_classifier("inception_v3")
    assert set(available_classifiers()) == {"densenet_small", "resnet_small", "densenet121"}


def test_bundle_folder_loads_its_model_and_the_shipped_weights_separate_the_classes(bundle_root):
    from SaliencyTrustLib.synthetic import make_cohort

    model = load_classifier(bundle_root)
    second = load_classifier(bundle_root / "models" / "model_second_arch.pt")   # architecture from the file
    assert type(second).__name__ == "ResNet" and not model.training
    cases = make_cohort(6, seed=123)
    images = torch.from_numpy(np.stack([scale_intensity(c.image) for c in cases]))[:, None]
    labels = np.array([c.label for c in cases])
    with torch.no_grad():
        for net in (model, second):
            predicted = net(images).argmax(1).numpy()
            assert (predicted == labels).mean() >= 5 / 6


def test_volume_in_memory_is_preprocessed_like_the_file_and_the_map_inverts_onto_its_grid():
    """A non-trivial geometry (flipped rows, anisotropic, not 224): preprocessing orients it to
    (rows, columns) and inversion returns exactly the input grid."""
    rng = np.random.default_rng(0)
    array = rng.random((1, 100, 150)).astype(np.float32)               # (K, J, I)
    direction = np.diag([1.0, -1.0, 1.0])                              # J runs to anterior
    volume = ImageVolume(array, spacing=(0.5, 0.8, 1.0), origin=(10, 20, 0), direction=direction)
    preprocessing = get_preprocessing(load=False)
    data = preprocessing(volume_to_data(volume))
    image = data["image"]
    assert tuple(image.shape) == (1, 224, 224)
    # the orientation flipped the rows so that axis 0 runs posterior: compare with a manual flip
    expected = torch.nn.functional.interpolate(torch.from_numpy(scale_intensity(array[0][::-1].copy()))[None, None],
                                               size=(224, 224), mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(image[0].as_tensor(), expected, atol=1e-5, rtol=1e-5)
    back = invert_map(image[0], image, preprocessing)
    back_kji = ras_channel_first_to_kji(back)
    assert back_kji.shape == array.shape
    # resized there and back: close to the scaled input (bilinear both ways)
    assert np.corrcoef(back_kji.ravel(), scale_intensity(array).ravel())[0, 1] > 0.9
    np.testing.assert_allclose(np.asarray(back.affine)[:3, :3] @ np.diag([1, 1, 1]),
                               (np.diag([-1, -1, 1]) @ volume.ijk_to_lps()[:3, :3]), atol=1e-6)


def test_scale_intensity_maps_to_unit_range_and_rejects_nan():
    np.testing.assert_allclose(scale_intensity(np.array([2.0, 4.0, 6.0])), [0.0, 0.5, 1.0])
    assert not scale_intensity(np.ones((3, 3))).any()
    with pytest.raises(ValueError, match="NaN"):
        scale_intensity(np.array([0.0, np.nan]))


def test_batchnorm_recalibration_sets_running_statistics_to_the_data_and_keeps_weights():
    model = build_classifier("resnet_small")
    first_norm = model.bn1
    first_norm.running_mean.fill_(5.0)                                  # a stale, shifted estimate
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    images = torch.rand(6, 1, 32, 32)
    recalibrate_batchnorm(model, [{"image": x} for x in images], batch_size=3)   # equal batches: mean of batch means = mean
    with torch.no_grad():
        features = model.conv1(images)
    torch.testing.assert_close(first_norm.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-4, rtol=1e-4)
    assert not model.training and first_norm.momentum == 0.1
    for key, value in weights.items():
        torch.testing.assert_close(model.state_dict()[key], value)

"""Input perturbations of the robustness criterion: noise estimate, seeded noise, shifts."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from scipy.signal import convolve2d

from SaliencyTrustLib.metrics import (add_gaussian_noise, estimate_noise_sigma, shift_images,
                                      unshift_maps)


def _smooth(shape, seed=0):
    rng = np.random.default_rng(seed)
    return gaussian_filter(rng.random(shape), sigma=6) * 50.0 + 100.0


@pytest.mark.parametrize("sigma", [0.5, 2.0, 8.0])
def test_noise_estimate_recovers_a_known_sigma_on_a_smooth_image(sigma):
    rng = np.random.default_rng(1)
    image = _smooth((256, 256)) + rng.normal(0.0, sigma, (256, 256))
    assert estimate_noise_sigma(image) == pytest.approx(sigma, rel=0.1)
    # channels / slices: the median of the per-slice estimates
    volume = _smooth((5, 96, 96), seed=2) + rng.normal(0.0, sigma, (5, 96, 96))
    assert estimate_noise_sigma(torch.as_tensor(volume)) == pytest.approx(sigma, rel=0.1)
    assert estimate_noise_sigma(volume[None]) == estimate_noise_sigma(volume)


def test_noise_estimate_is_zero_on_ramps_and_equals_immerkaers_formula():
    j, i = np.mgrid[0:64, 0:80].astype(np.float64)
    assert estimate_noise_sigma(3.0 * j - 0.5 * i + 7.0) == pytest.approx(0.0, abs=1e-9)
    assert estimate_noise_sigma(np.sin(j / 9.0) + i ** 2 / 100.0) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(3)
    image = rng.random((2, 30, 40))
    mask = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], float)
    per_slice = [np.sqrt(np.pi / 2) / (6 * 28 * 38) * np.abs(convolve2d(s, mask, "valid")).sum()
                 for s in image]
    assert estimate_noise_sigma(image) == pytest.approx(np.median(per_slice), rel=1e-12)
    with pytest.raises(ValueError, match="at least 3 x 3"):
        estimate_noise_sigma(np.zeros((2, 40)))
    with pytest.raises(ValueError, match="NaN"):
        estimate_noise_sigma(np.full((8, 8), np.nan))


def test_noise_is_deterministic_per_image_and_independent_of_batch_and_global_rng():
    images = torch.zeros((4, 2, 32, 32))
    torch.manual_seed(123)
    first = add_gaussian_noise(images, 1.0, seed=7)
    torch.manual_seed(999)
    np.random.seed(5)
    again = add_gaussian_noise(images, 1.0, seed=7)
    assert torch.equal(first, again)
    assert not torch.equal(first, add_gaussian_noise(images, 1.0, seed=8))
    assert not torch.equal(first[0], first[1])              # each image its own noise
    # a batch cut in two gives the same noise when its images keep their indices
    halves = torch.cat([add_gaussian_noise(images[:2], 1.0, 7),
                        add_gaussian_noise(images[2:], 1.0, 7, indices=[2, 3])])
    assert torch.equal(halves, first)
    assert torch.equal(add_gaussian_noise(images[:1], 1.0, 7), first[:1])
    assert torch.equal(images, torch.zeros_like(images))     # input untouched


def test_noise_has_the_requested_sigma_per_image_and_keeps_dtype():
    images = torch.full((3, 1, 128, 128), 10.0, dtype=torch.float64)
    noisy = add_gaussian_noise(images, [0.0, 1.0, 3.0], seed=0)
    assert noisy.dtype == torch.float64 and noisy.shape == images.shape
    assert torch.equal(noisy[0], images[0])
    stds = (noisy - images).flatten(1).std(1).numpy()
    np.testing.assert_allclose(stds[1:], [1.0, 3.0], rtol=0.03)
    assert abs(float((noisy[2] - 10.0).mean())) < 0.05
    # the noise estimate finds what was added
    assert estimate_noise_sigma(noisy[2].numpy()) == pytest.approx(3.0, rel=0.05)
    half = add_gaussian_noise(images.float(), 1.0, seed=0)
    assert half.dtype == torch.float32
    with pytest.raises(ValueError, match="one finite value >= 0 or 3"):
        add_gaussian_noise(images, [1.0, 2.0], seed=0)
    with pytest.raises(ValueError, match="floating point"):
        add_gaussian_noise(images.long(), 1.0, seed=0)
    with pytest.raises(ValueError, match="seed"):
        add_gaussian_noise(images, 1.0, seed=-1)


def test_positive_offsets_move_content_towards_higher_indices_on_each_axis():
    image = torch.zeros((1, 1, 10, 12))
    image[0, 0, 4, 5] = 1.0                                  # (J, I) = (4, 5)
    assert torch.nonzero(shift_images(image, (2, -3))[0, 0]).tolist() == [[6, 2]]
    volume = torch.zeros((2, 1, 6, 7, 8))
    volume[:, 0, 1, 2, 3] = 1.0                              # (K, J, I) = (1, 2, 3)
    moved = shift_images(volume, (3, 0, 1))
    assert torch.nonzero(moved[1, 0]).tolist() == [[4, 2, 4]]
    # edge replication, no wrap-around: the uncovered strip repeats the border
    ramp = torch.arange(10.0).view(1, 1, 10, 1).expand(1, 1, 10, 3)
    shifted = shift_images(ramp, (3, 0))[0, 0, :, 0]
    assert shifted.tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]
    assert shift_images(ramp, (-3, 0))[0, 0, :, 0].tolist() == [3, 4, 5, 6, 7, 8, 9, 9, 9, 9]
    # the map of a shifted image comes back onto the clean pixels
    assert np.argwhere(unshift_maps(moved[:, 0].numpy(), (3, 0, 1))[1]).tolist() == [[1, 2, 3]]


@pytest.mark.parametrize("offset", [(2, -3), (0, 5), (-4, 0)])
def test_shift_then_unshift_is_the_identity_away_from_the_border(offset):
    rng = np.random.default_rng(0)
    images = torch.as_tensor(rng.random((2, 1, 16, 20)))
    before = images.clone()
    back = unshift_maps(shift_images(images, offset)[:, 0], offset)
    assert back.shape == (2, 16, 20) and isinstance(back, np.ndarray)
    keep = tuple(slice(max(0, -o), n - max(0, o)) for o, n in zip(offset, (16, 20)))
    np.testing.assert_array_equal(back[(slice(None),) + keep], images[:, 0].numpy()[(slice(None),) + keep])
    assert torch.equal(images, before)
    same = shift_images(images, (0, 0))
    assert torch.equal(same, images) and same.data_ptr() != images.data_ptr()


def test_shift_offsets_are_checked():
    images = torch.zeros((1, 1, 8, 8))
    with pytest.raises(ValueError, match="one integer per spatial axis, 2"):
        shift_images(images, (1,))
    with pytest.raises(ValueError, match="one integer per spatial axis"):
        shift_images(images, (1.5, 0))
    with pytest.raises(ValueError, match="whole extent"):
        shift_images(images, (8, 0))
    with pytest.raises(ValueError, match="one integer per spatial axis, 3"):
        unshift_maps(np.zeros((1, 4, 4, 4)), (1, 1))

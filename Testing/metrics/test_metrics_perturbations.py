"""Input perturbations of the robustness criterion: the noise estimate, seeded noise, shift and unshift."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from SaliencyTrustLib.metrics.perturbations import add_gaussian_noise, estimate_noise_sigma, shift_images, unshift_maps


@pytest.mark.parametrize("sigma", [0.01, 0.05, 0.1])
def test_the_noise_estimate_recovers_the_added_noise_on_smooth_anatomy(sigma):
    rng = np.random.default_rng(0)
    anatomy = ndimage.gaussian_filter(rng.random((128, 128)), 6) * 4          # smooth, strong structure
    noisy = anatomy + rng.normal(0, sigma, anatomy.shape)
    assert estimate_noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)
    ramp = np.add.outer(np.arange(64.0), 0.5 * np.arange(64.0))               # a plane: no noise at all
    assert estimate_noise_sigma(ramp) == pytest.approx(0.0, abs=1e-12)
    stack = np.stack([noisy, noisy[::-1]])                                      # (C, H, W): median over planes
    assert estimate_noise_sigma(stack) == pytest.approx(estimate_noise_sigma(noisy))
    with pytest.raises(ValueError, match="3 x 3"):
        estimate_noise_sigma(np.zeros((2, 8)))
    with pytest.raises(ValueError, match="NaN"):
        estimate_noise_sigma(np.full((8, 8), np.nan))


def test_noise_is_seeded_per_item_never_touches_the_input_and_has_the_asked_sigma():
    images = torch.zeros(3, 1, 64, 64)
    first = add_gaussian_noise(images, [0.0, 0.1, 0.2], seed=7)
    again = add_gaussian_noise(images, [0.0, 0.1, 0.2], seed=7)
    assert torch.equal(first, again) and torch.count_nonzero(images) == 0
    assert float(first[0].abs().max()) == 0.0
    assert float(first[1].std()) == pytest.approx(0.1, rel=0.05) and float(first[2].std()) == pytest.approx(0.2, rel=0.05)
    # item i's noise does not depend on the other items: the same seed gives item 0 alone the same draw
    alone = add_gaussian_noise(images[1:2] * 0, 0.1, seed=7)
    assert not torch.equal(alone[0], first[1])                     # index 0 of its own batch: another stream
    assert torch.equal(add_gaussian_noise(images[:1], 0.1, seed=7)[0], alone[0])
    with pytest.raises(ValueError, match=">= 0"):
        add_gaussian_noise(images, -1.0, seed=0)


def test_a_shift_moves_content_towards_higher_indices_along_each_axis_with_the_border_replicated():
    image = torch.zeros(1, 1, 8, 10)
    image[0, 0, 3, 4] = 1.0
    moved = shift_images(image, (2, -1))                      # rows (J) down by 2, columns (I) left by 1
    assert moved[0, 0, 5, 3] == 1.0 and float(moved.sum()) == 1.0
    ramp = torch.arange(10.0).expand(1, 1, 8, 10)
    right = shift_images(ramp, (0, 3))
    assert right[0, 0, 0].tolist() == [0, 0, 0, 0, 1, 2, 3, 4, 5, 6]       # edge value repeated, no wrap-around
    volume = torch.zeros(1, 2, 6, 6, 6)
    volume[0, :, 1, 2, 3] = 1.0
    assert shift_images(volume, (1, 1, 1))[0, 1, 2, 3, 4] == 1.0           # 3D: (K, J, I)
    with pytest.raises(ValueError, match="one per axis"):
        shift_images(image, (1,))


def test_unshift_undoes_the_shift_away_from_the_border():
    rng = np.random.default_rng(3)
    maps = rng.random((2, 16, 16)).astype(np.float32)
    offset = (2, -3)
    shifted = shift_images(torch.from_numpy(maps)[:, None], offset)[:, 0].numpy()
    back = unshift_maps(shifted, offset)
    np.testing.assert_array_equal(back[:, 2:-2, 3:-3], maps[:, 2:-2, 3:-3])
    assert back.shape == maps.shape and back.dtype == maps.dtype

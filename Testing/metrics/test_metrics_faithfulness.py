"""Deletion / insertion curves against models whose faithful map is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from SaliencyTrustLib.metrics.faithfulness import DeletionInsertion, random_order_maps


class RegionMean(nn.Module):
    """Logits (B, 2) = (0, 20 * mean of the input over a fixed region): only that region matters."""

    def __init__(self, region: torch.Tensor):
        super().__init__()
        self.register_buffer("region", region.float())

    def forward(self, x):
        inside = (x * self.region).sum(dim=tuple(range(1, x.ndim))) / self.region.sum() / x.shape[1]
        return torch.stack([torch.zeros_like(inside), 20 * inside], dim=1)


def _setup(shape=(24, 24), channels=1):
    region = torch.zeros(shape, dtype=torch.bool)
    region[tuple(slice(4, 10) for _ in shape)] = True
    images = torch.ones((3, channels) + shape) * 0.5
    truth = np.broadcast_to(region.numpy().astype(np.float32), (3,) + shape).copy()
    return RegionMean(region), images, truth


def test_the_true_region_beats_the_random_order_and_its_reverse_is_worse():
    model, images, truth = _setup()
    curves = DeletionInsertion(steps=20, fill="zero")
    targets = torch.ones(3, dtype=torch.long)
    faithful = curves(model, images, truth, targets)
    random = curves(model, images, random_order_maps(truth.shape, [1, 2, 3]), targets)
    reverse = curves(model, images, 1.0 - truth, targets)
    assert (faithful.deletion_auc < random.deletion_auc).all() and (faithful.insertion_auc > random.insertion_auc).all()
    assert (reverse.deletion_auc > random.deletion_auc).all() and (reverse.insertion_auc < random.insertion_auc).all()
    # end points: fraction 0 deletion = the image's score, fraction 1 = the fill's; insertion the other way
    probability = torch.softmax(model(images), 1)[:, 1].numpy()
    fill_probability = torch.softmax(model(torch.zeros_like(images)), 1)[:, 1].numpy()
    np.testing.assert_allclose(faithful.deletion[:, 0], probability, rtol=1e-6)
    np.testing.assert_allclose(faithful.deletion[:, -1], fill_probability, rtol=1e-6)
    np.testing.assert_allclose(faithful.insertion[:, 0], fill_probability, rtol=1e-6)
    np.testing.assert_allclose(faithful.insertion[:, -1], probability, rtol=1e-6)
    assert faithful.fractions[0] == 0 and faithful.fractions[-1] == 1 and len(faithful.fractions) == 21


def test_the_internal_batch_size_bounds_memory_without_changing_a_number():
    model, images, truth = _setup()
    maps = truth + np.random.default_rng(0).random(truth.shape).astype(np.float32) * 0.1
    targets = torch.ones(3, dtype=torch.long)
    one = DeletionInsertion(steps=10, fill="blur", internal_batch_size=1)(model, images, maps, targets)
    many = DeletionInsertion(steps=10, fill="blur", internal_batch_size=64)(model, images, maps, targets)
    np.testing.assert_array_equal(one.deletion, many.deletion)
    np.testing.assert_array_equal(one.insertion_auc, many.insertion_auc)


def test_volumes_channels_and_logit_scores_work_and_an_unranked_map_is_nan():
    model, images, truth = _setup(shape=(8, 12, 12), channels=2)
    targets = torch.ones(3, dtype=torch.long)
    maps = truth.copy()
    maps[1] = 0.5                                    # constant: no ranking
    maps[2, 0, 0, 0] = np.nan
    found = DeletionInsertion(steps=4, fill="mean", score="logit")(model, images, maps, targets)
    assert np.isfinite(found.deletion_auc[0]) and np.isnan(found.deletion_auc[1:]).all()
    assert found.deletion[0, 0] == pytest.approx(10.0)          # the logit of the untouched image: 20 * 0.5
    assert images.eq(0.5).all()                                  # the caller's tensor is not modified


def test_bad_arguments_name_the_fix():
    model, images, truth = _setup()
    with pytest.raises(ValueError, match="fill must be one of"):
        DeletionInsertion(fill="noise")
    with pytest.raises(ValueError, match="steps must be >= 1"):
        DeletionInsertion(steps=0)
    with pytest.raises(ValueError, match="do not match images"):
        DeletionInsertion()(model, images, truth[:, :10], torch.ones(3, dtype=torch.long))
    with pytest.raises(ValueError, match="one seed per map"):
        random_order_maps((2, 4, 4), [1])
    order = random_order_maps((2, 4, 4), [5, 6])
    assert sorted(order[0].ravel().tolist()) == list(range(16)) and not np.array_equal(order[0], order[1])

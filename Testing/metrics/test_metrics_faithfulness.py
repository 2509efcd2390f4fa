"""Deletion / insertion curves (RISE): oracles on models whose score is known in closed form."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from SaliencyTrustLib.metrics import (FILLS, DeletionInsertion, FaithfulnessCurves, count_reasons,
                                      random_order_maps)
from SaliencyTrustLib.metrics._common import REASON_CONSTANT_MAP, REASON_NAN_MAP


class RegionMean(torch.nn.Module):
    """Logits ``[0, gain * mean of channel 0 over the region]``: only the region's pixels count."""

    def __init__(self, region: np.ndarray, gain: float = 4.0):
        super().__init__()
        self.register_buffer("region", torch.as_tensor(region, dtype=torch.float32))
        self.gain = gain
        self.anchor = torch.nn.Parameter(torch.zeros(()))     # gives the model a device and dtype

    def forward(self, x):
        assert not torch.is_grad_enabled() and not self.training
        inside = (x[:, 0] * self.region).flatten(1).sum(1) / self.region.sum()
        return torch.stack([torch.zeros_like(inside), self.gain * inside + self.anchor], dim=1)


class SmallConv(torch.nn.Module):
    """A non-linear classifier with batch norm and dropout (whose train mode would mix the batch)."""

    def __init__(self, dims: int = 2, channels: int = 2):
        super().__init__()
        conv = torch.nn.Conv2d if dims == 2 else torch.nn.Conv3d
        norm = torch.nn.BatchNorm2d if dims == 2 else torch.nn.BatchNorm3d
        self.features = torch.nn.Sequential(conv(channels, 4, 3, padding=1), norm(4),
                                            torch.nn.ReLU(), conv(4, 4, 3, padding=1))
        self.drop = torch.nn.Dropout(0.5)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.drop(self.features(x).flatten(2).amax(2)))


def _region_case(shape=(16, 16), batch=2, seed=0):
    rng = np.random.default_rng(seed)
    region = np.zeros(shape, bool)
    region[tuple(slice(n // 4, n // 4 + n // 4) for n in shape)] = True   # 1/4 per axis
    images = torch.as_tensor(1.0 + rng.random((batch, 1) + shape), dtype=torch.float32)
    return region, images, RegionMean(region).eval()


def test_true_region_map_beats_random_order_and_reversed_map_is_worse():
    region, images, model = _region_case()
    maps = np.broadcast_to(region, (2,) + region.shape).astype(np.float32)
    metric = DeletionInsertion(steps=32, fill="zero", score="logit")
    true = metric(model, images, maps, [1, 1])
    reverse = metric(model, images, -maps, [1, 1])
    seeds = list(range(16))
    random = [metric(model, images[[i] * len(seeds)], random_order_maps(region.shape, seeds),
                     [1] * len(seeds)) for i in range(2)]
    full = 4.0 * images[:, 0][:, torch.as_tensor(region)].mean(1).numpy()
    r = region.mean()                                  # fraction of pixels in the region: 1/16
    for i in range(2):
        rnd_del = random[i].deletion_auc.mean()
        rnd_ins = random[i].insertion_auc.mean()
        assert true.deletion_auc[i] < rnd_del < reverse.deletion_auc[i]
        assert true.insertion_auc[i] > rnd_ins > reverse.insertion_auc[i]
        # closed forms: the region goes first (last), uniformly valued up to the image's noise
        assert true.deletion_auc[i] == pytest.approx(full[i] * r / 2, rel=0.25)
        assert reverse.deletion_auc[i] == pytest.approx(full[i] * (1 - r / 2), rel=0.05)
        assert rnd_del == pytest.approx(full[i] / 2, rel=0.1)
        assert true.insertion_auc[i] == pytest.approx(full[i] * (1 - r / 2), rel=0.05)
    # the scale of a map does not matter, only its ranking
    scaled = metric(model, images, 1e-3 * maps + 7.0, [1, 1])
    np.testing.assert_array_equal(scaled.deletion, true.deletion)


def test_curve_ends_are_the_image_and_the_fill_image_scores():
    rng = np.random.default_rng(1)
    images = torch.as_tensor(rng.random((3, 2, 12, 10)), dtype=torch.float32)
    maps = rng.random((3, 12, 10))
    torch.manual_seed(0)
    model = SmallConv().eval()
    targets = np.array([0, 2, 1])
    with torch.no_grad():
        clean = torch.softmax(model(images).double(), 1)[torch.arange(3), targets].numpy()
    arr = images.numpy().astype(np.float64)
    fills = {"zero": np.zeros_like(arr),
             "mean": np.broadcast_to(arr.mean(axis=(2, 3), keepdims=True), arr.shape),
             "blur": gaussian_filter(arr, sigma=(0, 0, 2.5, 2.5), mode="reflect")}
    assert set(fills) == set(FILLS)
    for fill, expected in fills.items():
        curves = DeletionInsertion(steps=5, fill=fill, blur_sigma=2.5)(model, images, maps, targets)
        with torch.no_grad():
            fill_logits = model(torch.tensor(expected, dtype=torch.float32)).double()
        fill_score = torch.softmax(fill_logits, 1)[torch.arange(3), targets].numpy()
        np.testing.assert_allclose(curves.deletion[:, 0], clean, rtol=1e-6)
        np.testing.assert_allclose(curves.insertion[:, -1], clean, rtol=1e-6)
        np.testing.assert_allclose(curves.deletion[:, -1], fill_score, rtol=1e-5)
        np.testing.assert_allclose(curves.insertion[:, 0], fill_score, rtol=1e-5)
        np.testing.assert_array_equal(curves.fractions, np.arange(6) * 24 / 120)
        assert curves.fractions[0] == 0 and curves.fractions[-1] == 1


def test_intermediate_step_equals_the_hand_built_perturbed_image_with_ties_in_flat_order():
    images = torch.arange(2 * 9, dtype=torch.float32).reshape(1, 2, 3, 3) / 10
    maps = np.array([[[0, 5, 5], [1, 5, 0], [2, 3, 4]]], np.float32)    # ties: 5 at flat 1, 2, 4
    torch.manual_seed(0)
    model = SmallConv().eval()
    curves = DeletionInsertion(steps=3, fill="zero", score="logit", ties="flat")(model, images, maps, [2])
    # most salient first, ties to the lower flat index: 1, 2, 4 | 8, 7, 6 | 3, 0, 5
    order = [1, 2, 4, 8, 7, 6, 3, 0, 5]
    for k, n in enumerate([0, 3, 6, 9]):
        gone = torch.zeros(9, dtype=torch.bool)
        gone[order[:n]] = True
        gone = gone.view(1, 1, 3, 3)
        with torch.no_grad():
            deleted = model(torch.where(gone, 0.0, images))[0, 2].item()
            inserted = model(torch.where(gone, images, 0.0))[0, 2].item()
        assert curves.deletion[0, k] == pytest.approx(deleted, abs=1e-6)
        assert curves.insertion[0, k] == pytest.approx(inserted, abs=1e-6)
    widths = np.diff(curves.fractions)
    auc = float(((curves.deletion[0, 1:] + curves.deletion[0, :-1]) / 2 * widths).sum())
    assert curves.deletion_auc[0] == pytest.approx(auc)


class PixelIndexSum(torch.nn.Module):
    """Logit 1 = sum over pixels of ``x * (flat index + 1)``: each deleted pixel shows in the curve."""

    def forward(self, x):
        weights = torch.arange(1, x[0, 0].numel() + 1, dtype=x.dtype).view(x.shape[2:])
        total = (x[:, 0] * weights).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(total), total], dim=1)


def _deletion_order(metric, maps, tie_seed=0):
    """The flat indices in the order ``metric`` deleted them (one per step, PixelIndexSum's curve)."""
    images = torch.ones((1, 1) + maps.shape[1:])
    curves = metric(PixelIndexSum(), images, maps, [1], tie_seeds=tie_seed)
    removed = -np.diff(curves.deletion[0])                # = flat index + 1 of each pixel
    return np.rint(removed).astype(np.int64) - 1


def test_pixel_order_is_a_stable_descending_sort_of_the_map_in_2d_and_3d_with_flat_ties():
    rng = np.random.default_rng(4)
    for shape in [(20, 20), (6, 7, 8)]:
        maps = rng.integers(0, 3, size=(1,) + shape).astype(np.float32)     # many ties
        metric = DeletionInsertion(steps=maps.size, fill="zero", score="logit", internal_batch_size=256,
                                   ties="flat")
        order = _deletion_order(metric, maps)
        np.testing.assert_array_equal(order, np.argsort(-maps[0].ravel(), kind="stable"))
        assert (np.diff(order[maps[0].ravel()[order] == 2]) > 0).all()   # ties: raster order


def test_random_ties_follow_the_random_order_of_the_seed_in_2d_and_3d():
    """Ties in the order of random_order_maps(seed): a map flat but for one pixel deletes that pixel
    and then exactly the seed's random order; salience still comes first."""
    rng = np.random.default_rng(5)
    for shape in [(20, 20), (6, 7, 8)]:
        metric = DeletionInsertion(steps=int(np.prod(shape)), fill="zero", score="logit", internal_batch_size=256)
        random_order = np.argsort(-random_order_maps(shape, [7])[0].ravel(), kind="stable")
        hot = np.zeros((1,) + shape, np.float32)
        hot.flat[123] = 1.0
        order = _deletion_order(metric, hot, tie_seed=7)
        assert order[0] == 123
        np.testing.assert_array_equal(order[1:], random_order[random_order != 123])
        assert not (np.diff(order[1:]) > 0).all()                           # not raster order
        levels = rng.integers(0, 3, size=(1,) + shape).astype(np.float32)
        order = _deletion_order(metric, levels, tie_seed=7)
        values = levels[0].ravel()[order]
        assert (np.diff(values) <= 0).all()                                  # most salient first
        for level in (0, 1, 2):                                              # ties: the seed's order
            np.testing.assert_array_equal(order[values == level],
                                          random_order[levels[0].ravel()[random_order] == level])
        assert not np.array_equal(_deletion_order(metric, levels, tie_seed=8), order)


def test_a_map_flat_but_for_one_pixel_scores_like_the_random_order_not_like_raster_order():
    """A model that reads the top rows: raster ties delete them first (a fake faithful map); the
    seeded random ties give the random order's area."""
    shape = (32, 32)

    class TopRows(torch.nn.Module):
        def forward(self, x):
            top = x[:, 0, :8].flatten(1).mean(1)
            return torch.stack([torch.zeros_like(top), 4 * top], dim=1)

    images = torch.ones((1, 1) + shape)
    hot = np.zeros((1,) + shape, np.float32)
    hot[0, 20, 20] = 1.0
    random_area = DeletionInsertion(steps=16, fill="zero")(TopRows(), images, random_order_maps(shape, [3]), [1])
    raster = DeletionInsertion(steps=16, fill="zero", ties="flat")(TopRows(), images, hot, [1])
    seeded = DeletionInsertion(steps=16, fill="zero")(TopRows(), images, hot, [1], tie_seeds=3)
    assert raster.deletion_auc[0] < random_area.deletion_auc[0] - 0.2              # raster fools it
    assert seeded.deletion_auc[0] == pytest.approx(random_area.deletion_auc[0], abs=0.01)
    assert seeded.insertion_auc[0] == pytest.approx(random_area.insertion_auc[0], abs=0.01)


def test_tie_seeds_are_checked():
    metric = DeletionInsertion(steps=2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))
    images, maps = torch.ones((2, 1, 4, 4)), np.random.default_rng(0).random((2, 4, 4))
    for bad in (-1, [1], [1, -2], [0.5, 1], True):
        with pytest.raises(ValueError, match="tie_seeds"):
            metric(model, images, maps, [1, 1], tie_seeds=bad)
    with pytest.raises(ValueError, match="ties"):
        DeletionInsertion(ties="raster")


def test_internal_batch_size_changes_neither_the_inputs_nor_the_numbers_and_bounds_each_pass():
    rng = np.random.default_rng(2)
    images = torch.as_tensor(rng.random((3, 2, 9, 11)), dtype=torch.float32)
    maps = torch.as_tensor(rng.random((3, 9, 11)))
    torch.manual_seed(0)
    model = SmallConv()               # left in train mode: the metric must switch it to eval
    seen = []
    model.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].clone()))
    before_images, before_maps = images.clone(), maps.clone()
    results, inputs = {}, {}
    for ibs in (1, 5, 16, 200):
        seen.clear()
        results[ibs] = DeletionInsertion(steps=7, internal_batch_size=ibs)(model, images, maps,
                                                                            torch.tensor([0, 1, 2]))
        assert max(len(x) for x in seen) <= ibs
        inputs[ibs] = torch.cat(seen)
        assert len(inputs[ibs]) == 3 * 2 * 7                   # clean and fill images scored once
    assert model.training                                      # the caller's mode is restored
    assert torch.equal(images, before_images) and torch.equal(maps, before_maps)
    for ibs in (5, 16, 200):
        assert torch.equal(inputs[ibs], inputs[1])             # the same perturbed inputs, bit for bit
        # a convolution's float32 sums may be ordered differently for another batch size
        np.testing.assert_allclose(results[ibs].deletion, results[1].deletion, rtol=1e-6)
        np.testing.assert_allclose(results[ibs].insertion, results[1].insertion, rtol=1e-6)
    # a model that treats each input alone gives identical numbers
    region, images, region_model = _region_case(batch=3)
    maps = rng.random((3,) + region.shape)
    curves = [DeletionInsertion(steps=9, internal_batch_size=ibs)(region_model, images, maps, 1)
              for ibs in (1, 7, 64)]
    for other in curves[1:]:
        np.testing.assert_array_equal(other.deletion, curves[0].deletion)
        np.testing.assert_array_equal(other.insertion_auc, curves[0].insertion_auc)


def test_volumes_use_the_same_implementation():
    region, images, model = _region_case(shape=(8, 8, 12), batch=1)
    maps = region[None].astype(np.float32)
    metric = DeletionInsertion(steps=10, fill="zero", score="logit")
    true = metric(model, images, maps, [1])
    random = metric(model, images.expand(4, -1, -1, -1, -1), random_order_maps(region.shape,
                                                                              [0, 1, 2, 3]), 1)
    assert true.deletion.shape == (1, 11) and true.fractions.shape == (11,)
    assert true.deletion_auc[0] < random.deletion_auc.mean()
    assert true.insertion_auc[0] > random.insertion_auc.mean()
    torch.manual_seed(0)
    conv3d = SmallConv(dims=3, channels=1).eval()
    curves = DeletionInsertion(steps=4, blur_sigma=1.5)(conv3d, images, maps, [0])
    blurred = gaussian_filter(images.numpy().astype(np.float64), sigma=(0, 0, 1.5, 1.5, 1.5))
    with torch.no_grad():
        fill_score = torch.softmax(conv3d(torch.as_tensor(blurred, dtype=torch.float32)), 1)[0, 0]
    assert curves.deletion[0, -1] == pytest.approx(fill_score.item(), rel=1e-5)
    assert np.isfinite(curves.deletion).all() and np.isfinite(curves.insertion_auc).all()


def test_constant_and_nan_maps_give_nan_with_reasons_and_leave_the_others_unchanged():
    region, images, model = _region_case(batch=3)
    maps = np.random.default_rng(3).random((3,) + region.shape)
    metric = DeletionInsertion(steps=4, fill="mean")
    alone = metric(model, images[1:2], maps[1:2], [1])
    maps[0] = 0.25
    maps[2, 3, 3] = np.nan
    curves = metric(model, images, maps, [1, 1, 1])
    assert isinstance(curves, FaithfulnessCurves)
    assert np.isnan(curves.deletion_auc[[0, 2]]).all() and np.isnan(curves.insertion_auc[[0, 2]]).all()
    assert np.isnan(curves.deletion[[0, 2]]).all()
    assert curves.reasons == [REASON_CONSTANT_MAP, None, REASON_NAN_MAP]
    assert count_reasons(curves.reasons) == {REASON_CONSTANT_MAP: 1, REASON_NAN_MAP: 1}
    np.testing.assert_array_equal(curves.deletion[1], alone.deletion[0])
    np.testing.assert_array_equal(curves.insertion_auc[1], alone.insertion_auc[0])


def test_random_order_maps_are_seeded_permutations_without_ties():
    maps = random_order_maps((5, 7), [0, 1, 0])
    assert maps.shape == (3, 5, 7) and maps.dtype == np.float32
    np.testing.assert_array_equal(np.sort(maps[1].ravel()), np.arange(35))
    np.testing.assert_array_equal(maps[0], maps[2])
    assert not np.array_equal(maps[0], maps[1])
    # every pixel is equally likely to come first
    firsts = np.argmax(random_order_maps((2, 2), range(4000)).reshape(4000, 4), axis=1)
    assert np.bincount(firsts, minlength=4).min() > 900


def test_invalid_arguments_raise_sentences_that_say_the_fix():
    region, images, model = _region_case()
    maps = np.ones((2,) + region.shape)
    with pytest.raises(ValueError, match="unknown fill 'noise'.*blur"):
        DeletionInsertion(fill="noise")
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        DeletionInsertion(steps=0)
    with pytest.raises(ValueError, match="unknown score"):
        DeletionInsertion(score="prob")
    with pytest.raises(ValueError, match="blur_sigma"):
        DeletionInsertion(blur_sigma=0)
    with pytest.raises(ValueError, match="internal_batch_size"):
        DeletionInsertion(internal_batch_size=0)
    metric = DeletionInsertion(steps=2)
    with pytest.raises(ValueError, match=r"maps has shape \(2, 1, 16, 16\).*maps\[:, 0\]"):
        metric(model, images, maps[:, None], [1, 1])
    with pytest.raises(ValueError, match="targets: expected 2 integer class indices"):
        metric(model, images, maps, [1])
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 1\]"):
        metric(model, images, maps + np.arange(256).reshape(16, 16), [1, 2])
    with pytest.raises(ValueError, match="floating point"):
        metric(model, images.to(torch.int64), maps, [1, 1])
    with pytest.raises(ValueError, match="random_order_maps: shape"):
        random_order_maps((0, 4), [1])


def test_float_noise_below_the_rounding_never_reorders_pixels():
    """Two front ends compute the same map to ~1e-7 (batch size, threads): the same curves."""
    from SaliencyTrustLib.metrics.faithfulness import rank_values

    rng = np.random.default_rng(0)
    base = np.round(rng.random((1, 16, 16)), 2).astype(np.float32)             # many exact ties
    jitter = (base + rng.normal(0, 1e-7, base.shape)).astype(np.float32)       # and float noise
    np.testing.assert_array_equal(np.argsort(-rank_values(base[0]), kind="stable"),
                                  np.argsort(-rank_values(jitter[0]), kind="stable"))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2))
    images = torch.from_numpy(rng.random((1, 1, 16, 16)).astype(np.float32))
    metric = DeletionInsertion(steps=8, fill="zero")
    assert metric(model, images, base, [1]).deletion_auc == metric(model, images, jitter, [1]).deletion_auc

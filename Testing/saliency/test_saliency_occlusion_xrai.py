"""Occlusion and XRAI on models that read one known region."""

import numpy as np
import torch
from torch import nn

from SaliencyTrustLib.saliency import compute_saliency
from SaliencyTrustLib.saliency.xrai import segment_masks, xrai_regions


class RegionReader(nn.Module):
    """logit_1 = 3 * sum of the input inside ``region`` (a boolean mask), logit_0 = 0."""

    def __init__(self, region: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", region.float())

    def forward(self, x):
        score = 3.0 * (x * self.weight).flatten(1).sum(1)
        return torch.stack([torch.zeros_like(score), score], dim=1)


def test_occlusion_of_a_model_reading_one_region_is_nonzero_only_there():
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[4:8, 8:12] = True  # aligned with the 4 x 4 window grid
    model = RegionReader(region)
    x = torch.rand(2, 1, 16, 16) + 0.1
    maps = compute_saliency(model, x, "occlusion", target=1, postprocess="none",
                            sliding_window_shapes=4, strides=4, internal_batch_size=5)
    assert maps.shape == (2, 1, 16, 16)
    assert (maps[:, 0][:, region] > 0).all()
    assert (maps[:, 0][:, ~region] == 0).all()
    # the logit drop when the window is zeroed is 3 * its sum, credited to each of its pixels
    drop = 3 * x[:, 0][:, region].sum(1)
    torch.testing.assert_close(maps[:, 0][:, region], drop[:, None].expand(-1, 16))


def test_occlusion_3d_window_per_axis():
    region = torch.zeros(8, 8, 8, dtype=torch.bool)
    region[:4, :4, 4:] = True
    maps = compute_saliency(RegionReader(region), torch.rand(1, 1, 8, 8, 8) + 0.1, "occlusion", target=1,
                            postprocess="none", sliding_window_shapes=(4, 4, 4), strides=(4, 4, 4))
    assert (maps[0, 0][region] > 0).all() and (maps[0, 0][~region] == 0).all()


def blob_image(size=48):
    """A dark noisy background with a bright square at rows/cols 12..24 (what a segmentation finds)."""
    rng = np.random.default_rng(0)
    image = 0.1 + 0.05 * rng.random((size, size))
    image[12:24, 12:24] = 0.9 + 0.05 * rng.random((12, 12))
    region = np.zeros((size, size), dtype=bool)
    region[12:24, 12:24] = True
    return image.astype(np.float32), region


def test_xrai_ranks_the_region_that_carries_the_logit_first():
    image, region = blob_image()
    model = RegionReader(torch.from_numpy(region))
    maps = compute_saliency(model, image[None, None], "xrai", target=1, postprocess="none", n_steps=4,
                            resize_to=None, felzenszwalb_scales=(50, 100), felzenszwalb_min_size=20,
                            dilation_radius=1, min_pixel_diff=10)
    xrai_map = maps[0, 0]
    first = xrai_map == xrai_map.max()  # the pixels of the first-ranked region
    assert not (first & ~region).any()
    assert first.sum() >= region.sum() / 2
    assert xrai_map[region].mean() > 5 * xrai_map[~region].mean()


def test_xrai_regions_greedy_order_and_gains():
    attribution = np.zeros((10, 10))
    attribution[0:3, 0:3] = 5.0      # densest
    attribution[5:10, 5:10] = 1.0    # large, less dense
    masks = [np.ravel_multi_index(np.nonzero(m), (10, 10)) for m in (
        np.pad(np.ones((5, 5), bool), ((5, 0), (5, 0))),   # the 1.0 block
        np.pad(np.ones((3, 3), bool), ((0, 7), (0, 7))),   # the 5.0 block
        np.ones((10, 10), bool))]                          # everything
    region_map, trace = xrai_regions(attribution, masks, min_pixel_diff=1)
    assert set(trace[0]) == set(masks[1])
    assert set(trace[1]) == set(masks[0])
    assert np.allclose(region_map[0:3, 0:3], 5.0) and np.allclose(region_map[5:, 5:], 1.0)
    # the rest was covered by the last mask, whose new pixels carry zero attribution
    assert np.allclose(region_map[0:3, 5:], 0.0)


def _greedy_by_recomputing(attribution, masks, min_pixel_diff, area_threshold):
    """XRAI's greedy ranking as written: every step recomputes every mask's gain on its uncovered
    pixels (sets, no incremental update); the reference of the fast ranking."""
    flat = attribution.ravel()
    masks = [np.unique(m) for m in masks]
    covered = np.zeros(flat.size, bool)
    output = np.full(flat.size, -np.inf)
    alive = list(range(len(masks)))
    order = []
    while True:
        gains = {}
        for m in alive:
            new = masks[m][~covered[masks[m]]]
            if new.size >= min_pixel_diff:
                gains[m] = flat[new].mean()
        alive = list(gains)
        if not gains:
            break
        best = max(gains, key=lambda m: (gains[m], -m))
        new = masks[best][~covered[masks[best]]]
        covered[new] = True
        output[new] = gains[best]
        order.append(best)
        alive.remove(best)
        if covered.mean() > area_threshold:
            break
    if (output == -np.inf).any():
        output[output == -np.inf] = flat[output == -np.inf].mean()
    return output.reshape(attribution.shape), order


def test_xrai_ranking_matches_the_greedy_algorithm_recomputed_at_every_step():
    """Overlapping, repeated and nested masks on random attributions, 2D and 3D: the incremental
    ranking (from the masks or a prebuilt RegionIndex) takes the regions of the plain algorithm."""
    from SaliencyTrustLib.saliency.xrai import RegionIndex

    rng = np.random.default_rng(3)
    for shape in [(12, 12), (4, 5, 6)]:
        n = int(np.prod(shape))
        for trial in range(6):
            attribution = rng.normal(size=shape)
            masks = [rng.choice(n, size=rng.integers(1, n // 2), replace=True) for _ in range(25)]
            masks.append(masks[3].copy())                                   # a repeated mask
            min_diff, threshold = int(rng.integers(1, 6)), float(rng.choice([1.0, 0.6]))
            expected, order = _greedy_by_recomputing(attribution, masks, min_diff, threshold)
            for given in (masks, RegionIndex(masks, n)):
                found, trace = xrai_regions(attribution, given, min_pixel_diff=min_diff, area_threshold=threshold)
                np.testing.assert_allclose(found, expected, rtol=1e-12, atol=1e-12)
                for m, pixels in zip(order, trace):
                    assert set(pixels) <= set(masks[m].tolist())


def test_xrai_regions_refuses_masks_off_the_grid():
    import pytest

    with pytest.raises(ValueError, match="outside 0 .. 15"):
        xrai_regions(np.zeros((4, 4)), [np.array([0, 16])])
    from SaliencyTrustLib.saliency.xrai import RegionIndex

    with pytest.raises(ValueError, match="RegionIndex on the attribution's grid"):
        xrai_regions(np.zeros((4, 4)), RegionIndex([np.array([0, 1])], 25))


def test_segment_masks_3d_uses_slic_supervoxels():
    volume = np.zeros((1, 12, 12, 12), dtype=np.float32)
    volume[0, 2:6, 2:6, 2:6] = 1.0
    masks = segment_masks(volume, slic_segments=(8, 27), dilation_radius=0)
    assert len(masks) >= 8
    assert all(m.max() < 12 ** 3 for m in masks)
    covered = np.zeros(12 ** 3, bool)
    for m in masks:
        covered[m] = True
    assert covered.all()


def test_xrai_segments_are_computed_once_per_image_and_reused_with_identical_maps(monkeypatch):
    from SaliencyTrustLib.saliency import xrai as xrai_module

    calls = []
    real_segment_masks = xrai_module.segment_masks
    monkeypatch.setattr(xrai_module, "segment_masks",
                        lambda image, **options: calls.append(1) or real_segment_masks(image, **options))
    monkeypatch.setattr(xrai_module, "_region_cache", type(xrai_module._region_cache)())
    built = []

    class CountedRegionIndex(xrai_module.RegionIndex):
        def __init__(self, masks, n_pixels):
            built.append(1)
            super().__init__(masks, n_pixels)

    monkeypatch.setattr(xrai_module, "RegionIndex", CountedRegionIndex)
    pixels, region = blob_image()
    image = torch.from_numpy(pixels)[None, None]
    model = RegionReader(torch.from_numpy(region))
    options = dict(target=1, n_steps=4, resize_to=None, felzenszwalb_scales=(50, 100), felzenszwalb_min_size=20)
    first = compute_saliency(model, image, "xrai", **options)
    again = compute_saliency(model, image, "xrai", **options)
    assert len(calls) == 1 and len(built) == 1          # segments and their pixel index: once per image
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    other = compute_saliency(model, image * 0.5, "xrai", **options)
    assert len(calls) == 2 and len(built) == 2 and other.shape == first.shape
    cached = next(iter(xrai_module._region_cache.values()))
    assert not cached.mask_pixels.flags.writeable and not cached.pixel_masks.flags.writeable


def test_xrai_can_segment_a_grey_image_as_the_study_s_three_channel_copy():
    """``segmentation_channels=3`` segments the grey image copied to 3 channels (the study's
    scripts): Felzenszwalb's colour distance gives other segments than on the grey channel alone."""
    import numpy as np

    from SaliencyTrustLib.saliency.xrai import segment_masks

    rng = np.random.default_rng(0)
    image = rng.random((1, 64, 64))
    image[:, 20:40, 20:40] += 1.0
    grey = segment_masks(image, resize_to=None)
    copied = segment_masks(image, resize_to=None, segmentation_channels=3)
    same = segment_masks(np.repeat(image, 3, axis=0), resize_to=None)
    assert len(copied) == len(same) and all(np.array_equal(a, b) for a, b in zip(copied, same))
    assert len(copied) != len(grey) or not all(np.array_equal(a, b) for a, b in zip(copied, grey))

"""The shared foundation: the image model's geometry and the synthetic cases' ground truth."""

import numpy as np
import pytest

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.synthetic import make_cohort


def test_ijk_to_ras_flips_lps_axes_and_applies_spacing_and_direction():
    direction = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    volume = ImageVolume(np.zeros((2, 3, 4)), spacing=(0.5, 2.0, 3.0), origin=(10, 20, 30),
                         direction=direction)
    ras = volume.ijk_to_ras() @ np.array([1, 1, 1, 1.0])
    lps = np.array([10 + 2.0, 20 + 0.5, 30 + 3.0])  # i runs along P (column 0 of direction = +y)
    np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]])


def test_two_dimensional_array_becomes_single_slice_volume():
    volume = ImageVolume(np.ones((5, 7)))
    assert volume.shape == (1, 5, 7) and volume.is_2d


def test_bad_geometry_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="spacing must be positive"):
        ImageVolume(np.ones((2, 2, 2)), spacing=(1, 0, 1))


@pytest.mark.parametrize("kind", ["cxr", "ct"])
def test_synthetic_cohort_is_deterministic_balanced_and_masks_match_labels(kind):
    first = make_cohort(6, seed=3, kind=kind, size=48 if kind == "cxr" else 32)
    again = make_cohort(6, seed=3, kind=kind, size=48 if kind == "cxr" else 32)
    assert [c.label for c in first] == [0, 1, 0, 1, 0, 1]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a.image, b.image)
        assert a.mask.any() == bool(a.label) == bool(a.boxes)
        assert 0.0 <= a.image.min() and a.image.max() <= 1.0
    positive = first[1]
    # Lesion pixels are brighter than the rest of the image on average: the task is learnable.
    assert positive.image[positive.mask].mean() > positive.image[~positive.mask].mean()

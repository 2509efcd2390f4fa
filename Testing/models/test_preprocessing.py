"""The one preprocessing description: what the network sees, and how maps come back."""

from __future__ import annotations

import numpy as np
import pytest

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.preprocessing import Preprocessing


def _asymmetric(shape=(1, 30, 50), seed=0):
    rng = np.random.default_rng(seed)
    array = rng.random(shape).astype(np.float32)
    array[..., :5, :7] += 3.0          # a bright corner: any flip or transpose moves it
    return array


def test_the_input_equals_the_bundle_training_pipeline_for_a_flipped_and_transposed_image(tmp_path):
    """The study pipeline's input is MONAI's (the transforms the bundle's models were trained with)
    also for an image stored right-to-left with rows and columns swapped."""
    from SaliencyTrustLib import transforms
    from SaliencyTrustLib.io.nifti_write import write_nifti

    array = _asymmetric()
    for name, direction in (("identity", np.eye(3)), ("flipped", np.diag([-1.0, 1.0, 1.0])),
                            ("transposed", np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]]))):
        volume = ImageVolume(array, spacing=(0.8, 1.1, 1.0), origin=(4.0, -2.0, 1.0), direction=direction)
        path = write_nifti(volume, tmp_path / f"{name}.nii.gz")
        monai_input = transforms.get_preprocessing(image_size=(32, 32))({"image": str(path)})["image"].numpy()
        from SaliencyTrustLib.io import read_image

        ours, _ = Preprocessing(in_channels=1, input_size=32).image_to_model(read_image(path), 2)
        np.testing.assert_allclose(ours, monai_input, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("resize", ["squash", "pad", "crop"])
def test_a_map_goes_back_onto_the_image_grid_where_the_image_was(resize):
    """The map of the preprocessed image itself, taken back, lines up with the image (no flip,
    no shift); ``pad`` keeps the aspect ratio, ``crop`` leaves 0 where it cut."""
    array = _asymmetric((1, 40, 64))
    volume = ImageVolume(array, direction=np.diag([-1.0, -1.0, 1.0]))
    pre = Preprocessing(in_channels=1, input_size=64, resize=resize, intensity="minmax01")
    model_input, geometry = pre.image_to_model(volume, 2)
    back = pre.map_to_native(model_input[0], geometry)
    assert back.shape == array.shape
    kept = back > 0 if resize == "crop" else np.ones_like(back, bool)
    scaled = (array - array.min()) / (array.max() - array.min())
    assert np.corrcoef(back[kept], scaled[kept])[0, 1] > 0.9
    if resize == "pad":                    # the 40 rows sit in a 64-row frame, centred
        assert geometry.frame_shape == (64, 64) and geometry.box == ((12, 52), (0, 64))
        assert np.allclose(model_input[0, :10], 0.0)
    if resize == "crop":                   # the central 40 of 64 columns
        assert geometry.box == ((0, 40), (12, 52))
        assert (back[..., :12] == 0).all() and (back[..., 52:] == 0).all()


def test_masks_follow_the_image_through_orientation_and_framing():
    array = np.zeros((1, 40, 64), np.float32)
    array[0, 5:15, 40:60] = 1.0
    volume = ImageVolume(array, direction=np.diag([-1.0, 1.0, 1.0]))
    pre = Preprocessing(in_channels=1, input_size=32, resize="pad", intensity="none")
    model_input, geometry = pre.image_to_model(volume, 2)
    mask = pre.mask_to_model(array > 0, geometry)
    assert mask.any()
    assert model_input[0][mask].min() >= 0.5 and model_input[0][mask].mean() >= 0.85   # on the bright box


@pytest.mark.parametrize("intensity, low, high", [("minmax01", 0.0, 1.0), ("minmax11", -1.0, 1.0),
                                                  ("window:50,100", 0.0, 1.0), ("meanstd:10,2", -5.0, 45.0),
                                                  ("none", 0.0, 100.0)])
def test_intensity_modes_give_their_documented_range(intensity, low, high):
    volume = ImageVolume(np.linspace(0, 100, 16 * 16, dtype=np.float32).reshape(1, 16, 16))
    values, _ = Preprocessing(in_channels=2, input_size=16, intensity=intensity).image_to_model(volume, 2)
    assert values.shape == (2, 16, 16)
    assert values.min() == pytest.approx(low, abs=1e-5) and values.max() == pytest.approx(high, abs=1e-4)


def test_the_study_preset_is_320_pixels_three_channels_minus_one_to_one():
    volume = ImageVolume(np.random.default_rng(1).random((1, 50, 60)).astype(np.float32))
    values, geometry = Preprocessing.preset("study").image_to_model(volume, 2)
    assert values.shape == (3, 320, 320) and geometry.model_shape == (320, 320)
    assert values.min() >= -1.0 and values.max() <= 1.0 and np.array_equal(values[0], values[2])


def test_bad_settings_and_bad_images_get_errors_that_say_what_to_fix():
    with pytest.raises(ValueError, match="resize must be one of"):
        Preprocessing(resize="stretch")
    with pytest.raises(ValueError, match="meanstd:NUMBER,NUMBER"):
        Preprocessing(intensity="meanstd:1")
    with pytest.raises(ValueError, match="window width must be > 0"):
        Preprocessing(intensity="window:40,0")
    with pytest.raises(ValueError, match="unknown preprocessing preset"):
        Preprocessing.preset("paper")
    with pytest.raises(ValueError, match=">= 8 pixels"):
        Preprocessing(input_size=4)
    nan = np.ones((1, 8, 8), np.float32)
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Preprocessing(in_channels=1, input_size=8).image_to_model(ImageVolume(nan), 2)
    with pytest.raises(ValueError, match="cannot enter a 2D model"):
        Preprocessing().image_to_model(ImageVolume(np.zeros((3, 8, 8), np.float32)), 2)

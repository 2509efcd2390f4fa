"""NIfTI / NRRD volumes: geometry round trips in LPS, the nibabel fallback, refused shapes."""

from __future__ import annotations

import numpy as np
import pytest

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.io import InputError, read_image, save_volume


def _oblique() -> np.ndarray:
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return rotation @ np.diag([1, -1, -1])      # columns: I, J, K unit vectors (right-handed or not)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
def test_oblique_volume_round_trips_with_its_lps_geometry(tmp_path, suffix):
    array = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    volume = ImageVolume(array, (0.7, 0.8, 2.5), (-10.0, 20.0, 30.0), _oblique())
    save_volume(volume, tmp_path / f"v{suffix}")
    back = read_image(tmp_path / f"v{suffix}")
    assert back.same_grid(volume, atol=1e-5)
    np.testing.assert_array_equal(back.array, array)


def test_nifti_affine_is_ras_on_disk(tmp_path):
    import nibabel as nib

    volume = ImageVolume(np.zeros((2, 3, 4), np.uint8), (1.0, 2.0, 3.0), (5.0, 6.0, 7.0))
    save_volume(volume, tmp_path / "v.nii.gz")
    affine = nib.load(str(tmp_path / "v.nii.gz")).affine
    np.testing.assert_allclose(affine, np.diag([-1, -1, 1, 1]) @ volume.ijk_to_lps(), atol=1e-6)


def test_sheared_nifti_falls_back_to_nibabel_with_the_exact_affine(tmp_path):
    import nibabel as nib

    affine = np.array([[-1.0, 0.3, 0, 10], [0, -1.0, 0, 20], [0, 0, 2.0, 30], [0, 0, 0, 1]])
    data = np.arange(24, dtype=np.float32).reshape(4, 3, 2)        # nibabel order (I, J, K)
    nib.save(nib.Nifti1Image(data, affine), str(tmp_path / "sheared.nii"))
    volume = read_image(tmp_path / "sheared.nii")
    assert volume.metadata["reader"] == "nibabel" and volume.shape == (2, 3, 4)
    np.testing.assert_allclose(volume.ijk_to_lps(), np.diag([-1, -1, 1, 1]) @ affine, atol=1e-6)
    np.testing.assert_array_equal(volume.array, np.transpose(data, (2, 1, 0)))


def test_four_d_and_vector_images_are_refused_with_the_fix(tmp_path):
    import SimpleITK as sitk

    sitk.WriteImage(sitk.Image([4, 4, 4, 3], sitk.sitkFloat32), str(tmp_path / "t.nii.gz"))
    with pytest.raises(InputError, match="4D image") as error:
        read_image(tmp_path / "t.nii.gz")
    assert "Split" in error.value.fix
    sitk.WriteImage(sitk.Image([4, 4], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.nrrd"))
    with pytest.raises(InputError, match="3 components per voxel"):
        read_image(tmp_path / "rgb.nrrd")
    single = sitk.Image([4, 5, 6, 1], sitk.sitkInt16)
    sitk.WriteImage(single, str(tmp_path / "single.nii.gz"))
    assert read_image(tmp_path / "single.nii.gz").shape == (6, 5, 4)

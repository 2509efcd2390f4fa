"""NIfTI maps overlay their source: array, spacing, origin and direction survive a SimpleITK read."""

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial.transform import Rotation

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.io.nifti_write import write_nifti


def _oblique_direction(left_handed: bool) -> np.ndarray:
    direction = Rotation.from_euler("xyz", [12, -25, 33], degrees=True).as_matrix()
    if left_handed:
        direction[:, 2] *= -1      # e.g. a series stored head to feet
    return direction


@pytest.mark.parametrize("left_handed", [False, True])
def test_simpleitk_reads_back_array_and_lps_geometry(tmp_path, left_handed):
    rng = np.random.default_rng(0)
    volume = ImageVolume(rng.random((5, 6, 7), dtype=np.float32), spacing=(0.5, 0.8, 2.5),
                         origin=(10.0, -20.0, 30.0), direction=_oblique_direction(left_handed))
    path = write_nifti(volume, tmp_path / "map.nii.gz")
    image = sitk.ReadImage(str(path))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), volume.array)
    np.testing.assert_allclose(image.GetSpacing(), volume.spacing, rtol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), volume.origin, atol=1e-4)
    np.testing.assert_allclose(np.reshape(image.GetDirection(), (3, 3)), volume.direction,
                               atol=1e-5)


def test_every_voxel_lands_at_the_sources_ras_position(tmp_path):
    volume = ImageVolume(np.zeros((3, 4, 5), np.float32), spacing=(0.7, 0.9, 3.0),
                         origin=(-100.0, 50.0, 12.0), direction=_oblique_direction(False))
    write_nifti(volume, tmp_path / "map.nii")
    image = nib.load(str(tmp_path / "map.nii"))
    assert image.shape == (5, 4, 3)                                  # (I, J, K) on disk
    assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 1
    voxel = np.array([4, 1, 2, 1.0])                                 # i, j, k
    np.testing.assert_allclose(image.affine @ voxel, volume.ijk_to_ras() @ voxel, atol=1e-4)
    lps = volume.ijk_to_lps() @ voxel
    np.testing.assert_allclose((image.affine @ voxel)[:3], [-lps[0], -lps[1], lps[2]], atol=1e-4)


def test_radiograph_map_and_bool_mask_round_trip(tmp_path):
    mask = np.zeros((1, 8, 9), bool)
    mask[0, 2:5, 3:7] = True
    volume = ImageVolume(mask, spacing=(1.6, 1.6, 1.0))
    image = sitk.ReadImage(str(write_nifti(volume, tmp_path / "mask.nii.gz")))
    array = sitk.GetArrayFromImage(image)
    assert array.dtype == np.uint8
    np.testing.assert_array_equal(array.astype(bool), mask)
    np.testing.assert_allclose(image.GetSpacing(), (1.6, 1.6, 1.0), rtol=1e-6)


def test_wrong_suffix_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.nii or \.nii\.gz"):
        write_nifti(ImageVolume(np.zeros((1, 2, 2))), tmp_path / "map.nrrd")

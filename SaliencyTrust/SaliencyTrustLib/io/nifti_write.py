"""Write an :class:`~SaliencyTrustLib.image.ImageVolume` (a saliency map, a mask) as NIfTI-1.

NIfTI stores the voxel array in ``(i, j, k)`` order with a voxel -> **RAS** mm affine; the core
keeps ``(K, J, I)`` arrays in **LPS**. So the writer transposes the array and writes the affine
``diag(-1, -1, 1, 1) @ volume.ijk_to_lps()`` as both the sform and the qform (codes 1,
"scanner"), units mm. ITK/SimpleITK, 3D Slicer, nibabel, ITK-SNAP and FSLeyes then place every
voxel where the source image has it, so a map written from the source's ImageVolume overlays the
source in any viewer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import nibabel as nib
import numpy as np

from ..image import LPS_TO_RAS, ImageVolume

__all__ = ["write_nifti", "nifti_affine", "NiftiWriter"]

#: NIfTI xform code "scanner anatomical" (``NIFTI_XFORM_SCANNER_ANAT``).
XFORM_SCANNER = 1


def nifti_affine(volume: ImageVolume) -> np.ndarray:
    """The 4x4 NIfTI affine of ``volume``: ``(i, j, k, 1)`` voxel index -> RAS mm."""
    return LPS_TO_RAS @ volume.ijk_to_lps()


def write_nifti(volume: ImageVolume, path: Union[str, os.PathLike]) -> Path:
    """Write ``volume`` to ``path`` (``.nii`` or ``.nii.gz``) and return the path.

    Args:
        volume: the image; ``array`` ``(K, J, I)``; bool arrays are written as uint8 (0/1),
            float64 as float32, other dtypes as they are. A single slice (``K == 1``) is written
            as a 3D image with one slice (its spacing ``sK`` kept).
        path: output file; its folder is created. The suffix must be ``.nii`` or ``.nii.gz``.

    Returns:
        The path written.

    Raises:
        ValueError: an unsupported suffix, or a non-numeric array.
    """
    path = Path(path)
    if not (path.name.endswith(".nii") or path.name.endswith(".nii.gz")):
        raise ValueError(f"write_nifti: {path} must end with .nii or .nii.gz.")
    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    elif array.dtype == np.float64:
        array = array.astype(np.float32)
    elif array.dtype.kind not in "uif":
        raise ValueError(f"write_nifti: cannot write an array of dtype {array.dtype} to {path}; "
                         "pass a numeric or bool array.")
    affine = nifti_affine(volume)
    # (K, J, I) -> (I, J, K); a contiguous copy so nibabel writes it in NIfTI (Fortran) order.
    data = np.ascontiguousarray(np.transpose(array, (2, 1, 0)))
    image = nib.Nifti1Image(data, affine)
    image.header.set_xyzt_units(xyz="mm")
    image.set_sform(affine, code=XFORM_SCANNER)
    image.set_qform(affine, code=XFORM_SCANNER)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


class NiftiWriter:
    """``NiftiWriter()(volume, path)``: :func:`write_nifti` as a config-constructible object."""

    def __call__(self, volume: ImageVolume, path: Union[str, os.PathLike]) -> Path:
        return write_nifti(volume, path)

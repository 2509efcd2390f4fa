"""The readers' contract, checked by the fuzz harness, the mutant sweep and their tests.

For any input, ``read_image`` returns an image whose array is 3D, non-empty and finite, with a
finite geometry, and ``read_ground_truth`` a bool mask of the reference's shape; otherwise they
raise one :class:`~SaliencyTrustLib.io.errors.InputError` (not marked ``unexpected``).
"""

from __future__ import annotations

import numpy as np


def sniff_suffix(data: bytes) -> str:
    """The file name ending the readers will see for ``data`` (they dispatch on it)."""
    if data[:2] == b"\x1f\x8b":
        return ".nii.gz"
    if data[344:348] in (b"n+1\x00", b"ni1\x00"):
        return ".nii"
    if data[:4] == b"NRRD":
        return ".nrrd"
    head = data[:200].split(b"\n", 1)[0]
    if b"patientId" in head or b"ImageId" in head:
        return ".csv"
    return ".dcm"


def check_image(volume) -> str:
    """'' when ``volume`` keeps the reader's contract, else what is wrong."""
    array = np.asarray(volume.array)
    if array.ndim != 3 or 0 in array.shape:
        return f"image array of shape {array.shape}"
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        return "image with NaN or inf voxels"
    geometry = np.concatenate([np.ravel(volume.spacing), np.ravel(volume.origin), np.ravel(volume.direction)])
    if not np.all(np.isfinite(geometry)):
        return "image with a non-finite spacing, origin or direction"
    return ""


def check_mask(mask, reference) -> str:
    if not isinstance(mask, np.ndarray) or mask.dtype != bool:
        return f"mask of type {type(mask).__name__} / {getattr(mask, 'dtype', None)}"
    if mask.shape != reference.shape:
        return f"mask of shape {mask.shape} for a {reference.shape} reference"
    return ""

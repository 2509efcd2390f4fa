"""NIfTI / NRRD / MetaImage <-> :class:`~SaliencyTrustLib.image.ImageVolume` (SimpleITK, nibabel fallback).

Geometry conventions are those of :mod:`SaliencyTrustLib.image` (array ``(K, J, I)``, LPS). SimpleITK
already works in LPS and converts the RAS ``qform``/``sform`` of NIfTI files on the way in and out;
the nibabel fallback (used only when ITK refuses a file, e.g. a NIfTI whose affine is not
orthonormal) flips the first two rows of the RAS affine itself.

A 2D file (``dim[0] == 2`` NIfTI, 2D NRRD) becomes a one-slice volume with ``spacing[2] == 1.0``
and the K axis along +S; :func:`volume_to_sitk` writes a one-slice volume with an axial-like
direction back as a 2D image, so a radiograph round-trips as 2D (MONAI's ``LoadImage`` then sees
``(W, H)`` -- nibabel/MONAI order is ``(I, J[, K])``, the transpose of ours).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import numpy as np

from ..image import ImageVolume
from .errors import InputError

PathLike = Union[str, os.PathLike]

#: File name endings read by :func:`read_volume` (lower case).
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd", ".img", ".hdr")


def is_volume_file(path: PathLike) -> bool:
    """True when ``path``'s name ends like a NIfTI / NRRD / MetaImage file."""
    name = os.fspath(path).lower()
    return any(name.endswith(suffix) for suffix in VOLUME_SUFFIXES)


def sitk_to_volume(image, **metadata) -> ImageVolume:
    """A SimpleITK image (2D or 3D, scalar) as an :class:`ImageVolume` (array copied, dtype kept)."""
    import SimpleITK as sitk

    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(metadata.get("source_path"),
                         f"has {image.GetNumberOfComponentsPerPixel()} components per voxel "
                         "(colour or vector image); SaliencyTrust reads scalar images only.",
                         "Convert it to one grey-level channel first (e.g. take the luminance).")
    dim = image.GetDimension()
    array = sitk.GetArrayFromImage(image)
    if dim == 2:
        spacing = (*image.GetSpacing(), 1.0)
        origin = (*image.GetOrigin(), 0.0)
        direction = np.eye(3)
        direction[:2, :2] = np.asarray(image.GetDirection()).reshape(2, 2)
        array = array[np.newaxis]
    elif dim == 3:
        spacing, origin = image.GetSpacing(), image.GetOrigin()
        direction = np.asarray(image.GetDirection()).reshape(3, 3)
    elif dim == 4 and image.GetSize()[3] == 1:
        extract = sitk.Extract(image, (*image.GetSize()[:3], 0), (0, 0, 0, 0))
        return sitk_to_volume(extract, **metadata)
    else:
        raise InputError(metadata.get("source_path"),
                         f"is a {dim}D image of size {image.GetSize()}; only 2D and 3D images are read.",
                         "Split the time/channel axis and pass one 3D volume.")
    return _checked_volume(array, spacing, origin, direction, dict(metadata))


def _checked_volume(array, spacing, origin, direction, metadata) -> ImageVolume:
    """An :class:`ImageVolume` whose geometry is usable: spacing finite and positive, origin finite,
    direction finite and invertible (a file can declare anything: a zero or NaN scale, a
    degenerate orientation). Voxel values are left as stored (NaN allowed in a float map); a
    reader of images checks them."""
    path = metadata.get("source_path")
    spacing = np.asarray(spacing, dtype=float)
    origin = np.asarray(origin, dtype=float)
    direction = np.asarray(direction, dtype=float).reshape(3, 3)
    if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0)):
        raise InputError(path, f"declares the voxel spacing {spacing.tolist()}; each must be a positive "
                         "number of mm.", "Fix the header (pixdim / spacing) with the tool that wrote it.")
    if not np.all(np.isfinite(origin)):
        raise InputError(path, f"declares the origin {origin.tolist()}, which is not finite.",
                         "Fix the header (qoffset / origin) with the tool that wrote it.")
    if not np.all(np.isfinite(direction)) or abs(np.linalg.det(direction)) < 1e-6:
        raise InputError(path, f"declares the axis directions {np.round(direction, 4).tolist()}, which "
                         "are not three independent directions.",
                         "Fix the header (qform / sform / direction) with the tool that wrote it.")
    if np.asarray(array).ndim not in (2, 3) or 0 in np.shape(array):
        raise InputError(path, f"holds an array of shape {np.shape(array)}.", "Pass a 2D or 3D image.")
    return ImageVolume(array, spacing, origin, direction, metadata)


def volume_to_sitk(volume: ImageVolume, force_3d: bool = False):
    """An :class:`ImageVolume` as a SimpleITK image (2D when it is a one-slice, in-plane volume).

    Args:
        volume: the volume; its array dtype is kept (bool becomes uint8).
        force_3d: write a one-slice volume as 3D even when it could be 2D.
    """
    import SimpleITK as sitk

    array = np.asarray(volume.array)
    if array.dtype == bool:
        array = array.astype(np.uint8)
    direction = np.asarray(volume.direction)
    in_plane = np.allclose(direction[2, :2], 0) and np.allclose(direction[:2, 2], 0) \
        and np.isclose(direction[2, 2], 1.0)
    if volume.is_2d and in_plane and not force_3d:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array[0]))
        image.SetSpacing(tuple(volume.spacing[:2]))
        image.SetOrigin(tuple(volume.origin[:2]))
        image.SetDirection(tuple(direction[:2, :2].ravel()))
        return image
    image = sitk.GetImageFromArray(np.ascontiguousarray(array))
    image.SetSpacing(tuple(volume.spacing))
    image.SetOrigin(tuple(volume.origin))
    image.SetDirection(tuple(direction.ravel()))
    return image


def save_volume(volume: ImageVolume, path: PathLike, compress: bool = True) -> Path:
    """Write ``volume`` to a NIfTI / NRRD / MetaImage file chosen by the name's ending.

    The public writer for results is ``SaliencyTrustLib.io.write_nifti`` (io-write); this small
    function serves the synthetic cohort and the tests.
    """
    import SimpleITK as sitk

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(volume_to_sitk(volume), str(path), compress)
    return path


def _read_with_nibabel(path: Path) -> ImageVolume:
    import nibabel as nib

    image = nib.load(str(path))
    data = np.asarray(image.dataobj)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim not in (2, 3):
        raise InputError(path, f"has data of shape {data.shape}; only 2D and 3D images are read.",
                         "Split the extra axes and pass one 3D volume.")
    affine = np.asarray(image.affine, float)
    lps = np.diag([-1.0, -1.0, 1.0]) @ affine[:3, :4]
    if data.ndim == 2:
        data = data[..., np.newaxis]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    spacing[spacing == 0] = 1.0
    with np.errstate(invalid="ignore", divide="ignore"):
        direction = lps[:, :3] / spacing
    return _checked_volume(np.transpose(data, (2, 1, 0)).copy(), spacing, lps[:, 3], direction,
                           {"source_path": str(path), "reader": "nibabel"})


def _check_gzip(path: Path) -> None:
    """ITK fills a truncated .gz silently with zeros; decompress the stream once to catch it."""
    import zlib

    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as handle:
            while True:
                chunk = handle.read(1 << 20)
                if not chunk:
                    break
                decompressor.decompress(chunk, 0)
                if decompressor.eof:
                    break
    except zlib.error as error:
        raise InputError(path, f"is not a valid gzip stream ({error}).",
                         "Re-create or re-transfer the file.") from error
    if not decompressor.eof:
        raise InputError(path, "is truncated: its gzip stream ends before the end-of-stream marker.",
                         "Re-create or re-transfer the file (the copy or download was cut short).")


def read_volume(path: PathLike) -> ImageVolume:
    """Read a NIfTI (``.nii``/``.nii.gz``), NRRD (``.nrrd``/``.nhdr``) or MetaImage file.

    Returns:
        :class:`ImageVolume` with the file's voxel values (dtype kept, no rescaling beyond the
        NIfTI ``scl_slope``/``scl_inter`` that ITK applies), LPS geometry, ``metadata`` holding
        ``source_path`` and ``reader`` ("SimpleITK" or "nibabel").

    Raises:
        InputError: missing, unreadable or non-scalar / 4D file.
    """
    import SimpleITK as sitk

    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist.", "Check the path (relative paths are taken from "
                         "the current directory, datalist paths from the datalist's folder).")
    if path.name.lower().endswith(".gz"):
        _check_gzip(path)
    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as itk_error:
        if path.name.lower().endswith((".nii", ".nii.gz", ".img", ".hdr")):
            try:
                return _read_with_nibabel(path)
            except InputError:
                raise
            except Exception as nib_error:  # noqa: BLE001 - reported below with both causes
                raise InputError(path, f"is not a readable NIfTI file ({nib_error}; ITK: "
                                 f"{str(itk_error).strip().splitlines()[-1]}).",
                                 "Check that the file is complete (not truncated) and re-export it.") \
                    from nib_error
        raise InputError(path, f"could not be read by SimpleITK ({str(itk_error).strip().splitlines()[-1]}).",
                         "Check that the file is complete (not truncated) and in a supported "
                         "format (NIfTI, NRRD, MetaImage).") from itk_error
    return sitk_to_volume(image, source_path=str(path), reader="SimpleITK")

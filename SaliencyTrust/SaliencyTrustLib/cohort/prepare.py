"""Reading one study into model input: image ``(1, S, S)`` (2D model) or ``(1, S, S, S)`` (3D
model) in [0, 1] and its mask on the same grid.

The image is read with :func:`SaliencyTrustLib.io.read_image` (DICOM file/series folder, NIfTI,
NRRD; a ``dicomweb:<uid>`` study is first retrieved into a cache folder; a ``.npy`` array ``(J, I)``
or ``(K, J, I)`` is taken as is), scaled to [0, 1] like :mod:`SaliencyTrustLib.transforms` does for
the bundle's models, and resampled to ``input_size`` per axis (bilinear / trilinear; the mask
nearest-neighbour), so that maps, masks and inputs share one grid, axes ``(J, I)`` for a
radiograph and ``(K, J, I)`` for a volume. A 2D model takes single-slice images, a 3D model
volumes; the other kind is refused with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from .sources import Cohort, StudyRef


@dataclass
class PreparedStudy:
    """A study ready for the model: ``image`` ``(1, S, S)`` or ``(1, S, S, S)`` float32 in [0, 1];
    ``mask`` ``(S, S)`` or ``(S, S, S)`` bool (None without ground truth); ``original_shape`` the
    ``(K, J, I)`` shape read."""

    study_id: str
    image: np.ndarray
    mask: Optional[np.ndarray]
    original_shape: tuple


def _read_volume(path: str):
    if str(path).endswith(".npy"):  # a bare (J, I) or (K, J, I) array: benchmarks, pre-processed cohorts
        from ..image import ImageVolume

        return ImageVolume(np.load(path), metadata={"source_path": str(path)})
    from ..io import read_image

    return read_image(path)


def _fetch_dicomweb(cohort: Cohort, uid: str, cache_dir: Path) -> str:
    """Retrieve a study (WADO-RS) into ``cache_dir/dicomweb/<uid>/<series>/`` once; the series folder.

    The download goes to a temporary folder renamed when complete, so an interrupted run never
    reads half a study.
    """
    from ..io import DicomWebStore

    target = cache_dir / "dicomweb" / uid
    if not target.is_dir():
        partial = cache_dir / "dicomweb" / f".partial-{uid}"
        import shutil

        shutil.rmtree(partial, ignore_errors=True)
        DicomWebStore(cohort.dicomweb_url).pull_study(uid, partial)
        (partial / uid).rename(target)
        shutil.rmtree(partial, ignore_errors=True)
    series = sorted(p for p in target.iterdir() if p.is_dir())
    return str(series[0] if len(series) == 1 else target)


def _scale01(array: np.ndarray) -> np.ndarray:
    """Intensity scaling of the bundle's models (min-max to [0, 1]; NaN refused)."""
    from ..transforms import scale_intensity

    return np.asarray(scale_intensity(array), dtype=np.float32)


def _resize(array: np.ndarray, size: int, mode: str) -> np.ndarray:
    """``array`` (2D or 3D) resampled to ``size`` per axis: ``mode`` ``"linear"`` (bilinear /
    trilinear, for images) or ``"nearest"`` (for masks)."""
    target = (size,) * array.ndim
    if array.shape == target:
        return array
    import torch
    import torch.nn.functional as F

    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    if mode == "linear":
        mode, kwargs = ("bilinear" if array.ndim == 2 else "trilinear"), {"align_corners": False}
    else:
        kwargs = {}
    return F.interpolate(tensor, size=target, mode=mode, **kwargs)[0, 0].numpy()


def _boxes_mask(boxes, shape) -> np.ndarray:
    from ..io import boxes_to_mask

    return np.asarray(boxes_to_mask(boxes, shape), dtype=bool).reshape(shape)


def prepare_study(study: StudyRef, cohort: Cohort, input_size: int, cache_dir: Path,
                  spatial_dims: int = 2) -> PreparedStudy:
    """Read, scale and resample one study for a ``spatial_dims``-D model (raises on any problem:
    the runner reports and skips it).

    Raises:
        ValueError / InputError / OSError: unreadable image or ground truth, a volume given to a
            2D model or a single slice to a 3D model, ground truth on another grid, boxes on a
            volume.
    """
    image_path = study.image
    if image_path.startswith("dicomweb:"):
        image_path = _fetch_dicomweb(cohort, image_path.split(":", 1)[1], cache_dir)
    volume = _read_volume(image_path)
    if spatial_dims == 2 and volume.shape[0] != 1:
        raise ValueError(f"{image_path}: a {volume.shape[0]}-slice volume; the model is 2D "
                         "(evaluate radiographs or single slices, or give a 3D model).")
    if spatial_dims == 3 and volume.shape[0] == 1:
        raise ValueError(f"{image_path}: a single-slice image; the model is 3D (it takes volumes).")
    pixels = np.asarray(volume.array[0] if spatial_dims == 2 else volume.array)
    image = _resize(_scale01(pixels), input_size, "linear")
    mask = None
    if study.ground_truth:
        from ..io import read_ground_truth

        if study.ground_truth.endswith(".npy"):
            gt = np.asarray(_read_volume(study.ground_truth).array) > 0
        else:
            gt = np.asarray(read_ground_truth(study.ground_truth, volume))
        if gt.shape != volume.shape:
            raise ValueError(f"{study.ground_truth}: ground truth of shape {gt.shape} does not match the "
                             f"image {volume.shape}; resample it onto the image grid.")
        gt = gt.reshape(volume.shape).astype(bool)
        mask = gt[0] if spatial_dims == 2 else gt
    elif study.boxes:
        if spatial_dims == 3:
            raise ValueError(f"{image_path}: boxes outline a 2D image; give a volume its mask "
                             "(NIfTI, NRRD or DICOM SEG).")
        mask = _boxes_mask(study.boxes, volume.shape[1:])
    if mask is not None:
        mask = _resize(mask.astype(np.float32), input_size, "nearest") > 0.5
    return PreparedStudy(study.study_id, image[None].astype(np.float32), mask, tuple(volume.shape))


def read_mask_only(path: str, input_size: int, spatial_dims: int = 2) -> np.ndarray:
    """A ground-truth file alone (training masks of the average-mask baseline), ``(S,) *
    spatial_dims`` bool."""
    volume = _read_volume(path)
    mask = np.asarray(volume.array[0] if spatial_dims == 2 else volume.array) > 0
    return _resize(mask.astype(np.float32), input_size, "nearest") > 0.5

"""Reading one study into model input with the study's :class:`~SaliencyTrustLib.preprocessing.Preprocessing`.

The image is read with :func:`SaliencyTrustLib.io.read_image` (DICOM file/series folder, NIfTI,
NRRD; a ``dicomweb:<uid>`` study is first retrieved into a cache folder; a ``.npy`` array ``(J, I)``
or ``(K, J, I)`` is taken as is; an :class:`~SaliencyTrustLib.image.ImageVolume` is used as given),
then oriented, framed, resampled and scaled by the preprocessing into ``(C, *model grid)``; the
ground truth goes through the same geometric steps (nearest neighbour), so maps, masks and inputs
share the model grid. The :class:`~SaliencyTrustLib.preprocessing.Geometry` is kept so maps go
back onto the image's own grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ..preprocessing import Geometry, Preprocessing
from .sources import Cohort, StudyRef


@dataclass
class PreparedStudy:
    """A study ready for the model.

    Attributes:
        image: ``(C, *model grid)`` float32 network input.
        mask: bool ``model grid`` (None without ground truth).
        geometry: how the image grid maps to the model grid (inverted for native maps).
        header: the image read, with its array dropped (geometry for writing native maps).
        shortcut: bool ``model grid`` region of a known confounder (None without).
    """

    study_id: str
    image: np.ndarray
    mask: Optional[np.ndarray]
    geometry: Geometry
    header: Any
    shortcut: Optional[np.ndarray] = None

    @property
    def original_shape(self) -> tuple:
        return self.geometry.native_shape


def _read_volume(source: Any):
    from ..image import ImageVolume

    if isinstance(source, ImageVolume):
        return source
    if str(source).endswith(".npy"):  # a bare (J, I) or (K, J, I) array: benchmarks, pre-processed cohorts
        return ImageVolume(np.load(source), metadata={"source_path": str(source)})
    from ..io import read_image

    return read_image(source)


def _fetch_dicomweb(cohort: Cohort, uid: str, cache_dir: Path) -> str:
    """Retrieve a study (WADO-RS) into ``cache_dir/dicomweb/<uid>/<series>/`` once; the series folder.

    The download goes to a temporary folder renamed when complete, so an interrupted run never
    reads half a study.
    """
    from ..io import DicomWebStore
    from ..io.dicomweb import mask_url
    from ..io.safe_paths import child_path, remove_child, validate_uid

    # a UID the server listed becomes a folder name: checked, and kept inside the cache
    uid = validate_uid(uid, "StudyInstanceUID", source=mask_url(cohort.dicomweb_url))
    root = cache_dir / "dicomweb"
    target = child_path(root, uid)
    if not target.is_dir():
        name = f".partial-{uid}"
        remove_child(root, name)
        partial = child_path(root, name)
        DicomWebStore(cohort.dicomweb_url).pull_study(uid, partial)
        child_path(partial, uid).rename(target)
        remove_child(root, name)
    series = sorted(p for p in target.iterdir() if p.is_dir())
    return str(series[0] if len(series) == 1 else target)


def _boxes_mask(boxes, shape) -> np.ndarray:
    from ..io import boxes_to_mask

    return np.asarray(boxes_to_mask(boxes, shape), dtype=bool).reshape(shape)


def _mask_on_image_grid(source: Any, volume, what: str, allow_empty: bool = False) -> np.ndarray:
    """A mask (file path, ``.npy`` or bool array) as bool ``(K, J, I)`` on ``volume``'s grid
    (``allow_empty``: an all-zero file is a valid answer, e.g. no marker on this image)."""
    if isinstance(source, np.ndarray):
        mask, name = source, f"the {what} array"
    elif str(source).endswith(".npy"):
        mask, name = np.asarray(_read_volume(source).array) > 0, source
    else:
        from ..io import read_ground_truth

        mask, name = np.asarray(read_ground_truth(source, volume, allow_empty=allow_empty)), source
    if mask.size != int(np.prod(volume.shape)):
        raise ValueError(f"{name}: {what} of shape {mask.shape} does not match the image "
                         f"{volume.shape}; resample it onto the image grid.")
    return mask.reshape(volume.shape).astype(bool)


def _ground_truth(study: StudyRef, volume, spatial_dims: int) -> Optional[np.ndarray]:
    """The study's ground truth as bool ``(K, J, I)`` on the image grid (None without)."""
    if study.ground_truth is not None:          # a negative study's mask is empty by right
        return _mask_on_image_grid(study.ground_truth, volume, "ground truth", allow_empty=study.label == 0)
    if study.boxes:
        if spatial_dims == 3:
            raise ValueError(f"{study.study_id}: boxes outline a 2D image; give a volume its mask "
                             "(NIfTI, NRRD or DICOM SEG).")
        return _boxes_mask(study.boxes, volume.shape[1:])[None]
    return None


def prepare_study(study: StudyRef, cohort: Cohort, preprocessing: Preprocessing, cache_dir: Path,
                  spatial_dims: int = 2) -> PreparedStudy:
    """Read and preprocess one study for a ``spatial_dims``-D model (raises on any problem: the
    runner reports and skips it).

    Raises:
        ValueError / InputError / OSError: unreadable image or ground truth, a volume given to a
            2D model or a single slice to a 3D model, ground truth on another grid, boxes on a
            volume.
    """
    source = study.image
    if isinstance(source, str) and source.startswith("dicomweb:"):
        source = _fetch_dicomweb(cohort, source.split(":", 1)[1], cache_dir)
    volume = _read_volume(source)
    try:
        image, geometry = preprocessing.image_to_model(volume, spatial_dims)
    except ValueError as error:
        raise ValueError(f"{source if isinstance(source, str) else study.study_id}: {error}") from None
    gt = _ground_truth(study, volume, spatial_dims)
    mask = None if gt is None else preprocessing.mask_to_model(gt, geometry)
    shortcut = None
    if study.shortcut is not None:
        shortcut = preprocessing.mask_to_model(_mask_on_image_grid(study.shortcut, volume, "shortcut mask",
                                                                        allow_empty=True), geometry)
    return PreparedStudy(study.study_id, image, mask, geometry, _header(volume), shortcut)


def _header(volume):
    """``volume``'s geometry and metadata without its voxels (kept for writing native maps)."""
    from ..image import ImageVolume

    return ImageVolume(np.zeros((1, 1, 1), np.uint8), volume.spacing, volume.origin, volume.direction,
                       dict(volume.metadata))


def read_mask_only(path: str, preprocessing: Preprocessing, spatial_dims: int = 2) -> np.ndarray:
    """A ground-truth file alone (training masks of the average-mask baseline), bool on the model
    grid, through the same orientation and geometry steps as an image."""
    volume = _read_volume(path)
    geometry = preprocessing.geometry(volume, spatial_dims)
    return preprocessing.mask_to_model(np.asarray(volume.array) > 0, geometry)

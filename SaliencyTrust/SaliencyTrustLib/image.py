"""The one in-memory image model of SaliencyTrust: a voxel array and its geometry.

Conventions (used by every reader, writer, front end and the Slicer Logic):

* ``array`` is indexed ``(K, J, I)`` = (slice, row, column), the order of
  ``SimpleITK.GetArrayFromImage``, ``nibabel``'s transposed data and ``slicer.util.arrayFromVolume``.
  A single radiograph is a volume with ``K == 1``.
* ``spacing`` is ``(sI, sJ, sK)`` in millimetres, i.e. column spacing, row spacing, slice spacing
  (the order of ITK / SimpleITK ``GetSpacing``).
* ``origin`` is the patient-space position, in millimetres, of the centre of voxel ``(0, 0, 0)``.
* ``direction`` is a 3x3 matrix whose *columns* are the unit vectors of the I, J, K axes.
* Patient space is **LPS** (DICOM, ITK). Slicer works in RAS: :meth:`ijk_to_ras` flips the first two
  axes. Nothing else in the package uses RAS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Sequence

import numpy as np

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class ImageVolume:
    """A voxel array with its patient-space geometry (see the module docstring for conventions).

    Args:
        array: ``(K, J, I)`` voxel values (any numeric dtype; readers give float32 after the
            modality and VOI transforms they document).
        spacing: ``(sI, sJ, sK)`` voxel size in mm.
        origin: LPS position of the centre of voxel ``(0, 0, 0)`` in mm.
        direction: 3x3, columns = LPS unit vectors of the I, J, K axes.
        metadata: free-form facts kept from the source (``source_path``, ``SeriesInstanceUID``,
            ``Modality`` ...), never needed for geometry.
    """

    array: np.ndarray
    spacing: Sequence[float] = (1.0, 1.0, 1.0)
    origin: Sequence[float] = (0.0, 0.0, 0.0)
    direction: np.ndarray = field(default_factory=lambda: np.eye(3))
    metadata: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.ndim != 3:
            raise ValueError(
                f"ImageVolume.array must be (K, J, I) or (J, I); got shape {array.shape}. "
                "Squeeze channel axes before building an ImageVolume."
            )
        self.array = array
        self.spacing = tuple(float(s) for s in self.spacing)
        self.origin = tuple(float(o) for o in self.origin)
        self.direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        if len(self.spacing) != 3 or len(self.origin) != 3:
            raise ValueError("ImageVolume.spacing and .origin must have 3 values (I, J, K order).")
        if min(self.spacing) <= 0:
            raise ValueError(f"ImageVolume.spacing must be positive; got {self.spacing}.")

    @property
    def shape(self) -> tuple:
        """``(K, J, I)``."""
        return tuple(self.array.shape)

    @property
    def is_2d(self) -> bool:
        """True for a single-slice image (a radiograph)."""
        return self.array.shape[0] == 1

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix mapping homogeneous ``(i, j, k, 1)`` voxel indices to LPS mm."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.direction @ np.diag(self.spacing)
        matrix[:3, 3] = self.origin
        return matrix

    def ijk_to_ras(self) -> np.ndarray:
        """4x4 matrix mapping ``(i, j, k, 1)`` to RAS mm (the matrix a Slicer volume node holds)."""
        return LPS_TO_RAS @ self.ijk_to_lps()

    def same_grid(self, other: "ImageVolume", atol: float = 1e-3) -> bool:
        """True when ``other`` has the same shape and geometry (within ``atol`` mm / cosine)."""
        return (
            self.shape == other.shape
            and np.allclose(self.spacing, other.spacing, atol=atol)
            and np.allclose(self.origin, other.origin, atol=atol)
            and np.allclose(self.direction, other.direction, atol=atol)
        )

    def with_array(self, array: np.ndarray, **metadata: Any) -> "ImageVolume":
        """A new volume on the same grid holding ``array`` (same ``(K, J, I)`` shape)."""
        array = np.asarray(array)
        if array.ndim == 2:
            array = array[np.newaxis]
        if array.shape != self.shape:
            raise ValueError(f"with_array: shape {array.shape} differs from the grid {self.shape}.")
        return ImageVolume(array, self.spacing, self.origin, self.direction.copy(),
                           {**self.metadata, **metadata})

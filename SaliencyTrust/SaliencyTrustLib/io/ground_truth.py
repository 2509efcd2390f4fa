"""Ground truth of a case as a bool ``(K, J, I)`` mask on the image's grid.

:func:`read_ground_truth` takes any of:

* **DICOM SEG** (highdicom): the segment chosen by ``segment`` (number, label, or ``"all"`` for the
  union; required when the SEG has several). A SEG must reference the image's series; one that
  references another series is an error unless ``allow_other_series=True``, in which case it is
  placed by geometry (same FrameOfReferenceUID required).
* **RTSTRUCT**: the ROI chosen by ``roi`` (name, number or ``"all"``); each CLOSED_PLANAR contour is
  mapped from LPS mm into the image's voxel grid and rasterized on its slice (a voxel is inside
  when its centre is, ``skimage.draw.polygon``); several contours on a slice combine by the
  even-odd rule (inner contours are holes).
* **NIfTI / NRRD / MetaImage label maps**: voxels ``> 0`` (or ``== label``); a map on another grid is
  resampled (nearest neighbour) with its geometry; one that does not overlap the image is an error.
* **DICOM SR TID 1500** planar ROIs (SCOORD polylines / polygons / circles / ellipses / points on a
  referenced image, or SCOORD3D in LPS).
* **CSV**: the RSNA box layout (``patientId,x,y,width,height,Target``, boxes of one image unioned)
  or the SIIM run-length layout (``ImageId,EncodedPixels``), for the case ``case_id`` (default:
  the image's PatientID for RSNA, its SOPInstanceUID for SIIM).

An empty ground-truth mask is an :class:`InputError` naming the file (``allow_empty=True`` returns
it). Box conventions (``boxes_to_mask``): ``(x, y, width, height)`` in pixels, ``x`` along columns (I),
``y`` along rows (J); a box covers the pixels whose centres fall in ``[x, x + w) x [y, y + h)``
after rounding the corners (``round(x) .. round(x + w) - 1``), or, with ``study_scaling=True``, the
reference study's rule: corners ``int(size * c / (original_size - 1))`` rasterized inclusively.
SIIM run-length: pairs ``(offset, length)`` with each offset relative to the end of the previous
run, over the pixels in column-major order (``index = column * H + row``); ``"-1"`` means empty.
"""

from __future__ import annotations

import csv
import os
import sqlite3
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from ..image import ImageVolume
from .dicom_checks import number, numbers
from .errors import InputError, InputWarning

PathLike = Union[str, os.PathLike]
Box = Tuple[float, float, float, float]

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
RSNA_COLUMNS = ("patientId", "x", "y", "width", "height")
SIIM_COLUMNS = ("ImageId", "EncodedPixels")


# ------------------------------------------------------------------------------------ RSNA boxes
def read_rsna_boxes(csv_path: PathLike) -> Dict[str, List[Box]]:
    """Boxes per image from a CSV in the RSNA Pneumonia layout.

    Args:
        csv_path: CSV with columns ``patientId,x,y,width,height`` (``Target`` optional; extra
            columns ignored). Rows with an empty box (negatives) give an empty list.

    Returns:
        ``{patientId: [(x, y, width, height), ...]}`` in file order, floats in pixels.

    Raises:
        InputError: missing file or columns, or a value that is not a number (row named).
    """
    path = Path(csv_path)
    rows = _read_csv(path, RSNA_COLUMNS, "the RSNA layout patientId,x,y,width,height,Target")
    boxes: Dict[str, List[Box]] = {}
    for number, row in rows:
        patient = row["patientId"].strip()
        values = [row[k].strip() for k in ("x", "y", "width", "height")]
        boxes.setdefault(patient, [])
        if not any(values):
            continue
        try:
            x, y, w, h = (float(v) for v in values)
        except ValueError as error:
            raise InputError(path, f"row {number}: box {values} of {patient} is not four numbers.",
                             "Write x,y,width,height as numbers, or leave all four empty for a "
                             "negative image.") from error
        if not all(np.isfinite((x, y, w, h))):
            raise InputError(path, f"row {number}: box {values} of {patient} is not four finite numbers.",
                             "Write x,y,width,height as pixel numbers.")
        if w <= 0 or h <= 0:
            raise InputError(path, f"row {number}: box of {patient} has width {w:g}, height {h:g}.",
                             "Widths and heights must be positive pixels.")
        boxes[patient].append((x, y, w, h))
    return boxes


def read_boxes_3d(csv_path: PathLike) -> Dict[str, List[Tuple[float, ...]]]:
    """3D boxes ``(x, y, z, width, height, depth)`` per case from an RSNA-layout CSV with the extra
    columns ``z,depth`` (slices, as ``saliency-trust synth --kind ct`` writes)."""
    path = Path(csv_path)
    rows = _read_csv(path, RSNA_COLUMNS + ("z", "depth"), "the RSNA layout with z,depth columns")
    boxes: Dict[str, List[Tuple[float, ...]]] = {}
    for number, row in rows:
        patient = row["patientId"].strip()
        values = [row[k].strip() for k in ("x", "y", "z", "width", "height", "depth")]
        boxes.setdefault(patient, [])
        if not any(values):
            continue
        try:
            box = tuple(float(v) for v in values)
        except ValueError as error:
            raise InputError(path, f"row {number}: box {values} of {patient} is not six numbers.",
                             "Write x,y,z,width,height,depth as numbers or leave them empty.") from error
        if not all(np.isfinite(box)) or min(box[3:]) <= 0:
            raise InputError(path, f"row {number}: box {values} of {patient} is not six finite numbers "
                             "with a positive width, height and depth.",
                             "Write x,y,z,width,height,depth as pixel / slice numbers.")
        boxes[patient].append(box)
    return boxes


def _csv_records(path: Path) -> List[List[str]]:
    """Every record of a CSV file (UTF-8, a byte-order mark allowed), header first.

    Raises:
        InputError: missing file, text that is not UTF-8, or a record the csv module refuses
            (a NUL byte, an unclosed quote at the end).
    """
    if not path.exists():
        raise InputError(path, "does not exist.", "Check the path of the ground-truth CSV.")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    except UnicodeDecodeError as error:
        raise InputError(path, f"is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
                         f"{error.start}).", "Save the CSV as UTF-8 (plain ASCII is UTF-8).") from error
    except csv.Error as error:
        raise InputError(path, f"is not a readable CSV file ({error}).",
                         "Save it as a comma-separated text file.") from error


def _read_csv(path: Path, required: Sequence[str], layout: str) -> List[Tuple[int, Dict[str, str]]]:
    records = _csv_records(path)
    fields = [f.strip() for f in (records[0] if records else [])]
    missing = [c for c in required if c not in fields]
    if missing:
        raise InputError(path, f"lacks the column(s) {missing} (found {fields}).",
                         f"Give a CSV in {layout}.")
    rows = []
    for number, record in enumerate(records[1:], start=2):
        if not record:      # a blank line
            continue
        rows.append((number, {name: (record[i] if i < len(record) else "")
                              for i, name in enumerate(fields)}))
    return rows


def rsna_study_corners(box: Box, size: int, original_size: int = 1024) -> Tuple[int, int, int, int]:
    """The reference study's scaling of an RSNA box to a ``size`` px image: ``int(size * c / (N - 1))``.

    Returns:
        ``(x0, y0, x1, y1)`` inclusive pixel corners (the study used 320 and N = 1024).
    """
    x, y, w, h = box
    scale = lambda c: int(size * c / (original_size - 1))  # noqa: E731 - the study's formula verbatim
    return scale(x), scale(y), scale(x + w), scale(y + h)


def boxes_to_mask(boxes: Sequence[Box], shape: Sequence[int], *, scale: Union[float, Sequence[float]] = 1.0,
                  study_scaling: bool = False, original_size: int = 1024,
                  path: Optional[PathLike] = None) -> np.ndarray:
    """Union of boxes rasterized on a grid (see the module docstring for the pixel rule).

    Args:
        boxes: ``(x, y, width, height)`` in pixels of the image the boxes were drawn on.
        shape: ``(H, W)`` or ``(K, H, W)`` of the output; with K > 1 every slice gets the boxes.
        scale: factor(s) ``(sx, sy)`` (or one for both) from the boxes' pixels to the output's,
            e.g. ``320 / 1024`` (ignored when ``study_scaling``).
        study_scaling: use :func:`rsna_study_corners` with ``size = W`` (square images) and inclusive
            corners, as the reference study did.
        original_size: the edge of the image the boxes were drawn on, for ``study_scaling``.
        path: file the boxes came from, named in warnings and errors.

    Returns:
        bool array of ``shape``.

    Raises:
        InputError: a box lies wholly outside the image. A box partly outside is clipped with an
            :class:`InputWarning`.
    """
    shape = tuple(int(s) for s in shape)
    height, width = shape[-2:]
    plane = np.zeros((height, width), dtype=bool)
    sx, sy = (scale, scale) if np.isscalar(scale) else tuple(scale)
    for box in boxes:
        factors = [width / (original_size - 1)] * 4 if study_scaling else [sx, sy, sx, sy]
        with np.errstate(over="ignore", invalid="ignore"):
            corners = np.asarray([box[0], box[1], box[0] + box[2], box[1] + box[3]], dtype=float) \
                * np.asarray(factors, dtype=float)
        if not np.all(np.isfinite(corners)):
            raise InputError(path, f"box {tuple(box)} (scale {scale}) has a corner that is not a finite "
                             "number of pixels.", "Check the box values and the scale.")
        if study_scaling:
            x0, y0, x1, y1 = rsna_study_corners(box, width, original_size)
            x1, y1 = x1 + 1, y1 + 1
        else:
            x, y, w, h = box
            x0, y0 = int(round(x * sx)), int(round(y * sy))
            x1, y1 = int(round((x + w) * sx)), int(round((y + h) * sy))
            x1, y1 = max(x1, x0 + 1), max(y1, y0 + 1)  # a sub-pixel box still marks its pixel
        if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
            raise InputError(path, f"box {tuple(box)} lies wholly outside the {width}x{height} image "
                             f"(pixels x {x0}..{x1 - 1}, y {y0}..{y1 - 1}).",
                             "Check the box units (pixels of the original image) and the scale / "
                             "study_scaling options, and that the box belongs to this image.")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            warnings.warn(f"{path if path is not None else 'boxes'}: box {tuple(box)} extends past the "
                          f"{width}x{height} image and was clipped.", InputWarning, stacklevel=2)
        plane[max(y0, 0):min(y1, height), max(x0, 0):min(x1, width)] = True
    return np.broadcast_to(plane, shape).copy() if len(shape) == 3 else plane


# ------------------------------------------------------------------------------------ SIIM RLE
def rle_decode(rle: str, shape: Sequence[int]) -> np.ndarray:
    """Decode one SIIM-ACR run-length string into a bool ``(H, W)`` mask (``"-1"`` -> empty).

    The SIIM layout (``mask_functions.rle2mask``): space-separated pairs ``offset length``; each
    offset counts from the end of the previous run; pixels run in column-major order.
    """
    height, width = int(shape[-2]), int(shape[-1])
    flat = np.zeros(height * width, dtype=bool)
    text = (rle or "").strip()
    if text in ("", "-1"):
        return flat.reshape(width, height).T.copy()
    try:
        numbers = [int(v) for v in text.split()]
    except ValueError as error:
        raise ValueError(f"run-length string holds a non-integer: {text[:60]!r}") from error
    if len(numbers) % 2:
        raise ValueError(f"run-length string has an odd count of numbers ({len(numbers)}).")
    position = 0
    for offset, length in zip(numbers[0::2], numbers[1::2]):
        position += offset
        if position < 0 or length < 0 or position + length > flat.size:
            raise ValueError(f"run ({offset}, {length}) ends at pixel {position + length}, past the "
                             f"{height}x{width} image ({flat.size} pixels): wrong image size?")
        flat[position:position + length] = True
        position += length
    return flat.reshape(width, height).T.copy()


def rle_encode(mask: np.ndarray) -> str:
    """Encode a ``(H, W)`` mask in the SIIM layout (inverse of :func:`rle_decode`; empty -> ``"-1"``)."""
    flat = np.asarray(mask, dtype=bool).T.ravel()
    padded = np.concatenate([[False], flat, [False]])
    changes = np.flatnonzero(padded[1:] != padded[:-1])
    if changes.size == 0:
        return "-1"
    starts, ends = changes[0::2], changes[1::2]
    offsets = starts - np.concatenate([[0], ends[:-1]])
    return " ".join(f"{o} {l}" for o, l in zip(offsets, ends - starts))


def read_siim_rle(csv_path: PathLike) -> Dict[str, List[str]]:
    """Run-length strings per image from a SIIM-ACR ``train-rle.csv`` (``ImageId, EncodedPixels``).

    Header names are stripped (the SIIM file writes ``" EncodedPixels"``). Several rows of one image
    (several regions) are kept as a list; ``"-1"`` rows give an empty list.
    """
    path = Path(csv_path)
    rows = _read_csv(path, SIIM_COLUMNS, "the SIIM layout ImageId,EncodedPixels")
    masks: Dict[str, List[str]] = {}
    for _, row in rows:
        image_id, encoded = row["ImageId"].strip(), row["EncodedPixels"].strip()
        masks.setdefault(image_id, [])
        if encoded not in ("", "-1"):
            masks[image_id].append(encoded)
    return masks


def siim_mask(rles: Sequence[str], shape: Sequence[int], path: Optional[PathLike] = None) -> np.ndarray:
    """Union of SIIM run-length strings as a bool ``(H, W)`` mask."""
    mask = np.zeros((int(shape[-2]), int(shape[-1])), dtype=bool)
    for number, rle in enumerate(rles):
        try:
            mask |= rle_decode(rle, shape)
        except ValueError as error:
            raise InputError(path, f"run-length mask #{number + 1}: {error}",
                             "Check that the CSV belongs to this image (SIIM masks are 1024x1024).") \
                from error
    return mask


# ------------------------------------------------------------------------------------ geometry
def _array_affine(volume: ImageVolume) -> np.ndarray:
    """4x4 mapping array-order indices ``(k, j, i, 1)`` to LPS."""
    permute = np.zeros((4, 4))
    permute[0, 2] = permute[1, 1] = permute[2, 0] = permute[3, 3] = 1.0
    return volume.ijk_to_lps() @ permute


def _reference_points(reference: ImageVolume, k: int) -> np.ndarray:
    """LPS (4, J*I) homogeneous coordinates of the voxel centres of slice ``k``."""
    _, rows, cols = reference.shape
    jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    ijk = np.stack([ii.ravel(), jj.ravel(), np.full(ii.size, k), np.ones(ii.size)])
    return reference.ijk_to_lps() @ ijk


def resample_to_reference(values: np.ndarray, affine: np.ndarray, reference: ImageVolume,
                          order: int = 0) -> np.ndarray:
    """Sample ``values`` (3D, array-order indices mapped to LPS by ``affine``) at ``reference``'s voxels.

    Args:
        values: 3D array.
        affine: 4x4, ``values``' array indices ``(a0, a1, a2, 1)`` -> LPS mm.
        reference: the target grid.
        order: 0 nearest neighbour (labels), 1 linear.

    Returns:
        array of ``reference.shape`` (0 outside ``values``).
    """
    from scipy import ndimage

    inverse = np.linalg.inv(affine)
    out = np.zeros(reference.shape, dtype=values.dtype if order == 0 else np.float32)
    source = values.astype(np.float32) if values.dtype == bool else values
    for k in range(reference.shape[0]):
        indices = (inverse @ _reference_points(reference, k))[:3]
        sampled = ndimage.map_coordinates(source, indices, order=order, mode="constant", cval=0)
        out[k] = sampled.reshape(reference.shape[1:])
    return out


def _check_frame_of_reference(path: PathLike, theirs: Optional[str], reference: ImageVolume) -> None:
    ours = reference.metadata.get("FrameOfReferenceUID")
    if theirs and ours and str(theirs) != str(ours):
        raise InputError(path, f"is in frame of reference {theirs} but the image is in {ours}: the "
                         "ground truth was drawn on another acquisition.",
                         "Use the ground truth drawn on this image, or register it to this image first.")


def label_map_to_mask(label_map: ImageVolume, reference: ImageVolume, label: Optional[int] = None,
                      path: Optional[PathLike] = None) -> np.ndarray:
    """A label-map volume as a bool mask on ``reference``'s grid (resampled when the grids differ)."""
    values = np.asarray(label_map.array)
    selected = values > 0 if label is None else values == label
    if label_map.same_grid(reference):
        return selected.copy()
    _check_frame_of_reference(path, label_map.metadata.get("FrameOfReferenceUID"), reference)
    if label_map.is_2d and reference.is_2d and label_map.shape == reference.shape:
        # 2D images without patient geometry (radiographs): the pixel grids are what matter.
        return selected.copy()
    resampled = resample_to_reference(selected.astype(np.uint8), _array_affine(label_map), reference) > 0
    if selected.any() and not resampled.any():
        raise InputError(path, f"does not overlap the image once placed by its geometry (label map "
                         f"origin {np.round(label_map.origin, 1).tolist()} spacing "
                         f"{np.round(label_map.spacing, 3).tolist()}, image origin "
                         f"{np.round(reference.origin, 1).tolist()}): another frame of reference?",
                         "Use the label map drawn on this image (same geometry), or register it first.")
    return resampled


# ------------------------------------------------------------------------------------ DICOM SEG
def _choose(options: Dict[int, str], wanted, path, what: str, keyword: str) -> List[int]:
    listing = ", ".join(f"{number} '{name}'" for number, name in options.items())
    if wanted is None:
        if len(options) == 1:
            return list(options)
        raise InputError(path, f"holds {len(options)} {what}s ({listing}).",
                         f"Pass {keyword}=<number or name> to pick one, or {keyword}='all' for their union.")
    if isinstance(wanted, str) and wanted.lower() == "all":
        return list(options)
    for number, name in options.items():
        if wanted == number or (isinstance(wanted, str) and wanted.strip().lower() == name.strip().lower()):
            return [number]
    raise InputError(path, f"has no {what} {wanted!r} (it holds {listing}).", f"Pass one of them as {keyword}=.")


#: What highdicom raises on a SEG whose content does not hold together (frames that collide, a
#: frame lookup its SQLite index cannot answer...): turned into an InputError naming the file.
_HIGHDICOM_ERRORS = (ValueError, KeyError, IndexError, RuntimeError, AttributeError, TypeError,
                     sqlite3.Error)


def _check_seg(dataset, path: Path) -> None:
    """The SEG structure highdicom relies on, checked before it reads the object.

    Raises:
        InputError: no segment, segment numbers that are not unique positive integers, a frame
            without a segment identification or naming a segment that does not exist, or plane
            positions given for some frames only.
    """
    segments = dataset.get("SegmentSequence", None) or []
    if not segments:
        raise InputError(path, "is a SEG without segments (empty SegmentSequence).", "Re-export the segmentation.")
    numbers_ = [number(item, "SegmentNumber", path, int, where=f"SegmentSequence item {i + 1}: ")
                for i, item in enumerate(segments)]
    if len(set(numbers_)) != len(numbers_) or min(numbers_) < 1:
        raise InputError(path, f"has segment numbers {numbers_}; they must be unique and start at 1.",
                         "Re-export the segmentation.")
    frames = number(dataset, "NumberOfFrames", path, int, default=1)
    labelmap = str(dataset.get("SegmentationType", "")).strip() == "LABELMAP"
    with_position = 0
    for index in range(frames):
        identification = _functional_group_item(dataset, index, "SegmentIdentificationSequence")
        if not labelmap:
            if identification is None:
                raise InputError(path, f"frame {index + 1} has no SegmentIdentificationSequence (which "
                                 "segment it belongs to).", "Re-export the segmentation.")
            referenced = number(identification, "ReferencedSegmentNumber", path, int,
                                where=f"frame {index + 1}: ")
            if referenced not in numbers_:
                raise InputError(path, f"frame {index + 1} belongs to segment {referenced}, which the SEG "
                                 f"does not describe (segments {numbers_}).", "Re-export the segmentation.")
        position = _functional_group_item(dataset, index, "PlanePositionSequence")
        if position is not None and "ImagePositionPatient" in position:
            number_list = numbers(position, "ImagePositionPatient", path, count=3,
                                  where=f"frame {index + 1}: ")
            with_position += number_list is not None
    if 0 < with_position < frames:
        raise InputError(path, f"gives a plane position to {with_position} of its {frames} frames; all "
                         "or none must have one.", "Re-export the segmentation.")


def _functional_group_item(dataset, index: int, keyword: str):
    """The first item of ``keyword`` in frame ``index``'s per-frame group, else the shared group."""
    for sequence_keyword, position in (("PerFrameFunctionalGroupsSequence", index),
                                       ("SharedFunctionalGroupsSequence", 0)):
        groups = dataset.get(sequence_keyword, None)
        if groups is not None and len(groups) > position:
            items = groups[position].get(keyword, None)
            if items:
                return items[0]
    return None


def _segread(path: PathLike):
    """Read a SEG: :func:`read_dataset`'s checks, :func:`_check_seg`, then highdicom.

    SEGs of radiographs whose Pixel Measures lack SliceThickness are tolerated: highdicom (0.28)
    writes such SEGs (no frame of reference: no thickness) but refuses to read them back; the
    missing, meaningless thickness is filled with 1 mm in memory.
    """
    import highdicom as hd

    from .dicom_read import read_dataset

    dataset = read_dataset(path)
    _check_seg(dataset, Path(path))
    for keyword in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for group in dataset.get(keyword, None) or []:
            for item in group.get("PixelMeasuresSequence", None) or []:
                if "SliceThickness" not in item:
                    item.SliceThickness = 1.0
    return hd.seg.Segmentation.from_dataset(dataset, copy=False)


def read_seg(path: PathLike, reference: ImageVolume, segment=None,
             allow_other_series: bool = False) -> np.ndarray:
    """A DICOM SEG as a bool mask on ``reference``'s grid (see the module docstring)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            seg = _segread(path)
        options = {n: str(seg.get_segment_description(n).segment_label) for n in seg.get_segment_numbers()}
    except InputError:
        raise
    except _HIGHDICOM_ERRORS as error:
        raise InputError(path, f"is not a readable DICOM SEG ({type(error).__name__}: {error}).",
                         "Re-export the segmentation.") from error
    segment_numbers = _choose(options, segment, path, "segment", "segment")
    referenced = [str(item.get("SeriesInstanceUID", "")) for item in seg.get("ReferencedSeriesSequence", None) or []]
    series = reference.metadata.get("SeriesInstanceUID")
    same_series = series is not None and series in referenced
    if not same_series:
        if not allow_other_series:
            raise InputError(path, f"references series {', '.join(referenced) or '(none)'}, not the image's "
                             f"series {series or '(unknown: the image was not read from DICOM)'}.",
                             "Pass the SEG made on this image, or allow_other_series=True to place it "
                             "by geometry (same frame of reference needed).")
        return _seg_by_geometry(seg, segment_numbers, reference, path)
    sops = reference.metadata.get("SOPInstanceUIDs") or []
    frames = reference.metadata.get("frame_numbers")
    try:
        if frames and len(set(sops)) == 1:
            pixels = seg.get_pixels_by_source_frame(sops[0], source_frame_numbers=list(frames),
                                                    segment_numbers=segment_numbers, combine_segments=True,
                                                    relabel=True, skip_overlap_checks=True)
        else:
            pixels = seg.get_pixels_by_source_instance(sops, segment_numbers=segment_numbers,
                                                       combine_segments=True, relabel=True,
                                                       skip_overlap_checks=True)
    except _HIGHDICOM_ERRORS as error:
        if reference.metadata.get("resampled_along_k") or "FrameOfReferenceUID" in seg:
            return _seg_by_geometry(seg, segment_numbers, reference, path)
        raise InputError(path, f"could not be matched to the image's instances ({error}).",
                         "Pass the SEG made on this very series.") from error
    mask = np.asarray(pixels) > 0
    if mask.shape != reference.shape:
        if "FrameOfReferenceUID" in seg:
            return _seg_by_geometry(seg, segment_numbers, reference, path)
        raise InputError(path, f"gives a {mask.shape} mask for a {reference.shape} image.",
                         "Pass the SEG made on this very image.")
    return mask


def _seg_by_geometry(seg, segment_numbers: List[int], reference: ImageVolume, path) -> np.ndarray:
    if "FrameOfReferenceUID" not in seg or not reference.metadata.get("FrameOfReferenceUID"):
        raise InputError(path, "cannot be placed by geometry: the SEG or the image has no frame of "
                         "reference (a radiograph?).", "Pass the SEG made on this very image.")
    _check_frame_of_reference(path, seg.FrameOfReferenceUID, reference)
    try:
        volume = seg.get_volume(segment_numbers=segment_numbers, combine_segments=True, relabel=True,
                                skip_overlap_checks=True)
        affine = np.asarray(volume.affine, dtype=float)
        np.linalg.inv(affine)
    except (np.linalg.LinAlgError, *_HIGHDICOM_ERRORS) as error:
        raise InputError(path, f"cannot be placed by geometry ({type(error).__name__}: {error}).",
                         "Pass the SEG made on this very image.") from error
    return resample_to_reference(np.asarray(volume.array) > 0, affine, reference) > 0


# ------------------------------------------------------------------------------------ RTSTRUCT
def _rasterize_polygon(plane: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> None:
    from skimage.draw import polygon

    rr, cc = polygon(rows, cols, shape=plane.shape)
    inside = np.zeros_like(plane)
    inside[rr, cc] = True
    if not inside.any():  # a contour smaller than a pixel still marks the pixel it sits on
        r, c = int(round(float(np.mean(rows)))), int(round(float(np.mean(cols))))
        if 0 <= r < plane.shape[0] and 0 <= c < plane.shape[1]:
            inside[r, c] = True
    plane ^= inside


def read_rtstruct(path: PathLike, reference: ImageVolume, roi=None) -> np.ndarray:
    """RTSTRUCT contours of one ROI rasterized on ``reference``'s grid (see the module docstring)."""
    from .dicom_read import read_dataset

    dataset = read_dataset(path, force=True)
    rois: Dict[int, str] = {}
    frames_of_reference: Dict[int, str] = {}
    for index, item in enumerate(dataset.get("StructureSetROISequence", None) or []):
        number_ = number(item, "ROINumber", path, int, where=f"StructureSetROISequence item {index + 1}: ")
        rois[number_] = str(item.get("ROIName", ""))
        frames_of_reference[number_] = str(item.get("ReferencedFrameOfReferenceUID", "") or "")
    if not rois:
        raise InputError(path, "holds no ROI (empty StructureSetROISequence).", "Export the structure set with its ROIs.")
    numbers_ = _choose(rois, roi, path, "ROI", "roi")
    for chosen in numbers_:
        _check_frame_of_reference(path, frames_of_reference[chosen] or None, reference)
    inverse = np.linalg.inv(reference.ijk_to_lps())
    mask = np.zeros(reference.shape, dtype=bool)
    found = False
    for index, item in enumerate(dataset.get("ROIContourSequence", None) or []):
        where = f"ROIContourSequence item {index + 1}: "
        if number(item, "ReferencedROINumber", path, int, where=where) not in numbers_:
            continue
        planes: Dict[int, np.ndarray] = {}
        for contour in item.get("ContourSequence", None) or []:
            values = numbers(contour, "ContourData", path, where=where, default=[])
            if len(values) % 3:
                raise InputError(path, f"{where}ContourData holds {len(values)} values, not (x, y, z) "
                                 "triplets.", "Re-export the structure set.")
            points = np.asarray(values, dtype=float).reshape(-1, 3)
            found = found or len(points) > 0
            if str(contour.get("ContourGeometricType", "CLOSED_PLANAR")) == "POINT" or len(points) < 3:
                continue
            with np.errstate(over="ignore", invalid="ignore"):
                ijk = (inverse @ np.vstack([points.T, np.ones(len(points))]))[:3]
            k = float(np.mean(ijk[2]))
            if not np.all(np.isfinite(ijk)) or not -0.5 <= k < reference.shape[0] - 0.5:
                continue   # a contour off the image's slices (the mask may end up empty: an error)
            slice_index = int(round(k))
            plane = planes.setdefault(slice_index, np.zeros(reference.shape[1:], dtype=bool))
            _rasterize_polygon(plane, ijk[1], ijk[0])
        for slice_index, plane in planes.items():
            mask[slice_index] |= plane
    if not found:
        raise InputError(path, f"ROI {[rois[n] for n in numbers_]} has no contour.",
                         "Pick an ROI with contours (roi=...).")
    return mask


# ------------------------------------------------------------------------------------ SR TID 1500
def _draw_region(plane: np.ndarray, graphic_type: str, points: np.ndarray) -> None:
    """Draw an SCOORD region given as (N, 2) (column, row) pixel coordinates (DICOM: origin at the
    top-left corner of the top-left pixel, so pixel centres are at +0.5)."""
    from skimage.draw import ellipse

    cols, rows = points[:, 0] - 0.5, points[:, 1] - 0.5
    if graphic_type in ("POLYLINE", "POLYGON"):
        _rasterize_polygon(plane, rows, cols)
    elif graphic_type == "CIRCLE":
        radius = float(np.hypot(cols[1] - cols[0], rows[1] - rows[0]))
        rr, cc = ellipse(rows[0], cols[0], radius, radius, shape=plane.shape)
        plane[rr, cc] = True
    elif graphic_type == "ELLIPSE":
        centre_r, centre_c = float(np.mean(rows[:2])), float(np.mean(cols[:2]))
        major = np.hypot(cols[1] - cols[0], rows[1] - rows[0]) / 2
        minor = np.hypot(cols[3] - cols[2], rows[3] - rows[2]) / 2
        angle = np.arctan2(rows[1] - rows[0], cols[1] - cols[0])
        rr, cc = ellipse(centre_r, centre_c, minor, major, shape=plane.shape, rotation=-angle)
        plane[rr, cc] = True
    else:  # POINT / MULTIPOINT
        for r, c in zip(np.round(rows).astype(int), np.round(cols).astype(int)):
            if 0 <= r < plane.shape[0] and 0 <= c < plane.shape[1]:
                plane[r, c] = True


def _region_source_uid(region) -> Optional[str]:
    """The SOPInstanceUID of the image an SCOORD region is drawn on (its SELECTED FROM child)."""
    for item in region.get("ContentSequence", []):
        for reference in item.get("ReferencedSOPSequence", []):
            return str(reference.ReferencedSOPInstanceUID)
    for reference in region.get("ReferencedSOPSequence", []):
        return str(reference.ReferencedSOPInstanceUID)
    return None


def read_sr_rois(path: PathLike, reference: ImageVolume) -> np.ndarray:
    """Planar ROIs of a TID 1500 Measurement Report (highdicom) as a mask on ``reference``'s grid."""
    import highdicom as hd

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = hd.sr.srread(str(path))
        groups = report.content.get_planar_roi_measurement_groups()
    except Exception as error:  # noqa: BLE001
        raise InputError(path, f"is not a TID 1500 Measurement Report highdicom can read "
                         f"({type(error).__name__}: {error}).",
                         "Pass a Comprehensive/Enhanced SR with planar ROI measurement groups.") from error
    sops = list(reference.metadata.get("SOPInstanceUIDs") or [])
    mask = np.zeros(reference.shape, dtype=bool)
    drawn = 0
    for number_, group in enumerate(groups, start=1):
        try:
            region = group.roi
            if region is None:
                continue
            graphic_type = str(region.graphic_type.value if hasattr(region.graphic_type, "value")
                               else region.graphic_type)
            points = np.asarray(region.value, dtype=float)
        except (AttributeError, ValueError, TypeError, KeyError, IndexError) as error:
            raise InputError(path, f"measurement group {number_}: its image region cannot be read "
                             f"({type(error).__name__}: {error}).", "Re-export the report.") from error
        needed = {"POINT": 1, "MULTIPOINT": 1, "POLYLINE": 1, "POLYGON": 1, "CIRCLE": 2, "ELLIPSE": 4,
                  "ELLIPSOID": 6}.get(graphic_type)
        if needed is None or points.ndim != 2 or points.shape[1] not in (2, 3) \
                or len(points) < needed or not np.all(np.isfinite(points)):
            raise InputError(path, f"measurement group {number_}: a {graphic_type} region with "
                             f"coordinates of shape {points.shape} is not a region that can be drawn "
                             f"(finite (x, y) or (x, y, z) points, at least {needed or 1}).",
                             "Re-export the report.")
        if points.shape[-1] == 3:   # SCOORD3D in LPS mm
            ijk = (np.linalg.inv(reference.ijk_to_lps()) @ np.vstack([points.T, np.ones(len(points))]))[:3]
            k = float(np.mean(ijk[2]))
            if not np.all(np.isfinite(ijk)) or not -0.5 <= k < reference.shape[0] - 0.5:
                continue   # off the image's slices
            slice_index = int(round(k))
            points2d = np.stack([ijk[0] + 0.5, ijk[1] + 0.5], axis=1)
        else:
            uid = _region_source_uid(region)
            if uid is None or uid not in sops:
                raise InputError(path, f"has a planar ROI on image {uid}, which is not this image "
                                 f"({len(sops)} instance(s) read).", "Pass the SR made on this image.")
            slice_index, points2d = sops.index(uid), points
        if 0 <= slice_index < reference.shape[0]:
            _draw_region(mask[slice_index], graphic_type, points2d)
            drawn += 1
    if not drawn:
        raise InputError(path, "holds no planar ROI (TID 1410 / 1411 measurement group with an image region).",
                         "Pass an SR with planar ROI measurements, or another ground-truth format.")
    return mask


# ------------------------------------------------------------------------------------ dispatch
def _case_key(reference: ImageVolume, case_id: Optional[str], kind: str) -> str:
    if case_id:
        return case_id
    metadata = reference.metadata
    if kind == "siim" and metadata.get("SOPInstanceUIDs"):
        return str(metadata["SOPInstanceUIDs"][0])
    if metadata.get("PatientID"):
        return str(metadata["PatientID"])
    return Path(str(metadata.get("source_path", ""))).name.split(".")[0]


def _csv_header(path: Path) -> List[str]:
    records = _csv_records(path)
    return [h.strip() for h in (records[0] if records else [])]


def _csv_has(path: Path, columns: Sequence[str]) -> bool:
    header = _csv_header(path)
    return all(c in header for c in columns)


def _csv_kind(path: Path) -> str:
    header = _csv_header(path)
    if all(c in header for c in RSNA_COLUMNS):
        return "rsna"
    if all(c in header for c in SIIM_COLUMNS):
        return "siim"
    raise InputError(path, f"has the columns {header}, neither the RSNA box layout "
                     f"({','.join(RSNA_COLUMNS)},Target) nor the SIIM run-length layout (ImageId,EncodedPixels).",
                     "Convert the ground truth to one of these layouts, a label map or a DICOM SEG.")


def read_ground_truth(path: PathLike, reference: ImageVolume, *, case_id: Optional[str] = None,
                      segment=None, roi=None, label: Optional[int] = None,
                      allow_other_series: bool = False, allow_empty: bool = False,
                      study_scaling: bool = False, box_scale: Union[float, Sequence[float]] = 1.0,
                      original_size: int = 1024) -> np.ndarray:
    """Read ground truth of any supported kind as a bool ``(K, J, I)`` mask on ``reference``'s grid.

    Args:
        path: DICOM SEG / RTSTRUCT / SR file, NIfTI / NRRD / MetaImage label map, or RSNA / SIIM CSV.
        reference: the image volume (from :func:`SaliencyTrustLib.io.read_image`).
        case_id: the CSV row key (RSNA ``patientId`` / SIIM ``ImageId``); default from ``reference``.
        segment: SEG segment number / label / ``"all"``.
        roi: RTSTRUCT ROI number / name / ``"all"``.
        label: label-map value to take (default: every value > 0).
        allow_other_series: accept a SEG referencing another series of the same frame of reference.
        allow_empty: return an empty mask instead of raising.
        study_scaling, box_scale, original_size: box rasterization (see :func:`boxes_to_mask`).

    Returns:
        bool ndarray of ``reference.shape``.

    Raises:
        InputError: with the file and the fix, for every unusable input (including an empty mask
            unless ``allow_empty``). No other exception type leaves this function for a problem
            of the input: one that escapes the readers' checks is still an InputError, marked
            ``unexpected`` (a bug to report, see :meth:`InputError.from_unexpected`).
    """
    try:
        return _read_ground_truth(path, reference, case_id=case_id, segment=segment, roi=roi,
                                  label=label, allow_other_series=allow_other_series,
                                  allow_empty=allow_empty, study_scaling=study_scaling,
                                  box_scale=box_scale, original_size=original_size)
    except (InputError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - last line of defence, see InputError.from_unexpected
        raise InputError.from_unexpected(path, error) from error


def _read_ground_truth(path: PathLike, reference: ImageVolume, *, case_id, segment, roi, label,
                       allow_other_series, allow_empty, study_scaling, box_scale,
                       original_size) -> np.ndarray:
    from .dicom_read import _is_dicom_file, read_dataset
    from .volumes import is_volume_file, read_volume

    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist.", "Check the ground-truth path (datalist paths are "
                         "relative to the datalist's folder).")
    if path.suffix.lower() == ".csv":
        kind = _csv_kind(path)
        key = _case_key(reference, case_id, kind)
        if kind == "rsna" and not reference.is_2d and _csv_has(path, ("z", "depth")):
            table3d = read_boxes_3d(path)
            if key not in table3d:
                raise InputError(path, f"has no row for patientId {key!r}.", "Pass case_id=<patientId>.")
            plane = np.zeros(reference.shape, dtype=bool)
            for x, y, z, w, h, d in table3d[key]:
                slab = slice(max(int(round(z)), 0), min(int(round(z + d)), reference.shape[0]))
                plane[slab] |= boxes_to_mask([(x, y, w, h)], reference.shape[1:], scale=box_scale, path=path)
        elif kind == "rsna":
            table = read_rsna_boxes(path)
            if key not in table:
                raise InputError(path, f"has no row for patientId {key!r}.",
                                 "Pass case_id=<patientId> (the DICOM file name without .dcm in RSNA).")
            plane = boxes_to_mask(table[key], reference.shape, scale=box_scale, study_scaling=study_scaling,
                                  original_size=original_size, path=path)
        else:
            table = read_siim_rle(path)
            if key not in table:
                raise InputError(path, f"has no row for ImageId {key!r}.",
                                 "Pass case_id=<ImageId> (the SOPInstanceUID / file name in SIIM).")
            plane = np.broadcast_to(siim_mask(table[key], reference.shape, path), reference.shape)
        mask = np.array(plane, dtype=bool).reshape(reference.shape)
    elif is_volume_file(path):
        mask = label_map_to_mask(read_volume(path), reference, label=label, path=path)
    elif _is_dicom_file(path) or path.suffix.lower() in (".dcm", ".dicom", ""):
        header = read_dataset(path, stop_before_pixels=True, force=not _is_dicom_file(path))
        sop_class, modality = str(header.get("SOPClassUID", "")), str(header.get("Modality", ""))
        if sop_class == SEG_SOP_CLASS or modality == "SEG":
            mask = read_seg(path, reference, segment=segment, allow_other_series=allow_other_series)
        elif sop_class == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
            mask = read_rtstruct(path, reference, roi=roi)
        elif modality == "SR" or sop_class.startswith("1.2.840.10008.5.1.4.1.1.88."):
            mask = read_sr_rois(path, reference)
        else:
            from .dicom_read import read_image

            label_map = read_image(path, voi="none")
            mask = label_map_to_mask(label_map, reference, label=label, path=path)
    else:
        raise InputError(path, "is not a ground-truth format SaliencyTrust reads.",
                         "Pass a DICOM SEG / RTSTRUCT / SR, a NIfTI / NRRD label map, or an RSNA / SIIM CSV.")
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != reference.shape:
        raise InputError(path, f"gives a {mask.shape} mask for a {reference.shape} image.",
                         "Pass the ground truth of this image.")
    if not allow_empty and not mask.any():
        raise InputError(path, "gives an empty mask on this image (no foreground voxel): nothing to "
                         "localize.", "Negative cases have no ground truth: evaluate localization on "
                         "positives only, or pass allow_empty=True to accept an empty mask.")
    return mask


class GroundTruthReader:
    """Config-constructible ``GroundTruthReader(**options)(path, reference) -> bool mask``."""

    def __init__(self, **kwargs) -> None:
        self.kwargs = dict(kwargs)

    def __call__(self, path: PathLike, reference: ImageVolume) -> np.ndarray:
        return read_ground_truth(path, reference, **self.kwargs)

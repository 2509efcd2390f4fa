"""Write results back as DICOM, with highdicom only: saliency Parametric Map, thresholded SEG, SR.

Three objects, all filed in the study of their source images and referencing them:

* :func:`write_parametric_map` - the saliency map as a **Parametric Map** (float32 in [0, 1], a
  Real World Value Mapping "saliency, no units", identity slope/intercept, window 0..1) on the
  source's pixel grid, frame of reference and plane positions, so a DICOM viewer overlays it on
  the original.
* :func:`write_seg` - the map thresholded (``map >= threshold``) as a binary **Segmentation**; the
  segment label and the algorithm parameters name the method and the threshold, its terminology
  (segmented property category SCT "Spatial and Relational Concept", type the map's quantity) and
  recommended display colour are what 3D Slicer shows.
* :func:`write_scorecard_sr` - the trust scorecard as a **Comprehensive SR** with a TID 1500
  Measurement Report: one measurement group (TID 1501) per method, a row of the scorecard: per
  criterion its value (AUPRC or SSIM, each criterion its own concept, units ``1``) and baseline,
  and its verdict (pass / fail / undecided) as a qualitative evaluation. Beside
  it, ``<stem>.json`` (the whole scorecard, including what SR does not hold well: the
  randomization curves, the pass rules, reasons for NaN) and ``<stem>.csv`` (one row per
  measurement group): for a :class:`SaliencyTrustLib.criteria.Scorecard` its own
  ``to_json()`` / ``to_csv()``; for a plain dict, the dict and
  ``method,criterion,metric,value,baseline,passed,reason``.

Sources are the pydicom datasets (or files, or a series folder) the map was computed from:
single-frame images (a CR/DX radiograph, the slices of a CT/MR series) or one multi-frame image.
The map is ``(K, J, I)`` like :class:`SaliencyTrustLib.image.ImageVolume`, with ``K`` = the number of
source frames. Slices of a series, or the frames of one multi-frame image, are matched to ``K``
by position along the slice normal, in increasing order (the order of SimpleITK and of
``SaliencyTrustLib.io.read_image``); when the map
is an :class:`~SaliencyTrustLib.image.ImageVolume` its plane positions must equal the sources'
(else the map is on another grid: resample it onto the source first).

Radiographs usually have no Frame of Reference, which the Parametric Map IOD requires. The map of
such an image gets a Frame of Reference UID derived deterministically from the source SOP Instance
UID (so the Parametric Map and the SEG of one image share it and overlay each other), with the
image plane at the origin with the identity orientation (rows along +x, columns along +y: the
geometry ITK, SimpleITK, 3D Slicer and ``SaliencyTrustLib.io.read_image`` give a radiograph) and
spaced by its Pixel Spacing (else Imager Pixel Spacing, else 1 mm). Both
still reference the source instance, which is how viewers pair them with the radiograph.

Anatomy. The Parametric Map carries a **Frame Anatomy** functional group (shared by all frames):
dcmqi's ``paramap2itkimage`` (what 3D Slicer's DICOMParametricMapPlugin runs) dereferences it
unconditionally and crashes without it, and it satisfies the IOD's laterality condition. Its
Anatomic Region is, first found: the ``anatomic_region`` argument; the source's Anatomic Region
Sequence (top level or in its Frame Anatomy functional group); its Body Part Examined mapped through
DICOM PS3.16 Annex L (highdicom's table); else :data:`UNSPECIFIED_ANATOMIC_REGION` (SCT "Body
structure", which claims nothing). Its Frame Laterality: the ``frame_laterality`` argument, else the
source's Frame / Image / series Laterality, else ``U`` (unpaired) unless Annex L says the region
is paired, which is an error asking for ``frame_laterality`` (a guess would be a wrong side). The
SEG's segment names the same region when it is known (not the unspecified default).

Frame order. The Parametric Map stores its frames in increasing position along the row x column
direction of the plane orientation, the order in which dcmqi's ``paramap2itkimage`` stacks them
(it reads no per-frame position); highdicom 0.28 writes the opposite order, which 3D Slicer would
show upside down along the slice axis.

What is done outside a highdicom constructor, because highdicom 0.28 has no API for it: the Frame
Anatomy functional group (its coded region is a highdicom :class:`~highdicom.sr.CodedConcept`; the
item holding it and the Frame Laterality are the two attributes of PS3.3 C.7.6.16.2.8, set in
:func:`_frame_anatomy_group`) and that frame order (highdicom's per-frame items and frames, moved
together, in :func:`_frames_in_increasing_position`).

Every writer is also a class (:class:`ParametricMapWriter`, :class:`SegWriter`,
:class:`ScorecardSRWriter`) built from plain keyword arguments, for bundle configs (``_target_``).
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import highdicom as hd
from highdicom.coding_schemes import CodingSchemeIdentificationItem
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from ..image import ImageVolume
from .dicom_read import expand_dicom_inputs
from .errors import InputError

__all__ = [
    "MANUFACTURER", "MODEL_NAME", "CODING_SCHEME", "CRITERIA_ORDER", "CRITERION_CODES",
    "BASELINE_CODES", "VERDICT_CODES", "VERDICT_VALUES", "CSV_COLUMNS",
    "UNSPECIFIED_ANATOMIC_REGION", "FRAME_LATERALITIES", "SALIENT_REGION_RGB",
    "load_source_datasets", "write_parametric_map", "write_seg", "write_scorecard_sr",
    "scorecard_rows", "write_scorecard_files", "ParametricMapWriter", "SegWriter",
    "ScorecardSRWriter",
]

#: Equipment attributes of every object written.
MANUFACTURER = "SaliencyTrust"
MODEL_NAME = "SaliencyTrustLib"
DEVICE_SERIAL_NUMBER = "none"

#: Private coding scheme for the concepts DICOM has no code for (PS3.16 8.2: "99" prefix).
CODING_SCHEME = "99SALTRUST"


def _code(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=CODING_SCHEME, meaning=meaning)


#: Criteria of :mod:`SaliencyTrustLib.criteria` in report order (the SR's column order), and the
#: other names the scorecard rows may give them (the criteria functions' names).
CRITERIA_ORDER = ("localization", "randomization", "repeatability", "reproducibility",
                  "shortcut", "data_randomization", "faithfulness", "robustness")
CRITERION_ALIASES = {"localization_utility": "localization",
                     "randomization_sensitivity": "randomization"}
#: Per criterion, the three concepts of the SR: the value the scorecard reports (a quantity named
#: with its metric: AUPRC or SSIM, both unitless, UCUM ``1``), its baseline, and the verdict (a
#: qualitative evaluation valued SCT Yes / No / Indeterminate). Distinct codes for every column,
#: so a reader that builds one table column per concept (3D Slicer's QuantitativeReporting) never
#: puts an SSIM under an AUPRC heading.
CRITERION_CODES: Dict[str, hd.sr.CodedConcept] = {
    "localization": _code("LOCUTIL", "Localization utility (AUPRC)"),
    "randomization": _code("RANDSENS", "Randomization sensitivity (SSIM)"),
    "repeatability": _code("REPEAT", "Repeatability (SSIM)"),
    "reproducibility": _code("REPROD", "Reproducibility (SSIM)"),
    "shortcut": _code("SHORTCUT", "Shortcut revealed (AUPRC against the shortcut region)"),
    "data_randomization": _code("DATARAND", "Data randomization sensitivity (SSIM)"),
    "faithfulness": _code("FAITHFUL", "Faithfulness (insertion minus deletion area)"),
    "robustness": _code("ROBUST", "Robustness to input perturbation (SSIM)"),
}
BASELINE_CODES: Dict[str, hd.sr.CodedConcept] = {
    "localization": _code("LOCUTILBL", "Localization utility baseline (AUPRC)"),
    "randomization": _code("RANDSENSBL", "Randomization sensitivity baseline (SSIM)"),
    "repeatability": _code("REPEATBL", "Repeatability baseline (SSIM)"),
    "reproducibility": _code("REPRODBL", "Reproducibility baseline (SSIM)"),
    "shortcut": _code("SHORTCUTBL", "Shortcut revealed baseline (AUPRC)"),
    "data_randomization": _code("DATARANDBL", "Data randomization baseline (SSIM)"),
    "faithfulness": _code("FAITHFULBL", "Faithfulness baseline (random pixel order)"),
    "robustness": _code("ROBUSTBL", "Robustness baseline (SSIM)"),
}
VERDICT_CODES: Dict[str, hd.sr.CodedConcept] = {
    "localization": _code("LOCUTILPASS", "Localization utility criterion passed"),
    "randomization": _code("RANDSENSPASS", "Randomization sensitivity criterion passed"),
    "repeatability": _code("REPEATPASS", "Repeatability criterion passed"),
    "reproducibility": _code("REPRODPASS", "Reproducibility criterion passed"),
    "shortcut": _code("SHORTCUTPASS", "Shortcut revealed criterion passed"),
    "data_randomization": _code("DATARANDPASS", "Data randomization criterion passed"),
    "faithfulness": _code("FAITHFULPASS", "Faithfulness criterion passed"),
    "robustness": _code("ROBUSTPASS", "Robustness criterion passed"),
}
for _alias, _criterion in CRITERION_ALIASES.items():
    for _table in (CRITERION_CODES, BASELINE_CODES, VERDICT_CODES):
        _table[_alias] = _table[_criterion]
del _alias, _criterion, _table
#: Value of a verdict: passed, failed, undecided (the scorecard's True / False / None).
VERDICT_VALUES = {True: codes.SCT.Yes, False: codes.SCT.No, None: codes.SCT.Indeterminate}
#: The procedure the SR reports on.
PROCEDURE_CODE = _code("SALTRUST", "Saliency map trustworthiness assessment")
#: Quantity of the Parametric Map / segmented property type of the SEG (DICOM CID 217).
SALIENCY_QUANTITY = codes.DCM.Saliency
GRADCAM_QUANTITY = codes.DCM.GradientWeightedClassActivation
CLASS_ACTIVATION_QUANTITY = codes.DCM.ClassActivation

#: Anatomic region of a map whose source names none: SCT 123037004 "Body structure", the most
#: general anatomic concept (it says "some part of the body", nothing more).
UNSPECIFIED_ANATOMIC_REGION = hd.sr.CodedConcept(value="123037004", scheme_designator="SCT",
                                                 meaning="Body structure")
#: Enumerated values of Frame Laterality (0020,9072): right, left, unpaired, both.
FRAME_LATERALITIES = ("R", "L", "U", "B")
#: Recommended display colour of the thresholded-map segment (sRGB 0-255; stored as CIELab):
#: orange, the high end of the usual "hot" saliency colour maps.
SALIENT_REGION_RGB = (255, 128, 0)

SourceLike = Union[Dataset, str, os.PathLike, Sequence[Union[Dataset, str, os.PathLike]]]
MapLike = Union[ImageVolume, np.ndarray]
RegionLike = Union[str, Code, hd.sr.CodedConcept]


# --------------------------------------------------------------------------------------------
# sources
# --------------------------------------------------------------------------------------------
def _read_dicom(path: Path) -> Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except (pydicom.errors.InvalidDicomError, OSError, ValueError) as error:
        raise InputError(path, f"is not a readable DICOM file ({error}).",
                         "pass the DICOM image(s) the map was computed from.") from error


def load_source_datasets(source: SourceLike) -> List[Dataset]:
    """The source images as pydicom datasets (pixel data not needed).

    Args:
        source: a dataset, a list of datasets, a DICOM file, a list of files, or a folder holding
            one series (every file in it, recursively, that pydicom reads).

    Returns:
        The datasets, in the order given (a folder: sorted by file name).

    Raises:
        InputError: no file, a file that is not DICOM, or images of several series.
    """
    datasets = [item if isinstance(item, Dataset) else _read_dicom(item)
                for item in expand_dicom_inputs(source, "the source series' DICOM file(s) or folder")]
    if not datasets:
        raise InputError(None, "no source DICOM image was given.",
                         "pass the dataset(s), file(s) or folder the map was computed from.")
    series = {(str(d.get("StudyInstanceUID")), str(d.get("SeriesInstanceUID"))) for d in datasets}
    if len(series) != 1:
        raise InputError(getattr(datasets[0], "filename", None),
                         f"the source images belong to {len(series)} series.",
                         "write one result per source series.")
    for ds in datasets:
        if "Rows" not in ds or "Columns" not in ds:
            raise InputError(getattr(ds, "filename", None),
                             f"SOP class {ds.get('SOPClassUID', '?')} is not an image.",
                             "pass the image series the map was computed from.")
    return datasets


def _number_of_frames(ds: Dataset) -> int:
    return int(ds.get("NumberOfFrames", 1) or 1)


def _source_frames(datasets: List[Dataset]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """``(positions (F, 3), slice normal)`` of the source frames in source order; None without
    plane geometry (a radiograph). Frames are the images of a series, or the frames of one
    multi-frame image (per-frame / shared Plane Position and Orientation functional groups)."""
    if len(datasets) == 1 and _number_of_frames(datasets[0]) > 1:
        ds = datasets[0]
        shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
        per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
        positions = []
        for item in per_frame:
            plane = item.get("PlanePositionSequence") or shared.get("PlanePositionSequence")
            if not plane:
                return None
            positions.append(plane[0].ImagePositionPatient)
        orientation = shared.get("PlaneOrientationSequence") or (
            per_frame[0].get("PlaneOrientationSequence") if per_frame else None)
        if not orientation or len(positions) != _number_of_frames(ds):
            return None
        iop = orientation[0].ImageOrientationPatient
    else:
        if not all("ImagePositionPatient" in d and "ImageOrientationPatient" in d
                   for d in datasets):
            return None
        positions = [d.ImagePositionPatient for d in datasets]
        iop = datasets[0].ImageOrientationPatient
    iop = np.asarray(iop, float)
    return np.asarray(positions, float), np.cross(iop[:3], iop[3:])


def _align(map_volume: MapLike, datasets: List[Dataset],
           name: str) -> Tuple[List[Dataset], np.ndarray]:
    """Match the map's K axis to the source frames.

    Returns the sources and the map as ``(frames, rows, columns)`` such that ``array[f]`` belongs
    to source frame ``f`` (single-frame sources are re-ordered to increasing slice position; the
    map of a multi-frame source is re-ordered to its frame order). An :class:`ImageVolume`'s plane
    positions are checked against the sources'.
    """
    array = map_volume.array if isinstance(map_volume, ImageVolume) else np.asarray(map_volume)
    if array.ndim == 2:
        array = array[np.newaxis]
    if array.ndim != 3:
        raise ValueError(f"{name}: the map must be (K, J, I) or (J, I); got shape {array.shape}. "
                         "Drop batch and channel axes first.")
    frames = sum(_number_of_frames(d) for d in datasets)
    expected = (frames, int(datasets[0].Rows), int(datasets[0].Columns))
    if array.shape != expected:
        raise ValueError(f"{name}: the map has shape {array.shape} but the source has "
                         f"(frames, rows, columns) = {expected}. Compute or resample the map on "
                         "the source image grid.")
    geometry = _source_frames(datasets)
    if geometry is None:
        if len(datasets) > 1:
            raise InputError(getattr(datasets[0], "filename", None),
                             "a series of several images without Image Position/Orientation "
                             "(Patient) cannot be matched to the map's slices.",
                             "pass the one image the map was computed from.")
        return datasets, array
    positions, normal = geometry
    order = np.argsort(positions @ normal, kind="stable")   # source frame of each k
    if isinstance(map_volume, ImageVolume) and len(positions) > 1:
        k = np.arange(array.shape[0])
        planes = (map_volume.ijk_to_lps() @ np.stack([0 * k, 0 * k, k, 1 + 0 * k]))[:3].T
        tolerance = 1e-2 * max(1.0, float(min(map_volume.spacing)))
        if not np.allclose(planes, positions[order], atol=tolerance):
            if not np.allclose(planes, positions[order[::-1]], atol=tolerance):
                raise ValueError(
                    f"{name}: the map's plane positions differ from the source slices' Image "
                    "Position (Patient): the map is on another grid. Resample it onto the source "
                    "image (e.g. with SimpleITK) before writing, or pass a plain (K, J, I) array "
                    "in the order of increasing slice position.")
            order = order[::-1]
    if len(datasets) > 1:
        return [datasets[i] for i in order], array
    in_frame_order = np.empty_like(array)
    in_frame_order[order] = array
    return datasets, in_frame_order


def _with_plane_geometry(ds: Dataset) -> Dataset:
    """A pixel-less copy of a single-frame projection image given a frame of reference and plane.

    See the module docstring: the Frame of Reference UID is kept when present, else derived from
    the SOP Instance UID; plane at the origin, identity orientation (as ITK reads a radiograph).
    """
    meta = Dataset()
    meta.file_meta = getattr(ds, "file_meta", Dataset())
    for element in ds:
        if element.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            meta.add(element)
    if "FrameOfReferenceUID" not in meta:
        meta.FrameOfReferenceUID = generate_uid(entropy_srcs=[str(ds.SOPInstanceUID), "FoR"])
        meta.PositionReferenceIndicator = ""
    meta.ImagePositionPatient = [0.0, 0.0, 0.0]
    meta.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or [1.0, 1.0]
    meta.PixelSpacing = [float(v) for v in spacing]
    if "SliceThickness" not in meta or meta.SliceThickness in (None, ""):
        meta.SliceThickness = 1.0   # a projection has none; the Pixel Measures need a value
    return meta


def _prepare_sources(datasets: List[Dataset]) -> List[Dataset]:
    """Complete the geometry of a single projection image (see the module docstring)."""
    if len(datasets) != 1 or _number_of_frames(datasets[0]) != 1:
        return datasets
    ds = datasets[0]
    if ("ImagePositionPatient" in ds and "ImageOrientationPatient" in ds
            and "FrameOfReferenceUID" in ds):
        return datasets
    return [_with_plane_geometry(ds)]


def _save(dataset: Dataset, path: Optional[Union[str, os.PathLike]]) -> None:
    if path is None:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)


def _quantity_for(method: str) -> hd.sr.CodedConcept:
    name = method.lower().replace("-", "_")
    if "gradcam" in name and "guided" not in name:
        return GRADCAM_QUANTITY
    return SALIENCY_QUANTITY


def _software_version() -> str:
    from .. import __version__
    return __version__


def _new_instance(series_instance_uid: Optional[str], series_number: int,
                  sop_instance_uid: Optional[str]) -> Dict[str, Any]:
    """The series, instance and equipment arguments every highdicom constructor of ours shares
    (fresh UIDs where none is given; instance number 1: one object per series)."""
    return dict(series_instance_uid=series_instance_uid or hd.UID(), series_number=int(series_number),
                sop_instance_uid=sop_instance_uid or hd.UID(), instance_number=1,
                manufacturer=MANUFACTURER)


def _image_equipment() -> Dict[str, Any]:
    """Enhanced General Equipment attributes the image IODs (Parametric Map, SEG) require."""
    return dict(manufacturer_model_name=MODEL_NAME, software_versions=_software_version(),
                device_serial_number=DEVICE_SERIAL_NUMBER)


def _content_label(text: str) -> str:
    """A valid CS Content Label (upper case, digits, underscore; at most 16 characters)."""
    label = "".join(c if c.isalnum() else "_" for c in text.upper())[:16].strip("_")
    return label or "SALIENCY"


# --------------------------------------------------------------------------------------------
# anatomy (Frame Anatomy of the Parametric Map, anatomic region of the SEG's segment)
# --------------------------------------------------------------------------------------------
def _body_part_regions() -> Dict[str, Tuple[hd.sr.CodedConcept, bool]]:
    """PS3.16 Annex L: Body Part Examined defined term -> (SCT region, paired?), as highdicom
    ships it (for its legacy converters); empty if this highdicom lacks the table."""
    try:
        from highdicom._standard_utils import get_anatomic_region_map
    except ImportError:   # pragma: no cover - highdicom < 0.24
        return {}
    return get_anatomic_region_map()


def _coded(value: Any) -> Optional[hd.sr.CodedConcept]:
    """A code item of a source dataset as a CodedConcept; None when it is not a usable code."""
    try:
        return hd.sr.CodedConcept.from_dataset(value)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _source_anatomy(ds: Dataset) -> Tuple[Optional[hd.sr.CodedConcept], str]:
    """``(anatomic region, laterality)`` a source image states (None / "" when it states none).

    Region: its Anatomic Region Sequence, else the one in its Frame Anatomy functional group
    (shared, else first frame), else its Body Part Examined through Annex L. Laterality: Frame
    Laterality, else Image Laterality, else the series' Laterality (each only when it is one of
    :data:`FRAME_LATERALITIES`)."""
    shared = (ds.get("SharedFunctionalGroupsSequence") or [Dataset()])[0]
    first = (ds.get("PerFrameFunctionalGroupsSequence") or [Dataset()])[0]
    frame_anatomy = (shared.get("FrameAnatomySequence") or first.get("FrameAnatomySequence")
                     or [Dataset()])[0]
    region = None
    for holder in (ds, frame_anatomy):
        if holder.get("AnatomicRegionSequence"):
            region = _coded(holder.AnatomicRegionSequence[0])
            if region is not None:
                break
    if region is None:
        body_part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
        mapped = _body_part_regions().get(body_part)
        region = mapped[0] if mapped else None
    laterality = ""
    for value in (frame_anatomy.get("FrameLaterality"), ds.get("FrameLaterality"),
                  ds.get("ImageLaterality"), ds.get("Laterality")):
        if str(value or "").strip().upper() in FRAME_LATERALITIES:
            laterality = str(value).strip().upper()
            break
    return region, laterality


def _resolve_region(anatomic_region: Optional[RegionLike],
                    name: str) -> Optional[hd.sr.CodedConcept]:
    if anatomic_region is None:
        return None
    if isinstance(anatomic_region, hd.sr.CodedConcept):
        return anatomic_region
    if isinstance(anatomic_region, Code):
        return hd.sr.CodedConcept.from_code(anatomic_region)
    if isinstance(anatomic_region, str):
        mapped = _body_part_regions().get(anatomic_region.strip().upper())
        if mapped is None:
            raise ValueError(f"{name}: anatomic_region {anatomic_region!r} is not a Body Part "
                             "Examined defined term of DICOM PS3.16 Annex L (e.g. 'CHEST', "
                             "'HEAD', 'ABDOMEN'); pass one of those or a coded concept "
                             "(pydicom Code / highdicom CodedConcept).")
        return mapped[0]
    raise ValueError(f"{name}: anatomic_region must be a Body Part Examined term (str), a pydicom "
                     f"Code or a highdicom CodedConcept; got {type(anatomic_region).__name__}.")


def _anatomy(datasets: List[Dataset], anatomic_region: Optional[RegionLike],
             frame_laterality: Optional[str], name: str) -> Tuple[hd.sr.CodedConcept, str, bool]:
    """``(region, frame laterality, region known)`` of the map of ``datasets`` (module docstring).

    Raises:
        ValueError: a bad ``anatomic_region`` / ``frame_laterality``, or a paired region (Annex L)
            with no laterality given or in the source.
    """
    source_region, source_laterality = _source_anatomy(datasets[0])
    region = _resolve_region(anatomic_region, name) or source_region
    known = region is not None
    region = region or UNSPECIFIED_ANATOMIC_REGION
    if frame_laterality is not None:
        laterality = str(frame_laterality).strip().upper()
        if laterality not in FRAME_LATERALITIES:
            raise ValueError(f"{name}: frame_laterality must be one of {FRAME_LATERALITIES} "
                             f"(right, left, unpaired, both); got {frame_laterality!r}.")
        return region, laterality, known
    if source_laterality:
        return region, source_laterality, known
    paired = {(code.value, code.scheme_designator): is_paired
              for code, is_paired in _body_part_regions().values()}
    if paired.get((region.value, region.scheme_designator), False):
        raise ValueError(f"{name}: the anatomic region {region.meaning!r} is a paired structure "
                         "and the source states no laterality (Frame / Image Laterality, "
                         "Laterality). Pass frame_laterality='L', 'R' or 'B'.")
    return region, "U", known


def _frame_anatomy_group(region: hd.sr.CodedConcept, laterality: str) -> Dataset:
    """One item of the Frame Anatomy Sequence (PS3.3 C.7.6.16.2.8); see the module docstring."""
    item = Dataset()
    item.AnatomicRegionSequence = [region]
    item.FrameLaterality = laterality
    return item


# --------------------------------------------------------------------------------------------
# Parametric Map
# --------------------------------------------------------------------------------------------
def _frames_in_increasing_position(pmap: hd.pm.ParametricMap) -> None:
    """Store the frames in increasing position along row x column direction (module docstring).

    highdicom 0.28 stores them in decreasing position; dcmqi's ``paramap2itkimage`` stacks frames
    in stored order from the lowest position, so without this 3D Slicer shows the map upside
    down along the slice axis. Each frame keeps its own functional groups (plane position,
    dimension index, source reference); only the order of the frames changes."""
    per_frame = list(pmap.PerFrameFunctionalGroupsSequence)
    if len(per_frame) < 2 or "FloatPixelData" not in pmap:
        return
    iop = np.asarray(pmap.SharedFunctionalGroupsSequence[0].PlaneOrientationSequence[0]
                     .ImageOrientationPatient, float)
    normal = np.cross(iop[:3], iop[3:])
    along = [float(np.dot(np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, float),
                          normal)) for item in per_frame]
    order = np.argsort(along, kind="stable")
    if np.array_equal(order, np.arange(len(order))):
        return
    frames = np.frombuffer(pmap.FloatPixelData, dtype="<f4").reshape(
        len(per_frame), int(pmap.Rows), int(pmap.Columns))
    pmap.FloatPixelData = np.ascontiguousarray(frames[order]).tobytes()
    pmap.PerFrameFunctionalGroupsSequence = [per_frame[i] for i in order]


def write_parametric_map(
    map_volume: MapLike,
    source_datasets: SourceLike,
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    method: str = "saliency",
    series_number: int = 901,
    series_description: Optional[str] = None,
    content_label: Optional[str] = None,
    series_instance_uid: Optional[str] = None,
    sop_instance_uid: Optional[str] = None,
    anatomic_region: Optional[RegionLike] = None,
    frame_laterality: Optional[str] = None,
) -> hd.pm.ParametricMap:
    """Write a saliency map as a DICOM Parametric Map over its source image.

    Args:
        map_volume: the map, ``(K, J, I)`` (or ``(J, I)``) float in [0, 1] on the source grid:
            an :class:`ImageVolume` (its plane positions are checked against the sources) or an
            array (``K`` in order of increasing slice position).
        source_datasets: the source image(s) (see :func:`load_source_datasets`).
        path: where to save the object (``.dcm``); not saved when None.
        method: saliency method name, recorded in the content description, the Real World Value
            Mapping's explanation and its quantity (GradCAM -> DCM 130403 "Gradient-weighted class
            activation", else DCM 130404 "Saliency").
        series_number: Series Number of the new series.
        series_description: default ``"Saliency map (<method>)"``.
        content_label: CS label (default from ``method``).
        series_instance_uid, sop_instance_uid: UIDs to use (new ones when None).
        anatomic_region: anatomy of the Frame Anatomy functional group: a Body Part Examined term
            of PS3.16 Annex L (``"CHEST"``), a pydicom ``Code`` or a highdicom ``CodedConcept``;
            default: the source's (see the module docstring).
        frame_laterality: ``"R"``, ``"L"``, ``"U"`` (unpaired) or ``"B"`` (both); default: the
            source's, else ``"U"``.

    Returns:
        The :class:`highdicom.pm.ParametricMap` (a pydicom Dataset), float32 pixels in [0, 1],
        with a shared Frame Anatomy functional group (so dcmqi / 3D Slicer load it).

    Raises:
        ValueError: the map holds NaN/inf or values outside [0, 1], or is not on the source grid;
            a bad ``anatomic_region`` / ``frame_laterality``; a paired region without laterality.
        InputError: the sources cannot be read or are not one image series.
    """
    datasets = load_source_datasets(source_datasets)
    datasets, array = _align(map_volume, datasets, "write_parametric_map")
    array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError("write_parametric_map: the map holds NaN or infinite values; compute it "
                         "with postprocess='paper' (normalized to [0, 1]) or replace them.")
    if array.min() < 0.0 or array.max() > 1.0:
        raise ValueError(f"write_parametric_map: map values span [{array.min():g}, "
                         f"{array.max():g}], outside [0, 1]. Normalize the map "
                         "(compute_saliency(..., postprocess='paper')) before writing.")
    region, laterality, _ = _anatomy(datasets, anatomic_region, frame_laterality,
                                     "write_parametric_map")
    sources = _prepare_sources(datasets)
    mapping = hd.pm.RealWorldValueMapping(
        lut_label=_content_label(method),
        lut_explanation=f"{method} saliency, normalized to [0, 1]"[:64],
        unit=codes.UCUM.NoUnits,
        value_range=(0.0, 1.0),
        slope=1.0,
        intercept=0.0,
        quantity_definition=_quantity_for(method),
    )
    pmap = hd.pm.ParametricMap(
        source_images=sources,
        pixel_array=array,
        **_new_instance(series_instance_uid, series_number, sop_instance_uid),
        **_image_equipment(),
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(
            window_center=0.5, window_width=1.0, window_explanation="saliency 0 to 1")],
        content_label=content_label or _content_label(method),
        content_description=f"{method} saliency map"[:64],
        series_description=(series_description or f"Saliency map ({method})")[:64],
    )
    pmap.SharedFunctionalGroupsSequence[0].FrameAnatomySequence = [
        _frame_anatomy_group(region, laterality)]
    _frames_in_increasing_position(pmap)
    _save(pmap, path)
    return pmap


# --------------------------------------------------------------------------------------------
# SEG
# --------------------------------------------------------------------------------------------
def _cielab(rgb: Sequence[int]) -> hd.color.CIELabColor:
    """``(R, G, B)`` 0-255 as highdicom's CIELab colour, or ValueError saying what is wrong."""
    try:
        values = [float(v) for v in rgb]
    except (TypeError, ValueError):
        values = []
    if len(values) != 3 or not all(v.is_integer() and 0 <= v <= 255 for v in values):
        raise ValueError(f"write_seg: display_color must be three integers 0-255 (R, G, B); got "
                         f"{rgb!r}.")
    return hd.color.CIELabColor.from_rgb(*(int(v) for v in values))


def write_seg(
    map_volume: MapLike,
    source_datasets: SourceLike,
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    threshold: float = 0.5,
    method: str = "saliency",
    series_number: int = 902,
    series_description: Optional[str] = None,
    series_instance_uid: Optional[str] = None,
    sop_instance_uid: Optional[str] = None,
    display_color: Sequence[int] = SALIENT_REGION_RGB,
    anatomic_region: Optional[RegionLike] = None,
) -> hd.seg.Segmentation:
    """Write ``map >= threshold`` as a binary DICOM Segmentation over the source image.

    Args:
        map_volume: the map ``(K, J, I)`` on the source grid (as for :func:`write_parametric_map`);
            a bool array is written as is (``threshold`` then only labels the segment).
        source_datasets: the source image(s).
        path: where to save the object; not saved when None.
        threshold: voxels with ``map >= threshold`` are in the segment.
        method: saliency method, named in the segment label ("<method> saliency >= <threshold>")
            and in the algorithm identification (with the threshold as a parameter).
        series_number, series_description, series_instance_uid, sop_instance_uid: as for
            :func:`write_parametric_map`.
        display_color: recommended display colour of the segment, ``(R, G, B)`` integers 0-255
            (stored as Recommended Display CIELab Value); default :data:`SALIENT_REGION_RGB`.
        anatomic_region: anatomic region of the segment, as for :func:`write_parametric_map`;
            default: the source's, left out when the source names none.

    Returns:
        The :class:`highdicom.seg.Segmentation`: one segment (number 1) with segmented property
        category SCT "Spatial and Relational Concept" and type the map's quantity (DCM
        "Saliency" / "Gradient-weighted class activation"), every source frame present (empty
        frames are kept, so each frame references its source).

    Raises:
        ValueError: the map holds NaN/inf, a non-finite threshold, a ``display_color`` that is not
            three integers 0-255, or a bad ``anatomic_region``.
    """
    datasets = load_source_datasets(source_datasets)
    datasets, array = _align(map_volume, datasets, "write_seg")
    if not np.isfinite(float(threshold)):
        raise ValueError(f"write_seg: threshold must be a finite number, got {threshold!r}.")
    if array.dtype == bool:
        mask = array
    else:
        if not np.all(np.isfinite(array)):
            raise ValueError("write_seg: the map holds NaN or infinite values.")
        mask = array >= float(threshold)
    color = _cielab(display_color)
    region = _resolve_region(anatomic_region, "write_seg") or _source_anatomy(datasets[0])[0]
    sources = _prepare_sources(datasets)
    label = f"{method} saliency >= {float(threshold):g}"[:64]
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=label,
        segmented_property_category=codes.cid7150.SpatialAndRelationalConcept,
        segmented_property_type=_quantity_for(method),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=f"SaliencyTrust {method}"[:64],
            family=codes.cid7162.ArtificialIntelligence,
            version=_software_version(),
            parameters={"method": method, "threshold": f"{float(threshold):g}"},
        ),
        anatomic_regions=[region] if region is not None else None,
        display_color=color,
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        **_new_instance(series_instance_uid, series_number, sop_instance_uid),
        **_image_equipment(),
        omit_empty_frames=False,
        content_label=_content_label(f"{method}_seg"),
        content_description=label,
        series_description=(series_description or f"Salient region ({label})")[:64],
    )
    _save(seg, path)
    return seg


# --------------------------------------------------------------------------------------------
# Scorecard SR (+ JSON / CSV)
# --------------------------------------------------------------------------------------------
_VALUE_KEYS = ("value", "score", "mean")
_PASSED_KEYS = ("passed", "pass", "verdict")
CSV_COLUMNS = ("method", "criterion", "metric", "value", "baseline", "passed", "reason")


def _as_float(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number


def _as_passed(value: Any) -> Optional[bool]:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("pass", "passed", "true", "yes"):
            return True
        if lowered in ("fail", "failed", "false", "no"):
            return False
    return None


def _row(method: str, criterion: str, item: Mapping[str, Any]) -> Dict[str, Any]:
    value = next((item[k] for k in _VALUE_KEYS if k in item), None)
    passed = next((item[k] for k in _PASSED_KEYS if k in item), None)
    return {
        "method": str(method),
        "criterion": str(criterion),
        "metric": str(item.get("metric") or item.get("value_name") or ""),
        "value": _as_float(value),
        "baseline": _as_float(item.get("baseline")),
        "passed": _as_passed(passed),
        "reason": str(item.get("reason", "") or ""),
    }


def scorecard_rows(scorecard: Any) -> List[Dict[str, Any]]:
    """Flatten a scorecard into one row per method x criterion.

    Accepts a ``Scorecard`` (anything with ``to_dict()``), its dict, or rows. Recognized layouts:

    * ``{"rows": [{"method", "criterion", "value", "passed", ...}, ...]}`` or that list itself;
    * ``{"methods": {method: {criterion: {...}}}}`` or ``{method: {criterion: {...}}}``;
    * ``{"criteria": {criterion: {method: {...}}}}``.

    In each item the value is read from ``value`` (or ``score`` / ``mean``), pass/fail from
    ``passed`` (or ``pass`` / ``verdict``: bool or "pass"/"fail"), plus optional ``baseline``,
    ``metric`` and ``reason``. Other keys (curves, per-image values) stay in the JSON only.

    Returns:
        Rows with keys :data:`CSV_COLUMNS`: ``value``/``baseline`` float or None (None or NaN =
        undefined), ``passed`` True/False/None.
    """
    data = scorecard.to_dict() if hasattr(scorecard, "to_dict") else scorecard
    if isinstance(data, Mapping) and "rows" in data:
        data = data["rows"]
    if isinstance(data, (list, tuple)):
        return [_row(item.get("method", ""), item.get("criterion", ""), item) for item in data]
    if not isinstance(data, Mapping):
        raise ValueError(f"write_scorecard_sr: cannot read a scorecard of type "
                         f"{type(scorecard).__name__}; pass Scorecard, its to_dict() or rows.")
    rows: List[Dict[str, Any]] = []
    if isinstance(data.get("criteria"), Mapping) and "methods" not in data:
        for criterion, per_method in data["criteria"].items():
            for method, item in per_method.items():
                if isinstance(item, Mapping):
                    rows.append(_row(method, criterion, item))
        return rows
    methods = data.get("methods", data)
    if not isinstance(methods, Mapping):
        raise ValueError("write_scorecard_sr: the scorecard's 'methods' must map method names "
                         "to {criterion: {...}}.")
    for method, per_criterion in methods.items():
        if not isinstance(per_criterion, Mapping):
            continue
        for criterion, item in per_criterion.items():
            if isinstance(item, Mapping):
                rows.append(_row(method, criterion, item))
    return rows


def _criterion_key(criterion: str) -> str:
    """The criterion's name in :data:`CRITERIA_ORDER` (aliases resolved); others as given."""
    return CRITERION_ALIASES.get(criterion, criterion)


def _criterion_concepts(criterion: str, metric: str) -> Tuple[hd.sr.CodedConcept,
                                                              hd.sr.CodedConcept,
                                                              hd.sr.CodedConcept]:
    """``(value, baseline, verdict)`` concepts of a criterion; a criterion outside
    :data:`CRITERIA_ORDER` gets private codes derived from its name (and metric)."""
    key = _criterion_key(criterion)
    if key in CRITERION_CODES:
        return CRITERION_CODES[key], BASELINE_CODES[key], VERDICT_CODES[key]
    stem = "".join(c for c in key.upper() if c.isalnum())[:12] or "CRITERION"
    name = key.replace("_", " ").capitalize()
    metric = f" ({metric})" if metric else ""
    return (_code(stem, f"{name}{metric}"[:64]),
            _code(f"{stem}BL", f"{name} baseline{metric}"[:64]),
            _code(f"{stem}PASS", f"{name} criterion passed"[:64]))


def _undefined(value: Optional[float]) -> Code:
    """Why a number is not in the SR (DICOM CID 42 Numeric Value Qualifier)."""
    if value is not None and math.isinf(value):
        return codes.DCM.PositiveInfinity if value > 0 else codes.DCM.NegativeInfinity
    return codes.DCM.NotANumber


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return str(value)


def _finite(value: Optional[float]) -> bool:
    return value is not None and math.isfinite(value)


def write_scorecard_files(scorecard: Any, json_path: Union[str, os.PathLike],
                          csv_path: Union[str, os.PathLike]) -> Tuple[Path, Path]:
    """Write the scorecard as JSON (all of it) and CSV (one row per method x criterion).

    A :class:`SaliencyTrustLib.criteria.Scorecard` (anything with ``to_json`` / ``to_csv``) is
    written in its own documented formats. A dict or rows: the JSON is the dict as given (NaN
    written as ``NaN``, arrays as lists) and the CSV has the columns :data:`CSV_COLUMNS` (empty
    ``value``/``baseline`` cells mean undefined, ``passed`` is ``pass``, ``fail`` or empty).
    """
    json_path, csv_path = Path(json_path), Path(csv_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(scorecard, "to_json"):
        text = scorecard.to_json()
    else:
        data = scorecard.to_dict() if hasattr(scorecard, "to_dict") else scorecard
        text = json.dumps(data, indent=2, default=_json_default)
    json_path.write_text(text if isinstance(text, str) else str(text))
    if hasattr(scorecard, "to_csv"):
        csv_path.write_text(scorecard.to_csv(), newline="")
        return json_path, csv_path
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for row in scorecard_rows(scorecard):
            writer.writerow({
                **row,
                "value": "" if not _finite(row["value"]) else repr(row["value"]),
                "baseline": "" if not _finite(row["baseline"]) else repr(row["baseline"]),
                "passed": {True: "pass", False: "fail", None: ""}[row["passed"]],
            })
    return json_path, csv_path


def _columns(rows: List[Dict[str, Any]]) -> List[Tuple[str, str, bool]]:
    """``(criterion, metric, has baseline)`` of the SR's columns: the criteria of ``rows`` in
    report order (others after, as first met; metric: the first row's), with a baseline column
    when any method has a finite baseline for it."""
    metrics: Dict[str, str] = {}
    for row in rows:
        metrics.setdefault(_criterion_key(row["criterion"]), row["metric"])
    keys = sorted(metrics, key=lambda k: (CRITERIA_ORDER.index(k) if k in CRITERIA_ORDER
                                          else len(CRITERIA_ORDER)))
    return [(key, metrics[key], any(_finite(r["baseline"]) for r in rows
                                    if _criterion_key(r["criterion"]) == key)) for key in keys]


def _method_group(method: str, by_criterion: Mapping[str, Dict[str, Any]],
                  columns: List[Tuple[str, str, bool]], version: str,
                  ) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """The measurement group (TID 1501) of one method; see :func:`write_scorecard_sr`."""
    measurements, evaluations = [], []
    for key, metric, has_baseline in columns:
        row = by_criterion.get(key)
        value_code, baseline_code, verdict_code = _criterion_concepts(key, metric)
        if row is None:
            evaluations.append(hd.sr.QualitativeEvaluation(
                name=value_code, value=codes.DCM.MeasurementNotAttempted))
            continue
        numbers = [(value_code, row["value"])]
        if has_baseline:
            numbers.append((baseline_code, row["baseline"]))
        for concept, number in numbers:
            if _finite(number):
                measurements.append(hd.sr.Measurement(name=concept, value=float(number),
                                                      unit=codes.UCUM.NoUnits))
            else:
                evaluations.append(hd.sr.QualitativeEvaluation(name=concept,
                                                               value=_undefined(number)))
        evaluations.append(hd.sr.QualitativeEvaluation(name=verdict_code,
                                                       value=VERDICT_VALUES[row["passed"]]))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=method[:64]),
        algorithm_id=hd.sr.AlgorithmIdentification(name=method[:64], version=version),
        measurements=measurements or None,
        qualitative_evaluations=evaluations or None,
    )


def write_scorecard_sr(
    scorecard: Any,
    source_datasets: SourceLike,
    path: Optional[Union[str, os.PathLike]] = None,
    *,
    further_evidence: Sequence[Dataset] = (),
    series_number: int = 903,
    series_description: str = "Saliency trust scorecard",
    sidecar: bool = True,
    series_instance_uid: Optional[str] = None,
    sop_instance_uid: Optional[str] = None,
) -> hd.sr.ComprehensiveSR:
    """Write the trust scorecard as a DICOM Comprehensive SR (TID 1500 Measurement Report).

    Content: observer = this software (device), procedure reported = 99SALTRUST "Saliency map
    trustworthiness assessment", and **one measurement group (TID 1501) per method** (tracking
    identifier and algorithm name = the method), laid out as a row of the scorecard:

    * measurements, in the same order in every group, per criterion of the scorecard (report
      order: localization, randomization, repeatability, reproducibility, then any other): its
      value (:data:`CRITERION_CODES`, e.g. ``LOCUTIL`` "Localization utility (AUPRC)",
      ``REPEAT`` "Repeatability (SSIM)") and, when any method has one, its baseline
      (:data:`BASELINE_CODES`), all UCUM ``1`` (AUPRC and SSIM are unitless);
    * qualitative evaluations: the verdict of each criterion (:data:`VERDICT_CODES`, e.g.
      ``LOCUTILPASS`` = SCT Yes / No / Indeterminate for pass / fail / undecided); for a value
      that is undefined (None, NaN: DICOM numbers cannot be NaN) the value's concept = DCM
      "Not a number" (or "Positive/Negative Infinity"); for a criterion the method was not scored
      on, the value's concept = DCM "Measurement not attempted" (and no verdict).

    Why per method: 3D Slicer's QuantitativeReporting plugin (via dcmqi's ``tid1500reader``)
    shows one row per group and takes the column headings from the first group's measurements,
    filling the other rows by position. One group per method x criterion put every criterion's
    value under the first criterion's heading (SSIM under "AUPRC"). Per method, every row has
    the same columns; the first group is a method with every value defined when there is one.
    A row whose value is undefined has fewer measurements and shows its later values one column
    early in that plugin (it has no empty cell; the value's "Not a number" evaluation says so).
    The plugin lists no qualitative evaluations: verdicts are in the SR and in ``tid1500reader``'s
    JSON (``qualitativeEvaluations``), not in Slicer's table.

    Args:
        scorecard: ``Scorecard``, its ``to_dict()``, or rows (see :func:`scorecard_rows`).
        source_datasets: images the assessment is about (recorded as evidence); the SR is filed in
            the study of the first one.
        path: where to save the SR (``.dcm``); with ``sidecar`` the JSON and CSV go beside it
            as ``<stem>.json`` and ``<stem>.csv``. Nothing is saved when None.
        further_evidence: other objects to list as evidence (e.g. the Parametric Maps written).
        series_number, series_description, series_instance_uid, sop_instance_uid: of the SR.
        sidecar: write the JSON/CSV beside the SR.

    Returns:
        The :class:`highdicom.sr.ComprehensiveSR`.

    Raises:
        ValueError: the scorecard has no method x criterion entry.
    """
    rows = scorecard_rows(scorecard)
    if not rows:
        raise ValueError("write_scorecard_sr: the scorecard has no method x criterion entry; "
                         "run the criteria first (SaliencyTrustLib.criteria).")
    datasets = load_source_datasets(source_datasets)
    evidence = [*datasets, *further_evidence]
    version = _software_version()
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[MANUFACTURER, MODEL_NAME, version]),
            name=MODEL_NAME, manufacturer_name=MANUFACTURER, model_name=version),
    )
    columns = _columns(rows)
    by_method: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault(row["method"], {})[_criterion_key(row["criterion"])] = row

    def complete(method: str) -> bool:
        cells = by_method[method]
        return all(key in cells and _finite(cells[key]["value"])
                   and (not has_baseline or _finite(cells[key]["baseline"]))
                   for key, _, has_baseline in columns)

    # a complete row first: its measurements give the plugin's column headings
    methods = sorted(by_method, key=lambda m: not complete(m))
    groups = [_method_group(m, by_method[m], columns, version) for m in methods]
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=PROCEDURE_CODE,
        imaging_measurements=groups,
    )
    sr = hd.sr.ComprehensiveSR(
        evidence=evidence,
        content=report[0],
        **_new_instance(series_instance_uid, series_number, sop_instance_uid),
        is_complete=True,
        series_description=series_description[:64],
        coding_schemes=[CodingSchemeIdentificationItem(
            designator=CODING_SCHEME, name="SaliencyTrust concepts",
            responsible_organization=MANUFACTURER)],
    )
    if path is not None:
        _save(sr, path)
        if sidecar:
            path = Path(path)
            write_scorecard_files(scorecard, path.with_suffix(".json"), path.with_suffix(".csv"))
    return sr


# --------------------------------------------------------------------------------------------
# Config-constructible writers (bundle configs: {"_target_": "...ParametricMapWriter", ...})
# --------------------------------------------------------------------------------------------
class _ConfiguredWriter:
    """A writer function with its keyword arguments bound at construction, so a bundle config can
    build it (``_target_``) and call it later as ``writer(data, source_datasets, path)``."""

    _write: Callable[..., Any]

    def __init__(self, **options: Any) -> None:
        self.options = dict(options)

    def __call__(self, data: Any, source_datasets: SourceLike,
                 path: Optional[Union[str, os.PathLike]] = None) -> Any:
        return type(self)._write(data, source_datasets, path, **self.options)


class ParametricMapWriter(_ConfiguredWriter):
    """``ParametricMapWriter(method="gradcam")(map_volume, sources, path)`` -> ``hd.pm.ParametricMap``;
    see :func:`write_parametric_map` for the keyword arguments."""

    _write = staticmethod(write_parametric_map)


class SegWriter(_ConfiguredWriter):
    """``SegWriter(method="gradcam", threshold=0.5)(map_volume, sources, path)`` ->
    ``hd.seg.Segmentation``; see :func:`write_seg`."""

    _write = staticmethod(write_seg)


class ScorecardSRWriter(_ConfiguredWriter):
    """``ScorecardSRWriter(sidecar=True)(scorecard, sources, path)`` -> ``hd.sr.ComprehensiveSR``;
    see :func:`write_scorecard_sr`."""

    _write = staticmethod(write_scorecard_sr)

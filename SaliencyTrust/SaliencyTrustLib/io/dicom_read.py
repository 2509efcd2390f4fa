"""DICOM (and NIfTI/NRRD) -> :class:`~SaliencyTrustLib.image.ImageVolume`.

:func:`read_image` takes a DICOM file, a folder holding a DICOM series, or a NIfTI/NRRD/MetaImage
file. DICOM is decoded with pydicom (compressed transfer syntaxes through its pylibjpeg / pyjpegls
plugins: JPEG baseline/extended/lossless, JPEG-LS, JPEG 2000, RLE, deflate).

What happens to the pixel values (stated in ``volume.metadata``, keys in brackets):

1. **Modality LUT** [``modality_lut``], always: ``RescaleSlope``/``RescaleIntercept`` (per frame for
   enhanced objects, from the Pixel Value Transformation functional group) or the Modality LUT
   Sequence. CT comes out in Hounsfield units.
2. **VOI LUT** [``voi``], ``voi="auto"`` (default) applies it to projection radiographs only (CR,
   DX, MG, IO, PX, RF, XA, OT/SC single frames: images meant "for presentation"), never to CT/MR/PT
   series (their values keep a physical meaning). The first window (``WindowCenter``/``WindowWidth``
   with ``VOILUTFunction`` LINEAR, LINEAR_EXACT or SIGMOID, PS3.3 C.11.2.1.2) or else the first
   VOI LUT Sequence table is applied and the output scaled to **[0, 1]**. A radiograph with no VOI
   attributes is min-max scaled to [0, 1] (``voi = "min-max"``). ``voi="window"`` applies the
   window to every kind of image, ``voi="none"`` never.
3. **MONOCHROME1** [``monochrome1_inverted``] is inverted so that larger values are always
   brighter (display convention of MONOCHROME2): ``1 - v`` after a VOI; with ``voi="none"``,
   ``lo + hi - v`` where ``lo, hi`` are the modality-LUT values of the stored range (so the value
   range is kept). ``invert_monochrome1=False`` keeps the raw polarity.
4. Colour images (RGB, YBR_*, PALETTE COLOR) are converted to luma (ITU-R BT.601: 0.299 R +
   0.587 G + 0.114 B) with a warning [``converted_from_color``].

Geometry:

* Series (CT/MR/PT..., classic single-frame files or one enhanced multi-frame object): slices are
  sorted by ``ImagePositionPatient`` projected on the slice normal ``n = row x column`` (the first
  and second triplets of ``ImageOrientationPatient``); ``origin`` is the first slice's position,
  ``direction`` columns are (row direction, column direction, n), ``spacing[2]`` the median step.
  Checked: one orientation and matrix size; duplicate positions (same SOP instance twice:
  dropped with a warning; different instances at one position: error); gaps / irregular steps
  (error, or ``irregular="resample"`` to interpolate linearly onto the median step); gantry tilt
  (positions not along ``n``: ``gantry_tilt="resample"`` (default) shifts each slice in-plane
  onto an orthogonal grid with a warning, ``"keep"`` keeps the exact sheared grid (direction's K
  column not orthogonal), ``"error"`` refuses).
* Several series in a folder: error listing them, unless ``series_uid=`` picks one.
* Projection radiographs (no ``ImagePositionPatient``): a plain pixel grid, ``origin`` 0 and
  identity ``direction``; ``spacing`` from ``PixelSpacing`` (calibrated, preferred), else
  ``ImagerPixelSpacing`` divided by ``EstimatedRadiographicMagnificationFactor`` when present (else
  undivided: detector plane), else ``NominalScannedPixelSpacing``, else 1 mm
  [``spacing_source`` says which].

Every volume's ``metadata`` also holds ``source_path``, ``source_files`` and ``SOPInstanceUIDs`` (one
per K slice, in K order; ``frame_numbers`` too for multi-frame objects), ``SeriesInstanceUID``,
``StudyInstanceUID``, ``FrameOfReferenceUID``, ``Modality``, ``PatientID``,
``PhotometricInterpretation``, ``TransferSyntaxUID`` and ``warnings`` (text of each warning given).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

from ..image import ImageVolume
from .dicom_checks import check_lut, check_pixel_module, number, numbers
from .errors import InputError, InputWarning

PathLike = Union[str, os.PathLike]

#: Modalities read as projection radiographs (VOI applied, [0, 1] output, by default).
PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "PX", "RF", "XA", "OT", "SC", "DR", "RG"})

#: Objects that are not images to explain: passing one as the image is an error that says so.
NON_IMAGE_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.66.4": "a Segmentation (SEG)",
    "1.2.840.10008.5.1.4.1.1.66.7": "a Label Map Segmentation",
    "1.2.840.10008.5.1.4.1.1.481.3": "an RT Structure Set (RTSTRUCT)",
    "1.2.840.10008.5.1.4.1.1.481.5": "an RT Plan (RTPLAN)",
    "1.2.840.10008.5.1.4.1.1.30": "a Parametric Map",
    "1.2.840.10008.5.1.4.1.1.11.1": "a Presentation State (PR)",
    "1.2.840.10008.5.1.4.1.1.66": "a Raw Data object",
}
_NON_IMAGE_MODALITIES = {"SR": "a Structured Report (SR)", "KO": "a Key Object Selection",
                         "SEG": "a Segmentation (SEG)", "RTSTRUCT": "an RT Structure Set (RTSTRUCT)",
                         "RTPLAN": "an RT Plan", "PR": "a Presentation State", "REG": "a Registration",
                         "ECG": "a waveform (ECG)", "DOC": "an encapsulated document"}
_GROUND_TRUTH_HINT = ("pass the image (the series it refers to) to read_image, and this file as "
                      "ground truth to read_ground_truth(path, reference=image)")

#: Tolerances of the series checks.
POSITION_TOLERANCE_MM = 0.01
SPACING_RELATIVE_TOLERANCE = 0.01
TILT_TOLERANCE_DEGREES = 0.01
ORIENTATION_TOLERANCE = 1e-4


# --------------------------------------------------------------------------------------- files
def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            preamble = handle.read(132)
    except OSError:
        return False
    return len(preamble) == 132 and preamble[128:132] == b"DICM"


def read_dataset(path: PathLike, stop_before_pixels: bool = False, force: bool = False,
                 messages: Optional[List[str]] = None, check_pixels: bool = True):
    """``pydicom.dcmread`` plus the checks of :mod:`~SaliencyTrustLib.io.dicom_checks`, with every
    problem as one :class:`InputError` (not DICOM, corrupt, truncated, inconsistent header).

    Every element is parsed (damaged private elements dropped with a warning), the transfer
    syntax made one known UID, and, when the pixel data is read, the Image Pixel attributes
    checked against each other and against the pixel data's length.

    Args:
        path: the file.
        stop_before_pixels: read the header only (no pixel checks).
        force: also read files without the Part 10 preamble (old exports); such a file must
            still hold a SOPClassUID to count as DICOM.
        messages: a list that receives the text of each warning given.
        check_pixels: run :func:`~SaliencyTrustLib.io.dicom_checks.check_pixel_module` (when the
            pixel data is read); False leaves it to the caller (to first tell what the object is).
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from .dicom_checks import check_transfer_syntax, parse_elements

    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist.", "Check the path.")
    if path.is_dir():
        raise InputError(path, "is a folder, expected one DICOM file.",
                         "Pass one file, or use read_image(folder) for a series.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=force)
        if force and "SOPClassUID" not in dataset:
            raise InvalidDicomError("no DICOM preamble and no SOPClassUID")
    except InvalidDicomError as error:
        raise InputError(path, f"is not a DICOM file ({error}).",
                         "Pass a DICOM Part 10 file (with the 'DICM' preamble), a NIfTI/NRRD file, "
                         "or a folder of DICOM files.") from error
    except Exception as error:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise InputError(path, f"is corrupt or truncated: pydicom could not parse it "
                         f"({type(error).__name__}: {error}).",
                         "Re-export or re-transfer the file from its source (PACS, scanner).") from error
    dropped: List[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # pydicom's own warnings about odd values: checked later
        meta = getattr(dataset, "file_meta", None)
        if meta is not None:   # its elements are parsed lazily too
            parse_elements(meta, path, dropped, file_meta=True)
        parse_elements(dataset, path, dropped)
    for text in dropped:
        warnings.warn(text, InputWarning, stacklevel=2)
        if messages is not None:
            messages.append(text)
    check_transfer_syntax(dataset, path, messages)
    if check_pixels and not stop_before_pixels:
        check_pixel_module(dataset, path, messages)
    return dataset


def _non_image_kind(dataset, check_pixels: bool = True) -> Optional[str]:
    sop_class = str(dataset.get("SOPClassUID", ""))
    if sop_class in NON_IMAGE_SOP_CLASSES:
        return NON_IMAGE_SOP_CLASSES[sop_class]
    if sop_class.startswith("1.2.840.10008.5.1.4.1.1.88."):
        return "a Structured Report (SR)"
    modality = str(dataset.get("Modality", ""))
    if modality in _NON_IMAGE_MODALITIES:
        return _NON_IMAGE_MODALITIES[modality]
    if check_pixels and not any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        return "an object without pixel data"
    return None


def folder_files(folder: Path) -> List[Path]:
    """The files a DICOM folder offers, recursively, sorted by path: hidden files (``.name``)
    and ``DICOMDIR`` indexes left out. Used by every reader and writer that takes a folder."""
    return [p for p in sorted(Path(folder).rglob("*")) if p.is_file()
            and not p.name.startswith(".") and p.name.upper() != "DICOMDIR"]


def expand_dicom_inputs(inputs: Any, what: str = "the DICOM file(s) or folder") -> List[Any]:
    """Datasets and files, in order, from a dataset, a file, a folder (its :func:`folder_files`)
    or a sequence of those: datasets are passed through, paths become ``Path`` objects.

    Raises:
        InputError: a path that does not exist, or a folder without a file; ``what`` names the
            input in the fix.
    """
    from pydicom.dataset import Dataset

    if isinstance(inputs, (Dataset, str, os.PathLike)):
        inputs = [inputs]
    expanded: List[Any] = []
    for item in inputs:
        if isinstance(item, Dataset):
            expanded.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            files = folder_files(path)
            if not files:
                raise InputError(path, "is an empty folder.", f"pass {what}.")
            expanded.extend(files)
        elif path.is_file():
            expanded.append(path)
        else:
            raise InputError(path, "does not exist.", f"pass {what}.")
    return expanded


def _collect_files(folder: Path) -> List[Path]:
    return [p for p in folder_files(folder) if _is_dicom_file(p)]


@dataclass
class SeriesInfo:
    """One series found in a folder (see :func:`list_series`)."""

    series_uid: str
    modality: str
    description: str
    files: List[Path] = field(default_factory=list)
    non_image: Optional[str] = None

    def __str__(self) -> str:
        kind = f" ({self.non_image})" if self.non_image else ""
        return (f"{self.series_uid} [{self.modality}{kind}] '{self.description}': "
                f"{len(self.files)} file(s)")


def list_series(folder: PathLike) -> List[SeriesInfo]:
    """The DICOM series under ``folder`` (recursive), headers only, in order of first file name."""
    folder = Path(folder)
    series: Dict[str, SeriesInfo] = {}
    for path in _collect_files(folder):
        dataset = read_dataset(path, stop_before_pixels=True)
        uid = str(dataset.get("SeriesInstanceUID", "")) or f"(no SeriesInstanceUID: {path.name})"
        if uid not in series:
            series[uid] = SeriesInfo(uid, str(dataset.get("Modality", "?")),
                                     str(dataset.get("SeriesDescription", "")),
                                     non_image=_non_image_kind(dataset, check_pixels=False))
        series[uid].files.append(path)
    return list(series.values())


# --------------------------------------------------------------------------------------- frames
@dataclass
class _Frame:
    """One 2D frame to stack: where it is, how to turn its stored values into modality values."""

    dataset: Any
    path: Path
    frame_index: Optional[int]               # 0-based index in a multi-frame object, None if single
    position: Optional[np.ndarray]           # ImagePositionPatient (3,), LPS mm
    orientation: Optional[np.ndarray]        # ImageOrientationPatient (6,)
    pixel_spacing: Optional[np.ndarray]      # (row spacing, column spacing) mm = (sJ, sI)
    slope: float = 1.0
    intercept: float = 0.0
    window: Optional[tuple] = None           # (center, width, function) of this frame

    @property
    def sop_instance_uid(self) -> str:
        return str(self.dataset.get("SOPInstanceUID", ""))

    @property
    def key(self) -> tuple:
        return (self.sop_instance_uid, self.frame_index)


def _functional_group(dataset, frame_index: int, keyword: str):
    for sequence_keyword, index in (("PerFrameFunctionalGroupsSequence", frame_index),
                                    ("SharedFunctionalGroupsSequence", 0)):
        groups = dataset.get(sequence_keyword)
        if groups is not None and len(groups) > index:
            items = groups[index].get(keyword)
            if items is not None and len(items):
                return items[0]
    return None


def _floats(item, keyword: str, count: int, path: Path, where: str = "") -> Optional[np.ndarray]:
    """A fixed-count numeric attribute (a position, an orientation, a spacing), or None if absent.

    A spacing of 0 or less (seen in the wild) means "unknown": None. A value that is present but
    not ``count`` finite numbers is an :class:`InputError` (read as absent, it would silently give
    the image another geometry).
    """
    values = numbers(item, keyword, path, float, count=count, where=where)
    if values is None:
        return None
    array = np.asarray(values, dtype=float)
    if count == 2 and np.any(array <= 0):
        return None
    if count == 6 and not (np.isclose(np.linalg.norm(array[:3]), 1, atol=1e-2)
                           and np.isclose(np.linalg.norm(array[3:]), 1, atol=1e-2)
                           and abs(float(array[:3] @ array[3:])) < 1e-2):
        raise InputError(path, f"{where}ImageOrientationPatient {values} is not two orthogonal unit "
                         "vectors.", "Correct the orientation in the file, or re-export it.")
    return array


def _window_of(item, path: Path, where: str = "") -> Optional[tuple]:
    """``(center, width, function)`` of the first window of ``item``, or None when it has none."""
    if item is None or "WindowCenter" not in item or "WindowWidth" not in item:
        return None
    center = number(item, "WindowCenter", path, default=None, where=where, first=True)
    width = number(item, "WindowWidth", path, default=None, where=where, first=True)
    if center is None or width is None:
        return None
    function = str(item.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    return center, width, function     # apply_window takes an unknown function as LINEAR


def _rescale(item, path: Path, messages: List[str], where: str = "") -> tuple:
    """``(slope, intercept)`` of ``item`` (defaults 1 and 0). A slope of 0 (written by some
    devices for "unset") is read as 1 with a warning, as dcm2niix does: taken literally it would
    make every pixel the intercept."""
    slope = number(item, "RescaleSlope", path, default=1.0, where=where)
    intercept = number(item, "RescaleIntercept", path, default=0.0, where=where)
    if slope == 0:
        _warn(messages, path, f"{where}RescaleSlope is 0; read as 1.")
        slope = 1.0
    return slope, intercept


def _frames_of(dataset, path: Path, messages: List[str]) -> List[_Frame]:
    frames_in_object = number(dataset, "NumberOfFrames", path, int, default=1)
    is_multiframe = "NumberOfFrames" in dataset and (
        frames_in_object > 1 or "PerFrameFunctionalGroupsSequence" in dataset)
    for keyword in ("ModalityLUTSequence", "VOILUTSequence"):
        if dataset.get(keyword):
            check_lut(dataset[keyword][0], keyword, path)
    if not is_multiframe:
        return [_Frame(dataset, path, None,
                       _floats(dataset, "ImagePositionPatient", 3, path),
                       _floats(dataset, "ImageOrientationPatient", 6, path),
                       _floats(dataset, "PixelSpacing", 2, path),
                       *_rescale(dataset, path, messages),
                       _window_of(dataset, path))]
    frames = []
    offsets = numbers(dataset, "GridFrameOffsetVector", path)  # RT Dose: positions along the normal
    if offsets is not None and len(offsets) != frames_in_object:
        raise InputError(path, f"has {len(offsets)} GridFrameOffsetVector values for "
                         f"{frames_in_object} frames.", "Re-export the dose grid from its source.")
    base_position = _floats(dataset, "ImagePositionPatient", 3, path)
    base_orientation = _floats(dataset, "ImageOrientationPatient", 6, path)
    base_spacing = _floats(dataset, "PixelSpacing", 2, path)
    base_rescale = _rescale(dataset, path, messages)
    base_window = _window_of(dataset, path)
    dose_scaling = number(dataset, "DoseGridScaling", path, default=1.0)
    for index in range(frames_in_object):
        where = f"frame {index + 1}: "
        position = _functional_group(dataset, index, "PlanePositionSequence")
        orientation = _functional_group(dataset, index, "PlaneOrientationSequence")
        measures = _functional_group(dataset, index, "PixelMeasuresSequence")
        transform = _functional_group(dataset, index, "PixelValueTransformationSequence")
        voi = _functional_group(dataset, index, "FrameVOILUTSequence")
        position_lps = _floats(position, "ImagePositionPatient", 3, path, where)
        orientation_cosines = _floats(orientation, "ImageOrientationPatient", 6, path, where)
        spacing = _floats(measures, "PixelSpacing", 2, path, where)
        if position_lps is None and orientation_cosines is None:
            orientation_cosines = base_orientation
            if base_position is not None and orientation_cosines is not None and offsets is not None:
                normal = np.cross(orientation_cosines[:3], orientation_cosines[3:])
                position_lps = base_position + offsets[index] * normal
        if spacing is None:
            spacing = base_spacing
        slope, intercept = _rescale(transform, path, messages, where) if transform else base_rescale
        frames.append(_Frame(dataset, path, index, position_lps, orientation_cosines, spacing,
                             slope * dose_scaling, intercept,
                             _window_of(voi, path, where) or base_window))
    return frames


class _Decoder:
    """Decodes each dataset's pixel data once, with errors naming the file and the fix."""

    def __init__(self) -> None:
        self._cache: Dict[int, np.ndarray] = {}
        self.converted_from_color = False

    def __call__(self, frame: _Frame) -> np.ndarray:
        key = id(frame.dataset)
        if key not in self._cache:
            self._cache[key] = self._decode(frame.dataset, frame.path)
        pixels = self._cache[key]
        if frame.frame_index is None:
            return pixels if pixels.ndim == 2 else pixels[0]
        return pixels[frame.frame_index] if pixels.ndim == 3 else pixels

    def _decode(self, dataset, path: Path) -> np.ndarray:
        from pydicom.pixels import pixel_array
        from pydicom.pixels.decoders.base import get_decoder

        syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
        if syntax is not None and "PixelData" in dataset:
            try:
                decoder = get_decoder(syntax)
                available = decoder.is_available
            except NotImplementedError:
                decoder, available = None, False
            if not available:
                name = getattr(syntax, "name", str(syntax))
                raise InputError(path, f"uses the transfer syntax {syntax} ({name}), which the installed "
                                 "pydicom plugins cannot decode.",
                                 "Convert the file to an uncompressed syntax (e.g. `gdcmconv --raw in.dcm "
                                 "out.dcm` or `dcmdjpeg`), or install the plugin for it "
                                 "(pylibjpeg-libjpeg, pylibjpeg-openjpeg, pylibjpeg-rle, pyjpegls).")
        photometric = str(dataset.PhotometricInterpretation).strip()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # as_rgb: pydicom converts every YBR_* photometric to RGB (native and compressed).
                pixels = pixel_array(dataset, as_rgb=True)
                if photometric == "PALETTE COLOR":
                    from pydicom.pixels import apply_color_lut

                    pixels = apply_color_lut(pixels, dataset)
        except Exception as error:  # noqa: BLE001 - decoders raise many types on damaged data
            raise InputError(path, f"pixel data could not be decoded ({type(error).__name__}: {error}): "
                             "the file is corrupt, or compressed in a variant the installed decoders "
                             "do not support.",
                             "Re-export or re-transfer the file from its source (PACS, scanner), or "
                             "convert it to an uncompressed syntax (`gdcmconv --raw in.dcm out.dcm`).") \
                from error
        except BaseException as error:
            # pylibjpeg-rle is written in Rust: on some corrupt data it panics, which pyo3 raises
            # as PanicException, a BaseException (so that `except Exception` does not catch it).
            if type(error).__name__ != "PanicException":
                raise
            raise InputError(path, f"pixel data could not be decoded (the decoder panicked: {error}); "
                             "the file looks corrupt.",
                             "Re-export or re-transfer the file from its source (PACS, scanner).") \
                from error
        frames = number(dataset, "NumberOfFrames", path, int, default=1)
        expected = (int(dataset.Rows), int(dataset.Columns))   # checked by read_dataset
        plane = tuple(pixels.shape[1:3] if frames > 1 else pixels.shape[:2])
        if plane != expected or (frames > 1 and pixels.shape[0] != frames):
            raise InputError(path, f"decodes to an array of shape {pixels.shape} where its header "
                             f"declares {frames} frame(s) of {expected[0]} x {expected[1]}.",
                             "Re-export the file from its source (its header and pixel data disagree).")
        if pixels.ndim == (4 if frames > 1 else 3):
            pixels = pixels.astype(np.float32) @ np.asarray([0.299, 0.587, 0.114], np.float32)
            self.converted_from_color = True
        return np.asarray(pixels)


# --------------------------------------------------------------------------------------- values
def _stored_range(dataset) -> tuple:
    """The range of stored values (attributes checked by read_dataset; float data: BitsAllocated)."""
    bits = int(dataset.get("BitsStored", None) or dataset.BitsAllocated)
    if int(dataset.get("PixelRepresentation", 0) or 0):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def _lut_values(item) -> np.ndarray:
    """A LUT item's table as numbers (LUTData read as OW comes as bytes; checked by check_lut)."""
    data = item.LUTData
    if isinstance(data, (bytes, bytearray)):
        return np.frombuffer(data, dtype="<u2" if int(item.LUTDescriptor[2]) > 8 else np.uint8)
    return np.atleast_1d(np.asarray(data, dtype=float))


def _modality(pixels: np.ndarray, frame: _Frame) -> tuple:
    """Stored -> modality values (float32) and a description of what was applied."""
    dataset = frame.dataset
    if frame.frame_index is None and "ModalityLUTSequence" in dataset:
        from pydicom.pixels import apply_modality_lut

        return np.asarray(apply_modality_lut(pixels, dataset), np.float32), "Modality LUT Sequence"
    values = pixels.astype(np.float32)
    if frame.slope != 1.0 or frame.intercept != 0.0:
        values = values * np.float32(frame.slope) + np.float32(frame.intercept)
        return values, f"rescale slope {frame.slope:g} intercept {frame.intercept:g}"
    return values, "none (slope 1, intercept 0)"


def _modality_range(frame: _Frame) -> tuple:
    low, high = _stored_range(frame.dataset)
    if frame.frame_index is None and "ModalityLUTSequence" in frame.dataset:
        lut = _lut_values(frame.dataset.ModalityLUTSequence[0])
        return float(lut.min()), float(lut.max())
    ends = sorted((low * frame.slope + frame.intercept, high * frame.slope + frame.intercept))
    return ends[0], ends[1]


def apply_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) with output scaled to [0, 1].

    Args:
        values: modality values (any shape).
        center, width: ``WindowCenter``, ``WindowWidth``.
        function: ``VOILUTFunction``: ``LINEAR`` (default; ``x <= c - 0.5 - (w - 1) / 2`` -> 0,
            ``x > c - 0.5 + (w - 1) / 2`` -> 1, else ``((x - (c - 0.5)) / (w - 1) + 0.5)``),
            ``LINEAR_EXACT`` (``(x - c) / w + 0.5`` clipped) or ``SIGMOID``
            (``1 / (1 + exp(-4 (x - c) / w))``).
    """
    values = np.asarray(values, dtype=np.float32)
    function = (function or "LINEAR").upper()
    if function == "SIGMOID":
        return (1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))).astype(np.float32)
    if function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"LINEAR_EXACT window width must be > 0, got {width}")
        return np.clip((values - center) / width + 0.5, 0.0, 1.0).astype(np.float32)
    if width < 1:
        raise ValueError(f"LINEAR window width must be >= 1, got {width}")
    if width == 1:
        return (values > center - 0.5).astype(np.float32)
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0).astype(np.float32)


def usable_window(window: Optional[tuple]) -> bool:
    """True for a window :func:`apply_window` can apply: LINEAR needs a width >= 1, LINEAR_EXACT
    and SIGMOID a width > 0. Other windows (width 0 or less, seen in the wild) are ignored: the
    next VOI step applies (VOI LUT Sequence, else min-max)."""
    if window is None:
        return False
    _, width, function = window
    return width >= 1 if function == "LINEAR" else width > 0


def _voi(values: np.ndarray, pixels: np.ndarray, frame: _Frame) -> tuple:
    """Modality values -> [0, 1] display values, and what was applied."""
    dataset = frame.dataset
    if usable_window(frame.window):
        center, width, function = frame.window
        return apply_window(values, center, width, function), \
            f"window center {center:g} width {width:g} ({function})"
    if frame.frame_index is None and "VOILUTSequence" in dataset:
        from pydicom.pixels import apply_voi

        item = dataset.VOILUTSequence[0]
        bits = int(item.LUTDescriptor[2])
        lut_input = values if "ModalityLUTSequence" in dataset or frame.slope != 1 or frame.intercept != 0 \
            else pixels
        mapped = np.asarray(apply_voi(lut_input, dataset, index=0), np.float32)
        return np.clip(mapped / float(2 ** bits - 1), 0, 1), "VOI LUT Sequence (first table)"
    low, high = float(values.min()), float(values.max())
    scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    return scaled.astype(np.float32), f"min-max ({low:g}..{high:g}; no VOI in the file)"


# --------------------------------------------------------------------------------------- stacking
def _warn(messages: List[str], path: Path, text: str) -> None:
    message = f"{path}: {text}"
    messages.append(message)
    warnings.warn(message, InputWarning, stacklevel=4)


def _pixel_spacing(frames: Sequence[_Frame], path: Path) -> tuple:
    spacings = [f.pixel_spacing for f in frames if f.pixel_spacing is not None]
    if not spacings:
        return (1.0, 1.0), "none (1 mm assumed)"
    if not np.allclose(spacings, spacings[0], rtol=1e-4):
        raise InputError(path, f"mixes pixel spacings {sorted({tuple(s) for s in map(tuple, spacings)})} "
                         "in one series.", "Pass a folder holding one consistent series.")
    return (float(spacings[0][1]), float(spacings[0][0])), "PixelSpacing"


def _stack_positioned(frames: List[_Frame], decode: _Decoder, path: Path, messages: List[str],
                      irregular: str, gantry_tilt: str, duplicates: str) -> tuple:
    """Sort, check and stack positioned frames. Returns (array (K,J,I) modality values, geometry...)."""
    orientation = frames[0].orientation
    for frame in frames:
        if frame.orientation is None or frame.position is None:
            raise InputError(frame.path, "lacks ImagePositionPatient/ImageOrientationPatient while the "
                             "rest of its series has them.", "Re-export the series; every slice must "
                             "carry its position and orientation.")
        if not np.allclose(frame.orientation, orientation, atol=ORIENTATION_TOLERANCE):
            raise InputError(path, f"mixes slice orientations ({np.round(orientation, 4).tolist()} and "
                             f"{np.round(frame.orientation, 4).tolist()} in {frame.path.name}): a "
                             "localizer or a reformatted series is mixed in.",
                             "Keep only the slices of one orientation (remove the localizer files) "
                             "or pass series_uid= to pick one series.")
    shapes = {(int(f.dataset.Rows), int(f.dataset.Columns)) for f in frames}
    if len(shapes) > 1:
        raise InputError(path, f"mixes matrix sizes {sorted(shapes)} in one series.",
                         "Pass a folder holding one consistent series.")
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    distances = np.asarray([float(f.position @ normal) for f in frames])
    order = np.argsort(distances, kind="stable")
    frames = [frames[i] for i in order]
    distances = distances[order]

    kept, kept_d = [frames[0]], [distances[0]]
    for frame, distance in zip(frames[1:], distances[1:]):
        if abs(distance - kept_d[-1]) > POSITION_TOLERANCE_MM:
            kept.append(frame)
            kept_d.append(distance)
            continue
        if frame.key == kept[-1].key:
            _warn(messages, path, f"holds the same instance twice ({frame.path.name} and "
                  f"{kept[-1].path.name}); the duplicate was dropped.")
            continue
        if duplicates == "first":
            _warn(messages, path, f"two slices at {distance:.3f} mm along the normal ({kept[-1].path.name}, "
                  f"{frame.path.name}); kept the first.")
            continue
        raise InputError(path, f"has two different slices at the same position ({distance:.3f} mm along "
                         f"the slice normal): {kept[-1].path.name} (instance {kept[-1].sop_instance_uid}"
                         f"{'' if kept[-1].frame_index is None else f', frame {kept[-1].frame_index + 1}'}) and "
                         f"{frame.path.name} (instance {frame.sop_instance_uid}"
                         f"{'' if frame.frame_index is None else f', frame {frame.frame_index + 1}'}): several "
                         "acquisitions, echoes, phases or stacks are mixed.",
                         "Split the series by AcquisitionNumber / EchoNumbers / TemporalPositionIdentifier "
                         "into separate folders, or pass duplicates='first' to keep the first slice.")
    frames, distances = kept, np.asarray(kept_d)
    (sI, sJ), pixel_spacing_source = _pixel_spacing(frames, path)

    pixels = [decode(f) for f in frames]
    values = [_modality(p, f)[0] for p, f in zip(pixels, frames)]
    array = np.stack(values).astype(np.float32)
    positions = np.stack([f.position for f in frames])
    origin = positions[0].copy()
    k_axis, sK = normal, 1.0
    resampled_along_k = False
    if len(frames) > 1:
        # Gantry tilt first, on the slices as acquired: their origins move sideways as well as
        # along the normal.
        displacement = positions[-1] - positions[0]
        along = float(displacement @ normal)
        sideways = displacement - along * normal
        tilt = float(np.degrees(np.arctan2(np.linalg.norm(sideways), abs(along))))
        if tilt > TILT_TOLERANCE_DEGREES:
            declared = frames[0].dataset.get("GantryDetectorTilt")
            text = (f"is acquired with a gantry tilt of {tilt:.2f} degrees (slice positions sheared "
                    f"relative to the slice normal{'' if declared is None else f'; GantryDetectorTilt {declared}'}).")
            if gantry_tilt == "error":
                raise InputError(path, text, "Pass gantry_tilt='resample' (orthogonal grid) or 'keep' "
                                 "(exact sheared grid), or resample it in 3D Slicer / dcm2niix first.")
            if gantry_tilt == "keep":
                _warn(messages, path, text + " Kept the sheared grid: direction's K column is not "
                      "orthogonal to the slices (NIfTI writers need an orthogonal grid).")
                k_axis = displacement / np.linalg.norm(displacement)
            else:
                _warn(messages, path, text + " Each slice was shifted in-plane onto an orthogonal grid "
                      "(linear interpolation).")
                array = _unshear(array, positions - origin, row_dir, col_dir, normal, sI, sJ)
        # Then the steps along the normal: gaps, uneven spacing.
        steps = np.diff(distances)
        sK = float(np.median(steps))
        irregular_steps = np.abs(steps - sK) > SPACING_RELATIVE_TOLERANCE * sK + 1e-3
        if irregular_steps.any():
            where = int(np.argmax(np.abs(steps - sK)))
            text = (f"slice positions are not evenly spaced: step of {steps[where]:.3f} mm between "
                    f"{frames[where].path.name} and {frames[where + 1].path.name} where the series' "
                    f"spacing is {sK:.3f} mm ({int(irregular_steps.sum())} irregular step(s)"
                    f"{'; missing slices?' if steps[where] > sK else ''}).")
            if irregular != "resample":
                raise InputError(path, text, "Re-export the complete series, or pass irregular='resample' "
                                 "to interpolate linearly onto the median spacing.")
            _warn(messages, path, text + " Resampled linearly onto the median spacing.")
            targets = np.arange(distances[0], distances[-1] + 1e-6 * sK, sK)
            array = _interpolate_along_k(array, distances, targets)
            resampled_along_k = True
        if k_axis is not normal:   # sheared grid kept: the K step is along the slice displacement
            sK = sK / float(k_axis @ normal)
    direction = np.stack([row_dir, col_dir, k_axis], axis=1)
    sops = [f.sop_instance_uid for f in frames]
    extra = {"source_files": [str(f.path) for f in frames], "SOPInstanceUIDs": sops,
             "spacing_source": f"{pixel_spacing_source} + slice positions"}
    if any(f.frame_index is not None for f in frames):
        extra["frame_numbers"] = [None if f.frame_index is None else f.frame_index + 1 for f in frames]
    if resampled_along_k:  # the K slices no longer map one to one onto the instances
        extra["resampled_along_k"] = True
    return array, (sI, sJ, abs(sK)), origin, direction, frames, pixels, extra


def _interpolate_along_k(array: np.ndarray, distances: np.ndarray, targets: np.ndarray) -> np.ndarray:
    upper = np.clip(np.searchsorted(distances, targets, side="right"), 1, len(distances) - 1)
    lower = upper - 1
    weight = ((targets - distances[lower]) / (distances[upper] - distances[lower])).astype(np.float32)
    weight = np.clip(weight, 0, 1)[:, None, None]
    return (array[lower] * (1 - weight) + array[upper] * weight).astype(np.float32)


def _unshear(array: np.ndarray, offsets: np.ndarray, row_dir, col_dir, normal, sI: float,
             sJ: float) -> np.ndarray:
    from scipy import ndimage

    out = np.empty_like(array)
    fill = float(array.min())
    for k, offset in enumerate(offsets):
        sideways = offset - float(offset @ normal) * normal
        shift_i, shift_j = float(sideways @ row_dir) / sI, float(sideways @ col_dir) / sJ
        out[k] = ndimage.shift(array[k], (shift_j, shift_i), order=1, mode="constant", cval=fill)
    return out


def _projection_spacing(dataset, path: Path) -> tuple:
    pixel = _floats(dataset, "PixelSpacing", 2, path)
    if pixel is not None:
        return (pixel[1], pixel[0]), "PixelSpacing"
    imager = _floats(dataset, "ImagerPixelSpacing", 2, path)
    if imager is not None:
        magnification = number(dataset, "EstimatedRadiographicMagnificationFactor", path, default=None)
        if magnification is not None and magnification <= 0:
            raise InputError(path, f"EstimatedRadiographicMagnificationFactor is {magnification:g}; "
                             "a magnification must be positive.",
                             "Correct it in the file (usually 1.0 to 1.2), or re-export it.")
        if magnification:
            return (imager[1] / magnification, imager[0] / magnification), \
                f"ImagerPixelSpacing / EstimatedRadiographicMagnificationFactor {magnification:g}"
        return (imager[1], imager[0]), "ImagerPixelSpacing (detector plane, magnification not corrected)"
    nominal = _floats(dataset, "NominalScannedPixelSpacing", 2, path)
    if nominal is not None:
        return (nominal[1], nominal[0]), "NominalScannedPixelSpacing"
    return (1.0, 1.0), "none (1 mm assumed)"


# --------------------------------------------------------------------------------------- public
def _select_series(datasets: List[tuple], path: Path, series_uid: Optional[str]) -> List[tuple]:
    groups: Dict[str, List[tuple]] = {}
    skipped = []
    for file_path, dataset in datasets:
        kind = _non_image_kind(dataset)
        if kind:
            skipped.append(f"{file_path.name} ({kind})")
            continue
        groups.setdefault(str(dataset.get("SeriesInstanceUID", "")), []).append((file_path, dataset))
    if series_uid is not None:
        if series_uid not in groups:
            listing = "; ".join(f"{uid} ({len(items)} files)" for uid, items in groups.items()) or "none"
            raise InputError(path, f"holds no image series with SeriesInstanceUID {series_uid} "
                             f"(image series found: {listing}).", "Pass one of the listed UIDs.")
        return groups[series_uid]
    if not groups:
        extra = f" (found only: {', '.join(skipped[:5])}{'...' if len(skipped) > 5 else ''})" if skipped else ""
        raise InputError(path, f"holds no DICOM image{extra}.",
                         "Pass the folder or file of the image series; " + _GROUND_TRUTH_HINT + ".")
    if len(groups) > 1:
        listing = "; ".join(
            f"{uid} [{items[0][1].get('Modality', '?')}] '{items[0][1].get('SeriesDescription', '')}' "
            f"({len(items)} files)" for uid, items in list(groups.items())[:10])
        if len(groups) > 10:
            listing += f"; ... and {len(groups) - 10} more (list them with list_series(folder))"
        raise InputError(path, f"holds {len(groups)} image series: {listing}.",
                         "Pass series_uid='<one of them>' to read_image, or put each series in its "
                         "own folder.")
    return next(iter(groups.values()))


def read_dicom(path: PathLike, series_uid: Optional[str] = None, voi: str = "auto",
               invert_monochrome1: bool = True, irregular: str = "error",
               gantry_tilt: str = "resample", duplicates: str = "error",
               force: bool = False) -> ImageVolume:
    """Read a DICOM file or a folder holding one DICOM series (see the module docstring).

    Args:
        path: a DICOM file (single- or multi-frame) or a folder (searched recursively; files that are
            not DICOM and ``DICOMDIR`` are ignored; SEG/RTSTRUCT/SR files in it are skipped).
        series_uid: the SeriesInstanceUID to read when the folder holds several series.
        voi: ``"auto"``, ``"window"`` or ``"none"`` (see the module docstring).
        invert_monochrome1: make MONOCHROME1 images brighter-is-larger.
        irregular: ``"error"`` or ``"resample"`` for slice gaps / uneven steps.
        gantry_tilt: ``"resample"``, ``"keep"`` or ``"error"``.
        duplicates: ``"error"`` or ``"first"`` for different slices at one position.
        force: read a single file even without the DICOM preamble.

    Returns:
        :class:`ImageVolume`, ``array`` float32 ``(K, J, I)``; LPS geometry.

    Raises:
        InputError: not DICOM, corrupt/truncated, non-image object, unsupported transfer syntax,
            several series without ``series_uid``, inconsistent series.
    """
    for name, value, allowed in (("voi", voi, ("auto", "window", "none")),
                                 ("irregular", irregular, ("error", "resample")),
                                 ("gantry_tilt", gantry_tilt, ("resample", "keep", "error")),
                                 ("duplicates", duplicates, ("error", "first"))):
        if value not in allowed:
            raise InputError(None, f"read_dicom: {name}={value!r} is not one of {allowed}.",
                             f"Pass {name} as one of {allowed}.")
    path = Path(path)
    messages: List[str] = []
    if path.is_dir():
        files = _collect_files(path)
        if not files:
            raise InputError(path, "holds no DICOM file (no file with the 'DICM' preamble).",
                             "Pass the folder that holds the .dcm files of one series.")
        datasets = [(f, read_dataset(f, messages=messages, check_pixels=False)) for f in files]
    else:
        dataset = read_dataset(path, force=force, messages=messages, check_pixels=False)
        kind = _non_image_kind(dataset)
        if kind:
            raise InputError(path, f"is {kind} ({dataset.get('Modality', '?')}, SOP class "
                             f"{dataset.get('SOPClassUID', '?')}), not an image.",
                             _GROUND_TRUTH_HINT[0].upper() + _GROUND_TRUTH_HINT[1:] + ".")
        datasets = [(path, dataset)]
    selected = _select_series(datasets, path, series_uid)
    frames: List[_Frame] = []
    for file_path, dataset in selected:
        check_pixel_module(dataset, file_path, messages)
        frames.extend(_frames_of(dataset, file_path, messages))
    first = frames[0].dataset
    modality = str(first.get("Modality", ""))
    decode = _Decoder()
    positioned = all(f.position is not None and f.orientation is not None for f in frames)
    if positioned and (len(frames) > 1 or modality not in PROJECTION_MODALITIES):
        array, spacing, origin, direction, frames, pixels, extra = _stack_positioned(
            frames, decode, path, messages, irregular, gantry_tilt, duplicates)
        spacing_source = extra.pop("spacing_source")
        if len(frames) == 1:
            thickness = _slice_step(first, path, "SpacingBetweenSlices") or \
                _slice_step(first, path, "SliceThickness")
            spacing = (spacing[0], spacing[1], thickness or 1.0)
    else:
        frames = sorted(frames, key=lambda f: (number(f.dataset, "InstanceNumber", f.path, int, default=0),
                                               f.frame_index or 0))
        pixels = [decode(f) for f in frames]
        shapes = {p.shape for p in pixels}
        if len(shapes) > 1:
            raise InputError(path, f"mixes image sizes {sorted(shapes)} without positions to stack them.",
                             "Pass one image file, or a folder holding one series.")
        array = np.stack([_modality(p, f)[0] for p, f in zip(pixels, frames)]).astype(np.float32)
        (sI, sJ), spacing_source = _projection_spacing(first, path)
        sK = _slice_step(first, path, "SpacingBetweenSlices") or 1.0
        if len(frames) > 1:
            _warn(messages, path, f"holds {len(frames)} frames without ImagePositionPatient; stacked in "
                  f"InstanceNumber/frame order with a {sK:g} mm step along an identity direction.")
        spacing, origin, direction = (sI, sJ, sK), np.zeros(3), np.eye(3)
        if len(frames) == 1 and frames[0].position is not None and frames[0].orientation is not None:
            row_dir, col_dir = frames[0].orientation[:3], frames[0].orientation[3:]
            origin = frames[0].position
            direction = np.stack([row_dir, col_dir, np.cross(row_dir, col_dir)], axis=1)
        extra = {"source_files": [str(f.path) for f in frames],
                 "SOPInstanceUIDs": [f.sop_instance_uid for f in frames]}
        if any(f.frame_index is not None for f in frames):
            extra["frame_numbers"] = [None if f.frame_index is None else f.frame_index + 1 for f in frames]
    modality_lut = _modality(pixels[0][:1, :1], frames[0])[1]

    photometric = str(first.get("PhotometricInterpretation", ""))
    apply_voi = voi == "window" or (voi == "auto" and modality in PROJECTION_MODALITIES
                                    and not positioned_series(frames))
    if extra.get("resampled_along_k"):
        apply_voi = apply_voi and usable_window(frames[0].window)
    voi_text = "none"
    if apply_voi:
        if extra.get("resampled_along_k"):
            center, width, function = frames[0].window
            array = apply_window(array, center, width, function)
            voi_text = f"window center {center:g} width {width:g} ({function})"
        elif all(f.window is None and (f.frame_index is not None or "VOILUTSequence" not in f.dataset)
                 for f in frames):
            # No VOI in the file: one min-max over the whole image, so frames stay comparable.
            low, high = float(array.min()), float(array.max())
            array = ((array - low) / (high - low) if high > low else np.zeros_like(array)).astype(np.float32)
            voi_text = f"min-max ({low:g}..{high:g}; no VOI in the file)"
        else:
            windowed = [_voi(array[k], pixels[k], f) for k, f in enumerate(frames)]
            array = np.stack([w[0] for w in windowed]).astype(np.float32)
            voi_text = windowed[0][1]
    inverted = False
    if photometric == "MONOCHROME1" and invert_monochrome1 and not decode.converted_from_color:
        if apply_voi:
            array = (1.0 - array).astype(np.float32)
        else:
            low, high = _modality_range(frames[0])
            array = (np.float32(low + high) - array).astype(np.float32)
        inverted = True
    if decode.converted_from_color:
        _warn(messages, path, f"is a colour image ({photometric}); converted to grey levels (BT.601 luma).")
    if not np.all(np.isfinite(array)):
        # Only float pixel data can hold NaN / inf once the header values are checked.
        raise InputError(path, f"holds {int(np.size(array) - np.isfinite(array).sum())} voxel values "
                         "that are not finite numbers (NaN or infinity).",
                         "Replace them in the source (e.g. by 0), or export the image without them.")

    metadata = {
        "source_path": str(path), **extra,
        "SeriesInstanceUID": str(first.get("SeriesInstanceUID", "")),
        "StudyInstanceUID": str(first.get("StudyInstanceUID", "")),
        "FrameOfReferenceUID": str(first.get("FrameOfReferenceUID", "")) or None,
        "SOPClassUID": str(first.get("SOPClassUID", "")),
        "Modality": modality, "PatientID": str(first.get("PatientID", "")),
        "PhotometricInterpretation": photometric,
        "TransferSyntaxUID": str(first.file_meta.get("TransferSyntaxUID", "")) if hasattr(first, "file_meta") else "",
        "modality_lut": modality_lut, "voi": voi_text, "monochrome1_inverted": inverted,
        "converted_from_color": decode.converted_from_color, "spacing_source": spacing_source,
        "warnings": messages,
    }
    return ImageVolume(array, spacing, origin, direction, metadata)


def _slice_step(dataset, path: Path, keyword: str) -> Optional[float]:
    """``SpacingBetweenSlices`` / ``SliceThickness`` as a positive step in mm (some MR store a
    negative spacing: its magnitude), or None when absent or 0."""
    value = number(dataset, keyword, path, default=None)
    return abs(value) if value else None


def positioned_series(frames: Sequence[_Frame]) -> bool:
    """True when ``frames`` form a positioned stack of more than one slice (a CT/MR-like series)."""
    return len(frames) > 1 and all(f.position is not None for f in frames)


def read_image(path: PathLike, **kwargs: Any) -> ImageVolume:
    """Read any supported image: DICOM file, DICOM series folder, NIfTI, NRRD or MetaImage.

    Args:
        path: file or folder.
        **kwargs: passed to :func:`read_dicom` for DICOM input (``series_uid``, ``voi``,
            ``invert_monochrome1``, ``irregular``, ``gantry_tilt``, ``duplicates``); ignored
            for NIfTI/NRRD (whose values are returned as stored, see :func:`read_volume`).

    Returns:
        :class:`ImageVolume` (array ``(K, J, I)``, LPS geometry, provenance in ``metadata``);
        its voxel values are finite.

    Raises:
        InputError: missing path, unknown format, or any reader error (naming the file and the
            fix). No other exception type leaves this function for a problem of the input: one
            that escapes the readers' checks is still an InputError, marked ``unexpected`` (a bug
            to report, see :meth:`InputError.from_unexpected`).
    """
    try:
        return _read_image(path, **kwargs)
    except (InputError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - last line of defence, see InputError.from_unexpected
        raise InputError.from_unexpected(path, error) from error


def _read_image(path: PathLike, **kwargs: Any) -> ImageVolume:
    from .volumes import is_volume_file, read_volume

    path = Path(path)
    if not path.exists():
        raise InputError(path, "does not exist.", "Check the path (datalist paths are relative to "
                         "the datalist's folder).")
    if path.is_dir():
        return read_dicom(path, **kwargs)
    if is_volume_file(path):
        return read_volume(path)
    if _is_dicom_file(path):
        return read_dicom(path, **kwargs)
    # DICOM files without a preamble exist (old exports): let pydicom decide, with a clear error.
    try:
        return read_dicom(path, **{**kwargs, "force": True})
    except InputError as error:
        if "is not a DICOM file" in error.reason:
            raise InputError(path, "is neither DICOM (no 'DICM' preamble) nor NIfTI/NRRD/MetaImage "
                             "(by its name).", "Pass a .dcm file or a DICOM series folder, or a "
                             ".nii/.nii.gz/.nrrd/.nhdr/.mha file.") from error
        raise


def read_source_datasets(volume_or_path: Union[ImageVolume, PathLike], series_uid: Optional[str] = None):
    """The DICOM headers (no pixel data) behind a volume, in the volume's K order.

    For writers that reference the source (Parametric Map, SEG, SR). A multi-frame source gives
    one dataset. ``volume_or_path`` is a volume read by :func:`read_dicom` (its
    ``metadata["source_files"]`` are re-read) or a file/folder (read as :func:`read_dicom` would).
    """
    if isinstance(volume_or_path, ImageVolume):
        files = volume_or_path.metadata.get("source_files")
        if not files:
            raise InputError(volume_or_path.metadata.get("source_path"), "was not read from DICOM; "
                             "it has no source datasets.", "Read the image with read_image(<DICOM>).")
    else:
        files = read_image(volume_or_path, series_uid=series_uid).metadata["source_files"]
    unique = list(dict.fromkeys(files))
    return [read_dataset(f, stop_before_pixels=True) for f in unique]


class ImageReader:
    """Config-constructible reader: ``ImageReader(voi="auto", ...)(path) -> ImageVolume``.

    All keyword arguments are those of :func:`read_dicom`; usable from a MONAI bundle config as
    ``{"_target_": "SaliencyTrustLib.io.ImageReader", "voi": "auto"}``.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = dict(kwargs)

    def __call__(self, path: PathLike) -> ImageVolume:
        return read_image(path, **self.kwargs)

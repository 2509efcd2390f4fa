"""The synthetic cohort on disk: ``saliency-trust synth --out DIR [--n N] [--seed S] [--kind cxr|ct]``.

Writes the arrays of :func:`SaliencyTrustLib.synthetic.make_cohort` as a small but valid DICOM
cohort (the project's default data, since nothing may be downloaded), with its ground truth in
every form the readers take::

    DIR/dicom/<case_id>/CR0000.dcm         cxr: one CR image (224x224, MONOCHROME2, uint16, 12 bits)
    DIR/dicom/<case_id>/CT0000..0063.dcm   ct: one axial CT series (64 slices, HU = stored - 1024)
    DIR/nifti/<case_id>.nii.gz             the image, same geometry as the DICOM:
                                           cxr float32 display values in [0, 1] (2D NIfTI);
                                           ct int16 Hounsfield units (3D NIfTI)
    DIR/masks/<case_id>.nii.gz             ground-truth label map, uint8 {0, 1}, same grid
    DIR/seg/<case_id>.dcm                  ground truth as DICOM SEG (highdicom), positives only,
                                           referencing the case's image series
    DIR/boxes.csv                          RSNA layout patientId,x,y,width,height,Target (one row per
                                           box; negatives one row with empty box and Target 0);
                                           ct adds z,depth columns
    DIR/labels.csv                         case_id,label
    DIR/datalist.json                      MONAI datalist {"training", "validation", "test"}: items
                                           {"image", "label", "mask", "dicom", "case_id"}, paths
                                           relative to DIR; split 60/20/20, stratified by label,
                                           deterministic from the seed
    DIR/markers/<case_id>.nii.gz           --shortcut only: the burned-in marker's pixels, uint8 {0, 1},
                                           same grid as masks/ (all zero without a marker); items add
                                           {"shortcut": "markers/<case_id>.nii.gz", "marker": 0|1}
                                           (see :mod:`SaliencyTrustLib.synthetic_shortcut`)

Determinism: every UID is ``2.25.<int>`` of a UUID hashed (SHA-256) from
``(seed, kind, case_id, role)``, dates and times are fixed, so two runs with one seed give the same
pixels, UIDs and split. Geometry: a radiograph is a plain pixel grid (origin 0, identity direction,
``PixelSpacing`` 1.6 mm = ``ImagerPixelSpacing`` 1.76 mm / magnification 1.1); the CT is axial with
5.5 mm pixels and 5 mm slices, slice ``k`` at ``z = -157.5 + 5 k`` mm (feet to head).
"""

from __future__ import annotations

import argparse
import csv
import json
import hashlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from ..image import ImageVolume
from ..synthetic_shortcut import SHORTCUT_LESION_CONTRAST, ShortcutSettings, add_shortcut

PathLike = Union[str, os.PathLike]

#: Geometry and stored-value conventions of the written cohort (documented in the module docstring).
CXR_PIXEL_SPACING_MM = 1.6
CXR_MAGNIFICATION = 1.1
CXR_BITS_STORED = 12
CT_PIXEL_SPACING_MM = 5.5
CT_SLICE_SPACING_MM = 5.0
CT_RESCALE_INTERCEPT = -1024.0
#: The synthetic CT's [0, 1] values span -1000..1000 HU (see ``SaliencyTrustLib.synthetic``).
CT_HU_RANGE = (-1000.0, 1000.0)
SPLIT_FRACTIONS = (0.6, 0.2, 0.2)
MANUFACTURER = "SaliencyTrust"
MODEL_NAME = "synthetic cohort"

_CR_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.1"
_CT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.2"


def _uid(seed: int, kind: str, *parts: str) -> str:
    """``2.25.<int>`` UID of a version-4-shaped UUID made from a SHA-256 of the sources.

    (pydicom's ``generate_uid(prefix=None)`` ignores ``entropy_srcs``; its hashed form needs an
    organisation root, which a synthetic cohort does not have.)
    """
    digest = hashlib.sha256("\x1f".join(["SaliencyTrust synth v1", kind, str(seed), *parts])
                            .encode()).digest()
    return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"


@dataclass
class _CaseUids:
    study: str
    series: str
    frame_of_reference: str
    seg_series: str
    seg_instance: str


def _case_uids(seed: int, kind: str, case_id: str) -> _CaseUids:
    return _CaseUids(*(_uid(seed, kind, case_id, role) for role in
                       ("study", "series", "frame-of-reference", "seg-series", "seg-instance")))


def _base_dataset(case_id: str, index: int, kind: str, uids: _CaseUids, sop_class: str,
                  sop_instance: str):
    """Patient, study, series, equipment and SOP common modules shared by CR and CT."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID

    from .. import __version__

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    # Patient
    ds.PatientName = f"Synthetic^{case_id}"
    ds.PatientID = case_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    # General Study
    ds.StudyInstanceUID = uids.study
    ds.StudyDate = "20240101"
    ds.StudyTime = f"{8 + index // 3600 % 12:02d}{index // 60 % 60:02d}{index % 60:02d}"
    ds.ReferringPhysicianName = ""
    ds.StudyID = f"S{index:06d}"[:16]
    ds.AccessionNumber = f"A{index:06d}"[:16]
    ds.StudyDescription = f"SaliencyTrust synthetic {'chest radiograph' if kind == 'cxr' else 'chest CT'}"
    # General Series
    ds.SeriesInstanceUID = uids.series
    ds.SeriesNumber = 1
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = ds.StudyTime
    ds.SeriesDescription = "synthetic"
    ds.BodyPartExamined = "CHEST"
    # General Equipment
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = __version__
    ds.InstitutionName = "SaliencyTrust synthetic data"
    # General Image / Image Pixel (common part)
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.PixelRepresentation = 0
    ds.BurnedInAnnotation = "NO"
    return ds


def _cr_dataset(case, index: int, seed: int, uids: _CaseUids):
    """One CR image: display values [0, 1] stored as round(v * 4095), LINEAR_EXACT window 0..4095."""
    image = np.asarray(case.image, dtype=np.float32)
    sop_instance = _uid(seed, "cxr", case.case_id, "instance", "0")
    ds = _base_dataset(case.case_id, index, "cxr", uids, _CR_SOP_CLASS, sop_instance)
    ds.Modality = "CR"
    ds.ViewPosition = "PA"
    ds.PatientPosition = ""
    ds.ImageType = ["DERIVED", "PRIMARY"]
    ds.InstanceNumber = 1
    ds.PatientOrientation = ["L", "F"]
    ds.Rows, ds.Columns = image.shape
    ds.BitsStored = CXR_BITS_STORED
    ds.HighBit = CXR_BITS_STORED - 1
    ds.ImagerPixelSpacing = [round(CXR_PIXEL_SPACING_MM * CXR_MAGNIFICATION, 6)] * 2
    ds.PixelSpacing = [CXR_PIXEL_SPACING_MM] * 2
    ds.PixelSpacingCalibrationType = "GEOMETRY"
    ds.PixelSpacingCalibrationDescription = "imager pixel spacing / estimated magnification"
    ds.PresentationLUTShape = "IDENTITY"
    top = 2 ** CXR_BITS_STORED - 1
    # LINEAR_EXACT: y = (x - c) / w + 0.5, so c = w / 2 maps the stored range 0..4095 onto 0..1.
    ds.WindowCenter = top / 2.0
    ds.WindowWidth = float(top)
    ds.VOILUTFunction = "LINEAR_EXACT"
    ds.WindowCenterWidthExplanation = "full range"
    ds.LossyImageCompression = "00"
    ds.PixelData = np.round(np.clip(image, 0, 1) * top).astype(np.uint16).tobytes()
    return [ds]


def _ct_geometry(shape: Tuple[int, int, int]) -> ImageVolume:
    depth, rows, cols = shape
    origin = (-(cols - 1) * CT_PIXEL_SPACING_MM / 2, -(rows - 1) * CT_PIXEL_SPACING_MM / 2,
              -(depth - 1) * CT_SLICE_SPACING_MM / 2)
    return ImageVolume(np.zeros((1, 1, 1), np.uint8), (CT_PIXEL_SPACING_MM, CT_PIXEL_SPACING_MM,
                       CT_SLICE_SPACING_MM), origin)


def _ct_hu(image: np.ndarray) -> np.ndarray:
    low, high = CT_HU_RANGE
    return np.round(low + np.asarray(image, np.float32) * (high - low)).astype(np.int16)


def _ct_datasets(case, index: int, seed: int, uids: _CaseUids):
    """An axial CT series: one dataset per slice, stored = HU - intercept (uint16, 12 bits)."""
    hu = _ct_hu(case.image)
    geometry = _ct_geometry(hu.shape)
    stored = (hu.astype(np.int32) - int(CT_RESCALE_INTERCEPT)).astype(np.uint16)
    datasets = []
    for k in range(hu.shape[0]):
        sop_instance = _uid(seed, "ct", case.case_id, "instance", str(k))
        ds = _base_dataset(case.case_id, index, "ct", uids, _CT_SOP_CLASS, sop_instance)
        ds.Modality = "CT"
        ds.PatientPosition = "HFS"
        ds.ImageType = ["DERIVED", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = uids.frame_of_reference
        ds.PositionReferenceIndicator = ""
        ds.InstanceNumber = k + 1
        ds.AcquisitionNumber = 1
        ds.ImagePositionPatient = [float(v) for v in
                                   (geometry.origin[0], geometry.origin[1],
                                    geometry.origin[2] + k * CT_SLICE_SPACING_MM)]
        ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.SliceThickness = CT_SLICE_SPACING_MM
        ds.SpacingBetweenSlices = CT_SLICE_SPACING_MM
        ds.SliceLocation = ds.ImagePositionPatient[2]
        ds.PixelSpacing = [CT_PIXEL_SPACING_MM] * 2
        ds.Rows, ds.Columns = hu.shape[1:]
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.RescaleIntercept = CT_RESCALE_INTERCEPT
        ds.RescaleSlope = 1.0
        ds.RescaleType = "HU"
        ds.WindowCenter = -600.0
        ds.WindowWidth = 1500.0
        ds.KVP = 120.0
        ds.PixelData = np.ascontiguousarray(stored[k]).tobytes()
        datasets.append(ds)
    return datasets


def _seg_dataset(case, source_datasets, uids: _CaseUids, kind: str):
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.sr.coding import Code

    from .. import __version__

    finding = Code("233604007", "SCT", "Pneumonia") if kind == "cxr" else codes.SCT.Nodule
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=finding.meaning,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=finding,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name="SaliencyTrust synthetic cohort", version=__version__,
            family=codes.cid7162.ArtificialIntelligence),
        tracking_id=f"{case.case_id}-lesion", tracking_uid=_uid(0, kind, case.case_id, "tracking"),
    )
    mask = np.asarray(case.mask, dtype=np.uint8)
    if mask.ndim == 2:
        mask = mask[np.newaxis]
    seg = hd.seg.Segmentation(
        source_images=source_datasets,
        pixel_array=mask,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=uids.seg_series,
        series_number=100,
        sop_instance_uid=uids.seg_instance,
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MODEL_NAME,
        software_versions=__version__,
        device_serial_number="0",
        series_description="ground truth",
        content_label="GROUNDTRUTH",
        content_description="synthetic lesion mask",
    )
    if "PatientOrientation" in source_datasets[0] and "PatientOrientation" not in seg:
        # General Image type 2C for a SEG over images without a frame of reference.
        seg.PatientOrientation = source_datasets[0].PatientOrientation
    # Fixed dates keep two runs with one seed identical.
    for keyword in ("ContentDate", "SeriesDate", "InstanceCreationDate"):
        if keyword in seg:
            setattr(seg, keyword, "20240101")
    for keyword in ("ContentTime", "SeriesTime", "InstanceCreationTime"):
        if keyword in seg:
            setattr(seg, keyword, "120000")
    return seg


def split_case_ids(case_ids: Sequence[str], labels: Sequence[int], seed: int,
                   fractions: Sequence[float] = SPLIT_FRACTIONS) -> Dict[str, List[str]]:
    """Deterministic train/validation/test split with exact sizes, stratified by label.

    Sizes are ``round(f_train n)``, ``round(f_val n)`` and the rest. Each label's cases are permuted
    with ``numpy.random.default_rng([seed, 6020, label])`` and given the ranks ``(i + 0.5) / n_label``;
    the merged order by rank interleaves the labels, so cutting it at the sizes keeps every part
    balanced. Each part is returned sorted.
    """
    n = len(case_ids)
    if len(labels) != n:
        raise ValueError(f"split_case_ids: {n} case ids but {len(labels)} labels.")
    ranked = []
    for label in sorted(set(int(v) for v in labels)):
        members = [case_id for case_id, value in zip(case_ids, labels) if int(value) == label]
        order = np.random.default_rng([seed, 6020, label]).permutation(len(members))
        ranked += [((position + 0.5) / len(members), label, members[member])
                   for position, member in enumerate(order)]
    ranked.sort()
    n_train = int(round(fractions[0] * n))
    n_val = min(int(round(fractions[1] * n)), n - n_train)
    ordered = [case_id for _, _, case_id in ranked]
    return {"training": sorted(ordered[:n_train]), "validation": sorted(ordered[n_train:n_train + n_val]),
            "test": sorted(ordered[n_train + n_val:])}


def make_cases(*args, **kwargs) -> list:
    """:func:`SaliencyTrustLib.synthetic.make_cases` (imported on first use: scipy stays out of the CLI parser)."""
    from ..synthetic import make_cases as _make_cases

    return _make_cases(*args, **kwargs)


def write_synthetic_cohort(out_dir: PathLike, n: int = 40, seed: int = 0, kind: str = "cxr",
                           size: int | None = None, write_seg: bool = True,
                           lesion_radius: Tuple[float, float] | None = None,
                           lesion_contrast: Tuple[float, float] | None = None,
                           shortcut: ShortcutSettings | None = None) -> Dict[str, object]:
    """Write the synthetic cohort (layout in the module docstring) and return a summary.

    Args:
        out_dir: target folder (created; files of an earlier run with the same names are replaced).
        n: number of cases (half positive, interleaved).
        seed: decides every pixel, UID and the split.
        kind: ``"cxr"`` (2D CR) or ``"ct"`` (3D CT series).
        size: image edge in pixels (default 224 for cxr, 64 for ct).
        write_seg: also write the DICOM SEG of each positive (the slowest part).
        lesion_radius, lesion_contrast: ``(low, high)`` ranges of the lesions (see :func:`make_cases`;
            default: those of :mod:`SaliencyTrustLib.synthetic`; with ``shortcut``, lesion contrast
            :data:`~SaliencyTrustLib.synthetic_shortcut.SHORTCUT_LESION_CONTRAST`).
        shortcut: a :class:`~SaliencyTrustLib.synthetic_shortcut.ShortcutSettings` to burn a
            laterality-marker confounder into the images (cxr only); None: no marker, the plain cohort.

    Returns:
        ``{"out": str, "n": int, "positives": int, "kind": str, "seed": int, "split": {part: count}}``.
    """
    from .volumes import save_volume

    if kind not in ("cxr", "ct"):
        raise ValueError(f"kind must be 'cxr' or 'ct', got {kind!r}")
    if shortcut is not None and kind != "cxr":
        raise ValueError(f"--shortcut draws a radiograph's burned-in marker: it needs kind 'cxr', got {kind!r}.")
    if shortcut is not None and lesion_contrast is None:
        lesion_contrast = SHORTCUT_LESION_CONTRAST
    out = Path(out_dir)
    for sub in ("dicom", "nifti", "masks", "seg") + (("markers",) if shortcut is not None else ()):
        (out / sub).mkdir(parents=True, exist_ok=True)
    cases = make_cases(n, seed, kind, size, lesion_radius, lesion_contrast)
    split = split_case_ids([c.case_id for c in cases], [c.label for c in cases], seed)
    if shortcut is not None:
        markers, marker_masks = add_shortcut(cases, split, seed, shortcut)
    box_rows, label_rows = [], []
    for index, case in enumerate(cases):
        uids = _case_uids(seed, kind, case.case_id)
        datasets = (_cr_dataset if kind == "cxr" else _ct_datasets)(case, index, seed, uids)
        if shortcut is not None and markers[case.case_id]:
            for ds in datasets:
                ds.BurnedInAnnotation = "YES"
        case_dir = out / "dicom" / case.case_id
        case_dir.mkdir(exist_ok=True)
        for number, ds in enumerate(datasets):
            ds.save_as(case_dir / f"{ds.Modality}{number:04d}.dcm", enforce_file_format=True)
        if kind == "cxr":
            grid = ImageVolume(np.zeros((1, 1, 1), np.uint8), (CXR_PIXEL_SPACING_MM,) * 2 + (1.0,))
            values = np.round(np.clip(case.image, 0, 1) * (2 ** CXR_BITS_STORED - 1)) \
                / (2 ** CXR_BITS_STORED - 1)
            image = values.astype(np.float32)[np.newaxis]
            mask = np.asarray(case.mask, np.uint8)[np.newaxis]
        else:
            grid = _ct_geometry(case.image.shape)
            image = _ct_hu(case.image)
            mask = np.asarray(case.mask, np.uint8)
        volume = ImageVolume(image, grid.spacing, grid.origin, grid.direction)
        save_volume(volume, out / "nifti" / f"{case.case_id}.nii.gz")
        save_volume(volume.with_array(mask), out / "masks" / f"{case.case_id}.nii.gz")
        if shortcut is not None:
            save_volume(volume.with_array(marker_masks[case.case_id].astype(np.uint8)[np.newaxis]),
                        out / "markers" / f"{case.case_id}.nii.gz")
        seg_path = out / "seg" / f"{case.case_id}.dcm"
        if case.label and write_seg:
            _seg_dataset(case, datasets, uids, kind).save_as(seg_path, enforce_file_format=True)
        elif seg_path.exists():
            seg_path.unlink()
        label_rows.append((case.case_id, case.label))
        if case.label and case.boxes:
            for box in case.boxes:
                if kind == "cxr":
                    x, y, w, h = box
                    box_rows.append((case.case_id, x, y, w, h, 1))
                else:
                    x, y, z, w, h, d = box
                    box_rows.append((case.case_id, x, y, w, h, 1, z, d))
        else:
            box_rows.append((case.case_id, "", "", "", "", 0) + (("", "") if kind == "ct" else ()))
    header = ["patientId", "x", "y", "width", "height", "Target"] + (["z", "depth"] if kind == "ct" else [])
    with open(out / "boxes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(box_rows)
    with open(out / "labels.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "label"])
        writer.writerows(label_rows)
    labels = {case.case_id: case.label for case in cases}
    synthesis = {"size": size, "lesion_radius": lesion_radius, "lesion_contrast": lesion_contrast}
    extra = {case_id: {} for case_id in labels}
    if shortcut is not None:
        synthesis["lesion_contrast"] = list(lesion_contrast)
        synthesis["shortcut"] = shortcut.to_dict()
        extra = {case_id: {"shortcut": f"markers/{case_id}.nii.gz", "marker": int(markers[case_id])}
                 for case_id in labels}
    datalist = {
        "description": f"SaliencyTrust synthetic {kind} cohort, n={n}, seed={seed}"
                       + (" with a burned-in shortcut marker" if shortcut is not None else ""),
        "kind": kind,
        "seed": seed,
        "synthesis": synthesis,
        **{part: [{"image": f"nifti/{case_id}.nii.gz", "label": labels[case_id],
                   "mask": f"masks/{case_id}.nii.gz", "dicom": f"dicom/{case_id}",
                   "case_id": case_id, **extra[case_id]} for case_id in ids] for part, ids in split.items()},
    }
    (out / "datalist.json").write_text(json.dumps(datalist, indent=1) + "\n")
    return {"out": str(out), "n": n, "positives": int(sum(labels.values())), "kind": kind,
            "seed": seed, "split": {part: len(ids) for part, ids in split.items()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``saliency-trust synth`` options (no heavy imports here)."""
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--n", type=int, default=40, help="number of cases, half positive (default 40)")
    parser.add_argument("--seed", type=int, default=0, help="seed of pixels, UIDs and split (default 0)")
    parser.add_argument("--kind", choices=("cxr", "ct"), default="cxr",
                        help="cxr: 2D CR radiographs 224x224; ct: 3D CT series 64^3 (default cxr)")
    parser.add_argument("--size", type=int, default=None,
                        help="image edge in pixels (default 224 for cxr, 64 for ct)")
    parser.add_argument("--no-seg", action="store_true", help="skip the DICOM SEG files (faster)")
    parser.add_argument("--lesion-radius", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="lesion radius range, fraction of the image edge (default cxr 0.05 0.09, "
                             "ct 0.06 0.1)")
    parser.add_argument("--lesion-contrast", type=float, nargs=2, metavar=("LOW", "HIGH"), default=None,
                        help="lesion peak intensity range in [0, 1] image units (default cxr 0.22 0.35, "
                             "ct 0.3 0.45; for CT 1.0 = 2000 HU; with --shortcut 0.06 0.1)")
    parser.add_argument("--shortcut", action="store_true",
                        help="burn a laterality-marker confounder into the images (cxr only): present exactly "
                             "when label == 1 in training / validation, in half of each label's test cases")
    parser.add_argument("--shortcut-correlation", type=float, default=1.0, metavar="P",
                        help="with --shortcut: fraction of training / validation cases whose marker agrees with "
                             "the label (default 1.0; 0.5 = independent)")


def run(args: argparse.Namespace) -> int:
    """Write the cohort and print a one-line summary."""
    if args.n < 1:
        print(f"saliency-trust synth: --n must be >= 1, got {args.n}")
        return 2
    if args.shortcut_correlation != 1.0 and not args.shortcut:
        raise ValueError("--shortcut-correlation sets the marker of --shortcut; add --shortcut.")
    shortcut = ShortcutSettings(correlation=args.shortcut_correlation) if args.shortcut else None
    summary = write_synthetic_cohort(args.out, n=args.n, seed=args.seed, kind=args.kind,
                                     size=args.size, write_seg=not args.no_seg,
                                     lesion_radius=args.lesion_radius, lesion_contrast=args.lesion_contrast,
                                     shortcut=shortcut)
    split = summary["split"]
    print(f"wrote {summary['n']} {summary['kind']} cases ({summary['positives']} positive) to "
          f"{summary['out']}: training {split['training']}, validation {split['validation']}, "
          f"test {split['test']}")
    return 0

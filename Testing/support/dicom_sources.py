"""Synthetic *source* DICOM images for the writer and PACS tests (CR radiographs and CT series).

The images come from :mod:`SaliencyTrustLib.synthetic`; the DICOM attributes are those of the CR
and CT Image IODs (PS3.3 A.2, A.3) so that ``dciodvfy`` accepts the sources and Orthanc stores them.
Built with pydicom here because highdicom has no constructor for acquired images; the objects
the package *writes* (Parametric Map, SEG, SR) are all built with highdicom.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def _uid(*parts: object) -> str:
    """A deterministic UID from ``parts`` (so reruns give the same objects)."""
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def _common(ds: Dataset, case_id: str, modality: str, sop_class: str, sop_uid: str,
            study_uid: str, series_uid: str) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.PatientName, ds.PatientID = f"Synthetic^{case_id}", case_id
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
    ds.StudyDate, ds.StudyTime = "20240101", "120000"
    ds.SeriesDate, ds.SeriesTime = "20240101", "120000"
    ds.ContentDate, ds.ContentTime = "20240101", "120000"
    ds.StudyID, ds.AccessionNumber = "1", f"ACC{abs(hash(case_id)) % 10**8:08d}"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesNumber = modality, 1
    ds.Manufacturer = "SaliencyTrust synthetic"
    ds.StudyDescription = f"Synthetic {modality} study"
    ds.SeriesDescription = f"Synthetic {modality} series"
    ds.BodyPartExamined = "CHEST"


def _pixels(ds: Dataset, image01: np.ndarray, bits: int = 12) -> None:
    """Store a [0, 1] float image as unsigned ``bits``-bit MONOCHROME2 pixels."""
    stored = np.round(np.clip(image01, 0.0, 1.0) * (2 ** bits - 1)).astype(np.uint16)
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits, bits - 1, 0
    ds.PixelData = stored.tobytes()


def make_cr_dataset(image: np.ndarray, case_id: str = "cxr-0-0000", pixel_spacing: float = 0.7,
                    with_frame_of_reference: bool = False) -> Dataset:
    """A CR Image Storage dataset holding ``image`` ((H, W) float in [0, 1]).

    ``with_frame_of_reference`` adds a Frame of Reference UID (optional for CR, mandatory for the
    Parametric Map the writer derives), so both source variants can be tested.
    """
    study_uid = _uid(case_id, "study")
    ds = Dataset()
    _common(ds, case_id, "CR", CR_IMAGE_STORAGE, _uid(case_id, "cr", "instance"), study_uid,
            _uid(case_id, "cr", "series"))
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.InstanceNumber, ds.PatientOrientation = 1, ["L", "F"]
    ds.ViewPosition = "PA"
    ds.ImagerPixelSpacing = [pixel_spacing, pixel_spacing]
    ds.PixelSpacing = [pixel_spacing, pixel_spacing]
    if with_frame_of_reference:
        ds.FrameOfReferenceUID = _uid(case_id, "cr", "for")
        ds.PositionReferenceIndicator = ""
    _pixels(ds, image)
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    return ds


def make_ct_datasets(volume: np.ndarray, case_id: str = "ct-0-0000",
                     spacing: Sequence[float] = (0.8, 0.8, 2.5),
                     origin: Sequence[float] = (-25.0, -30.0, 100.0),
                     direction: Optional[np.ndarray] = None,
                     shuffle: bool = False) -> List[Dataset]:
    """One CT Image Storage dataset per slice of ``volume`` ((K, J, I) float in [0, 1]).

    Geometry follows :class:`SaliencyTrustLib.image.ImageVolume`: ``spacing`` is (sI, sJ, sK) mm,
    ``origin`` the LPS centre of voxel (0, 0, 0), ``direction`` columns the I, J, K unit vectors.
    Pixels are stored as HU = image * 2000 - 1000. ``shuffle`` returns the slices out of order (as
    a PACS may deliver them).
    """
    direction = np.eye(3) if direction is None else np.asarray(direction, float)
    study_uid = _uid(case_id, "study")
    series_uid = _uid(case_id, "ct", "series")
    for_uid = _uid(case_id, "ct", "for")
    datasets = []
    for k, plane in enumerate(volume):
        ds = Dataset()
        _common(ds, case_id, "CT", CT_IMAGE_STORAGE, _uid(case_id, "ct", k), study_uid, series_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber, ds.AcquisitionNumber = k + 1, 1
        ds.FrameOfReferenceUID, ds.PositionReferenceIndicator = for_uid, ""
        position = np.asarray(origin, float) + k * spacing[2] * direction[:, 2]
        ds.ImagePositionPatient = [float(f"{v:.6f}") for v in position]
        ds.ImageOrientationPatient = [float(f"{v:.6f}") for v in
                                      (*direction[:, 0], *direction[:, 1])]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]   # row spacing, column spacing
        ds.SliceThickness = float(spacing[2])
        ds.KVP, ds.PatientPosition = 120, "HFS"
        _pixels(ds, plane)
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1000, f"{2000 / 4095:.10f}", "HU"
        datasets.append(ds)
    if shuffle:
        order = np.random.default_rng(0).permutation(len(datasets))
        datasets = [datasets[i] for i in order]
    return datasets

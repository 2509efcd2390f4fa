"""Write the fuzz seed corpus (``fuzz/corpus/``) and the two reference images (``fuzz/reference/``).

Run from the repository root: ``python fuzz/make_corpus.py``. Every file is small (< 12 KB, so
libFuzzer's default input size stays small); UIDs and pixels are fixed, only the dates highdicom
stamps and the synthetic accession number change from one run to the next. The seeds cover each
branch of the two readers:

* image side (``read_image``): a CR radiograph (projection path, window), a CT slice (positioned
  path, rescale), an enhanced multi-frame CT (functional groups), a native YBR_FULL_422 colour
  image, RLE / JPEG-LS / JPEG 2000 / deflate copies of the CR, and a NIfTI volume;
* ground-truth side (``read_ground_truth``): a SEG on each reference, an RTSTRUCT, a TID 1500 SR
  with a planar ROI, a NIfTI label map, an RSNA box CSV and a SIIM run-length CSV.

The references (``reference/cr.dcm``, 2D; ``reference/ct_enhanced.dcm``, 3 frames) are the images
the harness reads ground truth against; they are also seeds.
"""

from __future__ import annotations

import shutil
import sys
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT / "SaliencyTrust"), str(ROOT / "Testing")]

import highdicom as hd  # noqa: E402
import pydicom  # noqa: E402
from pydicom.sr.codedict import codes  # noqa: E402
from pydicom.uid import (DeflatedExplicitVRLittleEndian, JPEG2000Lossless, JPEGLSLossless,  # noqa: E402
                         RLELossless, generate_uid)

from support.dicom_sources import make_cr_dataset, make_ct_datasets  # noqa: E402

SIZE = 32


def _uid(*parts) -> str:
    return generate_uid(entropy_srcs=["saliency-trust fuzz seed", *map(str, parts)])


def _image(size: int = SIZE) -> np.ndarray:
    """A disc on a ramp: not constant, so every value path (VOI, min-max) has work to do."""
    jj, ii = np.mgrid[:size, :size]
    disc = (ii - size / 2) ** 2 + (jj - size / 2) ** 2 < (size / 4) ** 2
    return np.clip(0.2 + 0.5 * ii / size + 0.3 * disc, 0, 1)


def _mask(size: int = SIZE) -> np.ndarray:
    mask = np.zeros((size, size), bool)
    mask[8:18, 10:22] = True
    return mask


def _save(ds, path: Path, syntax=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if syntax is not None:
        ds = pydicom.dcmread(pydicom.filebase.DicomBytesIO(_bytes(ds)))
        if syntax == DeflatedExplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = syntax
        else:
            ds.compress(syntax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=True)
    return path


def _bytes(ds) -> bytes:
    buffer = pydicom.filebase.DicomBytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _cr() -> pydicom.Dataset:
    ds = make_cr_dataset(_image(), case_id="fuzz-cr", pixel_spacing=0.5, with_frame_of_reference=True)
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    return ds


def _ct_slices(count: int = 3):
    volume = np.stack([_image() * (0.8 + 0.1 * k) for k in range(count)])
    return make_ct_datasets(volume, case_id="fuzz-ct", spacing=(0.8, 0.8, 2.0))


def _enhanced(slices):
    return hd.legacy.LegacyConvertedEnhancedCTImage(
        slices, series_instance_uid=_uid("enhanced", "series"), series_number=9,
        sop_instance_uid=_uid("enhanced", "instance"), instance_number=1)


def _ybr_422() -> pydicom.Dataset:
    """Native YBR_FULL_422: each pair of pixels stored as Y1 Y2 Cb Cr (PS3.3 C.7.6.3.1.2)."""
    ds = make_cr_dataset(_image(), case_id="fuzz-ybr")
    ds.Modality, ds.SOPClassUID = "OT", "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    luma = np.round(_image() * 235).astype(np.uint8)
    packed = np.empty((SIZE, SIZE // 2, 4), np.uint8)
    packed[..., 0], packed[..., 1] = luma[:, 0::2], luma[:, 1::2]
    packed[..., 2], packed[..., 3] = 128, 128          # neutral chroma: a grey picture
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "YBR_FULL_422", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = packed.tobytes()
    for keyword in ("RescaleIntercept", "RescaleSlope", "RescaleType"):
        delattr(ds, keyword)
    return ds


def _seg(sources, mask: np.ndarray, name: str):
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="lesion", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Lesion, algorithm_type="MANUAL")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd.seg.Segmentation(sources, mask.astype(np.uint8), "BINARY", [description],
                                   _uid(name, "series"), 5, _uid(name, "instance"), 1,
                                   "SaliencyTrust", "fuzz seed", "0", "0")


def _rtstruct(slices) -> pydicom.Dataset:
    """A minimal RTSTRUCT with one closed contour on the middle CT slice (LPS mm)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence

    middle = slices[1]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = _uid("rtstruct")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPClassUID, _uid("rtstruct")
    ds.Modality, ds.PatientID = "RTSTRUCT", middle.PatientID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = middle.StudyInstanceUID, _uid("rtstruct", "series")
    ds.FrameOfReferenceUID = middle.FrameOfReferenceUID
    roi = Dataset()
    roi.ROINumber, roi.ROIName = 1, "lesion"
    roi.ReferencedFrameOfReferenceUID = middle.FrameOfReferenceUID
    ds.StructureSetROISequence = Sequence([roi])
    x0, y0 = (float(v) for v in middle.ImagePositionPatient[:2])
    z = float(middle.ImagePositionPatient[2])
    corners = [(10, 8), (22, 8), (22, 18), (10, 18)]
    contour = Dataset()
    contour.ContourGeometricType = "CLOSED_PLANAR"
    contour.NumberOfContourPoints = len(corners)
    contour.ContourData = [v for i, j in corners for v in (x0 + 0.8 * i, y0 + 0.8 * j, z)]
    item = Dataset()
    item.ReferencedROINumber = 1
    item.ContourSequence = Sequence([contour])
    ds.ROIContourSequence = Sequence([item])
    return ds


def _sr(source) -> pydicom.Dataset:
    corners = np.array([[10.0, 8.0], [22.0, 8.0], [22.0, 18.0], [10.0, 18.0], [10.0, 8.0]])
    region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=corners,
                               source_image=hd.sr.SourceImageForRegion.from_source_image(source))
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=_uid("sr", "roi"), identifier="lesion"),
        referenced_region=region, finding_type=codes.SCT.Lesion)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Fuzz^Seed"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=[group])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return hd.sr.Comprehensive3DSR([source], report, _uid("sr", "series"), 7, _uid("sr", "instance"),
                                       1, manufacturer="SaliencyTrust")


def main() -> None:
    from SaliencyTrustLib.image import ImageVolume
    from SaliencyTrustLib.io import rle_encode, save_volume

    corpus, reference = HERE / "corpus", HERE / "reference"
    for folder in (corpus, reference):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
    cr, slices = _cr(), _ct_slices()
    enhanced = _enhanced(slices)
    _save(cr, reference / "cr.dcm")
    _save(enhanced, reference / "ct_enhanced.dcm")
    # image side
    _save(cr, corpus / "cr.dcm")
    _save(slices[1], corpus / "ct_slice.dcm")
    _save(enhanced, corpus / "ct_enhanced.dcm")
    _save(_ybr_422(), corpus / "ybr_full_422.dcm")
    for name, syntax in (("cr_rle.dcm", RLELossless), ("cr_jpegls.dcm", JPEGLSLossless),
                         ("cr_j2k.dcm", JPEG2000Lossless), ("cr_deflate.dcm", DeflatedExplicitVRLittleEndian)):
        _save(cr, corpus / name, syntax)
    volume = ImageVolume(np.stack([_image()] * 2).astype(np.float32), (0.8, 0.8, 2.0))
    save_volume(volume, corpus / "volume.nii.gz")
    # ground-truth side
    mask = _mask()
    _save(_seg([cr], mask[np.newaxis], "seg-cr"), corpus / "seg_cr.dcm")
    _save(_seg([enhanced], np.stack([np.zeros_like(mask), mask, mask]), "seg-ct"), corpus / "seg_ct.dcm")
    _save(_rtstruct(slices), corpus / "rtstruct.dcm")
    _save(_sr(cr), corpus / "sr_planar_roi.dcm")
    save_volume(ImageVolume(mask[np.newaxis].astype(np.uint8), (0.5, 0.5, 1.0)), corpus / "label.nii.gz")
    (corpus / "rsna.csv").write_text("patientId,x,y,width,height,Target\n"
                                     f"{cr.PatientID},10,8,12,10,1\n{cr.PatientID},1,1,2,2,1\n")
    (corpus / "siim.csv").write_text(f"ImageId, EncodedPixels\n{cr.SOPInstanceUID}, {rle_encode(mask)}\n")
    for path in sorted(corpus.iterdir()) + sorted(reference.iterdir()):
        print(f"{path.relative_to(ROOT)}\t{path.stat().st_size} bytes")


if __name__ == "__main__":
    main()

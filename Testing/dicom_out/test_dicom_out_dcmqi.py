"""Parametric Maps and SEGs that dcmqi converts back, as 3D Slicer's DICOM plugins do.

3D Slicer's DICOMParametricMapPlugin runs dcmqi's ``paramap2itkimage`` and its segmentation
plugin ``segimage2itkimage``; here both run on what the writers make from real DICOM images
(pydicom's test data: a 5-slice CT series, an Enhanced CT, a CR radiograph) and from the synthetic
series, and what they write (NRRD + meta.json) must hold our map / mask on the source geometry.
"""

import json

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.data import get_testdata_file
from pydicom.sr.codedict import codes

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.io import read_image
from SaliencyTrustLib.io.dicom_write import (SALIENT_REGION_RGB, UNSPECIFIED_ANATOMIC_REGION,
                                              write_parametric_map, write_seg)
from support.validate import dciodvfy

#: The largest |stored - map| of a [0, 1] map stored as float32 (half an ulp at 1 is 2**-24).
FLOAT32_STEP = float(np.finfo(np.float32).eps)


def _real_ct_series():
    """pydicom's 5-slice CT series (16 x 16, 2.5 mm apart, no Body Part Examined)."""
    folder = get_testdata_file("3353")
    from pathlib import Path

    return Path(folder).parent


REAL_SOURCES = {
    # name: (path, expected anatomic region (value, scheme) of the map, frame laterality)
    "ct_series": (_real_ct_series, (UNSPECIFIED_ANATOMIC_REGION.value, "SCT"), "U"),
    "enhanced_ct": (lambda: get_testdata_file("eCT_Supplemental.dcm"), ("T-A0100", "SNM3"), "U"),
    "cr": (lambda: get_testdata_file("6154"), ("122494005", "SCT"), "U"),   # CSPINE, Annex L
}


def _normalized(volume: ImageVolume) -> np.ndarray:
    values = volume.array.astype(np.float64)
    return (values - values.min()) / (values.max() - values.min())


def _read_itk(path):
    """``(array (K, J, I), origin, spacing, direction 3x3)`` of an image dcmqi wrote."""
    image = sitk.ReadImage(str(path))
    return (sitk.GetArrayFromImage(image), np.asarray(image.GetOrigin()),
            np.asarray(image.GetSpacing()), np.asarray(image.GetDirection()).reshape(3, 3))


def _assert_same_geometry(path, volume: ImageVolume):
    array, origin, spacing, direction = _read_itk(path)
    assert array.shape == volume.shape
    np.testing.assert_allclose(origin, volume.origin, atol=1e-3)
    np.testing.assert_allclose(direction, volume.direction, atol=1e-5)
    in_plane = 2 if volume.shape[0] == 1 else 3     # a single frame has no slice spacing
    np.testing.assert_allclose(spacing[:in_plane], volume.spacing[:in_plane], rtol=1e-5)
    return array


def _paramap2itkimage(dcmqi, pm_path, out):
    out.mkdir()
    dcmqi("paramap2itkimage", "--inputDICOM", pm_path, "--outputDirectory", out, "-t", "nrrd")
    return out / "pmap.nrrd", json.loads((out / "meta.json").read_text())


def _segimage2itkimage(dcmqi, seg_path, out):
    out.mkdir()
    dcmqi("segimage2itkimage", "--inputDICOM", seg_path, "--outputDirectory", out, "-t", "nrrd")
    return out / "1.nrrd", json.loads((out / "meta.json").read_text())


@pytest.mark.parametrize("name", sorted(REAL_SOURCES))
def test_dcmqi_converts_the_parametric_map_of_a_real_image_back_to_the_map(tmp_path, dcmqi, name):
    source_of, region, laterality = REAL_SOURCES[name]
    source = source_of()
    volume = read_image(source)
    saliency = _normalized(volume)
    pm_path = tmp_path / "pm.dcm"
    write_parametric_map(volume.with_array(saliency), source, pm_path, method="gradcam")
    assert dciodvfy(pm_path).errors == []

    image_path, meta = _paramap2itkimage(dcmqi, pm_path, tmp_path / "dcmqi")
    converted = _assert_same_geometry(image_path, volume)
    assert converted.dtype == np.float32
    difference = float(np.abs(converted.astype(np.float64) - saliency).max())
    print(f"{name}: {volume.shape} max |dcmqi - map| = {difference:.3g}")
    assert difference <= FLOAT32_STEP
    np.testing.assert_array_equal(converted, saliency.astype(np.float32))

    assert meta["QuantityValueCode"]["CodeValue"] == codes.DCM.GradientWeightedClassActivation.value
    assert meta["MeasurementUnitsCode"]["CodeValue"] == "1"
    anatomy = meta["AnatomicRegionSequence"]
    assert (anatomy["CodeValue"], anatomy["CodingSchemeDesignator"]) == region
    assert meta["FrameLaterality"] == laterality


def test_dcmqi_stacks_synthetic_series_and_enhanced_frames_in_slice_order(tmp_path, dcmqi, ct_case,
                                                                          ct_sources):
    """Sources delivered out of order, and an Enhanced CT whose frames are out of order: dcmqi
    stacks the PM's frames in stored order, so they must be stored by increasing position."""
    spacing, origin = (0.8, 0.8, 2.5), (-25.0, -30.0, 100.0)
    saliency = _normalized(ImageVolume(ct_case.image))
    volume = ImageVolume(saliency, spacing=spacing, origin=origin)
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=ct_sources, series_instance_uid=hd.UID(), series_number=2,
        sop_instance_uid=hd.UID(), instance_number=1)
    for label, source in (("series", ct_sources), ("enhanced", enhanced)):
        pm_path = tmp_path / f"pm_{label}.dcm"
        write_parametric_map(volume, source, pm_path)
        assert dciodvfy(pm_path).errors == []
        image_path, _ = _paramap2itkimage(dcmqi, pm_path, tmp_path / label)
        converted = _assert_same_geometry(image_path, volume)
        np.testing.assert_array_equal(converted, saliency.astype(np.float32))

        # every frame still references the source slice at its position
        pm = pydicom.dcmread(pm_path)
        z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2])
             for f in pm.PerFrameFunctionalGroupsSequence]
        assert z == sorted(z)
        by_sop = {d.SOPInstanceUID: d for d in ct_sources}
        for frame in pm.PerFrameFunctionalGroupsSequence:
            referenced = frame.DerivationImageSequence[0].SourceImageSequence[0]
            position = frame.PlanePositionSequence[0].ImagePositionPatient
            if label == "series":
                np.testing.assert_allclose(
                    by_sop[referenced.ReferencedSOPInstanceUID].ImagePositionPatient, position)
            else:
                source_frame = enhanced.PerFrameFunctionalGroupsSequence[
                    int(referenced.ReferencedFrameNumber) - 1]
                np.testing.assert_allclose(
                    source_frame.PlanePositionSequence[0].ImagePositionPatient, position)


@pytest.mark.parametrize("name", ["ct_series", "cr"])
def test_dcmqi_reads_the_seg_back_with_the_same_voxels_colour_and_terminology(tmp_path, dcmqi,
                                                                             name):
    source_of, region, _ = REAL_SOURCES[name]
    source = source_of()
    volume = read_image(source)
    saliency = _normalized(volume)
    threshold = 0.4
    mask = saliency >= threshold
    assert 0 < mask.sum() < mask.size
    seg_path = tmp_path / "seg.dcm"
    write_seg(volume.with_array(saliency), source, seg_path, threshold=threshold,
              method="smoothgrad")
    assert dciodvfy(seg_path).errors == []

    image_path, meta = _segimage2itkimage(dcmqi, seg_path, tmp_path / "dcmqi")
    converted = _assert_same_geometry(image_path, volume)
    print(f"{name}: SEG voxels {int(mask.sum())} written, {int(converted.astype(bool).sum())} "
          "read back by dcmqi")
    np.testing.assert_array_equal(converted.astype(bool), mask)

    (segment,), = meta["segmentAttributes"]
    assert segment["labelID"] == 1
    assert segment["SegmentLabel"] == f"smoothgrad saliency >= {threshold:g}"
    assert segment["recommendedDisplayRGBValue"] == list(SALIENT_REGION_RGB)
    category = segment["SegmentedPropertyCategoryCodeSequence"]
    assert (category["CodeValue"], category["CodingSchemeDesignator"]) == ("309825002", "SCT")
    kind = segment["SegmentedPropertyTypeCodeSequence"]
    assert (kind["CodeValue"], kind["CodingSchemeDesignator"]) == (codes.DCM.Saliency.value, "DCM")
    if region[0] == UNSPECIFIED_ANATOMIC_REGION.value:     # unknown anatomy is not claimed
        assert "AnatomicRegionSequence" not in segment
    else:
        anatomy = segment["AnatomicRegionSequence"]
        assert (anatomy["CodeValue"], anatomy["CodingSchemeDesignator"]) == region


def test_seg_display_colour_and_region_given_by_the_caller_reach_dcmqi(tmp_path, dcmqi, cxr_case,
                                                                       cr_source):
    saliency = _normalized(ImageVolume(cxr_case.image))
    seg_path = tmp_path / "seg.dcm"
    write_seg(saliency, cr_source, seg_path, threshold=0.5, method="gradcam",
              display_color=[40, 200, 90], anatomic_region="CHEST")
    assert dciodvfy(seg_path).errors == []
    _, meta = _segimage2itkimage(dcmqi, seg_path, tmp_path / "dcmqi")
    (segment,), = meta["segmentAttributes"]
    assert segment["recommendedDisplayRGBValue"] == [40, 200, 90]
    assert segment["AnatomicRegionSequence"]["CodeMeaning"] == "Chest"
    assert segment["SegmentedPropertyTypeCodeSequence"]["CodeValue"] == \
        codes.DCM.GradientWeightedClassActivation.value


def test_parametric_map_anatomy_given_by_the_caller_reaches_dcmqi(tmp_path, dcmqi, cxr_case,
                                                                  cr_source):
    saliency = _normalized(ImageVolume(cxr_case.image))
    pm_path = tmp_path / "pm.dcm"
    write_parametric_map(saliency, cr_source, pm_path, anatomic_region=codes.SCT.Chest,
                         frame_laterality="b")
    assert dciodvfy(pm_path).errors == []
    _, meta = _paramap2itkimage(dcmqi, pm_path, tmp_path / "dcmqi")
    assert meta["AnatomicRegionSequence"]["CodeValue"] == codes.SCT.Chest.value
    assert meta["FrameLaterality"] == "B"


def test_paired_region_without_laterality_asks_for_it(cxr_case):
    from support.dicom_sources import make_cr_dataset

    knee = make_cr_dataset(cxr_case.image, case_id="knee")
    knee.BodyPartExamined = "KNEE"
    saliency = _normalized(ImageVolume(cxr_case.image))
    with pytest.raises(ValueError, match="paired structure.*frame_laterality='L'"):
        write_parametric_map(saliency, knee)
    knee.ImageLaterality = "L"
    pm = write_parametric_map(saliency, knee)
    anatomy = pm.SharedFunctionalGroupsSequence[0].FrameAnatomySequence[0]
    assert (anatomy.AnatomicRegionSequence[0].CodeMeaning, anatomy.FrameLaterality) == ("Knee", "L")


@pytest.mark.parametrize("keywords, message", [
    ({"anatomic_region": "ELBOWS"}, "not a Body Part Examined defined term"),
    ({"anatomic_region": 42}, "must be a Body Part Examined term"),
    ({"frame_laterality": "left"}, "frame_laterality must be one of"),
])
def test_bad_anatomy_arguments_are_refused_with_the_fix(cxr_case, cr_source, keywords, message):
    with pytest.raises(ValueError, match=message):
        write_parametric_map(_normalized(ImageVolume(cxr_case.image)), cr_source, **keywords)


@pytest.mark.parametrize("color", [(255, 0), (0, 0, 256), (1.5, 2, 3), "red", None])
def test_bad_display_colour_is_refused(cxr_case, cr_source, color):
    with pytest.raises(ValueError, match="display_color must be three integers 0-255"):
        write_seg(_normalized(ImageVolume(cxr_case.image)), cr_source, display_color=color)


def test_the_bundles_parametric_map_writer_makes_maps_dcmqi_converts(tmp_path, dcmqi, cxr_case,
                                                                     cr_source):
    """The writer as MonaiBundle/configs/inference.json builds it (``save_dicom_maps``)."""
    from pathlib import Path

    from monai.bundle import ConfigParser

    config = Path(__file__).resolve().parents[2] / "MonaiBundle" / "configs" / "inference.json"
    writer_config = json.loads(config.read_text())["save_dicom_maps"]["writer"]
    writer = ConfigParser({"writer": writer_config}).get_parsed_content("writer")
    saliency = _normalized(ImageVolume(cxr_case.image))
    writer(saliency, cr_source, tmp_path / "pm.dcm")
    assert dciodvfy(tmp_path / "pm.dcm").errors == []
    image_path, meta = _paramap2itkimage(dcmqi, tmp_path / "pm.dcm", tmp_path / "dcmqi")
    converted, _, spacing, _ = _read_itk(image_path)
    np.testing.assert_array_equal(converted[0], saliency[0].astype(np.float32))
    np.testing.assert_allclose(spacing[:2], cr_source.PixelSpacing)
    assert meta["AnatomicRegionSequence"]["CodeMeaning"] == "Chest"   # Body Part Examined CHEST

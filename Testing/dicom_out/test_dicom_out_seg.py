"""Thresholded saliency maps as binary DICOM SEG: valid, labelled with method and threshold."""

import highdicom as hd
import numpy as np
import pydicom
import pytest

from SaliencyTrustLib.io.dicom_write import write_parametric_map, write_seg
from support.validate import dciodvfy


def _normalized(image):
    return (image - image.min()) / (image.max() - image.min())


def _assert_valid(path):
    report = dciodvfy(path)
    assert report.iod == "Segmentation", report.output
    assert report.errors == [], report.output
    return report


def test_ct_seg_holds_map_above_threshold_per_source_slice(tmp_path, ct_case, ct_sources):
    saliency = _normalized(ct_case.image)
    path = tmp_path / "seg.dcm"
    write_seg(saliency, ct_sources, path, threshold=0.6, method="smoothgrad")
    report = _assert_valid(path)

    seg = hd.seg.segread(path)
    assert seg.SegmentationType == "BINARY"
    assert seg.StudyInstanceUID == ct_sources[0].StudyInstanceUID
    assert seg.FrameOfReferenceUID == ct_sources[0].FrameOfReferenceUID
    assert int(seg.NumberOfFrames) == len(ct_sources)      # empty slices kept
    segment = seg.SegmentSequence[0]
    assert segment.SegmentLabel == "smoothgrad saliency >= 0.6"
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert algorithm.AlgorithmName == "SaliencyTrust smoothgrad"
    assert "threshold=0.6" in algorithm.AlgorithmParameters

    ordered = sorted(ct_sources, key=lambda d: float(d.ImagePositionPatient[2]))
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[d.SOPInstanceUID for d in ordered], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[..., 0].astype(bool), saliency >= 0.6)
    assert report.warnings == [], report.output


def test_radiograph_seg_shares_the_parametric_maps_frame_of_reference(tmp_path, cxr_case,
                                                                     cr_source):
    saliency = _normalized(cxr_case.image)
    path = tmp_path / "seg_cr.dcm"
    seg = write_seg(saliency, cr_source, path, threshold=0.5, method="gradcam")
    _assert_valid(path)
    pm = write_parametric_map(saliency, cr_source, method="gradcam")
    assert seg.FrameOfReferenceUID == pm.FrameOfReferenceUID
    read = hd.seg.segread(path)
    pixels = read.get_pixels_by_source_instance(
        source_sop_instance_uids=[cr_source.SOPInstanceUID], segment_numbers=[1])
    np.testing.assert_array_equal(pixels[0, ..., 0].astype(bool), saliency >= 0.5)
    assert pydicom.dcmread(path).SegmentSequence[0].SegmentLabel == "gradcam saliency >= 0.5"


def test_empty_mask_is_written_with_every_frame(tmp_path, ct_case, ct_sources):
    path = tmp_path / "empty.dcm"
    write_seg(np.zeros_like(ct_case.image), ct_sources, path, threshold=0.5)
    _assert_valid(path)
    seg = pydicom.dcmread(path)
    assert int(seg.NumberOfFrames) == len(ct_sources)
    assert not seg.pixel_array.any()


def test_bool_mask_is_written_as_is(ct_case, ct_sources):
    seg = write_seg(ct_case.mask, ct_sources, threshold=0.25, method="xrai")
    assert seg.pixel_array.sum() == ct_case.mask.sum() > 0


def test_non_finite_threshold_is_refused(ct_case, ct_sources):
    with pytest.raises(ValueError, match="threshold"):
        write_seg(_normalized(ct_case.image), ct_sources, threshold=float("nan"))


def test_seg_writer_built_from_a_bundle_config_binds_its_options(tmp_path, ct_case, ct_sources):
    from monai.bundle import ConfigParser

    writer = ConfigParser({"writer": {"_target_": "SaliencyTrustLib.io.SegWriter", "threshold": 0.6,
                                      "method": "gradcam"}}).get_parsed_content("writer")
    saliency = _normalized(ct_case.image)
    seg = writer(saliency, ct_sources, tmp_path / "seg.dcm")
    assert isinstance(seg, hd.seg.Segmentation)
    _assert_valid(tmp_path / "seg.dcm")
    assert seg.SegmentSequence[0].SegmentLabel == "gradcam saliency >= 0.6"

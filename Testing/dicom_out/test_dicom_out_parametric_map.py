"""Saliency maps as DICOM Parametric Maps: valid (dciodvfy), on the source geometry, referencing it."""

import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.io.dicom_write import write_parametric_map
from SaliencyTrustLib.io.errors import InputError
from support.validate import dciodvfy

CT_SPACING, CT_ORIGIN = (0.8, 0.8, 2.5), (-25.0, -30.0, 100.0)


def _saliency_like(image: np.ndarray) -> np.ndarray:
    """A deterministic [0, 1] map with a known maximum (1) and minimum (0)."""
    values = np.asarray(image, np.float32)
    return (values - values.min()) / (values.max() - values.min())


def _assert_valid(path):
    report = dciodvfy(path)
    assert report.iod == "ParametricMap", report.output
    assert report.errors == [], report.output
    return report


def test_ct_parametric_map_is_valid_and_holds_the_map_on_the_source_slices(tmp_path, ct_case,
                                                                          ct_sources):
    saliency = _saliency_like(ct_case.image)
    volume = ImageVolume(saliency, spacing=CT_SPACING, origin=CT_ORIGIN)
    path = tmp_path / "pm.dcm"
    write_parametric_map(volume, ct_sources, path, method="integrated_gradients")
    _assert_valid(path)

    pm = pydicom.dcmread(path)
    source = ct_sources[0]
    assert pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"
    assert pm.StudyInstanceUID == source.StudyInstanceUID
    assert pm.SeriesInstanceUID != source.SeriesInstanceUID
    assert pm.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert pm.PatientID == source.PatientID
    assert int(pm.NumberOfFrames) == len(ct_sources)
    assert pm.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in pm.ReferencedSeriesSequence[0]
            .ReferencedInstanceSequence} == {d.SOPInstanceUID for d in ct_sources}

    shared = pm.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(shared.PixelMeasuresSequence[0].PixelSpacing, [0.8, 0.8])
    np.testing.assert_allclose(shared.PlaneOrientationSequence[0].ImageOrientationPatient,
                               [1, 0, 0, 0, 1, 0])
    mapping = shared.RealWorldValueMappingSequence[0]
    assert (mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept) == (1.0, 0.0)
    assert (mapping.DoubleFloatRealWorldValueFirstValueMapped,
            mapping.DoubleFloatRealWorldValueLastValueMapped) == (0.0, 1.0)
    assert mapping.MeasurementUnitsCodeSequence[0].CodeValue == "1"
    assert mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0].CodeValue == \
        codes.DCM.Saliency.value

    by_sop = {d.SOPInstanceUID: d for d in ct_sources}
    pixels = pm.pixel_array
    assert pixels.dtype == np.float32
    for index, frame in enumerate(pm.PerFrameFunctionalGroupsSequence):
        position = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
        k = int(round((position[2] - CT_ORIGIN[2]) / CT_SPACING[2]))
        np.testing.assert_allclose(position, [CT_ORIGIN[0], CT_ORIGIN[1], CT_ORIGIN[2] + 2.5 * k])
        np.testing.assert_array_equal(pixels[index], saliency[k])
        referenced = frame.DerivationImageSequence[0].SourceImageSequence[0]
        np.testing.assert_allclose(by_sop[referenced.ReferencedSOPInstanceUID]
                                   .ImagePositionPatient, position)


def test_plain_array_is_matched_to_slices_in_increasing_position(tmp_path, ct_case, ct_sources):
    saliency = _saliency_like(ct_case.image)
    pm = write_parametric_map(saliency, ct_sources, method="gradient")
    z_of_frame = [float(f.PlanePositionSequence[0].ImagePositionPatient[2])
                  for f in pm.PerFrameFunctionalGroupsSequence]
    for index, z in enumerate(z_of_frame):
        k = int(round((z - CT_ORIGIN[2]) / CT_SPACING[2]))
        np.testing.assert_array_equal(pm.pixel_array[index], saliency[k])


def test_gradcam_map_is_coded_as_gradient_weighted_class_activation(ct_case, ct_sources):
    pm = write_parametric_map(_saliency_like(ct_case.image), ct_sources, method="gradcam")
    mapping = pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0]
    concept = mapping.QuantityDefinitionSequence[0].ConceptCodeSequence[0]
    assert concept.CodeValue == codes.DCM.GradientWeightedClassActivation.value
    assert "gradcam" in pm.ContentDescription


def test_radiograph_without_frame_of_reference_gets_a_stable_derived_one(tmp_path, cxr_case,
                                                                        cr_source):
    saliency = _saliency_like(cxr_case.image)
    path = tmp_path / "pm_cr.dcm"
    first = write_parametric_map(saliency, cr_source, path, method="gradient")
    report = _assert_valid(path)
    again = write_parametric_map(saliency, cr_source, method="smoothgrad")

    assert "FrameOfReferenceUID" not in cr_source          # the caller's dataset is untouched
    assert first.FrameOfReferenceUID == again.FrameOfReferenceUID
    pm = pydicom.dcmread(path)
    np.testing.assert_array_equal(pm.pixel_array, saliency)
    shared = pm.SharedFunctionalGroupsSequence[0]
    np.testing.assert_allclose(shared.PixelMeasuresSequence[0].PixelSpacing,
                               cr_source.PixelSpacing)
    frame = pm.PerFrameFunctionalGroupsSequence[0]
    np.testing.assert_allclose(frame.PlanePositionSequence[0].ImagePositionPatient, [0, 0, 0])
    referenced = frame.DerivationImageSequence[0].SourceImageSequence[0]
    assert referenced.ReferencedSOPInstanceUID == cr_source.SOPInstanceUID
    assert pm.StudyInstanceUID == cr_source.StudyInstanceUID
    print("dciodvfy warnings (CR parametric map):", *report.warnings, sep="\n  ")


def test_radiograph_with_frame_of_reference_keeps_it(cxr_case):
    from support.dicom_sources import make_cr_dataset

    source = make_cr_dataset(cxr_case.image, case_id="cxr-for", with_frame_of_reference=True)
    pm = write_parametric_map(_saliency_like(cxr_case.image), source)
    assert pm.FrameOfReferenceUID == source.FrameOfReferenceUID


def test_map_on_another_grid_is_refused_with_the_fix(ct_case, ct_sources):
    shifted = ImageVolume(_saliency_like(ct_case.image), spacing=CT_SPACING,
                          origin=(CT_ORIGIN[0], CT_ORIGIN[1], CT_ORIGIN[2] + 7.0))
    with pytest.raises(ValueError, match="another grid.*Resample"):
        write_parametric_map(shifted, ct_sources)


@pytest.mark.parametrize("bad, message", [
    (lambda m: m * 3.0, "outside \\[0, 1\\]"),
    (lambda m: np.where(m > 0.5, np.nan, m), "NaN"),
    (lambda m: m[:, :-1], "shape .* source"),
])
def test_unusable_maps_are_refused_with_a_reason(ct_case, ct_sources, bad, message):
    with pytest.raises(ValueError, match=message):
        write_parametric_map(bad(_saliency_like(ct_case.image)), ct_sources)


def test_source_that_is_not_dicom_names_the_file(tmp_path, cxr_case):
    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not an image")
    with pytest.raises(InputError, match="notes.txt.*not a readable DICOM"):
        write_parametric_map(_saliency_like(cxr_case.image), not_dicom)


def test_a_missing_source_or_an_empty_folder_is_named_with_a_fix(tmp_path, cxr_case):
    empty = tmp_path / "series"
    empty.mkdir()
    (empty / ".DS_Store").write_bytes(b"not part of the series")   # hidden files are not offered
    for source, reason in ((tmp_path / "gone.dcm", "does not exist"),
                           (empty, "is an empty folder")):
        with pytest.raises(InputError, match=f"{source.name}: {reason}. Fix: pass the source"):
            write_parametric_map(_saliency_like(cxr_case.image), source)


def test_sources_from_two_series_are_refused(cxr_case, cr_source, ct_sources):
    with pytest.raises(InputError, match="2 series"):
        write_parametric_map(_saliency_like(cxr_case.image), [cr_source, ct_sources[0]])


def test_sources_read_from_a_folder_work_like_datasets(tmp_path, ct_case, ct_sources):
    folder = tmp_path / "series"
    folder.mkdir()
    for ds in ct_sources:
        ds.save_as(folder / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    pm = write_parametric_map(_saliency_like(ct_case.image), folder)
    assert int(pm.NumberOfFrames) == len(ct_sources)


def test_multiframe_source_frames_get_the_map_slice_at_their_position(tmp_path, ct_case,
                                                                       ct_sources):
    import highdicom as hd

    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        legacy_datasets=ct_sources, series_instance_uid=hd.UID(), series_number=2,
        sop_instance_uid=hd.UID(), instance_number=1)
    source_z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2])
                for f in enhanced.PerFrameFunctionalGroupsSequence]
    assert source_z != sorted(source_z)        # frames not in increasing position: a real test
    saliency = _saliency_like(ct_case.image)
    volume = ImageVolume(saliency, spacing=CT_SPACING, origin=CT_ORIGIN)
    path = tmp_path / "pm_enhanced.dcm"
    write_parametric_map(volume, enhanced, path)
    _assert_valid(path)
    pm = pydicom.dcmread(path)
    for index, frame in enumerate(pm.PerFrameFunctionalGroupsSequence):
        z = float(frame.PlanePositionSequence[0].ImagePositionPatient[2])
        k = int(round((z - CT_ORIGIN[2]) / CT_SPACING[2]))
        np.testing.assert_array_equal(pm.pixel_array[index], saliency[k])
        referenced = frame.DerivationImageSequence[0].SourceImageSequence[0]
        assert source_z[int(referenced.ReferencedFrameNumber) - 1] == pytest.approx(z)

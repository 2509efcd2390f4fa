"""read_ground_truth: SEG, RTSTRUCT, label maps, RSNA boxes, SIIM run-length, SR TID 1500."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pydicom
import pytest

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.io import (InputError, InputWarning, boxes_to_mask, read_ground_truth, read_image,
                                 read_rsna_boxes, read_siim_rle, rle_decode, rle_encode, save_volume)
from SaliencyTrustLib.io.synth import write_synthetic_cohort


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    write_synthetic_cohort(root / "cxr", n=2, seed=1, kind="cxr")
    write_synthetic_cohort(root / "ct", n=2, seed=1, kind="ct", size=32)
    return root


def _truth(cohorts, kind):
    case = f"{kind}-1-0001"
    image = read_image(cohorts / kind / "dicom" / case)
    mask = read_image(cohorts / kind / "masks" / f"{case}.nii.gz").array > 0
    return case, image, mask


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


# ----------------------------------------------------------------------------- SEG
@pytest.mark.parametrize("kind", ["cxr", "ct"])
def test_seg_gives_the_written_mask_on_the_image_grid(cohorts, kind):
    case, image, mask = _truth(cohorts, kind)
    seg_mask = read_ground_truth(cohorts / kind / "seg" / f"{case}.dcm", image)
    assert seg_mask.dtype == bool and mask.any()
    np.testing.assert_array_equal(seg_mask, mask)


def test_seg_of_another_series_is_refused_unless_allowed_then_placed_by_geometry(cohorts, tmp_path):
    case, image, mask = _truth(cohorts, "ct")
    other = tmp_path / "reconstruction"
    shutil.copytree(cohorts / "ct" / "dicom" / case, other)
    new_series = pydicom.uid.generate_uid()
    for path in other.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID, ds.SOPInstanceUID = new_series, pydicom.uid.generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(path)
    second = read_image(other)
    seg = cohorts / "ct" / "seg" / f"{case}.dcm"
    with pytest.raises(InputError, match="references series .* not the image's series") as error:
        read_ground_truth(seg, second)
    assert error.value.path == str(seg) and "allow_other_series=True" in error.value.fix
    np.testing.assert_array_equal(read_ground_truth(seg, second, allow_other_series=True), mask)


def test_seg_with_two_segments_needs_a_choice(cohorts, tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    case, image, mask = _truth(cohorts, "cxr")
    source = pydicom.dcmread(cohorts / "cxr" / "dicom" / case / "CR0000.dcm")
    second = np.zeros_like(mask)
    second[0, 10:20, 10:20] = True
    descriptions = [hd.seg.SegmentDescription(
        segment_number=n, segment_label=label, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Lung, algorithm_type="MANUAL") for n, label in
        ((1, "lesion"), (2, "marker"))]
    labels = mask.astype(np.uint8) + 2 * second.astype(np.uint8)
    seg = hd.seg.Segmentation([source], labels, "BINARY", descriptions, hd.UID(), 5, hd.UID(), 1,
                              "test", "test", "0", "0")
    seg.save_as(tmp_path / "two.dcm")
    with pytest.raises(InputError, match=r"2 segments \(1 'lesion', 2 'marker'\)"):
        read_ground_truth(tmp_path / "two.dcm", image)
    np.testing.assert_array_equal(read_ground_truth(tmp_path / "two.dcm", image, segment="marker"), second)
    np.testing.assert_array_equal(read_ground_truth(tmp_path / "two.dcm", image, segment="all"), mask | second)


# ----------------------------------------------------------------------------- RTSTRUCT
def _rtstruct(image: ImageVolume, mask: np.ndarray, frame_of_reference: str):
    """A minimal RTSTRUCT (test fixture) holding the mask's slice contours in LPS mm."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from skimage import measure

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.Modality = "RTSTRUCT"
    roi = Dataset()
    roi.ROINumber, roi.ROIName, roi.ReferencedFrameOfReferenceUID = 7, "GTV", frame_of_reference
    ds.StructureSetROISequence = [roi]
    contours = []
    affine = image.ijk_to_lps()
    for k in range(mask.shape[0]):
        for line in measure.find_contours(np.pad(mask[k], 1).astype(float), 0.5):
            rows, cols = line[:, 0] - 1, line[:, 1] - 1
            lps = affine @ np.vstack([cols, rows, np.full(len(rows), k), np.ones(len(rows))])
            item = Dataset()
            item.ContourGeometricType = "CLOSED_PLANAR"
            item.NumberOfContourPoints = len(rows)
            item.ContourData = [round(float(v), 4) for v in lps[:3].T.ravel()]
            contours.append(item)
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber = 7
    roi_contour.ContourSequence = contours
    ds.ROIContourSequence = [roi_contour]
    return ds


def test_rtstruct_contours_rasterize_back_to_the_mask(cohorts, tmp_path):
    case, image, mask = _truth(cohorts, "ct")
    _rtstruct(image, mask, image.metadata["FrameOfReferenceUID"]).save_as(tmp_path / "rt.dcm")
    rasterized = read_ground_truth(tmp_path / "rt.dcm", image)
    assert _dice(rasterized, mask) > 0.9
    assert set(np.flatnonzero(rasterized.any((1, 2)))) == set(np.flatnonzero(mask.any((1, 2))))
    _rtstruct(image, mask, "1.2.3.4").save_as(tmp_path / "other_for.dcm")
    with pytest.raises(InputError, match="frame of reference 1.2.3.4"):
        read_ground_truth(tmp_path / "other_for.dcm", image)
    with pytest.raises(InputError, match="has no ROI 'Heart'"):
        read_ground_truth(tmp_path / "rt.dcm", image, roi="Heart")


# ----------------------------------------------------------------------------- label maps
def test_label_map_on_a_finer_grid_is_resampled_with_its_geometry(cohorts, tmp_path):
    from scipy import ndimage

    case, image, mask = _truth(cohorts, "ct")
    fine = ndimage.zoom(mask.astype(np.uint8), 2, order=0)
    spacing = tuple(s / 2 for s in image.spacing)
    origin = tuple(o - s / 4 for o, s in zip(image.origin, image.spacing))  # voxel centres move
    save_volume(ImageVolume(fine, spacing, origin), tmp_path / "fine.nrrd")
    resampled = read_ground_truth(tmp_path / "fine.nrrd", image)
    assert _dice(resampled, mask) > 0.95
    save_volume(ImageVolume(fine, spacing, (500.0, 500.0, 500.0)), tmp_path / "far.nii.gz")
    with pytest.raises(InputError, match="does not overlap the image"):
        read_ground_truth(tmp_path / "far.nii.gz", image)


def test_empty_mask_is_an_error_naming_the_file_unless_allowed(cohorts):
    image = read_image(cohorts / "cxr" / "dicom" / "cxr-1-0000")
    empty = cohorts / "cxr" / "masks" / "cxr-1-0000.nii.gz"
    with pytest.raises(InputError, match="empty mask") as error:
        read_ground_truth(empty, image)
    assert error.value.path == str(empty) and "allow_empty=True" in error.value.fix
    assert not read_ground_truth(empty, image, allow_empty=True).any()


# ----------------------------------------------------------------------------- RSNA boxes
def test_rsna_csv_boxes_are_unioned_on_the_image(cohorts):
    case, image, mask = _truth(cohorts, "cxr")
    boxes = read_rsna_boxes(cohorts / "cxr" / "boxes.csv")
    assert boxes["cxr-1-0000"] == [] and len(boxes[case]) >= 1
    box_mask = read_ground_truth(cohorts / "cxr" / "boxes.csv", image)
    assert (box_mask | ~mask).all()                       # the boxes hold the whole lesion
    expected = np.zeros((224, 224), bool)
    for x, y, w, h in boxes[case]:
        expected[int(y):int(y + h), int(x):int(x + w)] = True
    np.testing.assert_array_equal(box_mask[0], expected)


def test_boxes_to_mask_unions_clips_and_refuses_outside_boxes():
    union = boxes_to_mask([(0, 0, 2, 2), (1, 1, 2, 2)], (4, 4))
    assert union.sum() == 7
    with pytest.warns(InputWarning, match="clipped"):
        clipped = boxes_to_mask([(3, 3, 5, 5)], (4, 4), path="b.csv")
    assert clipped.sum() == 1 and clipped[3, 3]
    with pytest.raises(InputError, match="wholly outside the 4x4 image") as error:
        boxes_to_mask([(10, 0, 2, 2)], (4, 4), path="b.csv")
    assert error.value.path == "b.csv"


def test_study_scaling_follows_the_papers_formula():
    box = (264.0, 152.0, 213.0, 379.0)
    mask = boxes_to_mask([box], (320, 320), study_scaling=True)
    x0, y0 = int(320 * 264 / 1023), int(320 * 152 / 1023)
    x1, y1 = int(320 * (264 + 213) / 1023), int(320 * (152 + 379) / 1023)
    expected = np.zeros((320, 320), bool)
    expected[y0:y1 + 1, x0:x1 + 1] = True                # inclusive corners
    np.testing.assert_array_equal(mask, expected)
    plain = boxes_to_mask([box], (320, 320), scale=320 / 1024)
    assert plain.sum() < mask.sum()


# ----------------------------------------------------------------------------- SIIM run-length
def test_siim_rle_is_column_major_relative_and_round_trips():
    mask = np.zeros((3, 3), bool)
    mask[1, 0] = mask[0, 1] = True                       # column-major indices 1 and 3
    assert rle_encode(mask) == "1 1 1 1"
    np.testing.assert_array_equal(rle_decode("1 1 1 1", (3, 3)), mask)
    assert rle_encode(np.zeros((4, 4))) == "-1" and not rle_decode("-1", (4, 4)).any()
    random = np.random.default_rng(0).random((40, 30)) > 0.7
    np.testing.assert_array_equal(rle_decode(rle_encode(random), random.shape), random)
    with pytest.raises(ValueError, match="past the"):
        rle_decode("5 100", (3, 3))


def test_siim_csv_unions_regions_of_one_image(tmp_path):
    a = np.zeros((8, 8), bool)
    a[1:3, 1:3] = True
    b = np.zeros((8, 8), bool)
    b[5:7, 4:8] = True
    csv_path = tmp_path / "train-rle.csv"
    csv_path.write_text("ImageId, EncodedPixels\n1.2.3, " + rle_encode(a) + "\n1.2.3, " + rle_encode(b)
                        + "\n1.2.4, -1\n")
    assert read_siim_rle(csv_path)["1.2.4"] == []
    image = ImageVolume(np.zeros((1, 8, 8), np.float32), metadata={"SOPInstanceUIDs": ["1.2.3"]})
    np.testing.assert_array_equal(read_ground_truth(csv_path, image)[0], a | b)
    with pytest.raises(InputError, match="no row for ImageId '9.9'"):
        read_ground_truth(csv_path, image, case_id="9.9")


# ----------------------------------------------------------------------------- SR TID 1500
def test_sr_planar_polyline_roi_is_rasterized_on_its_image(cohorts, tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    case, image, _ = _truth(cohorts, "cxr")
    source = pydicom.dcmread(cohorts / "cxr" / "dicom" / case / "CR0000.dcm")
    x, y, w, h = 50.0, 60.0, 30.0, 20.0
    corners = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]])
    region = hd.sr.ImageRegion(graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=corners,
                               source_image=hd.sr.SourceImageForRegion.from_source_image(source))
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="opacity 1"),
        referenced_region=region, finding_type=codes.SCT.Lesion)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Reader^One"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=[group])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = hd.sr.Comprehensive3DSR([source], report, hd.UID(), 7, hd.UID(), 1, manufacturer="test")
    sr.save_as(tmp_path / "sr.dcm")
    mask = read_ground_truth(tmp_path / "sr.dcm", image)
    expected = np.zeros((224, 224), bool)
    expected[60:80, 50:80] = True     # pixel centres inside the polygon drawn on pixel edges
    assert _dice(mask[0], expected) > 0.95


def test_sr_scoord3d_polygon_lands_on_its_slice(cohorts, tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    case, image, _ = _truth(cohorts, "ct")
    sources = [pydicom.dcmread(p) for p in sorted((cohorts / "ct" / "dicom" / case).glob("*.dcm"))]
    k, (i0, j0, i1, j1) = 12, (5, 6, 15, 20)
    corners_ijk = [(i0, j0), (i1, j0), (i1, j1), (i0, j1), (i0, j0)]
    lps = np.array([(image.ijk_to_lps() @ [i, j, k, 1])[:3] for i, j in corners_ijk])
    region = hd.sr.ImageRegion3D(graphic_type=hd.sr.GraphicTypeValues3D.POLYGON, graphic_data=lps,
                                 frame_of_reference_uid=image.metadata["FrameOfReferenceUID"])
    group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="nodule"),
        referenced_region=region, finding_type=codes.SCT.Nodule)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Person,
        observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name="Reader^Two"))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_person_context=observer),
        procedure_reported=codes.LN.CTUnspecifiedBodyRegion, imaging_measurements=[group])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sr = hd.sr.Comprehensive3DSR(sources, report, hd.UID(), 8, hd.UID(), 1, manufacturer="test")
    sr.save_as(tmp_path / "sr3d.dcm")
    mask = read_ground_truth(tmp_path / "sr3d.dcm", image)
    assert set(np.flatnonzero(mask.any((1, 2)))) == {k}
    expected = np.zeros(mask.shape[1:], bool)
    expected[j0:j1 + 1, i0:i1 + 1] = True           # voxel centres on the polygon's edges count
    assert _dice(mask[k], expected) > 0.8


def test_seg_over_an_enhanced_multiframe_source_follows_its_frame_order(cohorts, tmp_path):
    import highdicom as hd
    from pydicom.sr.codedict import codes

    case, classic, mask = _truth(cohorts, "ct")
    datasets = [pydicom.dcmread(p) for p in sorted((cohorts / "ct" / "dicom" / case).glob("*.dcm"))]
    hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets, series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
        instance_number=1).save_as(tmp_path / "enhanced.dcm")
    enhanced = pydicom.dcmread(tmp_path / "enhanced.dcm")
    image = read_image(tmp_path / "enhanced.dcm")
    frame_z = [float(f.PlanePositionSequence[0].ImagePositionPatient[2])
               for f in enhanced.PerFrameFunctionalGroupsSequence]
    in_frame_order = mask[np.argsort(np.argsort(frame_z))]   # frame f holds the slice at frame_z[f]
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label="nodule", segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Nodule, algorithm_type="MANUAL")
    hd.seg.Segmentation([enhanced], in_frame_order.astype(np.uint8), "BINARY", [description], hd.UID(),
                        5, hd.UID(), 1, "test", "test", "0", "0").save_as(tmp_path / "seg.dcm")
    np.testing.assert_array_equal(read_ground_truth(tmp_path / "seg.dcm", image), mask)

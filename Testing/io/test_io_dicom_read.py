"""read_image: radiographs, series, enhanced multi-frame, compressed syntaxes, series faults."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from SaliencyTrustLib.io import InputError, InputWarning, read_image, read_source_datasets
from SaliencyTrustLib.io.dicom_read import apply_window
from SaliencyTrustLib.io.synth import write_synthetic_cohort
from SaliencyTrustLib.synthetic import make_cohort


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("read")
    write_synthetic_cohort(root / "cxr", n=2, seed=0, kind="cxr", write_seg=False)
    write_synthetic_cohort(root / "ct", n=2, seed=0, kind="ct", size=16, write_seg=False)
    return root


def _series_copy(cohorts, tmp_path, case="ct-0-0001") -> Path:
    target = tmp_path / "series"
    shutil.copytree(cohorts / "ct" / "dicom" / case, target)
    return target


def _quiet_read(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        return read_image(path, **kwargs)


# ----------------------------------------------------------------------------- radiographs
def test_cr_reads_as_display_values_in_unit_range(cohorts):
    case = make_cohort(2, seed=0)[1]
    volume = read_image(cohorts / "cxr" / "dicom" / case.case_id)
    assert volume.shape == (1, 224, 224) and volume.array.dtype == np.float32
    np.testing.assert_allclose(volume.array[0], case.image, atol=1e-3)
    assert volume.spacing == (1.6, 1.6, 1.0) and volume.metadata["spacing_source"] == "PixelSpacing"
    assert "LINEAR_EXACT" in volume.metadata["voi"]
    nifti = read_image(cohorts / "cxr" / "nifti" / f"{case.case_id}.nii.gz")
    assert nifti.same_grid(volume)
    np.testing.assert_allclose(nifti.array, volume.array, atol=1e-6)


def test_imager_pixel_spacing_is_used_and_corrected_for_magnification(cohorts, tmp_path):
    ds = pydicom.dcmread(cohorts / "cxr" / "dicom" / "cxr-0-0001" / "CR0000.dcm")
    del ds.PixelSpacing
    ds.save_as(tmp_path / "detector.dcm")
    detector = read_image(tmp_path / "detector.dcm")
    assert detector.spacing[:2] == pytest.approx((1.76, 1.76))
    assert detector.metadata["spacing_source"].startswith("ImagerPixelSpacing (detector plane")
    ds.EstimatedRadiographicMagnificationFactor = 1.1
    ds.save_as(tmp_path / "patient.dcm")
    patient = read_image(tmp_path / "patient.dcm")
    assert patient.spacing[:2] == pytest.approx((1.6, 1.6))
    assert "EstimatedRadiographicMagnificationFactor" in patient.metadata["spacing_source"]


def test_monochrome1_is_inverted_to_the_same_display_image(cohorts, tmp_path):
    ds = pydicom.dcmread(cohorts / "cxr" / "dicom" / "cxr-0-0001" / "CR0000.dcm")
    original = read_image(cohorts / "cxr" / "dicom" / "cxr-0-0001" / "CR0000.dcm").array
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.PixelData = (4095 - ds.pixel_array).astype(np.uint16).tobytes()
    ds.WindowCenter = 4095 - 2047.5  # the same window seen from the inverted values
    ds.save_as(tmp_path / "mono1.dcm")
    inverted = read_image(tmp_path / "mono1.dcm")
    assert inverted.metadata["monochrome1_inverted"] is True
    np.testing.assert_allclose(inverted.array, original, atol=1e-6)


def test_rg1_monochrome1_cr_matches_simpleitk_and_applies_window():
    import SimpleITK as sitk

    path = get_testdata_file("RG1_UNCR.dcm")   # pydicom-data: CR 1955x1841, MONOCHROME1, 15 bits
    itk = sitk.GetArrayFromImage(sitk.ReadImage(path)).astype(np.float32)
    raw = read_image(path, voi="none", invert_monochrome1=False).array
    inverted = read_image(path, voi="none").array
    assert raw.shape == itk.shape == (1, 1955, 1841)
    # GDCM inverts MONOCHROME1 over the stored range (0..2^15-1); so does voi="none".
    np.testing.assert_array_equal(inverted, itk)
    np.testing.assert_array_equal(raw + inverted, np.full_like(raw, 2 ** 15 - 1))
    display = read_image(path)
    assert display.metadata["voi"].startswith("window center 15000 width 30000")
    np.testing.assert_allclose(display.array, 1 - apply_window(raw, 15000, 30000), atol=1e-6)
    assert 0 <= display.array.min() and display.array.max() <= 1


def test_voi_lut_sequence_and_modality_lut_sequence_are_applied():
    vlut = read_image(get_testdata_file("vlut_04.dcm"))
    assert vlut.metadata["voi"] == "VOI LUT Sequence (first table)"
    assert 0 <= vlut.array.min() < vlut.array.max() <= 1
    mlut = read_image(get_testdata_file("mlut_18.dcm"), voi="none")
    ds = pydicom.dcmread(get_testdata_file("mlut_18.dcm"))
    lut = np.asarray(ds.ModalityLUTSequence[0].LUTData)
    assert mlut.metadata["modality_lut"] == "Modality LUT Sequence"
    assert set(np.unique(mlut.array)) <= set(lut.astype(np.float32))


# ----------------------------------------------------------------------------- compression
@pytest.mark.parametrize("compressed, reference", [
    ("MR_small_RLE.dcm", "MR_small.dcm"),                               # RLE
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),                  # JPEG-LS (pyjpegls)
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),                      # JPEG 2000 (openjpeg)
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm"),              # multi-frame JPEG-LS
    ("693_J2KR.dcm", "693_UNCR.dcm"),                                   # CT JPEG 2000
    ("JPGLosslessP14SV1_1s_1f_8b.dcm", None),                           # JPEG lossless (libjpeg)
    ("JPGExtended.dcm", None),                                          # JPEG extended 12 bit
])
@pytest.mark.filterwarnings("ignore::SaliencyTrustLib.io.errors.InputWarning")
def test_compressed_transfer_syntaxes_decode_losslessly(compressed, reference):
    volume = read_image(get_testdata_file(compressed), voi="none")
    assert np.isfinite(volume.array).all() and volume.array.max() > volume.array.min()
    if reference is not None:
        np.testing.assert_array_equal(volume.array, read_image(get_testdata_file(reference), voi="none").array)


def test_jpeg_baseline_colour_is_converted_to_grey_like_its_decompressed_twin():
    with pytest.warns(InputWarning, match="colour image"):
        jpeg = read_image(get_testdata_file("SC_rgb_jpeg.dcm"), voi="none")
    twin = _quiet_read(get_testdata_file("SC_rgb_jpeg_dcmd.dcm"), voi="none")
    assert jpeg.metadata["converted_from_color"] and jpeg.shape == twin.shape == (1, 256, 256)
    assert np.abs(jpeg.array - twin.array).max() <= 2.0   # decoders differ by rounding only


# ----------------------------------------------------------------------------- series
def test_ct_series_geometry_matches_nifti_and_is_file_order_independent(cohorts, tmp_path):
    series = _series_copy(cohorts, tmp_path)
    for number, path in enumerate(sorted(series.glob("*.dcm"), reverse=True)):
        path.rename(series / f"x{number:03d}.dcm")      # file names now run head to feet
    volume = read_image(series)
    nifti = read_image(cohorts / "ct" / "nifti" / "ct-0-0001.nii.gz")
    assert volume.same_grid(nifti) and volume.spacing == (5.5, 5.5, 5.0)
    np.testing.assert_array_equal(volume.array, nifti.array)
    assert volume.metadata["modality_lut"] == "rescale slope 1 intercept -1024"
    assert volume.metadata["voi"] == "none" and volume.array.min() >= -1000
    headers = read_source_datasets(volume)
    z = [float(h.ImagePositionPatient[2]) for h in headers]
    assert z == sorted(z) and [h.SOPInstanceUID for h in headers] == volume.metadata["SOPInstanceUIDs"]


def test_enhanced_ct_reads_like_the_classic_series(cohorts, tmp_path):
    import highdicom as hd

    series = cohorts / "ct" / "dicom" / "ct-0-0001"
    datasets = [pydicom.dcmread(p) for p in sorted(series.glob("*.dcm"))]
    enhanced = hd.legacy.LegacyConvertedEnhancedCTImage(
        datasets, series_instance_uid=hd.UID(), series_number=9, sop_instance_uid=hd.UID(),
        instance_number=1)
    enhanced.save_as(tmp_path / "enhanced.dcm")
    multi = read_image(tmp_path / "enhanced.dcm")
    classic = read_image(series)
    assert multi.same_grid(classic)
    np.testing.assert_array_equal(multi.array, classic.array)
    assert multi.metadata["frame_numbers"][0] is not None


def test_enhanced_ct_from_pydicom_data_uses_functional_groups():
    volume = read_image(get_testdata_file("eCT_Supplemental.dcm"))
    assert volume.shape == (2, 512, 512) and volume.spacing[2] == pytest.approx(10.0)
    assert volume.metadata["spacing_source"].startswith("PixelSpacing")
    assert volume.array.min() == -1024.0   # rescale intercept of the Pixel Value Transformation group


def test_missing_slice_is_an_error_naming_the_gap_or_resampled(cohorts, tmp_path):
    series = _series_copy(cohorts, tmp_path)
    (series / "CT0007.dcm").unlink()
    with pytest.raises(InputError, match=r"not evenly spaced.*CT0006.dcm and CT0008.dcm.*missing slices") as error:
        read_image(series)
    assert error.value.path == str(series) and "irregular='resample'" in error.value.fix
    with pytest.warns(InputWarning, match="Resampled"):
        filled = read_image(series, irregular="resample")
    complete = read_image(cohorts / "ct" / "dicom" / "ct-0-0001")
    assert filled.shape == complete.shape and filled.same_grid(complete)
    np.testing.assert_allclose(filled.array[7], (complete.array[6] + complete.array[8]) / 2, atol=1e-3)


def test_duplicate_file_is_dropped_and_conflicting_slice_is_an_error(cohorts, tmp_path):
    series = _series_copy(cohorts, tmp_path)
    shutil.copy(series / "CT0003.dcm", series / "copy_of_3.dcm")
    with pytest.warns(InputWarning, match="same instance twice"):
        assert read_image(series).shape[0] == 16
    ds = pydicom.dcmread(series / "copy_of_3.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(series / "copy_of_3.dcm")
    with pytest.raises(InputError, match="two different slices at the same position"):
        read_image(series)
    assert _quiet_read(series, duplicates="first").shape[0] == 16


def test_folder_with_two_series_lists_them_and_series_uid_picks_one(cohorts, tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(cohorts / "ct" / "dicom" / "ct-0-0000", folder / "a")
    shutil.copytree(cohorts / "ct" / "dicom" / "ct-0-0001", folder / "b")
    uids = [pydicom.dcmread(next((folder / s).glob("*.dcm"))).SeriesInstanceUID for s in "ab"]
    with pytest.raises(InputError, match="2 image series") as error:
        read_image(folder)
    assert all(uid in str(error.value) for uid in uids) and "series_uid" in error.value.fix
    picked = read_image(folder, series_uid=uids[1])
    assert picked.metadata["SeriesInstanceUID"] == uids[1]


def test_gantry_tilt_is_detected_and_resampled_or_kept(cohorts, tmp_path):
    series = _series_copy(cohorts, tmp_path)
    tilt = np.radians(15.0)
    for path in series.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        k = int(ds.InstanceNumber) - 1
        position = [float(v) for v in ds.ImagePositionPatient]
        position[1] += k * 5.0 * np.tan(tilt)           # each slice shifted along the rows
        ds.ImagePositionPatient = position
        ds.GantryDetectorTilt = 15.0
        ds.save_as(path)
    with pytest.raises(InputError, match="gantry tilt of 15.00 degrees"):
        read_image(series, gantry_tilt="error")
    with pytest.warns(InputWarning, match="gantry tilt"):
        kept = read_image(series, gantry_tilt="keep")
    first = pydicom.dcmread(series / "CT0005.dcm")
    np.testing.assert_allclose((kept.ijk_to_lps() @ [0, 0, 5, 1])[:3],
                               [float(v) for v in first.ImagePositionPatient], atol=1e-6)
    with pytest.warns(InputWarning, match="shifted in-plane"):
        resampled = read_image(series)
    np.testing.assert_allclose(resampled.direction, np.eye(3), atol=1e-9)
    # Slice 5 moved 5 * 5 tan(15 deg) = 6.70 mm = 1.22 rows: the orthogonal grid sees it shifted back.
    from scipy import ndimage

    shift = 5 * 5.0 * np.tan(tilt) / 5.5
    expected = ndimage.shift(kept.array[5], (shift, 0), order=1, mode="constant", cval=kept.array.min())
    np.testing.assert_allclose(resampled.array[5], expected, atol=1e-3)
    assert not np.allclose(resampled.array[5], kept.array[5], atol=1.0)


def test_list_series_and_non_image_files_in_a_series_folder(cohorts, tmp_path):
    from SaliencyTrustLib.io import list_series

    series = _series_copy(cohorts, tmp_path)
    shutil.copy(get_testdata_file("test-SR.dcm"), series / "report.dcm")
    (series / "README.txt").write_text("exported by hand")
    found = list_series(series)
    assert sorted((s.modality, len(s.files), s.non_image is None) for s in found) == \
        [("CT", 16, True), ("SR", 1, False)]
    assert read_image(series).shape == (16, 16, 16)      # the SR and the text file are skipped


def test_readers_are_buildable_from_a_bundle_config(cohorts):
    from monai.bundle import ConfigParser

    parser = ConfigParser({
        "reader": {"_target_": "SaliencyTrustLib.io.ImageReader", "voi": "window"},
        "truth": {"_target_": "SaliencyTrustLib.io.GroundTruthReader", "allow_empty": True},
    })
    reader, truth = parser.get_parsed_content("reader"), parser.get_parsed_content("truth")
    volume = reader(cohorts / "ct" / "dicom" / "ct-0-0001")
    assert 0 <= volume.array.min() and volume.array.max() <= 1         # CT window -600/1500 applied
    assert volume.metadata["voi"].startswith("window center -600 width 1500")
    assert truth(cohorts / "ct" / "masks" / "ct-0-0000.nii.gz", volume).shape == volume.shape


def test_ct_series_geometry_agrees_with_simpleitk(cohorts):
    import SimpleITK as sitk

    folder = str(cohorts / "ct" / "dicom" / "ct-0-0001")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    itk = reader.Execute()
    ours = read_image(folder)
    np.testing.assert_allclose(ours.spacing, itk.GetSpacing())
    np.testing.assert_allclose(ours.origin, itk.GetOrigin())
    np.testing.assert_allclose(ours.direction.ravel(), itk.GetDirection())
    np.testing.assert_array_equal(ours.array, sitk.GetArrayFromImage(itk).astype(np.float32))


def test_grey_jpeg_baseline_radiograph_decodes_close_to_its_source(cohorts, tmp_path):
    import io

    from PIL import Image
    from pydicom.encaps import encapsulate

    ds = pydicom.dcmread(cohorts / "cxr" / "dicom" / "cxr-0-0001" / "CR0000.dcm")
    grey8 = np.round(ds.pixel_array / 4095 * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(grey8).save(buffer, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.WindowCenter, ds.WindowWidth = 127.5, 255.0
    ds.LossyImageCompression = "01"
    ds.save_as(tmp_path / "jpeg.dcm")
    volume = read_image(tmp_path / "jpeg.dcm")
    assert volume.metadata["TransferSyntaxUID"] == pydicom.uid.JPEGBaseline8Bit
    difference = np.abs(volume.array[0] - grey8 / 255.0)
    assert difference.mean() < 0.01 and difference.max() < 0.1     # lossy, but the same picture

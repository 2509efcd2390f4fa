"""Bad input never crashes (issue 14, item 5): a correct image / mask, or one clear InputError.

Each test pins a damage met in practice or found by the fuzzer (fuzz/): before the checks of
io.dicom_checks, each of these raised another exception type (ValueError, AttributeError,
NotImplementedError, sqlite3.OperationalError, pyo3's PanicException...) or returned a silently
wrong result (an all-NaN image, a (1, 224, 1) image, a 23-voxel mask instead of 1085).
"""

from __future__ import annotations

import os
import struct
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import config
from pydicom.data import get_testdata_file, get_testdata_files

from SaliencyTrustLib.image import ImageVolume
from SaliencyTrustLib.io import InputError, InputWarning, read_ground_truth, read_image, save_volume
from SaliencyTrustLib.io.synth import write_synthetic_cohort

FUZZ = Path(__file__).resolve().parents[2] / "fuzz"
if str(FUZZ) not in sys.path:
    sys.path.append(str(FUZZ))

from contract import check_image, check_mask  # noqa: E402
from mutants import mutants, run, source_files  # noqa: E402


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("robust")
    write_synthetic_cohort(root / "cxr", n=2, seed=3, kind="cxr")
    write_synthetic_cohort(root / "ct", n=2, seed=3, kind="ct", size=24)
    return root


@pytest.fixture(scope="module")
def references():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [read_image(FUZZ / "reference" / "cr.dcm"), read_image(FUZZ / "reference" / "ct_enhanced.dcm")]


def _outcome(read, check):
    """'ok' / the InputError / a description of a broken contract."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = read()
    except InputError as error:
        return f"unexpected InputError: {error}" if error.unexpected else error
    except BaseException as error:  # noqa: BLE001 - what this test looks for
        return f"{type(error).__name__}: {error}"
    return check(result) or "ok"


def _save_raw(ds, path: Path) -> Path:
    """Write ``ds`` with its values as they are (pydicom refuses to write NaN in a DS, text in US)."""
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE
    try:
        ds.save_as(path, enforce_file_format=True)
    finally:
        config.settings.writing_validation_mode = old
    return path


# ----------------------------------------------------------------------------- every pydicom file
@pytest.mark.slow
def test_every_pydicom_test_file_is_an_image_or_one_input_error(references):
    files = get_testdata_files()        # pydicom.data and the pydicom-data package
    assert len(files) > 250
    broken, read, refused = [], 0, 0
    for name in files:
        outcome = _outcome(lambda: read_image(name), check_image)
        if isinstance(outcome, InputError):
            refused += 1
            assert outcome.path and outcome.reason and outcome.fix, name
        elif outcome == "ok":
            read += 1
        else:
            broken.append(f"{Path(name).name}: {outcome}")
    assert broken == []
    assert read > 100 and refused > 50


@pytest.mark.slow
def test_every_pydicom_test_file_as_ground_truth_is_a_mask_or_one_input_error(references):
    """Against the radiograph reference (images become label maps placed onto it)."""
    broken, masks = [], 0
    reference = references[0]
    for name in get_testdata_files():
        outcome = _outcome(lambda: read_ground_truth(name, reference),
                           lambda mask: check_mask(mask, reference))
        if not isinstance(outcome, InputError) and outcome != "ok":
            broken.append(f"{Path(name).name}: {outcome}")
        masks += outcome == "ok"
    assert broken == []
    assert masks > 0


def test_native_ybr_full_422_is_read_as_the_same_picture_as_rgb():
    """It was refused as 'truncated' (4:2:2 stores two samples per pixel, not three), and native
    YBR_FULL was converted to RGB twice (pydicom 3 already converts it)."""
    rgb = read_image(get_testdata_file("SC_rgb.dcm")).array
    ybr_full = read_image(get_testdata_file("SC_ybr_full_uncompressed.dcm")).array
    with pytest.warns(InputWarning, match="colour image"):
        ybr_422 = read_image(get_testdata_file("SC_ybr_full_422_uncompressed.dcm"))
    assert ybr_422.shape == rgb.shape == (1, 100, 100)
    np.testing.assert_allclose(ybr_full, rgb, atol=2 / 255)
    np.testing.assert_allclose(ybr_422.array, rgb, atol=4 / 255)     # chroma subsampled 2:1
    assert ybr_422.metadata["converted_from_color"]


def test_zero_padding_after_the_pixel_data_is_ignored_with_a_warning():
    with pytest.warns(InputWarning, match="128 zero bytes .* ignored as padding"):
        padded = read_image(get_testdata_file("MR_small_padded.dcm"))
    np.testing.assert_array_equal(padded.array, read_image(get_testdata_file("MR_small.dcm")).array)
    assert any("padding" in text for text in padded.metadata["warnings"])


def test_a_file_without_transfer_syntax_is_read_with_the_syntax_it_parsed_with(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    reference = read_image(get_testdata_file("MR_small.dcm")).array
    del ds.file_meta.TransferSyntaxUID
    path = tmp_path / "no-syntax.dcm"
    ds.save_as(path, enforce_file_format=False, implicit_vr=False, little_endian=True)
    with pytest.warns(InputWarning, match="no Transfer Syntax UID; read as Explicit VR Little Endian"):
        volume = read_image(path)
    np.testing.assert_array_equal(volume.array, reference)


# ----------------------------------------------------------------------------- the issue's cases
def _with_value(ds, keyword: str, value: str, path: Path) -> Path:
    """Write ``ds`` with ``keyword`` holding ``value`` as raw text (pydicom refuses to set a DS
    like ``1.0"``): a placeholder of the same length is written, then replaced in the bytes."""
    value = value.ljust(8)                 # DS text may be padded with spaces
    placeholder = "7.254321"
    setattr(ds, keyword, placeholder)
    data = _save_raw(ds, path).read_bytes()
    assert data.count(placeholder.encode()) == 1
    path.write_bytes(data.replace(placeholder.encode(), value.encode()))
    return path


def test_rescale_slope_nan_is_refused_not_an_all_nan_image(cohort, tmp_path):
    ds = pydicom.dcmread(cohort / "ct" / "dicom" / "ct-3-0000" / "CT0000.dcm")
    for value, reason in (("NaN", "RescaleSlope 'NaN' is not a finite number"),
                          ("inf", "RescaleSlope 'inf' is not a finite number"),
                          ('1.0"', "RescaleSlope '1.0\"' is not a finite number")):
        path = _with_value(ds, "RescaleSlope", value, tmp_path / "slope.dcm")
        with pytest.raises(InputError, match=reason) as error:
            read_image(path)
        assert error.value.path == str(path) and "RescaleSlope" in error.value.fix
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1000   # 0 means "unset" to some devices: read as 1
    unit = read_image(_save_raw(ds, tmp_path / "one.dcm")).array
    with pytest.warns(InputWarning, match="RescaleSlope is 0; read as 1"):
        zero = read_image(_with_value(ds, "RescaleSlope", "0", tmp_path / "zero.dcm"))
    np.testing.assert_array_equal(zero.array, unit)


def test_columns_1_on_a_224_radiograph_is_refused_not_a_224x1_image(cohort, tmp_path):
    ds = pydicom.dcmread(cohort / "cxr" / "dicom" / "cxr-3-0000" / "CR0000.dcm")
    assert (ds.Rows, ds.Columns) == (224, 224)
    ds.Columns = 1
    with pytest.raises(InputError, match=r"holds 100352 bytes of pixel data where its header \(224 x 1 x "
                                         r"1 frame\(s\).* describes 448") as error:
        read_image(_save_raw(ds, tmp_path / "columns.dcm"))
    assert "Correct the header" in error.value.fix


@pytest.mark.parametrize("change", [-1, +1, -10])
def test_seg_with_a_wrong_number_of_frames_is_refused_not_a_smaller_mask(cohort, tmp_path, change):
    image = read_image(cohort / "ct" / "dicom" / "ct-3-0001")
    seg_path = cohort / "ct" / "seg" / "ct-3-0001.dcm"
    truth = read_image(cohort / "ct" / "masks" / "ct-3-0001.nii.gz").array > 0
    np.testing.assert_array_equal(read_ground_truth(seg_path, image), truth)   # intact: the mask
    ds = pydicom.dcmread(seg_path)
    ds.NumberOfFrames = int(ds.NumberOfFrames) + change
    with pytest.raises(InputError, match="declares NumberOfFrames .* (describes|must be at least 1)|truncated|"
                                         "bytes of pixel data"):
        read_ground_truth(_save_raw(ds, tmp_path / "seg.dcm"), image)


@pytest.mark.parametrize("syntax, reason", [
    (b"1.2.840.10008\\1.2.1", "not a transfer syntax pydicom knows"),   # 2 values: no is_transfer_syntax
    (b"1.2.840.99999.9.9.9", "not a transfer syntax pydicom knows"),
    (b"1.2.840.10008.1.2.5", r"RLE Lossless\) but its pixel data is not compressed"),
])
def test_a_transfer_syntax_that_does_not_fit_the_file_is_refused(tmp_path, syntax, reason):
    data = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    explicit_little = b"1.2.840.10008.1.2.1"
    assert len(syntax) == len(explicit_little) and data.index(explicit_little) < 300
    (tmp_path / "syntax.dcm").write_bytes(data.replace(explicit_little, syntax, 1))
    with pytest.raises(InputError, match=reason):
        read_image(tmp_path / "syntax.dcm")


def test_pixel_data_removed_is_named(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    with pytest.raises(InputError, match="without pixel data"):
        read_image(tmp_path / "nopixels.dcm")


def _write(data: bytes) -> Path:
    import tempfile

    handle, name = tempfile.mkstemp(suffix=".dcm")
    os.close(handle)
    Path(name).write_bytes(data)
    return Path(name)


def _patch_vr(data: bytes, tag: bytes, vr: bytes) -> bytes:
    """Replace the VR of the explicit-VR element ``tag`` (4 bytes, little endian)."""
    index = data.index(tag, 132)
    return data[:index + 4] + vr + data[index + 6:]


def test_an_element_with_an_unknown_vr_names_its_tag_and_a_private_one_is_dropped(tmp_path):
    data = Path(get_testdata_file("MR_small.dcm")).read_bytes()
    (tmp_path / "vr.dcm").write_bytes(_patch_vr(data, b"\x20\x00\x13\x00", b"\x49\x9e"))   # InstanceNumber
    with pytest.raises(InputError, match=r"element \(0020,0013\) InstanceNumber cannot be parsed "
                                         r"\(NotImplementedError: Unknown Value Representation"):
        read_image(tmp_path / "vr.dcm")
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds.add_new(0x00091001, "LO", "private")
    ds.save_as(tmp_path / "private.dcm")
    broken = _patch_vr((tmp_path / "private.dcm").read_bytes(), b"\x09\x00\x01\x10", b"QQ")
    (tmp_path / "private.dcm").write_bytes(broken)
    with pytest.warns(InputWarning, match=r"\(0009,1001\) cannot be parsed.*private element was ignored"):
        volume = read_image(tmp_path / "private.dcm")
    np.testing.assert_array_equal(volume.array, read_image(get_testdata_file("MR_small.dcm")).array)


def test_a_transfer_syntax_read_with_a_mangled_vr_is_still_used():
    """Found by the 20,000-run fuzz: a Transfer Syntax UID element whose VR reads DS raised
    ValueError when the checked UID was set back on it."""
    data = (FUZZ / "corpus" / "cr_jpegls.dcm").read_bytes()
    index = data.index(b"\x02\x00\x10\x00UI")
    path = _write(data[:index + 4] + b"DS" + data[index + 6:])
    outcome = _outcome(lambda: read_image(path), check_image)
    assert outcome == "ok", outcome       # the UID is one pydicom knows: only its VR was mangled
    np.testing.assert_array_equal(read_image(path).array, read_image(FUZZ / "corpus" / "cr_jpegls.dcm").array)
    sop_class = data.index(b"\x02\x00\x02\x00UI")    # 26 bytes are not 8-byte values
    path.write_bytes(data[:sop_class + 4] + b"FD" + data[sop_class + 6:])
    with pytest.warns(InputWarning, match=r"element \(0002,0002\) MediaStorageSOPClassUID cannot be "
                                          r"parsed .*this element was ignored"):
        volume = read_image(path)     # the readers use nothing of the meta group but the syntax
    np.testing.assert_array_equal(volume.array, read_image(FUZZ / "corpus" / "cr_jpegls.dcm").array)
    path.unlink()


def test_a_corrupt_rle_stream_that_makes_the_rust_decoder_panic_is_an_input_error(tmp_path):
    """pylibjpeg-rle panics on some segment offsets; pyo3 raises PanicException (a BaseException)."""
    from pydicom.encaps import generate_fragments

    data = (FUZZ / "corpus" / "cr_rle.dcm").read_bytes()
    _, first_fragment = list(generate_fragments(pydicom.dcmread(FUZZ / "corpus" / "cr_rle.dcm").PixelData))[:2]
    header = data.index(first_fragment[:64])          # the RLE header: segment count, 15 offsets
    segments = struct.unpack("<I", data[header:header + 4])[0]
    assert segments == 2
    outcomes = set()
    for delta in (-3, -1, 1, 2, 100):
        second = struct.unpack("<I", data[header + 8:header + 12])[0] + delta
        mutant = data[:header + 8] + struct.pack("<I", second) + data[header + 12:]
        (tmp_path / "rle.dcm").write_bytes(mutant)
        outcome = _outcome(lambda: read_image(tmp_path / "rle.dcm"), check_image)
        assert outcome == "ok" or isinstance(outcome, InputError), outcome
        outcomes.add("ok" if outcome == "ok" else outcome.reason.split("(")[0])
    assert "pixel data could not be decoded " in outcomes


def test_a_header_declaring_a_huge_matrix_is_refused_before_decoding(tmp_path, monkeypatch):
    from SaliencyTrustLib.io import dicom_checks

    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.NumberOfFrames = 2_000_000_000
    ds.save_as(tmp_path / "frames.dcm")
    with pytest.raises(InputError, match="GiB once decoded, over the"):
        read_image(tmp_path / "frames.dcm")
    monkeypatch.setattr(dicom_checks, "MAX_DECODED_BYTES", 1 << 50)
    with pytest.raises(InputError, match="declares 2000000000 frame.* holds only 1 fragment"):
        read_image(tmp_path / "frames.dcm")


# ----------------------------------------------------------------------------- ground truth
def test_ground_truth_csv_that_is_not_utf8_text_is_named(tmp_path, references):
    (tmp_path / "boxes.csv").write_bytes(b"patientId,x,y,width,height,Target\nfuzz\xed\xa0,1,2,3,4,1\n")
    with pytest.raises(InputError, match=r"is not UTF-8 text \(byte 0xed at offset"):
        read_ground_truth(tmp_path / "boxes.csv", references[0])
    (tmp_path / "nul.csv").write_bytes(b"patientId,x,y,width,height,Target\nfuzz-cr,1,2\x00,3,4,1\n")
    with pytest.raises(InputError, match="row 2: box .* of fuzz-cr is not four numbers"):
        read_ground_truth(tmp_path / "nul.csv", references[0])
    (tmp_path / "long.csv").write_text("patientId,x,y,width,height,Target\nfuzz-cr," + "1" * 200_000 + "\n")
    with pytest.raises(InputError, match="is not a readable CSV file .*field larger than field limit"):
        read_ground_truth(tmp_path / "long.csv", references[0])
    (tmp_path / "inf.csv").write_text("patientId,x,y,width,height,Target\nfuzz-cr,1,2,inf,4,1\n")
    with pytest.raises(InputError, match="is not four finite numbers"):
        read_ground_truth(tmp_path / "inf.csv", references[0], case_id="fuzz-cr")


@pytest.mark.parametrize("edit, reason", [
    (lambda ds: delattr(ds.StructureSetROISequence[0], "ROINumber"),
     "StructureSetROISequence item 1: lacks ROINumber"),
    (lambda ds: setattr(ds.ROIContourSequence[0].ContourSequence[0], "ContourData", ["1", "2"]),
     "ContourData holds 2 values, not"),
    (lambda ds: setattr(ds.ROIContourSequence[0].ContourSequence[0], "ContourData", ["1", "NaN", "3"]),
     "ContourData .* is not finite numbers"),
    (lambda ds: setattr(ds.ROIContourSequence[0], "ReferencedROINumber", ["1", "2"]),
     "ReferencedROINumber holds 2 values, one expected"),
])
def test_a_damaged_rtstruct_is_named_not_an_attribute_error(tmp_path, references, edit, reason):
    ds = pydicom.dcmread(FUZZ / "corpus" / "rtstruct.dcm")
    assert read_ground_truth(FUZZ / "corpus" / "rtstruct.dcm", references[1]).any()
    edit(ds)
    with pytest.raises(InputError, match=reason) as error:
        read_ground_truth(_save_raw(ds, tmp_path / "rtstruct.dcm"), references[1])
    assert not error.value.unexpected


def test_a_seg_whose_frames_do_not_hold_together_is_named(tmp_path, references):
    seg_path = FUZZ / "corpus" / "seg_ct.dcm"
    assert read_ground_truth(seg_path, references[1]).sum() == 240
    ds = pydicom.dcmread(seg_path)
    groups = [ds.PerFrameFunctionalGroupsSequence[0], ds.SharedFunctionalGroupsSequence[0]]
    (group,) = [g for g in groups if "SegmentIdentificationSequence" in g][:1]
    group.SegmentIdentificationSequence[0].ReferencedSegmentNumber = 99
    with pytest.raises(InputError, match="frame 1 belongs to segment 99, which the SEG does not describe"):
        read_ground_truth(_save_raw(ds, tmp_path / "segment.dcm"), references[1])
    ds = pydicom.dcmread(seg_path)       # the sqlite3.OperationalError of highdicom's frame index
    del ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence
    with pytest.raises(InputError, match="gives a plane position to 1 of its 2 frames"):
        read_ground_truth(_save_raw(ds, tmp_path / "position.dcm"), references[1])


@pytest.mark.parametrize("sform, pixdim, reason", [
    (np.diag([1.0, 1.0, 0.0, 1.0]), (1.0, 1.0, 1.0), "not three independent directions"),
    (np.array([[1.0, 0, 0, 0], [0, np.nan, 0, 0], [0, 0, 1, 0]]), (1.0, 1.0, 1.0),
     "not three independent directions"),
])
def test_a_label_map_with_an_unusable_geometry_is_named(tmp_path, references, sform, pixdim, reason):
    import nibabel as nib

    image = nib.Nifti1Image(np.ones((32, 32, 1), np.uint8), None)
    image.header["pixdim"][1:4] = pixdim
    image.header["qform_code"] = 0
    if sform is not None:      # written as is: nibabel would refuse to decompose it into a qform
        image.header["srow_x"], image.header["srow_y"], image.header["srow_z"] = sform[:3]
        image.header["sform_code"] = 2
    (tmp_path / "label.nii").write_bytes(image.header.binaryblock + b"\0" * 4
                                         + np.ones((32, 32, 1), np.uint8).tobytes(order="F"))
    outcome = _outcome(lambda: read_ground_truth(tmp_path / "label.nii", references[0]),
                       lambda mask: check_mask(mask, references[0]))
    assert isinstance(outcome, InputError), outcome
    assert reason in outcome.reason


# ----------------------------------------------------------------------------- the mutant sweep
@pytest.mark.slow
def test_deterministic_mutants_of_small_pydicom_files_give_a_result_or_one_input_error(tmp_path):
    """Truncations, byte flips, transfer syntax and header edits (fuzz/mutants.py) of the pydicom
    files under 4 KB and of the seed corpus (about 2,500 mutants); ``python fuzz/mutants.py`` runs
    the same sweep over the files under 64 KB."""
    sources = source_files(limit_kb=4)
    assert len(sources) > 45
    result = run(sources, tmp_path / "mutants")
    assert result["findings"] == []
    assert result["counts"]["ok"] > 200 and result["counts"]["InputError"] > 1000


def test_the_mutant_generator_covers_the_header_edits_of_the_issue():
    names = {name for name, _ in mutants(get_testdata_file("MR_small.dcm"))}
    for expected in ("truncated-0.5", "columns=1", "rows+1", "bits-allocated=12", "syntax=two-values",
                     "pixel-data-removed", "rescale-slope=NaN", "frames+1"):
        assert expected in names
    assert len([n for n in names if n.startswith("flip-")]) == 8


def test_the_contract_checks_catch_a_nan_image_and_a_wrong_mask():
    nan = ImageVolume(np.full((1, 4, 4), np.nan, np.float32))
    assert "NaN" in check_image(nan) and check_image(ImageVolume(np.zeros((1, 4, 4)))) == ""
    reference = ImageVolume(np.zeros((1, 4, 4)))
    assert check_mask(np.zeros((1, 4, 4), bool), reference) == ""
    assert "shape" in check_mask(np.zeros((1, 4, 1), bool), reference)
    assert "type" in check_mask(np.zeros((1, 4, 4), np.uint8), reference)


def test_save_volume_round_trip_still_reads(tmp_path):
    """The geometry checks of the NIfTI reader leave ordinary files alone."""
    volume = ImageVolume(np.arange(24, dtype=np.float32).reshape(2, 3, 4), (0.5, 0.7, 2.0), (1, 2, 3))
    back = read_image(save_volume(volume, tmp_path / "v.nii.gz"))
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.spacing, volume.spacing)

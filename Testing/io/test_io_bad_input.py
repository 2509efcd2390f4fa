"""Bad input: each an InputError naming the file and the fix; a bad study in a cohort is skipped."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from SaliencyTrustLib.cli import main as cli_main
from SaliencyTrustLib.io import (InputError, InputWarning, boxes_to_mask, iter_cohort, read_ground_truth, read_image, rle_encode)
from SaliencyTrustLib.io.synth import write_synthetic_cohort


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad") / "cxr"
    write_synthetic_cohort(root, n=6, seed=2, kind="cxr")
    return root


def _cr(cohort, index=1):
    return cohort / "dicom" / f"cxr-2-{index:04d}" / "CR0000.dcm"


@pytest.mark.parametrize("keep", [0.6, 0.02])
def test_truncated_dicom_names_the_file(cohort, tmp_path, keep):
    data = _cr(cohort).read_bytes()
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError, match="truncated|corrupt") as error:
        read_image(broken)
    assert error.value.path == str(broken) and "Re-export" in error.value.fix


def test_truncated_nifti_names_the_file(cohort, tmp_path):
    data = (cohort / "nifti" / "cxr-2-0001.nii.gz").read_bytes()
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="broken.nii.gz") as error:
        read_image(broken)
    assert error.value.fix


def test_text_file_and_missing_path_are_refused(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("not an image\n" * 20)
    with pytest.raises(InputError, match="not a DICOM file|neither DICOM") as error:
        read_image(text)
    assert error.value.path == str(text)
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "nowhere.dcm")


@pytest.mark.parametrize("name, kind", [("test-SR.dcm", "Structured Report"),
                                        ("liver.dcm", "Segmentation")])
def test_non_image_objects_are_refused_as_images(name, kind):
    path = get_testdata_file(name)
    with pytest.raises(InputError, match=f"is an? {kind}.*not an image") as error:
        read_image(path)
    assert "read_ground_truth" in error.value.fix


def test_synthetic_seg_passed_as_image_points_to_ground_truth(cohort):
    with pytest.raises(InputError, match="Segmentation") as error:
        read_image(cohort / "seg" / "cxr-2-0001.dcm")
    assert "read_ground_truth" in error.value.fix


def test_unsupported_transfer_syntaxes_name_the_syntax_and_the_fix(tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small_RLE.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"      # MPEG2: no pydicom decoder
    ds.save_as(tmp_path / "mpeg2.dcm")
    with pytest.raises(InputError, match=r"1\.2\.840\.10008\.1\.2\.4\.100 \(MPEG2") as error:
        read_image(tmp_path / "mpeg2.dcm")
    assert "gdcmconv" in error.value.fix and error.value.path == str(tmp_path / "mpeg2.dcm")
    # A private, unknown syntax UID patched into the file meta (same length as the original).
    data = open(get_testdata_file("MR_small.dcm"), "rb").read()
    original = b"1.2.840.10008.1.2.1"
    assert original in data[:400]
    (tmp_path / "private.dcm").write_bytes(data.replace(original, b"1.2.840.99999.9.9.9", 1))
    with pytest.raises(InputError, match="1.2.840.99999.9.9.9"):
        read_image(tmp_path / "private.dcm")


def test_seg_of_another_radiograph_is_refused(cohort):
    other = read_image(cohort / "dicom" / "cxr-2-0003")
    with pytest.raises(InputError, match="references series") as error:
        read_ground_truth(cohort / "seg" / "cxr-2-0001.dcm", other)
    assert error.value.path.endswith("cxr-2-0001.dcm")


def test_one_bad_study_is_reported_and_skipped(cohort, tmp_path):
    work = tmp_path / "cohort"
    shutil.copytree(cohort, work)
    # 1: truncated DICOM; 3: positive whose mask is empty; 5: NIfTI image missing (DICOM intact).
    data = (work / "dicom" / "cxr-2-0001" / "CR0000.dcm").read_bytes()
    (work / "dicom" / "cxr-2-0001" / "CR0000.dcm").write_bytes(data[:2000])
    shutil.copy(work / "masks" / "cxr-2-0000.nii.gz", work / "masks" / "cxr-2-0003.nii.gz")
    (work / "nifti" / "cxr-2-0005.nii.gz").unlink()
    errors = []
    with pytest.warns(InputWarning, match="skipped case cxr-2-0001"):
        cases = list(iter_cohort(work, errors=errors, image_key="dicom"))
    assert sorted(c.case_id for c in cases) == ["cxr-2-0000", "cxr-2-0002", "cxr-2-0004", "cxr-2-0005"]
    assert all(c.mask is not None and c.mask.any() == bool(c.label) for c in cases)
    assert sorted(e.case_id for e in errors) == ["cxr-2-0001", "cxr-2-0003"]
    reasons = {e.case_id: e for e in errors}
    assert "truncated" in reasons["cxr-2-0001"].reason and "cxr-2-0001" in reasons["cxr-2-0001"].path
    assert "empty mask" in reasons["cxr-2-0003"].reason
    nifti_errors = []
    with pytest.warns(InputWarning, match="skipped case"):
        nifti_cases = list(iter_cohort(work / "datalist.json", errors=nifti_errors, positives_only=True))
    assert sorted(c.case_id for c in nifti_cases) == ["cxr-2-0001"]
    assert {e.case_id for e in nifti_errors} == {"cxr-2-0003", "cxr-2-0005"}
    assert "does not exist" in next(e for e in nifti_errors if e.case_id == "cxr-2-0005").reason


# ----------------------------------------------------------------------------- prepare (RSNA / SIIM)
def test_prepare_rsna_layout_into_the_datalist(cohort, tmp_path):
    images = tmp_path / "stage_2_train_images"
    images.mkdir()
    ids = ["0004cfab-14fd-4e49-80ba-63a80b6bddd6", "00313ee0-9eaa-42f4-b0ab-c148ed3241cd",
           "00322d4d-1c29-4943-afc9-b6754be640eb", "003d8fa0-6bf1-40ed-b54c-ac657f8495c5"]
    for index, patient in enumerate(ids):
        shutil.copy(_cr(cohort, index), images / f"{patient}.dcm")
    rows = ["patientId,x,y,width,height,Target", f"{ids[0]},,,,,0", f"{ids[1]},40,50,30,20,1",
            f"{ids[1]},120,60,20,40,1", f"{ids[2]},,,,,0", f"{ids[3]},10,10,15,15,1",
            "ffffffff-0000-0000-0000-000000000000,,,,,0"]
    (tmp_path / "stage_2_train_labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "prepared"
    assert cli_main(["prepare", "--rsna", str(tmp_path / "stage_2_train_labels.csv"),
                     "--images", str(images), "--out", str(out)]) == 0
    datalist = json.loads((out / "datalist.json").read_text())
    items = {i["case_id"]: i for part in ("training", "validation", "test") for i in datalist[part]}
    assert set(items) == set(ids) and items[ids[1]]["label"] == 1 and items[ids[0]]["label"] == 0
    skipped = json.loads((out / "skipped.json").read_text())
    assert [s["case_id"] for s in skipped] == ["ffffffff-0000-0000-0000-000000000000"]
    cases = {c.case_id: c for c in iter_cohort(out)}
    expected = np.zeros((224, 224), bool)
    expected[50:70, 40:70] = expected[60:100, 120:140] = True
    np.testing.assert_array_equal(cases[ids[1]].mask[0], expected)
    dicom = read_image(out / items[ids[1]]["dicom"])
    assert cases[ids[1]].image.array.max() > 1          # uint16 by default: v * 65535
    np.testing.assert_allclose(cases[ids[1]].image.array / 65535, dicom.array, atol=1e-5)
    assert cases[ids[1]].image.same_grid(dicom)
    # --size: the paper's rasterization of RSNA boxes on the resized image.
    small = tmp_path / "small"
    assert cli_main(["prepare", "--rsna", str(tmp_path / "stage_2_train_labels.csv"), "--images",
                     str(images), "--out", str(small), "--size", "160", "--dtype", "uint8"]) == 0
    resized = {c.case_id: c for c in iter_cohort(small)}[ids[1]]
    assert resized.image.shape == (1, 160, 160) and resized.image.array.dtype == np.uint8
    boxes = [(40, 50, 30, 20), (120, 60, 20, 40)]
    np.testing.assert_array_equal(resized.mask[0], boxes_to_mask(boxes, (160, 160), study_scaling=True,
                                                                 original_size=224))
    centre = dicom.ijk_to_lps() @ [111.5, 111.5, 0, 1]      # the image centre stays in place
    np.testing.assert_allclose(resized.image.ijk_to_lps() @ [79.5, 79.5, 0, 1], centre, atol=1e-6)


def test_prepare_siim_layout_into_the_datalist(cohort, tmp_path):
    images = tmp_path / "dicom-images-train"
    lines = ["ImageId, EncodedPixels"]
    truth = {}
    for index in range(4):
        ds = pydicom.dcmread(_cr(cohort, index))
        uid = ds.SOPInstanceUID
        folder = images / ds.StudyInstanceUID / ds.SeriesInstanceUID
        folder.mkdir(parents=True)
        shutil.copy(_cr(cohort, index), folder / f"{uid}.dcm")
        mask = read_image(cohort / "masks" / f"cxr-2-{index:04d}.nii.gz").array[0] > 0
        truth[uid] = mask
        lines.append(f"{uid}, {rle_encode(mask)}")
    (tmp_path / "train-rle.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "prepared"
    assert cli_main(["prepare", "--siim", str(tmp_path / "train-rle.csv"), "--images", str(images),
                     "--out", str(out), "--seed", "1"]) == 0
    cases = {c.case_id: c for c in iter_cohort(out)}
    assert set(cases) == set(truth)
    for uid, mask in truth.items():
        np.testing.assert_array_equal(cases[uid].mask[0], mask)
        assert cases[uid].label == int(mask.any())


def test_iter_cohort_reads_a_datalist_dict_with_one_hot_labels(cohort):
    datalist = json.loads((cohort / "datalist.json").read_text())
    items = []
    for item in datalist["test"]:
        item = {**item, "label": [1 - item["label"], item["label"]]}
        items.append({k: (str(cohort / v) if k in ("image", "mask", "dicom") else v) for k, v in item.items()})
    cases = list(iter_cohort({"test": items}))
    assert [(c.case_id, c.label) for c in cases] == [(i["case_id"], i["label"][1]) for i in items]
    assert all(c.split == "test" for c in cases)

"""The synthetic cohort on disk: layout, DICOM validity, determinism, split."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess

import numpy as np
import pydicom
import pytest

from SaliencyTrustLib.cli import main as cli_main
from SaliencyTrustLib.io.synth import split_case_ids, write_synthetic_cohort
from SaliencyTrustLib.synthetic import make_cohort


@pytest.fixture(scope="module")
def cxr_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "cxr"
    assert cli_main(["synth", "--out", str(out), "--n", "6", "--seed", "3"]) == 0
    return out


def test_synth_cxr_writes_the_contract_layout(cxr_cohort):
    datalist = json.loads((cxr_cohort / "datalist.json").read_text())
    items = datalist["training"] + datalist["validation"] + datalist["test"]
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [4, 1, 1]
    assert sorted(i["case_id"] for i in items) == [f"cxr-3-{i:04d}" for i in range(6)]
    for item in items:
        assert set(item) == {"image", "label", "mask", "dicom", "case_id"}
        for key in ("image", "mask", "dicom"):
            assert (cxr_cohort / item[key]).exists(), item[key]
        assert (cxr_cohort / "seg" / f"{item['case_id']}.dcm").exists() == bool(item["label"])
    labels = {row["case_id"]: int(row["label"]) for row in csv.DictReader(open(cxr_cohort / "labels.csv"))}
    assert labels == {i["case_id"]: i["label"] for i in items}
    rows = list(csv.DictReader(open(cxr_cohort / "boxes.csv")))
    assert list(rows[0]) == ["patientId", "x", "y", "width", "height", "Target"]
    assert {r["patientId"] for r in rows if r["Target"] == "1"} == {k for k, v in labels.items() if v}


def test_synth_cr_holds_the_case_pixels_and_modules(cxr_cohort):
    case = make_cohort(6, seed=3)[1]
    ds = pydicom.dcmread(cxr_cohort / "dicom" / case.case_id / "CR0000.dcm")
    assert ds.Modality == "CR" and ds.PhotometricInterpretation == "MONOCHROME2"
    assert ds.pixel_array.dtype == np.uint16 and ds.pixel_array.shape == (224, 224)
    np.testing.assert_allclose(ds.pixel_array / 4095.0, case.image, atol=0.5 / 4095 + 1e-6)
    assert ds.PatientID == case.case_id and ds.StudyInstanceUID.startswith("2.25.")
    seg = pydicom.dcmread(cxr_cohort / "seg" / f"{case.case_id}.dcm")
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ds.SeriesInstanceUID
    assert seg.StudyInstanceUID == ds.StudyInstanceUID


@pytest.mark.parametrize("relative", ["dicom/cxr-3-0001/CR0000.dcm", "seg/cxr-3-0001.dcm"])
def test_synth_dicom_passes_dciodvfy(cxr_cohort, relative):
    assert shutil.which("dciodvfy"), "dciodvfy (Debian dicom3tools) is required: make system-deps"
    result = subprocess.run(["dciodvfy", str(cxr_cohort / relative)], capture_output=True, text=True)
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
    assert errors == []


def test_synth_ct_series_is_valid_and_positioned(tmp_path):
    summary = write_synthetic_cohort(tmp_path, n=2, seed=0, kind="ct", size=16)
    assert summary["positives"] == 1
    files = sorted((tmp_path / "dicom" / "ct-0-0001").glob("*.dcm"))
    assert len(files) == 16
    z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
    np.testing.assert_allclose(np.diff(z), 5.0)
    for path in (files[3], tmp_path / "seg" / "ct-0-0001.dcm"):
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        assert not [l for l in (result.stdout + result.stderr).splitlines() if l.startswith("Error")]
    rows = list(csv.DictReader(open(tmp_path / "boxes.csv")))
    assert {"z", "depth"} <= set(rows[0])


def test_synth_is_deterministic_from_the_seed(tmp_path):
    write_synthetic_cohort(tmp_path / "a", n=2, seed=5, write_seg=False)
    write_synthetic_cohort(tmp_path / "b", n=2, seed=5, write_seg=False)
    write_synthetic_cohort(tmp_path / "c", n=2, seed=6, write_seg=False)
    read = lambda d: pydicom.dcmread(tmp_path / d / "dicom" / "cxr-5-0001" / "CR0000.dcm")  # noqa: E731
    a, b = read("a"), read("b")
    assert a.SOPInstanceUID == b.SOPInstanceUID and a.PixelData == b.PixelData
    c = pydicom.dcmread(tmp_path / "c" / "dicom" / "cxr-6-0001" / "CR0000.dcm")
    assert c.StudyInstanceUID != a.StudyInstanceUID


def test_split_is_balanced_exact_and_seed_dependent():
    ids = [f"c{i:03d}" for i in range(100)]
    labels = [i % 2 for i in range(100)]
    split = split_case_ids(ids, labels, seed=0)
    assert [len(split[k]) for k in ("training", "validation", "test")] == [60, 20, 20]
    assert sorted(sum(split.values(), [])) == ids
    assert sum(labels[int(i[1:])] for i in split["test"]) == 10
    assert split_case_ids(ids, labels, seed=1)["test"] != split["test"]


def test_lesion_size_and_contrast_are_controlled_with_the_same_cases_otherwise():
    from SaliencyTrustLib.io.synth import make_cases

    default = make_cohort(6, seed=4)
    mirrored = make_cases(6, 4, "cxr", lesion_radius=(0.05, 0.09), lesion_contrast=(0.22, 0.35))
    for a, b in zip(default, mirrored):
        assert a.case_id == b.case_id and a.label == b.label
        np.testing.assert_array_equal(a.image, b.image)
    large = make_cases(6, 4, "cxr", lesion_radius=(0.12, 0.14))
    faint = make_cases(6, 4, "cxr", lesion_contrast=(0.05, 0.06))
    positives = [i for i, c in enumerate(default) if c.label]
    assert all(large[i].mask.sum() > default[i].mask.sum() for i in positives)
    for i in positives:      # same anatomy and noise, a fainter lesion
        inside = default[i].mask
        assert np.mean(default[i].image[inside] - faint[i].image[inside]) > 0.1
        assert np.array_equal(default[i].image[0:20, 0:20], faint[i].image[0:20, 0:20])
    with pytest.raises(ValueError, match="lesion_radius"):
        make_cases(2, 0, "cxr", lesion_radius=(0.2, 0.1))

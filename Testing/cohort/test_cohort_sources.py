"""Cohort inputs: datalist JSON/CSV, a folder of DICOM studies with ground truth and labels, boxes."""

from __future__ import annotations

import json

import pytest

from SaliencyTrustLib.cohort.sources import load_cohort, select_positive
from SaliencyTrustLib.io.errors import InputError


def test_synth_folder_reads_as_its_datalist_with_positive_training_masks(tiny_cohort):
    cohort = load_cohort(str(tiny_cohort["cohort"]), split="test")
    datalist = json.loads((tiny_cohort["cohort"] / "datalist.json").read_text())
    assert [s.study_id for s in cohort.studies] == [item["case_id"] for item in datalist["test"]]
    assert all(s.ground_truth.endswith(".nii.gz") for s in cohort.studies)
    positives_in_training = [i for i in datalist["training"] if i["label"] == 1]
    assert len(cohort.training_masks) == len(positives_in_training) > 0
    assert {s.label for s in select_positive(cohort.studies)} == {1}


def test_dicom_folder_with_mask_folder_and_labels_csv(tiny_cohort):
    root = tiny_cohort["cohort"]
    cohort = load_cohort(str(root / "dicom"), ground_truth=root / "masks", labels=root / "labels.csv")
    assert len(cohort.studies) == 40 and cohort.studies[0].image.endswith(cohort.studies[0].study_id)
    assert all(s.ground_truth and s.ground_truth.endswith(f"{s.study_id}.nii.gz") for s in cohort.studies)
    assert sum(s.label for s in cohort.studies) == 20


def test_boxes_csv_gives_boxes_and_labels(tiny_cohort):
    root = tiny_cohort["cohort"]
    cohort = load_cohort(str(root / "dicom"), ground_truth=root / "boxes.csv")
    positives = select_positive(cohort.studies)
    assert len(positives) == 20 and all(len(s.boxes) >= 1 and len(s.boxes[0]) == 4 for s in positives)
    assert all(s.label == 0 and not s.boxes for s in cohort.studies if s not in positives)


def test_csv_datalist_paths_are_relative_to_the_file(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "list.csv").write_text("image,label,mask,case_id\nimg/a.nii.gz,1,img/a_mask.nii.gz,A\nimg/b.nii.gz,0,,B\n")
    cohort = load_cohort(str(tmp_path / "list.csv"))
    assert [s.study_id for s in cohort.studies] == ["A", "B"]
    assert cohort.studies[0].image == str(tmp_path / "img" / "a.nii.gz") and cohort.studies[1].ground_truth is None
    assert [s.study_id for s in select_positive(cohort.studies)] == ["A"]


def test_bad_cohort_inputs_name_the_file_and_the_fix(tmp_path, tiny_cohort):
    with pytest.raises(InputError, match="cohort not found"):
        load_cohort(str(tmp_path / "missing"))
    with pytest.raises(InputError, match=r"no 'holdout' split .*--split"):
        load_cohort(str(tiny_cohort["cohort"]), split="holdout")
    (tmp_path / "bad.csv").write_text("path,label\nx,1\n")
    with pytest.raises(InputError, match="'image' column"):
        load_cohort(str(tmp_path / "bad.csv"))

"""Paths built from UIDs and ids that others supply never leave their folder (io.safe_paths)."""

from __future__ import annotations

import os

import pytest

from SaliencyTrustLib.io import InputError
from SaliencyTrustLib.io.safe_paths import (MAX_UID_LENGTH, child_path, is_valid_uid, remove_child,
                                            safe_name, validate_uid)

CRAFTED_UIDS = ["../../escaped", "../../../x", "/etc/passwd", "x/../../../../victim", "1.2/3", "1.2\\3",
                "1..2", ".1.2", "1.2.", "", " 1.2", "1.2\x00", "1" * (MAX_UID_LENGTH + 1), "C:1.2",
                "1.2.840.abc", "１.２"]


@pytest.mark.parametrize("uid", ["1.2.840.10008.5.1.4.1.1.2", "1", "0.0.1", "1.2.0003",
                                 "1." + "2" * (MAX_UID_LENGTH - 2)])
def test_dicom_uids_are_accepted_and_returned_as_str(uid):
    import pydicom

    assert is_valid_uid(uid)
    assert validate_uid(pydicom.uid.UID(uid)) == uid and type(validate_uid(pydicom.uid.UID(uid))) is str


@pytest.mark.parametrize("uid", CRAFTED_UIDS + [None, 12, ["1.2"]])
def test_crafted_uids_are_refused_naming_the_attribute_and_the_source(uid):
    assert not is_valid_uid(uid)
    with pytest.raises(InputError, match=r"SeriesInstanceUID .* is not a DICOM UID") as error:
        validate_uid(uid, "SeriesInstanceUID", source="http://pacs/dicom-web")
    assert error.value.path == "http://pacs/dicom-web" and "crafted" in error.value.fix


@pytest.mark.parametrize("part", ["..", ".", "", "../x", "a/b", "a\\b", "/abs", "x\x00y", "C:\\x", "C:x"])
def test_child_path_refuses_components_that_could_leave_the_root(tmp_path, part):
    with pytest.raises(InputError, match="refused to build a path"):
        child_path(tmp_path / "out", "1.2.3", part)
    assert not (tmp_path / "out").exists()


def test_child_path_joins_plain_components_inside_the_root(tmp_path):
    path = child_path(tmp_path, "1.2.3", "4.5.6", "7.8.dcm")
    assert path == tmp_path / "1.2.3" / "4.5.6" / "7.8.dcm"
    assert child_path(tmp_path) == tmp_path


def test_child_path_refuses_a_symlink_inside_the_root_that_points_outside(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(InputError, match="outside"):
        child_path(root, "link", "file.dcm")
    os.symlink(root / "1.2", root / "inner")          # a link that stays inside is fine
    assert child_path(root, "inner", "x.dcm") == root / "inner" / "x.dcm"


def test_remove_child_deletes_inside_and_never_follows_a_link_out(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "keep"
    (root / ".partial-1.2.3" / "1.2.3").mkdir(parents=True)
    (root / ".partial-1.2.3" / "1.2.3" / "a.dcm").write_bytes(b"x")
    outside.mkdir()
    (outside / "keep.txt").write_text("user data")
    assert remove_child(root, ".partial-1.2.3") is True
    assert not (root / ".partial-1.2.3").exists() and remove_child(root, ".partial-1.2.3") is False
    os.symlink(outside, root / ".partial-9")
    with pytest.raises(InputError):
        remove_child(root, ".partial-9")
    with pytest.raises(InputError):
        remove_child(root, "..")
    with pytest.raises(InputError, match="at least one component"):
        remove_child(root)
    assert (outside / "keep.txt").read_text() == "user data"


@pytest.mark.parametrize("case_id", ["../../../x", "/abs/x", "..", ".", ".hidden", "a b", "x/y", "é",
                                     "x" * 300, "", "CON", "a\\b"])
def test_safe_name_gives_a_plain_component_that_stays_inside(tmp_path, case_id):
    name = safe_name(case_id)
    assert child_path(tmp_path, f"{name}.image.npy").parent == tmp_path
    assert len(name) <= 80 and not name.startswith(".")


def test_safe_name_keeps_plain_ids_and_keeps_distinct_ids_distinct():
    assert safe_name("cxr-0-0001") == "cxr-0-0001" and safe_name("1.2.840.5") == "1.2.840.5"
    crafted = ["../x", "..x", "_x", "x", "/x", "./x", "x/", ".x"]
    names = [safe_name(c) for c in crafted]
    assert len(set(names)) == len(crafted)
    assert safe_name("../../../x") == safe_name("../../../x")      # stable across calls


def test_prepare_names_files_from_csv_ids_inside_its_folder(tmp_path):
    """RSNA / SIIM ids come from a CSV: a DICOM named '..dcm' (stem '.') or an id with spaces gives
    a plain, hashed file name inside out/, and the datalist points at it."""
    import json

    import numpy as np

    from SaliencyTrustLib.io import iter_cohort, prepare_cohort
    from SaliencyTrustLib.io.synth import write_synthetic_cohort

    write_synthetic_cohort(tmp_path / "cxr", n=2, seed=4, kind="cxr", write_seg=False)
    images = tmp_path / "images"
    images.mkdir()
    ids = [".", "case one"]
    for index, case_id in enumerate(ids):
        source = tmp_path / "cxr" / "dicom" / f"cxr-4-{index:04d}" / "CR0000.dcm"
        (images / f"{case_id}.dcm").write_bytes(source.read_bytes())
    (tmp_path / "labels.csv").write_text("patientId,x,y,width,height,Target\n.,10,10,20,20,1\n"
                                         "case one,,,,,0\n")
    summary = prepare_cohort(tmp_path / "out", images, rsna=tmp_path / "labels.csv")
    assert summary["n"] == 2 and summary["skipped"] == 0
    names = sorted(p.name for p in (tmp_path / "out" / "nifti").iterdir())
    assert names == sorted(f"{safe_name(c)}.nii.gz" for c in ids)
    assert all(not n.startswith(".") and " " not in n for n in names)
    datalist = json.loads((tmp_path / "out" / "datalist.json").read_text())
    assert {i["case_id"] for part in ("training", "validation", "test") for i in datalist[part]} == set(ids)
    cases = {c.case_id: c for c in iter_cohort(tmp_path / "out")}
    assert set(cases) == set(ids) and cases["."].mask.sum() == 400 and not cases["case one"].mask.any()
    assert np.isfinite(cases["."].image.array).all()

"""A PACS serving crafted UIDs never makes a pull write outside its folder (issue 14, item 0).

The hostile instances are uploaded to a real Orthanc through its REST API (which stores any UID
as it is) and pulled back through DICOMweb, as ``saliency-trust pacs pull`` and the cohort cache do.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pydicom
import pytest
from pydicom import config

from SaliencyTrustLib.cli import main
from SaliencyTrustLib.io import InputError
from SaliencyTrustLib.io.dicomweb import DicomWebError, DicomWebStore
from support.dicom_sources import make_cr_dataset

pytestmark = pytest.mark.pacs


def _upload(orthanc, case_id: str, **uids) -> pydicom.Dataset:
    """Store one small CR on Orthanc through REST, with the UIDs given (valid or not)."""
    ds = make_cr_dataset(np.linspace(0, 1, 64).reshape(8, 8), case_id=case_id)
    for keyword, value in uids.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"      # the meta group needs no crafted value
    buffer = io.BytesIO()
    old = config.settings.writing_validation_mode
    config.settings.writing_validation_mode = config.IGNORE  # pydicom would refuse to write them
    try:
        ds.save_as(buffer, enforce_file_format=True)
    finally:
        config.settings.writing_validation_mode = old
    assert orthanc.rest("POST", "/instances", data=buffer.getvalue()).json()["Status"] == "Success"
    return ds


def _files_under(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.mark.parametrize("uids, refused", [
    ({"SeriesInstanceUID": "../../escaped"}, "SeriesInstanceUID '../../escaped'"),
    ({"SOPInstanceUID": "../../../x"}, "SOPInstanceUID '../../../x'"),
    ({"SOPInstanceUID": "/tmp/saliency-trust-absolute"}, "SOPInstanceUID '/tmp/saliency-trust-absolute'"),
    ({"SeriesInstanceUID": "1.2.3", "SOPInstanceUID": "1." + "2" * 70}, "SOPInstanceUID '1.2222"),
])
def test_pull_refuses_an_instance_whose_uids_would_leave_the_folder(orthanc, tmp_path, uids, refused):
    work = tmp_path / "work"
    out = work / "out"
    work.mkdir()
    (work / "keep.txt").write_text("user data")
    ds = _upload(orthanc, "hostile", **uids)
    store = DicomWebStore(orthanc.dicomweb_url, trust_env=False)
    with pytest.raises(DicomWebError, match="refused: " + refused.replace(".", r"\.")) as error:
        store.pull_study(ds.StudyInstanceUID, out)
    assert "Nothing of this retrieval was written" in str(error.value)
    assert orthanc.url in str(error.value)
    assert _files_under(tmp_path) == [work / "keep.txt"]      # what the unchecked paths reached
    assert not os.path.exists("/tmp/saliency-trust-absolute.dcm")


def test_one_hostile_study_is_one_error_and_the_good_study_is_pulled(orthanc, tmp_path, capsys):
    good = _upload(orthanc, "good")
    bad = _upload(orthanc, "bad", SeriesInstanceUID="../../escaped")
    store = DicomWebStore(orthanc.dicomweb_url, trust_env=False)
    pulled, errors = {}, {}
    for study in store.list_studies():
        try:
            pulled[study["StudyInstanceUID"]] = store.pull_study(study["StudyInstanceUID"], tmp_path / "out")
        except DicomWebError as error:
            errors[study["StudyInstanceUID"]] = str(error)
    assert set(pulled) == {good.StudyInstanceUID} and set(errors) == {bad.StudyInstanceUID}
    (path,) = pulled[good.StudyInstanceUID]
    assert path == tmp_path / "out" / good.StudyInstanceUID / good.SeriesInstanceUID / f"{good.SOPInstanceUID}.dcm"
    assert pydicom.dcmread(path).SOPInstanceUID == good.SOPInstanceUID
    assert _files_under(tmp_path) == [path]
    # the CLI: one line on stderr, exit 1, no traceback
    code = main(["pacs", "--url", orthanc.dicomweb_url, "--no-env-proxy", "pull", "--study",
                 bad.StudyInstanceUID, "--out", str(tmp_path / "cli")])
    captured = capsys.readouterr()
    assert code == 1 and captured.out == ""
    assert captured.err.count("\n") == 1 and "'../../escaped' is not a DICOM UID" in captured.err
    assert "Traceback" not in captured.err and not (tmp_path / "cli").exists()


def test_a_listed_study_uid_holding_a_path_is_refused_before_any_request(orthanc, tmp_path):
    victim = tmp_path / "keep.txt"
    victim.write_text("user data")
    _upload(orthanc, "victim", StudyInstanceUID="x/../../../../victim")
    store = DicomWebStore(orthanc.dicomweb_url, trust_env=False)
    (listed,) = store.list_studies()
    assert listed["StudyInstanceUID"] == "x/../../../../victim"     # listed as the server sent it
    for call in (lambda uid: store.pull_study(uid, tmp_path / "out"), store.retrieve_study,
                 store.list_series, store.list_instances,
                 lambda uid: store.pull_series(uid, "1.2.3", tmp_path / "out")):
        with pytest.raises(InputError, match="StudyInstanceUID 'x/../../../../victim' is not a DICOM UID"):
            call(listed["StudyInstanceUID"])
    assert victim.read_text() == "user data" and _files_under(tmp_path) == [victim]


def test_store_refuses_a_file_whose_study_uid_would_change_the_request_path(orthanc, tmp_path):
    ds = make_cr_dataset(np.zeros((8, 8)), case_id="local")
    ds.StudyInstanceUID = "1.2/../../instances"
    with pytest.raises(DicomWebError, match=r"StudyInstanceUID '1\.2/\.\./\.\./instances' is not a DICOM UID"
                                            ".*Nothing was stored"):
        DicomWebStore(orthanc.dicomweb_url, trust_env=False).store(ds)
    assert orthanc.study_uids() == []


def test_an_instance_of_another_study_is_refused_whole(tmp_path):
    """A server that answers a study request with another study's instances: nothing written."""
    store = DicomWebStore("http://127.0.0.1:9/dicom-web", trust_env=False, retries=1)
    asked = make_cr_dataset(np.zeros((4, 4)), case_id="asked")
    other = make_cr_dataset(np.zeros((4, 4)), case_id="other")
    with pytest.raises(DicomWebError, match="belongs to study .* not to the study"):
        store._save_all([asked, other], tmp_path / "out", asked.StudyInstanceUID)
    assert _files_under(tmp_path) == []
    paths = store._save_all([asked], tmp_path / "out", asked.StudyInstanceUID)
    assert [p.relative_to(tmp_path / "out").parts for p in paths] == [
        (asked.StudyInstanceUID, asked.SeriesInstanceUID, f"{asked.SOPInstanceUID}.dcm")]

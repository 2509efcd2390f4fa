"""``saliency-trust pacs`` against a real Orthanc, and DICOMweb errors that name the server and fix."""

import pydicom
import pytest

from SaliencyTrustLib.cli import main
from SaliencyTrustLib.io.dicomweb import DicomWebError, DicomWebStore

pytestmark = pytest.mark.pacs


def test_cli_push_list_pull_round_trip(orthanc, synthetic_cohort, tmp_path, capsys):
    url = ["pacs", "--url", orthanc.dicomweb_url, "--no-env-proxy"]
    assert main([*url, "push", str(synthetic_cohort / "cxr" / "dicom")]) == 0
    pushed = capsys.readouterr().out.split()
    assert len(pushed) == 2

    assert main([*url, "list"]) == 0
    studies = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert sorted(row[1] for row in studies) == ["cxr-0-0000", "cxr-0-0001"]
    assert sorted(row[0] for row in studies) == orthanc.study_uids()

    study_uid = studies[0][0]
    assert main([*url, "pull", "--study", study_uid, "--out", str(tmp_path)]) == 0
    files = capsys.readouterr().out.split()
    (pulled,) = [pydicom.dcmread(path) for path in files]
    assert pulled.StudyInstanceUID == study_uid and pulled.SOPInstanceUID in pushed
    assert pulled.pixel_array.shape == (224, 224)


def test_unreachable_server_names_the_url_and_the_fix():
    store = DicomWebStore("http://127.0.0.1:9/dicom-web", trust_env=False, timeout=5, retries=1)
    with pytest.raises(DicomWebError, match=r"127\.0\.0\.1:9/dicom-web: cannot connect.*Fix"):
        store.list_studies()


def test_cli_reports_an_unreachable_server_and_fails(capsys):
    assert main(["pacs", "--url", "http://127.0.0.1:9/dicom-web", "--no-env-proxy", "--retries", "1",
                 "list"]) == 1
    assert "cannot connect" in capsys.readouterr().err


def test_non_dicom_file_is_not_stored_and_named(orthanc, tmp_path):
    junk = tmp_path / "report.txt"
    junk.write_text("not DICOM")
    with pytest.raises(DicomWebError, match="report.txt: not a DICOM file"):
        DicomWebStore(orthanc.dicomweb_url, trust_env=False).store(junk)
    assert orthanc.study_uids() == []


def test_folder_push_skips_hidden_files_and_an_empty_folder_is_named(orthanc, synthetic_cohort,
                                                                     tmp_path):
    import shutil

    folder = tmp_path / "series"
    shutil.copytree(synthetic_cohort / "cxr" / "dicom", folder)
    (folder / ".DS_Store").write_bytes(b"Finder metadata, not DICOM")
    store = DicomWebStore(orthanc.dicomweb_url, trust_env=False)
    assert len(store.store(folder)) == 2                  # the hidden file is not offered
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".hidden").write_text("x")
    with pytest.raises(DicomWebError, match="empty: is an empty folder. Fix.*Nothing was stored"):
        store.store(empty)


def test_unknown_series_gives_an_http_error_with_a_fix(orthanc):
    store = DicomWebStore(orthanc.dicomweb_url, trust_env=False)
    with pytest.raises(DicomWebError, match="HTTP 404.*check the UIDs"):
        store.retrieve_series("1.2.3.4", "1.2.3.4.5")


def test_url_that_is_not_http_is_refused():
    with pytest.raises(ValueError, match="http\\(s\\) DICOMweb root"):
        DicomWebStore("127.0.0.1:8042")

"""A PACS as the cohort: studies listed and pulled over DICOMweb from a real Orthanc, ground truth and
labels matched by PatientID, evaluated end to end."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTING = str(Path(__file__).resolve().parents[1])
if _TESTING not in sys.path:  # --import-mode=importlib: make Testing/support importable
    sys.path.append(_TESTING)

from support.orthanc import orthanc, orthanc_server  # noqa: E402,F401  (fixtures)


def test_dicomweb_cohort_is_listed_pulled_once_and_evaluated(orthanc, tiny_cohort, tmp_path):
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.io import DicomWebStore

    root = tiny_cohort["cohort"]
    cases = ["cxr-3-0000", "cxr-3-0001", "cxr-3-0003"]          # one negative, two positives
    DicomWebStore(orthanc.dicomweb_url).store([p for c in cases for p in sorted((root / "dicom" / c).glob("*.dcm"))])

    cohort = load_cohort(orthanc.dicomweb_url, ground_truth=root / "masks", labels=root / "labels.csv")
    assert len(cohort.studies) == 3 and all(s.image == f"dicomweb:{s.study_id}" for s in cohort.studies)
    by_patient = {s.aliases[0]: s for s in cohort.studies}
    assert sorted(by_patient) == cases
    assert [by_patient[c].label for c in cases] == [0, 1, 1]
    assert by_patient["cxr-3-0001"].ground_truth.endswith("cxr-3-0001.nii.gz")

    models = tiny_cohort["models"]
    out = tmp_path / "out"
    results = evaluate_cohort(cohort, StudyModels(str(models / "a.pt")),
                              EvaluationSettings(methods=("gradient",), criteria=("localization",), preprocessing=Preprocessing(input_size=32),
                                                 batch_size=2, sample_size=2),
                              out, device="cpu", progress=False)
    assert results["failures"] == {}
    assert results["cohort"]["n_studies"] == 2                     # the positives
    assert all(0.0 < v <= 1.0 for v in results["localization"]["auprc"]["gradient"])
    pulled = sorted(p.name for p in (out / "cache" / "dicomweb").iterdir())
    assert pulled == sorted(by_patient[c].study_id for c in cases[1:])   # only what was evaluated, once


def test_evaluate_writes_dicom_results_into_each_study_and_pushes_them_to_the_pacs(orthanc, tiny_cohort, tmp_path,
                                                                                  capsys):
    """``evaluate --write-dicom --push``: per study and method a Parametric Map and a SEG, and the
    scorecard SR, in the study the PACS served, stored back to it."""
    import json

    import pydicom

    from SaliencyTrustLib.cli import main
    from SaliencyTrustLib.io import DicomWebStore

    root = tiny_cohort["cohort"]
    cases = ["cxr-3-0001", "cxr-3-0003"]                       # two positives
    store = DicomWebStore(orthanc.dicomweb_url)
    store.store([p for c in cases for p in sorted((root / "dicom" / c).glob("*.dcm"))])
    before = {s["StudyInstanceUID"] for s in store.list_studies()}
    out = tmp_path / "out"
    code = main(["evaluate", "--cohort", orthanc.dicomweb_url, "--ground-truth", str(root / "masks"),
                 "--labels", str(root / "labels.csv"), "--model", str(tiny_cohort["models"] / "a.pt"),
                 "--input-size", "32", "--methods", "gradient", "--criteria", "localization", "--batch-size", "2",
                 "--out", str(out), "--no-progress", "--no-report", "--write-dicom", "--push", orthanc.dicomweb_url])
    assert code == 0
    outputs = json.loads((out / "dicom_outputs.json").read_text())
    assert sorted(outputs) == sorted(before) and all(entry["stored"] == 3 for entry in outputs.values())
    for study_uid, entry in outputs.items():
        kinds = {}
        for relative in entry["files"]:
            dataset = pydicom.dcmread(out / relative)
            assert dataset.StudyInstanceUID == study_uid                # in the study it explains
            kinds[dataset.SOPClassUID] = dataset
        assert set(kinds) == {"1.2.840.10008.5.1.4.1.1.30", "1.2.840.10008.5.1.4.1.1.66.4",
                              "1.2.840.10008.5.1.4.1.1.88.33"}        # Parametric Map, SEG, Comprehensive SR
        served = {str(i["SOPInstanceUID"]) for i in store.list_instances(study_uid)}
        assert {d.SOPInstanceUID for d in kinds.values()} <= served           # stored back to the PACS
    assert "DICOM: 2 of 2 studies written" in capsys.readouterr().out

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

"""A real PACS round trip: synthetic cohort -> Orthanc -> pull -> saliency -> PM/SEG/SR -> Orthanc.

Orthanc (Debian ``orthanc`` + ``orthanc-dicomweb``) runs on loopback, one per xdist worker; every
exchange goes through DICOMweb (QIDO-RS, WADO-RS, STOW-RS) with :class:`DicomWebStore`.
"""

from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
import torch
from sklearn.metrics import auc, precision_recall_curve

from SaliencyTrustLib.io import read_image, read_source_datasets
from SaliencyTrustLib.io.dicom_write import (CRITERION_CODES, write_parametric_map, write_seg,
                                              write_scorecard_sr)
from SaliencyTrustLib.io.dicomweb import DicomWebStore
from SaliencyTrustLib.saliency import compute_saliency
from support.validate import dciodvfy

pytestmark = pytest.mark.pacs
THRESHOLD = 0.5


def _tiny_classifier(spatial_dims: int) -> torch.nn.Module:
    """A deterministic two-class CNN (weights from seed 0): enough for a real gradient map."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d if spatial_dims == 2 else torch.nn.Conv3d
    pool = torch.nn.AdaptiveAvgPool2d if spatial_dims == 2 else torch.nn.AdaptiveAvgPool3d
    return torch.nn.Sequential(conv(1, 4, 3, padding=1), torch.nn.ReLU(), pool(1),
                               torch.nn.Flatten(), torch.nn.Linear(4, 2)).eval()


def _saliency(volume) -> np.ndarray:
    """Gradient saliency (paper post-processing) of the pulled image, ``(K, J, I)`` in [0, 1]."""
    array = volume.array.astype(np.float32)
    scaled = (array - array.min()) / max(float(array.max() - array.min()), 1e-6)
    if volume.is_2d:
        batch, dims = scaled[np.newaxis], 2              # (1, J, I) -> (B, C, H, W)
    else:
        batch, dims = scaled[np.newaxis, np.newaxis], 3  # (K, J, I) -> (B, C, D, H, W)
    maps = compute_saliency(_tiny_classifier(dims), batch, "gradient", postprocess="paper")
    return np.asarray(maps[0], np.float32).reshape(volume.shape)


def _auprc(saliency: np.ndarray, mask: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(mask.ravel(), saliency.ravel())
    return float(auc(recall, precision))


def _k_of_frame(volume, frame) -> int:
    """Index along K of a Parametric Map / SEG frame, from its plane position."""
    position = np.asarray(frame.PlanePositionSequence[0].ImagePositionPatient, float)
    offset = np.linalg.solve(volume.direction @ np.diag(volume.spacing),
                             position - np.asarray(volume.origin))
    return int(round(offset[2]))


@pytest.mark.parametrize("kind, case_id", [("cxr", "cxr-0-0001"), ("ct", "ct-0-0001")])
def test_pull_compute_push_and_read_results_back(orthanc, synthetic_cohort, tmp_path, kind,
                                                 case_id):
    store = DicomWebStore(orthanc.dicomweb_url, trust_env=False)
    stored = store.store(synthetic_cohort / kind / "dicom")
    assert len(stored) == (2 if kind == "cxr" else 2 * 24)
    studies = {s["PatientID"]: s for s in store.list_studies()}
    assert sorted(studies) == [f"{kind}-0-0000", f"{kind}-0-0001"]

    # pull
    study_uid = studies[case_id]["StudyInstanceUID"]
    (source_series,) = store.list_series(study_uid)
    files = store.pull_series(study_uid, source_series["SeriesInstanceUID"], tmp_path / "pulled")
    assert len(files) == int(source_series["NumberOfSeriesRelatedInstances"])
    listed = store.list_instances(study_uid, source_series["SeriesInstanceUID"])
    assert {i["SOPInstanceUID"] for i in listed} == {f.stem for f in files}
    volume = read_image(files[0].parent)
    sources = read_source_datasets(volume)

    # compute
    saliency = _saliency(volume)
    mask = read_image(synthetic_cohort / kind / "masks" / f"{case_id}.nii.gz").array > 0
    assert mask.shape == saliency.shape and mask.any()
    value = _auprc(saliency, mask)
    scorecard = {"methods": {"gradient": {"localization_utility": {
        "value": value, "baseline": float(mask.mean()), "passed": value > mask.mean(),
        "metric": "AUPRC"}}}}

    # write and push
    map_volume = volume.with_array(saliency)
    pm = write_parametric_map(map_volume, sources, tmp_path / "pm.dcm", method="gradient")
    seg = write_seg(map_volume, sources, tmp_path / "seg.dcm", threshold=THRESHOLD,
                    method="gradient")
    sr = write_scorecard_sr(scorecard, sources, tmp_path / "sr.dcm", further_evidence=[pm, seg])
    pushed = store.store([pm, seg, sr])
    assert sorted(pushed) == sorted([pm.SOPInstanceUID, seg.SOPInstanceUID, sr.SOPInstanceUID])

    # read back from Orthanc
    series = {s["Modality"]: s for s in store.list_series(study_uid)}
    assert set(series) == {source_series["Modality"], "OT", "SEG", "SR"}

    (pm_back,) = store.retrieve_series(study_uid, series["OT"]["SeriesInstanceUID"])
    pm_back.save_as(tmp_path / "pm_back.dcm", enforce_file_format=True)
    assert dciodvfy(tmp_path / "pm_back.dcm").errors == []
    assert pm_back.StudyInstanceUID == study_uid
    assert pm_back.ReferencedSeriesSequence[0].SeriesInstanceUID == \
        source_series["SeriesInstanceUID"]
    referenced = {f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
                  for f in pm_back.PerFrameFunctionalGroupsSequence}
    assert referenced == set(volume.metadata["SOPInstanceUIDs"])
    pixels = pm_back.pixel_array.reshape(-1, *saliency.shape[1:])
    for index, frame in enumerate(pm_back.PerFrameFunctionalGroupsSequence):
        k = 0 if volume.is_2d else _k_of_frame(volume, frame)
        np.testing.assert_array_equal(pixels[index], saliency[k])

    (seg_back,) = store.retrieve_series(study_uid, series["SEG"]["SeriesInstanceUID"])
    seg_back.save_as(tmp_path / "seg_back.dcm", enforce_file_format=True)
    assert dciodvfy(tmp_path / "seg_back.dcm").errors == []
    assert seg_back.SegmentSequence[0].SegmentLabel == f"gradient saliency >= {THRESHOLD:g}"
    assert int(seg_back.pixel_array.sum()) == int((saliency >= THRESHOLD).sum())

    (sr_back,) = store.retrieve_series(study_uid, series["SR"]["SeriesInstanceUID"])
    sr_back.save_as(tmp_path / "sr_back.dcm", enforce_file_format=True)
    assert dciodvfy(tmp_path / "sr_back.dcm").errors == []
    report = hd.sr.ComprehensiveSR.from_dataset(sr_back)
    (group,) = report.content.get_image_measurement_groups()
    (measurement,) = [m for m in group.get_measurements()
                      if m.name.value == CRITERION_CODES["localization_utility"].value]
    assert measurement.value == pytest.approx(value)
    evidence = {s.SeriesInstanceUID for s in
                sr_back.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence}
    assert evidence == {source_series["SeriesInstanceUID"], pm.SeriesInstanceUID,
                        seg.SeriesInstanceUID}

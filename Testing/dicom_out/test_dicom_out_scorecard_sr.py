"""The trust scorecard as a DICOM Comprehensive SR (TID 1500), with its JSON and CSV beside it."""

import csv
import json
import math

import highdicom as hd
import pytest
from pydicom.sr.codedict import codes

from SaliencyTrustLib.io.dicom_write import (CRITERION_CODES, PASSED_CODE, scorecard_rows,
                                              write_parametric_map, write_scorecard_sr)
from support.validate import dciodvfy

CRITERIA = ("localization_utility", "randomization_sensitivity", "repeatability",
            "reproducibility")


def _scorecard():
    """Two methods x four criteria, one undefined value (constant maps), one curve."""
    rows = {}
    for offset, method in enumerate(("gradcam", "integrated_gradients")):
        rows[method] = {}
        for index, criterion in enumerate(CRITERIA):
            rows[method][criterion] = {
                "value": 0.1 * (index + 1) + 0.05 * offset,
                "baseline": 0.2 + 0.01 * index,
                "passed": (index + offset) % 2 == 0,
                "metric": "AUPRC" if criterion == "localization_utility" else "SSIM",
            }
    rows["integrated_gradients"]["repeatability"].update(
        value=float("nan"), passed=None, reason="constant maps: SSIM undefined")
    rows["gradcam"]["randomization_sensitivity"]["curve"] = {"original": 1.0, "logits": 0.8}
    return {"methods": rows, "data_range": 2.0}


def _groups_by_identifier(sr):
    return {str(g.tracking_identifier): g for g in sr.content.get_image_measurement_groups()}


def test_sr_holds_one_group_per_method_and_criterion_and_is_valid(tmp_path, ct_sources):
    scorecard = _scorecard()
    path = tmp_path / "scorecard.dcm"
    write_scorecard_sr(scorecard, ct_sources, path)
    report = dciodvfy(path)
    assert report.iod == "ComprehensiveSR", report.output
    assert report.errors == [], report.output
    print("dciodvfy warnings (scorecard SR):", *sorted(set(report.warnings)), sep="\n  ")

    sr = hd.sr.srread(path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"
    assert sr.StudyInstanceUID == ct_sources[0].StudyInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == ct_sources[0].StudyInstanceUID
    assert evidence.ReferencedSeriesSequence[0].SeriesInstanceUID == \
        ct_sources[0].SeriesInstanceUID

    groups = _groups_by_identifier(sr)
    assert len(groups) == 8
    for method, per_criterion in scorecard["methods"].items():
        for criterion, item in per_criterion.items():
            group = groups[f"{method} {criterion}"]
            measurements = {m.name.value: m for m in group.get_measurements()}
            code = CRITERION_CODES[criterion]
            if math.isnan(item["value"]):
                assert code.value not in measurements       # NaN has no DICOM number
            else:
                assert measurements[code.value].value == pytest.approx(item["value"])
                assert measurements[code.value].unit.value == "1"
            assert measurements["BASELINE"].value == pytest.approx(item["baseline"])
            (evaluation,) = group.get_qualitative_evaluations()
            assert evaluation.name.value == PASSED_CODE.value
            expected = {True: codes.SCT.Yes, False: codes.SCT.No,
                        None: codes.SCT.Indeterminate}[item["passed"]]
            assert evaluation.value.value == expected.value


def test_json_and_csv_beside_the_sr_hold_what_sr_does_not(tmp_path, ct_sources):
    scorecard = _scorecard()
    path = tmp_path / "out" / "scorecard.dcm"
    write_scorecard_sr(scorecard, ct_sources, path)
    saved = json.loads((tmp_path / "out" / "scorecard.json").read_text())
    assert saved["methods"]["gradcam"]["randomization_sensitivity"]["curve"] == \
        {"original": 1.0, "logits": 0.8}
    assert math.isnan(saved["methods"]["integrated_gradients"]["repeatability"]["value"])
    with open(tmp_path / "out" / "scorecard.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 8
    undefined = next(r for r in rows if r["method"] == "integrated_gradients"
                     and r["criterion"] == "repeatability")
    assert undefined["value"] == "" and undefined["passed"] == ""
    assert "constant maps" in undefined["reason"]
    first = next(r for r in rows if r["method"] == "gradcam"
                 and r["criterion"] == "localization_utility")
    assert (float(first["value"]), first["passed"], first["metric"]) == (0.1, "pass", "AUPRC")


def test_sr_lists_the_written_maps_as_evidence(tmp_path, ct_case, ct_sources):
    image = ct_case.image
    pm = write_parametric_map((image - image.min()) / (image.max() - image.min()), ct_sources)
    sr = write_scorecard_sr(_scorecard(), ct_sources, further_evidence=[pm])
    series = {s.SeriesInstanceUID for s in
              sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence}
    assert series == {ct_sources[0].SeriesInstanceUID, pm.SeriesInstanceUID}


def test_row_layouts_are_read_alike():
    nested = _scorecard()
    rows = scorecard_rows(nested)
    as_rows = scorecard_rows({"rows": rows})
    by_criterion = {"criteria": {}}
    for row in rows:
        by_criterion["criteria"].setdefault(row["criterion"], {})[row["method"]] = row
    key = lambda r: (r["method"], r["criterion"])  # noqa: E731
    for other in (as_rows, scorecard_rows(by_criterion)):
        assert [key(r) for r in sorted(other, key=key)] == [key(r) for r in sorted(rows, key=key)]
        assert sorted(str(r["passed"]) for r in other) == sorted(str(r["passed"]) for r in rows)


def test_empty_scorecard_is_refused_with_the_fix(ct_sources):
    with pytest.raises(ValueError, match="no method x criterion.*run the criteria"):
        write_scorecard_sr({"methods": {}}, ct_sources)


def test_criteria_scorecard_is_written_with_its_own_json_and_csv(tmp_path, ct_sources):
    from SaliencyTrustLib.criteria import Scorecard

    card = Scorecard(params={"ssim": {"data_range": 2.0}})
    card.add("gradcam", "localization", 0.31, 0.27, True, "mean AUPRC > average-mask baseline",
             value_name="mean AUPRC", baseline_name="average mask")
    card.add("gradcam", "randomization", 0.12, 0.18, True, "curve below baseline",
             value_name="min over states of mean SSIM", ssim_curve=[1.0, 0.5, 0.12])
    card.add("xrai", "repeatability", float("nan"), 0.8, None, "mean SSIM > 0.8",
             value_name="mean SSIM")
    path = tmp_path / "card.dcm"
    write_scorecard_sr(card, ct_sources, path)
    assert dciodvfy(path).errors == []

    groups = _groups_by_identifier(hd.sr.srread(path))
    assert set(groups) == {"gradcam localization", "gradcam randomization", "xrai repeatability"}
    measured = {m.name.value: m.value for m in groups["gradcam randomization"].get_measurements()}
    assert measured == {CRITERION_CODES["randomization"].value: pytest.approx(0.12),
                        "BASELINE": pytest.approx(0.18)}
    (undecided,) = groups["xrai repeatability"].get_qualitative_evaluations()
    assert undecided.value.value == codes.SCT.Indeterminate.value
    assert (tmp_path / "card.json").read_text() == card.to_json()
    assert (tmp_path / "card.csv").read_text() == card.to_csv()

"""The trust scorecard as a DICOM Comprehensive SR (TID 1500), with its JSON and CSV beside it.

The SR is read back with highdicom and with dcmqi's ``tid1500reader`` (what 3D Slicer's
QuantitativeReporting plugin runs), and the table that plugin builds from the reader's JSON is
rebuilt here to check that every value sits under its own heading.
"""

import csv
import json
import math
from collections import Counter

import highdicom as hd
import pytest
from pydicom.sr.codedict import codes

from SaliencyTrustLib.io.dicom_write import (BASELINE_CODES, CRITERION_CODES, VERDICT_CODES,
                                              VERDICT_VALUES, scorecard_rows,
                                              write_parametric_map, write_scorecard_sr)
from support.validate import dciodvfy

CRITERIA = ("localization_utility", "randomization_sensitivity", "repeatability",
            "reproducibility")
METRIC = {"localization_utility": "AUPRC"}   # the others: SSIM


def _scorecard():
    """Two methods x four criteria, one undefined value (constant maps), one curve."""
    rows = {}
    for offset, method in enumerate(("integrated_gradients", "gradcam")):
        rows[method] = {}
        for index, criterion in enumerate(CRITERIA):
            rows[method][criterion] = {
                "value": 0.1 * (index + 1) + 0.05 * offset,
                "baseline": 0.2 + 0.01 * index,
                "passed": (index + offset) % 2 == 0,
                "metric": METRIC.get(criterion, "SSIM"),
            }
    rows["integrated_gradients"]["repeatability"].update(
        value=float("nan"), passed=None, reason="constant maps: SSIM undefined")
    rows["gradcam"]["randomization_sensitivity"]["curve"] = {"original": 1.0, "logits": 0.8}
    return {"methods": rows, "data_range": 2.0}


def _groups_by_identifier(sr):
    return {str(g.tracking_identifier): g for g in sr.content.get_image_measurement_groups()}


def _tid1500reader(dcmqi, sr_path, json_path):
    dcmqi("tid1500reader", "--inputDICOM", sr_path, "--outputMetadata", json_path)
    return json.loads(json_path.read_text())


def _quantitative_reporting_table(reader_json):
    """The table 3D Slicer's QuantitativeReporting builds from ``tid1500reader``'s JSON
    (DICOMTID1500Plugin.metadata2vtkTableNode, QIICR/QuantitativeReporting): headings
    "<quantity meaning> [<unit code>]" from the *first* group's measurement items (duplicates
    numbered), then one row per group, "Tracking Identifier" and the group's values by position.

    Returns ``(headings, {tracking identifier: {heading: value text}})``."""
    groups = reader_json["Measurements"]
    headings = []
    for item in groups[0]["measurementItems"]:
        name = (item.get("derivationModifier") or item["quantity"])["CodeMeaning"]
        unit = item["units"]["CodeValue"].replace("[", "").replace("]", "")
        headings.append(f"{name} [{unit}]")
    for heading, count in Counter(headings).items():
        if count > 1:
            raise AssertionError(f"duplicate column heading {heading!r}")
    table = {}
    for group in groups:
        values = [item["value"] for item in group["measurementItems"]]
        table[group["TrackingIdentifier"]] = dict(zip(headings, values))
    return headings, table


def _heading(code):
    return f"{code.meaning} [1]"


def test_sr_holds_one_group_per_method_with_every_criterion_and_is_valid(tmp_path, ct_sources):
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
    assert list(groups) == ["gradcam", "integrated_gradients"]   # the complete row first
    for method, per_criterion in scorecard["methods"].items():
        group = groups[method]
        measurements = {m.name.value: m for m in group.get_measurements()}
        evaluations = {e.name.value: e.value.value for e in group.get_qualitative_evaluations()}
        for criterion, item in per_criterion.items():
            value_code = CRITERION_CODES[criterion]
            if math.isnan(item["value"]):                      # NaN has no DICOM number
                assert value_code.value not in measurements
                assert evaluations[value_code.value] == codes.DCM.NotANumber.value
            else:
                assert measurements[value_code.value].value == pytest.approx(item["value"])
                assert measurements[value_code.value].unit.value == "1"
            baseline = measurements[BASELINE_CODES[criterion].value]
            assert baseline.value == pytest.approx(item["baseline"])
            assert evaluations[VERDICT_CODES[criterion].value] == \
                VERDICT_VALUES[item["passed"]].value


def test_tid1500reader_gives_each_value_its_own_column_and_every_verdict(tmp_path, dcmqi,
                                                                       ct_sources):
    scorecard = _scorecard()
    path = tmp_path / "scorecard.dcm"
    write_scorecard_sr(scorecard, ct_sources, path)
    reader_json = _tid1500reader(dcmqi, path, tmp_path / "reader.json")
    assert reader_json["procedureReported"]["CodeValue"] == "SALTRUST"
    assert reader_json["observerContext"]["ObserverType"] == "DEVICE"

    # the reader's columns: concept name, value and units of every measurement, verdicts present
    for group in reader_json["Measurements"]:
        method = group["TrackingIdentifier"]
        assert group["measurementAlgorithmIdentification"]["AlgorithmName"] == method
        items = {m["quantity"]["CodeValue"]: m for m in group["measurementItems"]}
        verdicts = {q["conceptCode"]["CodeValue"]: q["conceptValue"]["CodeValue"]
                    for q in group["qualitativeEvaluations"]}
        for criterion, expected in scorecard["methods"][method].items():
            for code, number in ((CRITERION_CODES[criterion], expected["value"]),
                                 (BASELINE_CODES[criterion], expected["baseline"])):
                if math.isnan(number):
                    assert code.value not in items
                    assert verdicts[code.value] == codes.DCM.NotANumber.value
                    continue
                item = items[code.value]
                assert item["quantity"] == {"CodeValue": code.value, "CodeMeaning": code.meaning,
                                            "CodingSchemeDesignator": "99SALTRUST"}
                assert float(item["value"]) == pytest.approx(number, abs=1e-12)
                assert item["units"] == {"CodeValue": "1", "CodeMeaning": "no units",
                                         "CodingSchemeDesignator": "UCUM"}
            assert verdicts[VERDICT_CODES[criterion].value] == \
                VERDICT_VALUES[expected["passed"]].value
            value_item = items.get(CRITERION_CODES[criterion].value)
            if value_item is not None:       # AUPRC and SSIM are named apart
                assert f"({METRIC.get(criterion, 'SSIM')})" in value_item["quantity"]["CodeMeaning"]

    # the table 3D Slicer shows: one heading per quantity, each value under its own heading
    headings, table = _quantitative_reporting_table(reader_json)
    assert headings == [_heading(code[c]) for c in CRITERIA
                        for code in (CRITERION_CODES, BASELINE_CODES)]
    complete = scorecard["methods"]["gradcam"]
    for criterion in CRITERIA:
        assert float(table["gradcam"][_heading(CRITERION_CODES[criterion])]) == \
            pytest.approx(complete[criterion]["value"])
        assert float(table["gradcam"][_heading(BASELINE_CODES[criterion])]) == \
            pytest.approx(complete[criterion]["baseline"])
    # the row with an undefined repeatability: right up to it (later cells move one column
    # early in that plugin, which fills rows by position; the SR marks the value Not a number)
    partial = scorecard["methods"]["integrated_gradients"]
    for criterion in CRITERIA[:2]:
        assert float(table["integrated_gradients"][_heading(CRITERION_CODES[criterion])]) == \
            pytest.approx(partial[criterion]["value"])
        assert float(table["integrated_gradients"][_heading(BASELINE_CODES[criterion])]) == \
            pytest.approx(partial[criterion]["baseline"])


def test_a_criterion_not_scored_for_a_method_is_marked_not_attempted(tmp_path, dcmqi, ct_sources):
    rows = [
        {"method": "xrai", "criterion": "repeatability", "value": 0.9, "baseline": 0.8,
         "passed": True, "metric": "SSIM"},
        {"method": "gradcam", "criterion": "localization", "value": 0.4, "baseline": 0.3,
         "passed": True, "metric": "AUPRC"},
        {"method": "gradcam", "criterion": "repeatability", "value": 0.7, "baseline": 0.8,
         "passed": False, "metric": "SSIM"},
    ]
    path = tmp_path / "partial.dcm"
    write_scorecard_sr({"rows": rows}, ct_sources, path)
    assert dciodvfy(path).errors == []
    reader_json = _tid1500reader(dcmqi, path, tmp_path / "reader.json")
    first, second = reader_json["Measurements"]
    assert (first["TrackingIdentifier"], second["TrackingIdentifier"]) == ("gradcam", "xrai")
    assert [m["quantity"]["CodeValue"] for m in first["measurementItems"]] == [
        "LOCUTIL", "LOCUTILBL", "REPEAT", "REPEATBL"]
    verdicts = {q["conceptCode"]["CodeValue"]: q["conceptValue"]["CodeMeaning"]
                for q in second["qualitativeEvaluations"]}
    assert verdicts == {"LOCUTIL": "Measurement not attempted", "REPEATPASS": "Yes"}
    headings, table = _quantitative_reporting_table(reader_json)
    assert table["gradcam"] == {_heading(CRITERION_CODES["localization"]): "0.4",
                                _heading(BASELINE_CODES["localization"]): "0.3",
                                _heading(CRITERION_CODES["repeatability"]): "0.7",
                                _heading(BASELINE_CODES["repeatability"]): "0.8"}


def test_a_criterion_outside_the_paper_gets_its_own_consistent_codes(tmp_path, ct_sources):
    rows = [{"method": m, "criterion": "sparsity", "value": v, "baseline": None,
             "passed": p, "metric": "Gini"} for m, v, p in (("a", 0.5, True), ("b", 0.1, False))]
    write_scorecard_sr({"rows": rows}, ct_sources, tmp_path / "sr.dcm", sidecar=False)
    groups = _groups_by_identifier(hd.sr.srread(tmp_path / "sr.dcm"))
    for method, value in (("a", 0.5), ("b", 0.1)):
        (measurement,) = groups[method].get_measurements()     # no baseline column
        assert (measurement.name.value, measurement.name.meaning) == ("SPARSITY", "Sparsity (Gini)")
        assert measurement.value == pytest.approx(value)
        (verdict,) = groups[method].get_qualitative_evaluations()
        assert verdict.name.value == "SPARSITYPASS"


def test_the_criteria_beyond_the_study_have_their_own_named_codes(tmp_path, ct_sources):
    names = ("shortcut", "data_randomization", "faithfulness", "robustness")
    rows = [{"method": "gradcam", "criterion": c, "value": 0.1 * (i + 1), "baseline": 0.05, "passed": True}
            for i, c in enumerate(names)]
    write_scorecard_sr({"rows": rows}, ct_sources, tmp_path / "sr.dcm", sidecar=False)
    (group,) = _groups_by_identifier(hd.sr.srread(tmp_path / "sr.dcm")).values()
    found = {m.name.value: m.value for m in group.get_measurements()}
    assert found == pytest.approx({"SHORTCUT": 0.1, "SHORTCUTBL": 0.05, "DATARAND": 0.2, "DATARANDBL": 0.05,
                                   "FAITHFUL": 0.3, "FAITHFULBL": 0.05, "ROBUST": 0.4, "ROBUSTBL": 0.05})
    assert {v.name.value for v in group.get_qualitative_evaluations()} == {
        "SHORTCUTPASS", "DATARANDPASS", "FAITHFULPASS", "ROBUSTPASS"}


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
    first = next(r for r in rows if r["method"] == "integrated_gradients"
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
    assert list(groups) == ["gradcam", "xrai"]
    measured = {m.name.value: m.value for m in groups["gradcam"].get_measurements()}
    assert measured == {"LOCUTIL": pytest.approx(0.31), "LOCUTILBL": pytest.approx(0.27),
                        "RANDSENS": pytest.approx(0.12), "RANDSENSBL": pytest.approx(0.18)}
    evaluations = {e.name.value: e.value.value
                   for e in groups["gradcam"].get_qualitative_evaluations()}
    assert evaluations == {"LOCUTILPASS": codes.SCT.Yes.value, "RANDSENSPASS": codes.SCT.Yes.value,
                           "REPEAT": codes.DCM.MeasurementNotAttempted.value}
    measured = {m.name.value: m.value for m in groups["xrai"].get_measurements()}
    assert measured == {"REPEATBL": pytest.approx(0.8)}
    evaluations = {e.name.value: e.value.value
                   for e in groups["xrai"].get_qualitative_evaluations()}
    assert evaluations == {"LOCUTIL": codes.DCM.MeasurementNotAttempted.value,
                           "RANDSENS": codes.DCM.MeasurementNotAttempted.value,
                           "REPEAT": codes.DCM.NotANumber.value,
                           "REPEATPASS": codes.SCT.Indeterminate.value}
    assert (tmp_path / "card.json").read_text() == card.to_json()
    assert (tmp_path / "card.csv").read_text() == card.to_csv()

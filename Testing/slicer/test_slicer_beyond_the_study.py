"""The criteria beyond the study in the Slicer module (issue 13): the panel's options reach the
request, the request reaches the study process, and the rows that come back are the pipeline's.

Real here: the MRML scene (slicer-core), a radiograph loaded from a DICOM series, its lesion and a
marker region as segmentations, the study process, the exported NIfTI / JSON / CSV and DICOM PM /
SEG / SR files. ``shortcut`` and ``data_randomization`` run; ``faithfulness`` and ``robustness`` are
only carried through the request (their metric modules are not in this branch yet).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

#: Edge of the radiographs and of the network grid (small: each run takes seconds).
SIZE = 64
METHODS = ("gradient", "gradcam")
RUN_CRITERIA = ("localization", "shortcut", "data_randomization")
#: Numbers of the study process and of an in-process run may differ in the last float32 bits of
#: the maps (another process, another thread count); verdicts may not differ at all.
TOLERANCE = 1e-5


def _preprocessing():
    from SaliencyTrustLib.preprocessing import Preprocessing

    return Preprocessing(in_channels=1, input_size=SIZE, intensity="minmax01")


def make_bundle(folder: Path, label_randomized: bool = True) -> Path:
    """A bundle-shaped folder: an untrained ``models/model.pt`` and, optionally, the same
    architecture with other weights as ``models/model_label_randomized.pt``."""
    from SaliencyTrustLib.networks import build_classifier, save_classifier

    files = [("model.pt", 0)] + ([("model_label_randomized.pt", 5)] if label_randomized else [])
    for file_name, seed in files:
        torch.manual_seed(seed)
        save_classifier(build_classifier("densenet_small"), folder / "models" / file_name, "densenet_small")
    return folder


def marker_mask(shape) -> np.ndarray:
    """A burned-in marker's region: a small block in the top right corner, away from the lesion."""
    mask = np.zeros(shape, bool)
    mask[:, 3:11, shape[2] - 14:shape[2] - 3] = True
    return mask


@pytest.fixture
def dicom_study(st, scene, mk, tmp_path):
    """A positive radiograph loaded from its DICOM series, its lesion and the marker region as
    segmentations, another radiograph for the different-image baseline, a bundle with its
    label-randomized model."""
    from SaliencyTrustLib.io import read_image
    from SaliencyTrustLib.io.synth import write_synthetic_cohort

    write_synthetic_cohort(tmp_path / "cohort", n=4, seed=0, kind="cxr", size=SIZE, write_seg=False)
    datalist = json.loads((tmp_path / "cohort" / "datalist.json").read_text())
    items = [item for part in datalist.values() if isinstance(part, list) for item in part]
    positive = next(item for item in items if item["label"] == 1)
    other = next(item for item in items if item["case_id"] != positive["case_id"])
    series = tmp_path / "cohort" / "dicom" / positive["case_id"]
    files = sorted(str(p) for p in series.rglob("*") if p.is_file())
    logic = st.SaliencyTrustLogic(scene)
    image = read_image(series)
    volume = logic.createVolumeNode(image, name="cr")
    lesion = np.asarray(read_image(tmp_path / "cohort" / "masks" / f"{positive['case_id']}.nii.gz").array) > 0
    marker = marker_mask(image.shape)
    assert lesion.any() and not (lesion & marker).any()
    ground_truth = mk.add_segmentation_from_labels(scene, lesion.astype(np.uint8), image.ijk_to_ras(), "lesion")
    marker_node = mk.add_segmentation_from_labels(scene, marker.astype(np.uint8), image.ijk_to_ras(), "marker")
    other_image = read_image(tmp_path / "cohort" / "dicom" / other["case_id"])
    baseline = logic.createVolumeNode(other_image, name="other")
    return dict(logic=logic, image=image, volume=volume, lesion=lesion, marker=marker, groundTruth=ground_truth,
                markerNode=marker_node, baseline=baseline, otherImage=other_image, files=files,
                bundle=make_bundle(tmp_path / "bundle"))


def test_the_modules_criteria_and_defaults_are_the_cores(st, scene):
    """The panel offers exactly the core's eight criteria, and the request's defaults of the
    faithfulness / robustness settings are the pipeline's."""
    from SaliencyTrustLib.cohort import settings as core
    from SaliencyTrustLib.criteria import scorecard

    assert st.CRITERIA == core.ALL_CRITERIA == scorecard.CRITERIA
    assert (st.STUDY_CRITERIA, st.BEYOND_CRITERIA) == (core.CRITERIA, core.EXTRA_CRITERIA)
    assert st.FAITHFULNESS_FILLS == core.CHOICES["faithfulness_fill"]
    defaults = core.EvaluationSettings()
    request = st.EvaluationRequest(image=None, groundTruth=None, baselineImages=[], modelPath=Path("."),
                                   methods=["gradient"], targetClass=None, criteria=[])
    assert (request.faithfulnessSteps, request.faithfulnessFill, request.robustnessShift,
            request.robustnessNoiseSigma) == (defaults.faithfulness_steps, defaults.faithfulness_fill,
                                              defaults.robustness_shift, defaults.robustness_noise_sigma)
    p = st.SaliencyTrustLogic().getParameterNode()
    assert not any((p.runShortcut, p.runDataRandomization, p.runFaithfulness, p.runRobustness))
    assert (p.faithfulnessSteps, p.faithfulnessFill, p.robustnessShift) == (
        defaults.faithfulness_steps, defaults.faithfulness_fill, defaults.robustness_shift)


def test_shortcut_and_data_randomization_rows_are_the_pipelines_and_export(st, dicom_study, tmp_path):
    """Through the study process: the rows of the new criteria exist with values, equal the core
    primitives on the same arrays and the API's ``evaluate_cohort`` on the same one-image study,
    and export as files and as DICOM PM / SEG / SR."""
    import pydicom
    import slicer
    from SaliencyTrustLib.cohort import Cohort, EvaluationSettings, StudyModels, StudyRef, evaluate_cohort
    from SaliencyTrustLib.criteria import fully_randomized
    from SaliencyTrustLib.metrics import auprc, ssim
    from SaliencyTrustLib.networks import load_classifier
    from SaliencyTrustLib.saliency import compute_saliency

    s = dicom_study
    logic = s["logic"]
    result = logic.process(s["volume"], s["bundle"], list(METHODS), segmentationNode=s["groundTruth"],
                           baselineVolumeNodes=[s["baseline"]], criteria=list(RUN_CRITERIA),
                           preprocessing=_preprocessing(), shortcutSegmentationNode=s["markerNode"],
                           workDirectory=tmp_path / "slicer")
    request = result.request
    np.testing.assert_array_equal(request.shortcut, s["marker"])  # the same export as the ground truth
    np.testing.assert_array_equal(request.groundTruth, s["lesion"])
    # no path given: the bundle's own label-randomized model
    assert request.labelRandomizedModelPath == s["bundle"] / "models" / "model_label_randomized.pt"
    assert result.results["settings"]["criteria"] == list(RUN_CRITERIA)
    assert not result.results["skipped_criteria"]

    table = result.tableNode
    controls = result.results["controls"]
    assert table.GetNumberOfRows() == (len(METHODS) + len(controls)) * len(RUN_CRITERIA)
    rows = {(table.GetCellText(r, 0), table.GetCellText(r, 1)): r for r in range(table.GetNumberOfRows())}

    def cell(method, criterion, column):
        return table.GetTable().GetColumnByName(column).GetValue(rows[(method, criterion)])

    # The core primitives on the same arrays: the maps on the model grid, the marker there too.
    pre = _preprocessing()
    x, geometry = pre.image_to_model(logic.imageVolumeFromNode(s["volume"]), 2)
    batch = torch.from_numpy(x)[None]
    marker = pre.mask_to_model(s["marker"], geometry)[None]
    model = load_classifier(s["bundle"])
    label_randomized = load_classifier(s["bundle"] / "models" / "model_label_randomized.pt")
    target = [result.targetClass]
    for method in METHODS:
        for criterion in ("shortcut", "data_randomization"):
            for column in ("value", "baseline"):
                assert np.isfinite(cell(method, criterion, column)), (method, criterion, column)
            assert table.GetCellText(rows[(method, criterion)], table.GetColumnIndex("passed")) == "n/a"  # 1 image
        core_map = np.asarray(compute_saliency(model, batch, method, target=target))
        assert cell(method, "shortcut", "value") == pytest.approx(float(auprc(core_map, marker)[0]), abs=TOLERANCE)
        random_map = compute_saliency(fully_randomized(model, seed=0, example_input=batch), batch, method,
                                      target=target)
        assert cell(method, "shortcut", "baseline") == pytest.approx(float(auprc(random_map, marker)[0]),
                                                                     abs=TOLERANCE)
        # the label-randomized model explains the trained model's class (randomization_target)
        other_map = compute_saliency(label_randomized, batch, method, target=target)
        expected = float(ssim(core_map, np.asarray(other_map), preset="paper")[0])
        assert cell(method, "data_randomization", "value") == pytest.approx(expected, abs=TOLERANCE)
        assert "shortcut" in table.GetCellText(rows[(method, "shortcut")], table.GetColumnIndex("rule"))

    # The API on the same arrays, built by hand (not through the Logic): the same rows and verdicts.
    settings = EvaluationSettings(methods=METHODS, criteria=RUN_CRITERIA, seed=0, batch_size=1, sample_size=1,
                                  preprocessing=pre, study_selection="all", localization_baseline="randomized_model")
    cohort = Cohort([StudyRef(st.INPUT_STUDY_ID, s["image"], s["lesion"], label=1, shortcut=s["marker"])],
                    reference_studies=[StudyRef("baseline-00", s["otherImage"])])
    api = evaluate_cohort(cohort, StudyModels.from_bundle(str(s["bundle"])), settings, tmp_path / "api",
                          progress=False)
    api_rows = {(r["method"], r["criterion"]): r for r in api["scorecard"]["rows"]}
    assert set(api_rows) == {(r.method, r.criterion) for r in result.scorecard.rows}
    for row in result.scorecard.rows:
        theirs = api_rows[(row.method, row.criterion)]
        assert theirs["passed"] == row.passed, (row.method, row.criterion)
        for mine, other in ((row.value, theirs["value"]), (row.baseline, theirs["baseline"])):
            assert (mine is None) == (other is None), (row.method, row.criterion)
            if mine is not None:
                assert other == pytest.approx(mine, abs=TOLERANCE), (row.method, row.criterion)

    # Export: the scorecard files hold the new rows; DICOM PM + SEG per method and the SR still write.
    written = logic.exportResults(result, tmp_path / "export", toDicomDatabase=True, sourceDicomFiles=s["files"])
    names = {p.name for p in written}
    assert {"cr_scorecard.json", "cr_scorecard.csv", "scorecard_sr.dcm"} <= names
    assert {f"saliency_{m}_{kind}.dcm" for m in METHODS for kind in ("pm", "seg")} <= names
    exported = json.loads((tmp_path / "export" / "cr_scorecard.json").read_text())
    assert {r["criterion"] for r in exported["rows"]} == set(RUN_CRITERIA)
    csv_lines = (tmp_path / "export" / "cr_scorecard.csv").read_text().strip().splitlines()
    assert len(csv_lines) == table.GetNumberOfRows() + 1
    sr = pydicom.dcmread(next(p for p in written if p.name == "scorecard_sr.dcm"))
    assert sr.StudyInstanceUID == pydicom.dcmread(s["files"][0]).StudyInstanceUID
    assert slicer.util.arrayFromVolume(result.mapNodes["gradcam"]).shape == s["marker"].shape


def test_the_request_carries_every_criterion_and_setting_to_the_study_process(st, dicom_study, tmp_path):
    """Panel -> request -> request file -> what the child reads: all eight criteria, the marker
    region (voxels), the label-randomized model, the faithfulness / robustness settings; each
    changes the work folder's digest. Nothing runs."""
    from SaliencyTrustLib.cohort.cli_request import read_request, write_request
    from SaliencyTrustLib.io import read_ground_truth, read_image

    s = dicom_study
    logic = s["logic"]
    p = logic.getParameterNode()
    p.inputVolume = s["volume"]
    p.groundTruthSegmentation = s["groundTruth"]
    p.baselineVolumes = [s["baseline"]]
    p.modelPath = s["bundle"]
    p.methods = list(METHODS)
    p.runShortcut = p.runDataRandomization = p.runFaithfulness = p.runRobustness = True
    p.shortcutSegmentation = s["markerNode"]
    p.labelRandomizedModelPath = Path(".")            # the path field's "unset": the bundle's file
    p.faithfulnessFill, p.faithfulnessSteps, p.robustnessShift = "zero", 7, 3
    request = logic.requestFromParameterNode(p)
    assert request.criteria == list(st.CRITERIA)
    assert request.labelRandomizedModelPath == s["bundle"] / "models" / "model_label_randomized.pt"
    assert (request.faithfulnessFill, request.faithfulnessSteps, request.robustnessShift,
            request.robustnessNoiseSigma) == ("zero", 7, 3, None)

    # A model file given in the panel is the one used, built like the model.
    chosen = s["bundle"] / "elsewhere.pt"
    chosen.write_bytes((s["bundle"] / "models" / "model_label_randomized.pt").read_bytes())
    p.labelRandomizedModelPath = chosen
    request = logic.requestFromParameterNode(p)
    assert request.labelRandomizedModelPath == chosen
    cohort, models, settings = logic.studyInputs(request)
    assert models.label_randomized.path == str(chosen)
    assert (settings.criteria, settings.faithfulness_fill, settings.faithfulness_steps, settings.robustness_shift,
            settings.robustness_noise_sigma) == (st.CRITERIA, "zero", 7, 3, None)

    path = write_request(tmp_path / "run" / "request.json", cohort, models, settings, tmp_path / "out", device="cpu")
    cohort2, models2, settings2, _out, _device, _restart = read_request(path)
    assert settings2 == settings and models2 == models
    study, = cohort2.studies
    image = read_image(study.image)
    assert image.same_grid(request.image)
    marker = np.asarray(read_ground_truth(study.shortcut, image)).reshape(s["marker"].shape)
    np.testing.assert_array_equal(marker, request.shortcut)
    np.testing.assert_array_equal(np.asarray(read_ground_truth(study.ground_truth, image)).reshape(
        s["lesion"].shape), request.groundTruth)

    # Every one of them changes the digest (a different Apply never meets this one's files).
    import dataclasses

    digest = logic.requestDigest(request)
    moved = np.roll(request.shortcut, 2, axis=2)
    for change in ({"shortcut": moved}, {"labelRandomizedModelPath": s["bundle"] / "models" /
                                          "model_label_randomized.pt"},
                   {"faithfulnessFill": "mean"}, {"faithfulnessSteps": 8}, {"robustnessShift": 1},
                   {"robustnessNoiseSigma": 0.05}):
        assert logic.requestDigest(dataclasses.replace(request, **change)) != digest, change

    # Unticked, the marker and the label-randomized model are not read (they change no number).
    p.runShortcut = p.runDataRandomization = False
    request = logic.requestFromParameterNode(p)
    assert (request.shortcut, request.labelRandomizedModelPath) == (None, None)


def test_a_criterion_without_its_input_is_refused_with_what_to_do(st, dicom_study, tmp_path):
    s = dicom_study
    logic = s["logic"]
    common = dict(segmentationNode=s["groundTruth"], baselineVolumeNodes=[s["baseline"]])
    with pytest.raises(ValueError, match="select the marker region .* or untick the criterion"):
        logic.makeRequest(s["volume"], s["bundle"], ["gradient"], criteria=["shortcut"], **common)
    empty = s["logic"].scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "empty marker")
    empty.GetSegmentation().AddEmptySegment("", "marker")
    with pytest.raises(ValueError, match="has no voxel"):
        logic.makeRequest(s["volume"], s["bundle"], ["gradient"], criteria=["shortcut"],
                          shortcutSegmentationNode=empty, **common)
    no_label_randomized = make_bundle(tmp_path / "plain-bundle", label_randomized=False)
    with pytest.raises(ValueError, match="label-randomized model.* or untick the criterion"):
        logic.makeRequest(s["volume"], no_label_randomized, ["gradient"], criteria=["data_randomization"], **common)
    weights = no_label_randomized / "models" / "model.pt"
    with pytest.raises(ValueError, match="label-randomized model"):   # a weights file is no bundle
        logic.makeRequest(s["volume"], weights, ["gradient"], criteria=["data_randomization"], **common)
    with pytest.raises(ValueError, match="does not exist"):
        logic.makeRequest(s["volume"], no_label_randomized, ["gradient"], criteria=["data_randomization"],
                          labelRandomizedModelPath=tmp_path / "missing.pt", **common)
    # a label-randomized model given in memory needs no file
    request = logic.makeRequest(s["volume"], no_label_randomized, ["gradient"], criteria=["data_randomization"],
                                inMemoryRoles=("model", "label_randomized"), **common)
    assert request.labelRandomizedModelPath is None
    model, label_randomized = torch.nn.Conv2d(1, 2, 1), torch.nn.Conv2d(1, 2, 1)
    _cohort, models, _settings = logic.studyInputs(request, models={"model": model, "label_randomized": label_randomized})
    assert models.original is model and models.label_randomized is label_randomized
    # ... and a file chosen beside a model in memory is loaded from the file
    chosen = s["bundle"] / "models" / "model_label_randomized.pt"
    request = logic.makeRequest(s["volume"], no_label_randomized, ["gradient"], criteria=["data_randomization"],
                                inMemoryRoles=("model",), labelRandomizedModelPath=chosen, **common)
    _cohort, models, _settings = logic.studyInputs(request, models={"model": model})
    assert models.label_randomized.path == str(chosen)
    # settings the pipeline would refuse are refused before anything runs, naming the setting
    with pytest.raises(ValueError, match="faithfulness_fill"):
        logic.makeRequest(s["volume"], s["bundle"], ["gradient"], criteria=["faithfulness"],
                          faithfulnessFill="black", **common)
    with pytest.raises(ValueError, match="robustness_shift"):
        logic.makeRequest(s["volume"], s["bundle"], ["gradient"], criteria=["robustness"], robustnessShift=-1,
                          **common)

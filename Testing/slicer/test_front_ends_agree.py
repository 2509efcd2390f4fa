"""One small cohort through every front end: the API, ``saliency-trust evaluate``, the bundle's
``trust.json`` and the Slicer Logic give the same numbers and verdicts (issue 11).

The API, the CLI and the bundle evaluate the whole cohort with the same settings: their scorecards
and per-image numbers must be equal. The Slicer module reviews one image at a time: its per-image
numbers (AUPRC, SSIM of each cascade state, SSIM to the replicate and the second architecture) must
equal the cohort's for that image, and its verdicts must equal the API's on the same one-image
study (one image is judged with two named settings, recorded in its scorecard).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "MonaiBundle"
SIZE = 48
METHODS = ("gradient", "gradcam")
CRITERIA = ("localization", "randomization", "repeatability", "reproducibility")
#: Beyond the study: every front end runs them too (``shortcut`` is skipped alike: no marker here).
BEYOND = ("shortcut", "data_randomization", "faithfulness", "robustness")
#: Numbers of a batch of one and of a batch of three, or of 1 and 2 torch threads, may differ in the
#: last float32 bits of the maps; verdicts may not differ at all.
TOLERANCE = 1e-5


def _settings(**overrides):
    from SaliencyTrustLib.cohort import EvaluationSettings
    from SaliencyTrustLib.preprocessing import Preprocessing

    values = dict(methods=METHODS, criteria=CRITERIA + BEYOND, sample_size=3, n_pairs=5, batch_size=3,
                  preprocessing=Preprocessing(in_channels=1, input_size=SIZE, intensity="minmax01"))
    values.update(overrides)
    return EvaluationSettings(**values)


@pytest.fixture(scope="module")
def cohort_runs(tmp_path_factory):
    """The same cohort through the API, the CLI and the bundle; returns their results folders."""
    from SaliencyTrustLib.cli import main
    from SaliencyTrustLib.cohort import StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.io import write_synthetic_cohort

    if not (BUNDLE / "models" / "model.pt").exists():
        pytest.fail("MonaiBundle/models/model.pt is missing: train the bundle first")
    root = tmp_path_factory.mktemp("front-ends")
    write_synthetic_cohort(root / "cohort", n=12, seed=11, size=SIZE, write_seg=False)
    api = evaluate_cohort(load_cohort(str(root / "cohort")), StudyModels.from_bundle(str(BUNDLE)), _settings(),
                          root / "api", progress=False)
    code = main(["evaluate", "--cohort", str(root / "cohort"), "--bundle", str(BUNDLE), "--methods", ",".join(METHODS),
                 "--sample-size", "3", "--n-pairs", "5", "--batch-size", "3", "--input-size", str(SIZE),
                 "--criteria", "all", "--out", str(root / "cli"), "--no-progress", "--no-report"])
    assert code == 0
    override = {"bundle_root": str(BUNDLE), "dataset_dir": str(root / "cohort"), "output_dir": str(root / "bundle"),
                "image_size": [SIZE, SIZE], "write_report": False, "batch_size": 3,
                "saliency_methods": {m: {"_target_": "SaliencyTrustLib.saliency.SaliencyMethod", "method": m}
                                     for m in METHODS},
                "settings#sample_size": 3, "settings#n_pairs": 5, "settings#batch_size": 3,
                "criteria": list(CRITERIA + BEYOND)}
    done = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                           str(BUNDLE / "configs" / "trust.json"), "--meta_file",
                           str(BUNDLE / "configs" / "metadata.json"), "--args_file", _args_file(root, override)],
                          capture_output=True, text=True, timeout=900, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "api": api, "cli": json.loads((root / "cli" / "results.json").read_text()),
            "bundle": json.loads((root / "bundle" / "results.json").read_text())}


def _args_file(root: Path, override: dict) -> str:
    path = root / "override.json"
    path.write_text(json.dumps(override))
    return str(path)


def _rows(results: dict) -> dict:
    return {(r["method"], r["criterion"]): (r["value"], r["baseline"], r["passed"])
            for r in results["scorecard"]["rows"]}


def assert_same_scorecard(one: dict, two: dict) -> None:
    """Same rows, the same verdicts, values and baselines equal to :data:`TOLERANCE`."""
    rows_one, rows_two = _rows(one), _rows(two)
    assert rows_one.keys() == rows_two.keys()
    for key, (value, baseline, passed) in rows_one.items():
        assert rows_two[key][2] == passed, key
        for mine, theirs in ((value, rows_two[key][0]), (baseline, rows_two[key][1])):
            assert (mine is None) == (theirs is None), key
            if mine is not None:
                assert theirs == pytest.approx(mine, abs=TOLERANCE), key


def test_api_cli_and_bundle_give_the_same_scorecard_and_per_image_numbers(cohort_runs):
    api, cli, bundle = cohort_runs["api"], cohort_runs["cli"], cohort_runs["bundle"]
    # the bundle's two localization networks are the study's baselines, in every front end
    networks = api["localization_networks"]["summary"]      # (trained at 224 px: weak on these 48 px images)
    assert networks["auprc"]["n"] == len(api["localization"]["study_ids"]) and networks["ssim"]["mean"] is not None
    for results in (api, cli, bundle):
        row = next(r for r in results["scorecard"]["rows"] if (r["method"], r["criterion"]) == ("gradient", "repeatability"))
        assert row["baseline"] == pytest.approx(networks["ssim"]["mean"], abs=TOLERANCE)
        assert "localization networks" in row["baseline_name"]
        loc = next(r for r in results["scorecard"]["rows"] if (r["method"], r["criterion"]) == ("gradient", "localization"))
        assert loc["details"]["localization_network_auprc"] == pytest.approx(networks["auprc"]["mean"], abs=TOLERANCE)
        assert "vs_localization_network" in loc["details"]
    assert "no study has a shortcut region" in api["skipped_criteria"]["shortcut"]
    ran = CRITERIA + BEYOND[1:]
    assert len(_rows(api)) == (len(METHODS) + len(api["controls"])) * len(ran)
    assert api["models"]["label_randomized"] is not None         # the bundle's shipped label-randomized model
    for other in (cli, bundle):
        assert other["skipped_criteria"] == api["skipped_criteria"]
        assert other["settings"]["preprocessing"] == api["settings"]["preprocessing"]
        assert other["cohort"]["sample"] == api["cohort"]["sample"]
        assert_same_scorecard(other, api)
        for method in METHODS:
            np.testing.assert_allclose(other["localization"]["auprc"][method], api["localization"]["auprc"][method],
                                       atol=TOLERANCE)
            for criterion in ("repeatability", "reproducibility", "data_randomization", "robustness"):
                np.testing.assert_allclose(other[criterion]["ssim"][method], api[criterion]["ssim"][method],
                                           atol=TOLERANCE)
            np.testing.assert_allclose(other["faithfulness"]["score"][method], api["faithfulness"]["score"][method],
                                       atol=TOLERANCE)


def test_the_slicer_logic_gives_the_cohort_numbers_of_each_image_and_the_pipeline_verdicts(cohort_runs, st, scene,
                                                                                           mk):
    from SaliencyTrustLib.cohort import evaluate_cohort, load_cohort
    from SaliencyTrustLib.io import read_image
    from SaliencyTrustLib.preprocessing import Preprocessing

    api, root = cohort_runs["api"], cohort_runs["root"]
    cohort = load_cohort(str(root / "cohort"))
    by_id = {s.study_id: s for s in cohort.studies}
    study_id = api["cohort"]["sample"][0]
    others = [s for s in cohort.studies if s.study_id != study_id][:2]
    logic = st.SaliencyTrustLogic(scene)
    image = read_image(by_id[study_id].image)
    node = logic.createVolumeNode(image, name=study_id)
    mask = np.asarray(read_image(by_id[study_id].ground_truth).array) > 0
    segmentation = mk.add_segmentation_from_labels(scene, mask.astype(np.uint8), image.ijk_to_ras())
    baselines = [logic.createVolumeNode(read_image(s.image), name=s.study_id) for s in others]
    preprocessing = Preprocessing(in_channels=1, input_size=SIZE, intensity="minmax01")
    result = logic.process(node, BUNDLE, list(METHODS), segmentationNode=segmentation,
                           baselineVolumeNodes=baselines, criteria=list(CRITERIA + BEYOND[1:]), preprocessing=preprocessing,
                           workDirectory=root / "slicer")
    mine = result.results
    index = api["localization"]["study_ids"].index(study_id)
    sample_index = api["cohort"]["sample"].index(study_id)
    for method in METHODS:
        assert mine["localization"]["auprc"][method][0] == pytest.approx(
            api["localization"]["auprc"][method][index], abs=TOLERANCE)
        for criterion in ("repeatability", "reproducibility"):
            assert mine[criterion]["ssim"][method][0] == pytest.approx(
                api[criterion]["ssim"][method][sample_index], abs=TOLERANCE)
        cohort_curve = api["randomization"]["curves"][method]["ssim"]
        slicer_curve = mine["randomization"]["curves"][method]["ssim"]
        assert len(slicer_curve) == len(cohort_curve)
        # one image: the state's mean is that image's SSIM; in the cohort it is one of the sample's
        per_state = [state["mean"] for state in slicer_curve]
        assert per_state[-1] == pytest.approx(api["randomization"]["curves"][method]["ssim_final_per_study"]
                                              [sample_index], abs=TOLERANCE)
        # beyond the study: the same numbers for this image (the noise field and the random pixel
        # order are drawn from the run's seed and the image itself, not the study id)
        assert mine["data_randomization"]["ssim"][method][0] == pytest.approx(
            api["data_randomization"]["ssim"][method][sample_index], abs=TOLERANCE)
        for perturbation in ("noise", "shift"):
            assert mine["robustness"]["ssim_by_perturbation"][perturbation][method][0] == pytest.approx(
                api["robustness"]["ssim_by_perturbation"][perturbation][method][sample_index], abs=TOLERANCE)
        for curve in ("deletion_auc", "insertion_auc"):
            assert mine["faithfulness"][curve][method][0] == pytest.approx(
                api["faithfulness"][curve][method][sample_index], abs=TOLERANCE)
    for curve in ("deletion_auc_random", "insertion_auc_random"):
        assert mine["faithfulness"][curve][0] == pytest.approx(api["faithfulness"][curve][sample_index],
                                                               abs=TOLERANCE)
    # The Slicer verdicts are the pipeline's on the same one-image study (its named settings).
    assert mine["settings"]["study_selection"] == "all"
    assert mine["settings"]["localization_baseline"] == "randomized_model"
    cohort_one, models, settings = logic.studyInputs(result.request)
    direct = evaluate_cohort(cohort_one, models, settings, root / "api-one-image", progress=False)
    assert_same_scorecard(direct, mine)
    assert {(r.method, r.criterion, r.passed) for r in result.scorecard.rows} == \
        {(m, c, p) for (m, c), (_v, _b, p) in _rows(direct).items()}
    table = result.tableNode
    assert table.GetNumberOfRows() == (len(METHODS) + len(mine["controls"])) * len(CRITERIA + BEYOND[1:])

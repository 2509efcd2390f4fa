"""The criteria beyond the study, through the one pipeline, on synthetic cohorts whose answer is known.

* shortcut: a model trained where a burned-in marker predicts the label follows the marker on the
  held-out split, and its gradient / GradCAM maps point at it (pass); the same methods on a model
  trained where the marker is independent of the label do not (not a pass); no control passes.
* data randomization: GradCAM of a trained model differs from that of a model trained on permuted
  labels (pass); the edge control (model-independent) fails.
* faithfulness: gradient and GradCAM of a trained model beat a random pixel order; no control does.
* robustness: maps of the trained model under noise / a 2-pixel shift stay closer to the clean map
  than maps of different images; noise redrawn for every input does not pass.

Models are tiny CNNs trained in seconds (``Testing/support/shortcut_models.py``) on 64-px images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort  # noqa: E402
from SaliencyTrustLib.preprocessing import Preprocessing  # noqa: E402

SIZE = 64
METHODS = ("gradient", "gradcam")


def _row(results, method, criterion):
    return next(r for r in results["scorecard"]["rows"] if (r["method"], r["criterion"]) == (method, criterion))


def _settings(**values) -> EvaluationSettings:
    defaults = dict(methods=METHODS, sample_size=40, batch_size=20, n_pairs=10,
                    preprocessing=Preprocessing(in_channels=1, input_size=SIZE))
    return EvaluationSettings(**{**defaults, **values})


@pytest.fixture(scope="module")
def shortcut_cohorts(tmp_path_factory):
    """Two 200-image cohorts with a marker: it follows the label in training (``shortcut``) or is
    independent of it (``clean``); each with its tiny classifier. Test splits: 40 images, 20 marked."""
    import torch

    from SaliencyTrustLib.io.synth import write_synthetic_cohort
    from SaliencyTrustLib.synthetic_shortcut import ShortcutSettings
    from support.shortcut_models import train_tiny_classifier

    root = tmp_path_factory.mktemp("shortcut")
    found = {}
    for name, correlation in (("shortcut", 1.0), ("clean", 0.5)):
        write_synthetic_cohort(root / name, n=200, seed=0, size=SIZE, write_seg=False,
                               shortcut=ShortcutSettings(correlation=correlation))
        torch.manual_seed(0)
        found[name] = train_tiny_classifier(root / name, "training", size=SIZE, epochs=10, seed=0)
    return root, found


@pytest.fixture(scope="module")
def shortcut_runs(shortcut_cohorts):
    """Both models evaluated on the shortcut cohort's held-out split (every image: study_selection all)."""
    root, models = shortcut_cohorts
    cohort = load_cohort(str(root / "shortcut"), split="test")
    return {name: evaluate_cohort(cohort, StudyModels(original=model),
                                  _settings(criteria=("shortcut",), study_selection="all"),
                                  root / f"out-{name}", progress=False)
            for name, model in models.items()}


def test_the_shortcut_model_follows_the_marker_and_the_clean_model_does_not(shortcut_runs):
    relies = shortcut_runs["shortcut"]["shortcut"]["model_reliance"]
    assert relies["positive_rate_with_marker"] == {"rate": 1.0, "n": 20}
    assert relies["positive_rate_without_marker"] == {"rate": 0.0, "n": 20}
    assert relies["accuracy_with_marker"]["rate"] == pytest.approx(0.5)      # the marker is blind to the label here
    clean = shortcut_runs["clean"]["shortcut"]["model_reliance"]
    assert abs(clean["positive_rate_with_marker"]["rate"] - clean["positive_rate_without_marker"]["rate"]) < 0.5


def test_maps_of_the_shortcut_model_reveal_the_marker_and_those_of_the_clean_model_do_not(shortcut_runs):
    used, ignored = shortcut_runs["shortcut"], shortcut_runs["clean"]
    assert len(used["shortcut"]["study_ids"]) == 20
    for method in METHODS:
        row = _row(used, method, "shortcut")
        assert row["passed"] is True, (method, row["details"])
        assert row["value"] > 0.3 > row["baseline"]
        assert row["value"] > 5 * row["details"]["lesion_auprc"]        # the marker, not the lesion
        assert _row(ignored, method, "shortcut")["passed"] is not True
    assert _row(ignored, "gradient", "shortcut")["passed"] is False
    for results in (used, ignored):
        for control in results["controls"]:
            assert _row(results, control, "shortcut")["passed"] is not True, control
    # the edge detector lights the bright marker on both models alike: no credit, however high
    edge = _row(used, "control_edge", "shortcut")
    assert edge["value"] == pytest.approx(edge["baseline"])


def test_the_shortcut_criterion_is_in_the_report_csv_and_skipped_with_a_reason_without_markers(shortcut_runs,
                                                                                               shortcut_cohorts,
                                                                                               tmp_path):
    from SaliencyTrustLib.report import write_report

    root, models = shortcut_cohorts
    report = write_report(root / "out-shortcut", shortcut_runs["shortcut"]).read_text()
    assert "Shortcut revealed" in report and 'id="shortcut-reliance"' in report and 'id="fig-beyond"' in report
    csv_text = (root / "out-shortcut" / "scorecard.csv").read_text()
    assert sum(1 for line in csv_text.splitlines() if ",shortcut," in line) == len(METHODS) + 4
    cohort = load_cohort(str(root / "shortcut"), split="test")
    for study in cohort.studies:
        object.__setattr__(study, "shortcut", None)
    results = evaluate_cohort(cohort, StudyModels(original=models["shortcut"]),
                              _settings(criteria=("shortcut",), study_selection="all", methods=("gradient",)),
                              tmp_path / "out", progress=False)
    assert "no study has a shortcut region" in results["skipped_criteria"]["shortcut"]
    assert not any(r["criterion"] == "shortcut" for r in results["scorecard"]["rows"])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A plain synthetic cohort (no marker), a classifier and one trained on permuted labels;
    data randomization, faithfulness and robustness on every test image (40)."""
    import torch

    from SaliencyTrustLib.io.synth import write_synthetic_cohort
    from support.shortcut_models import train_tiny_classifier

    root = tmp_path_factory.mktemp("labels")
    write_synthetic_cohort(root / "cohort", n=200, seed=1, size=SIZE, write_seg=False)
    torch.manual_seed(0)
    trained = train_tiny_classifier(root / "cohort", "training", size=SIZE, epochs=10, seed=0)
    permuted = train_tiny_classifier(root / "cohort", "training", size=SIZE, epochs=10, seed=0, permute_labels=True)
    cohort = load_cohort(str(root / "cohort"), split="test")
    settings = _settings(criteria=("data_randomization", "faithfulness", "robustness"), study_selection="all")
    return evaluate_cohort(cohort, StudyModels(original=trained, label_randomized=permuted), settings, root / "out",
                           progress=False)


def test_data_randomization_passes_model_maps_and_fails_a_model_independent_one(trained_run):
    results = trained_run
    assert results["data_randomization"]["study_ids"] == results["cohort"]["sample"]
    edge = _row(results, "control_edge", "data_randomization")
    assert edge["value"] == pytest.approx(1.0) and edge["passed"] is False        # the same map for both models
    gradcam = _row(results, "gradcam", "data_randomization")
    assert gradcam["baseline_name"] == "different-image mean SSIM"
    assert gradcam["passed"] is True and gradcam["value"] < gradcam["baseline"] - 0.2, gradcam["details"]
    # the gradient of a near-chance label-randomized model is close to its baseline: never a fail, and far
    # from the edge detector's identical maps
    gradient = _row(results, "gradient", "data_randomization")
    assert gradient["passed"] is not False and gradient["value"] < 0.5
    assert gradient["details"]["rank_verdict"]["n_images"] == 40
    for control in ("control_uniform", "control_single_pixel", "control_constant"):
        assert _row(results, control, "data_randomization")["passed"] is not True, control


def test_faithfulness_passes_maps_of_the_trained_model_and_no_control(trained_run):
    results = trained_run
    block = results["faithfulness"]
    assert len(block["score_random"]) == 40 and block["settings"]["steps"] == 20
    for method in METHODS:
        row = _row(results, method, "faithfulness")
        assert row["passed"] is True, (method, row["details"])
        assert row["details"]["deletion_auc"] <= row["details"]["deletion_auc_random"] + 0.02
        assert row["details"]["insertion_auc"] > row["details"]["insertion_auc_random"]
    # the random order is one per study, the same for every method
    assert {_row(results, m, "faithfulness")["baseline"] for m in METHODS + ("control_uniform",)} == {
        _row(results, "gradient", "faithfulness")["baseline"]}
    for control in results["controls"]:
        assert _row(results, control, "faithfulness")["passed"] is not True, control
    assert _row(results, "control_edge", "faithfulness")["passed"] is False


def test_robustness_passes_stable_maps_fails_redrawn_noise_and_keeps_the_prediction(trained_run):
    results = trained_run
    block = results["robustness"]
    assert block["perturbations"] == ["noise", "shift"] and block["settings"]["shift_pixels"] == 2
    assert block["prediction_changed"]["noise"]["n"] == 40
    # each image's own noise level (the synthetic radiographs carry noise of sd ~0.02 before smoothing)
    assert block["noise_sigma"]["n"] == 40 and 0.001 < block["noise_sigma"]["median"] < 0.1
    for method in METHODS:
        row = _row(results, method, "robustness")
        assert row["passed"] is True, (method, row["details"])
        assert row["value"] == pytest.approx(min(row["details"]["ssim_noise"], row["details"]["ssim_shift"]), abs=0.05)
    assert _row(results, "gradcam", "robustness")["details"]["ssim_noise"] > 0.95
    for control in ("control_uniform", "control_single_pixel"):     # redrawn for every input: no better than
        assert _row(results, control, "robustness")["passed"] is not True, control   # two different images
    # a model-independent map is stable by construction: it may pass, but no method has to beat it
    assert "unbeaten_controls" not in _row(results, "gradcam", "robustness")["details"]

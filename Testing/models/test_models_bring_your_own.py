"""A lab's own classifier enters every front end (issue 11): its own class as weights + factory,
TorchScript, a MONAI bundle, a pickle behind --allow-pickle; 3 channels, its own normalization."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
#: Edge of the synthetic images and of the lab model's input (as in this folder's conftest).
SIZE = 48
LAB_FACTORY_FILE = REPO / "Testing" / "support" / "lab_models.py"
LAB_METHODS = ("gradient", "integrated_gradients", "gradcam")


def _settings(**overrides):
    from SaliencyTrustLib.cohort import EvaluationSettings
    from SaliencyTrustLib.preprocessing import Preprocessing

    values = dict(methods=LAB_METHODS, method_params={"integrated_gradients": {"n_steps": 4}},
                  criteria=("localization",), batch_size=4, sample_size=3, n_pairs=5,
                  preprocessing=Preprocessing(input_size=SIZE, intensity="imagenet"))
    values.update(overrides)
    return EvaluationSettings(**values)


def _evaluate(cohort_dir, spec, out, **overrides):
    from SaliencyTrustLib.cohort import StudyModels, evaluate_cohort, load_cohort

    return evaluate_cohort(load_cohort(str(cohort_dir)), StudyModels(original=spec), _settings(**overrides), out,
                           progress=False)


@pytest.fixture(scope="module")
def by_factory(lab_cohort, lab_model_files, tmp_path_factory):
    from SaliencyTrustLib.model_spec import ModelSpec

    spec = ModelSpec(path=str(lab_model_files["weights"]), factory=f"{LAB_FACTORY_FILE}:build_lab_net",
                     kwargs={"width": 8})
    return _evaluate(lab_cohort, spec, tmp_path_factory.mktemp("factory") / "out")


def test_the_lab_model_as_weights_torchscript_bundle_or_pickle_gives_the_same_maps(
        by_factory, lab_cohort, lab_model_files, tmp_path):
    from SaliencyTrustLib.model_spec import ModelSpec

    assert by_factory["preprocessing"]["in_channels"] == 3          # read from the first convolution
    assert by_factory["preprocessing"]["intensity"] == "imagenet"
    assert by_factory["skipped_methods"] == {}
    forms = {
        "module factory": ModelSpec(path=str(lab_model_files["weights"]), factory="support.lab_models:build_lab_net"),
        "torchscript": ModelSpec(path=str(lab_model_files["torchscript"])),
        "bundle": ModelSpec(path=str(lab_model_files["bundle"])),
        "pickle": ModelSpec(path=str(lab_model_files["pickle"]), allow_pickle=True),
    }
    for name, spec in forms.items():
        results = _evaluate(lab_cohort, spec, tmp_path / name.replace(" ", "_"))
        for method in ("gradient", "integrated_gradients"):
            np.testing.assert_allclose(results["localization"]["auprc"][method],
                                       by_factory["localization"]["auprc"][method], atol=1e-6, err_msg=name)
        if name == "torchscript":        # GradCAM needs module hooks: said once, the others ran
            assert list(results["skipped_methods"]) == ["gradcam"]
            assert "TorchScript" in results["skipped_methods"]["gradcam"]
            assert "gradcam" not in results["methods"]
        else:
            np.testing.assert_allclose(results["localization"]["auprc"]["gradcam"],
                                       by_factory["localization"]["auprc"]["gradcam"], atol=1e-6, err_msg=name)


def test_the_imagenet_normalization_reaches_the_network(lab_model_files, lab_cohort):
    """The lab's own normalization is applied: the network sees ImageNet-normalized channels."""
    from SaliencyTrustLib.cohort import load_cohort
    from SaliencyTrustLib.io import read_image
    from SaliencyTrustLib.preprocessing import Preprocessing

    image = read_image(load_cohort(str(lab_cohort)).studies[0].image)
    x, _ = Preprocessing(in_channels=3, input_size=SIZE, intensity="imagenet").image_to_model(image, 2)
    unit, _ = Preprocessing(in_channels=3, input_size=SIZE, intensity="minmax01").image_to_model(image, 2)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(x, (unit - mean[:, None, None]) / std[:, None, None], atol=1e-5)


def test_every_command_line_front_end_takes_the_lab_model(by_factory, lab_cohort, lab_model_files, tmp_path):
    from SaliencyTrustLib.cli import main
    from SaliencyTrustLib.cohort import load_cohort
    from SaliencyTrustLib.io import read_image

    # saliency-trust evaluate: weights + a factory file + its kwargs + the lab's normalization
    code = main(["evaluate", "--cohort", str(lab_cohort), "--model", str(lab_model_files["weights"]),
                 "--model-factory", f"{LAB_FACTORY_FILE}:build_lab_net", "--model-kwargs", '{"width": 8}',
                 "--intensity", "imagenet", "--input-size", str(SIZE), "--methods", ",".join(LAB_METHODS),
                 "--method-param", "integrated_gradients.n_steps=4", "--criteria", "localization",
                 "--batch-size", "4", "--out", str(tmp_path / "cli"), "--no-progress", "--no-report"])
    assert code == 0
    cli = json.loads((tmp_path / "cli" / "results.json").read_text())
    for method in LAB_METHODS:
        np.testing.assert_allclose(cli["localization"]["auprc"][method], by_factory["localization"]["auprc"][method],
                                   atol=1e-5)
    # saliency-trust saliency: the TorchScript file, map back on the image's grid
    study = load_cohort(str(lab_cohort)).studies[0]
    code = main(["saliency", "--image", study.image, "--model", str(lab_model_files["torchscript"]),
                 "--intensity", "imagenet", "--input-size", str(SIZE), "--method", "gradient",
                 "--out", str(tmp_path / "maps")])
    assert code == 0
    stem = Path(study.image).name.split(".")[0]
    written = read_image(tmp_path / "maps" / f"{stem}_gradient.nii.gz")
    assert written.same_grid(read_image(study.image))
    # the bundle's trust workflow: the lab's model and preprocessing given as config overrides
    override = {"bundle_root": str(REPO / "MonaiBundle"), "dataset_dir": str(lab_cohort),
                "output_dir": str(tmp_path / "bundle"), "image_size": [SIZE, SIZE], "write_report": False,
                "batch_size": 4,
                "model_files#original": {"_target_": "SaliencyTrustLib.model_spec.ModelSpec",
                                         "path": str(lab_model_files["weights"]),
                                         "factory": f"{LAB_FACTORY_FILE}:build_lab_net", "kwargs": {"width": 8}},
                "model_files#replicate": None, "model_files#second_arch": None,
                # the bundle's localizers take its own 1-channel input, not the lab's 3 channels
                "model_files#localizer": None, "model_files#localizer_replicate": None,
                "preprocessing_def#in_channels": 3, "preprocessing_def#intensity": "imagenet",
                "saliency_methods": {"gradient": {"_target_": "SaliencyTrustLib.saliency.SaliencyMethod",
                                                  "method": "gradient"}},
                "settings#criteria": ["localization"], "settings#batch_size": 4}
    (tmp_path / "override.json").write_text(json.dumps(override))
    done = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file",
                           str(REPO / "MonaiBundle" / "configs" / "trust.json"), "--args_file",
                           str(tmp_path / "override.json")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    bundle = json.loads((tmp_path / "bundle" / "results.json").read_text())
    assert bundle["preprocessing"]["in_channels"] == 3
    np.testing.assert_allclose(bundle["localization"]["auprc"]["gradient"], by_factory["localization"]["auprc"]["gradient"],
                               atol=1e-5)


def test_a_three_channel_densenet121_runs_the_four_criteria_with_the_study_preset(lab_cohort, lab_model_files, tmp_path):
    """MONAI's DenseNet121 with 3 channels (the study's second architecture) as weights + an
    importable factory, the study's preprocessing (3 channels, [-1, 1]) at 64 px, the lab's CNN as
    the second architecture."""
    from SaliencyTrustLib.cohort import StudyModels
    from SaliencyTrustLib.model_spec import ModelSpec
    from SaliencyTrustLib.preprocessing import Preprocessing
    from support.lab_models import densenet121_3ch, trained_weights

    for seed, name in ((0, "d121.pt"), (1, "d121_replicate.pt")):
        torch.manual_seed(seed)
        torch.save(trained_weights(densenet121_3ch(), seed).state_dict(), tmp_path / name)
    factory = "support.lab_models:densenet121_3ch"
    models = StudyModels(original=ModelSpec(path=str(tmp_path / "d121.pt"), factory=factory),
                         replicate=ModelSpec(path=str(tmp_path / "d121_replicate.pt"), factory=factory),
                         second_arch=ModelSpec(path=str(lab_model_files["weights"]),
                                               factory="support.lab_models:build_lab_net"))
    from SaliencyTrustLib.cohort import load_cohort
    from SaliencyTrustLib.cohort.runner import evaluate_cohort

    settings = _settings(methods=("gradient", "gradcam"), method_params={},
                         criteria=("localization", "randomization", "repeatability", "reproducibility"),
                         sample_size=2, max_studies=3, preprocessing=Preprocessing.preset("study", input_size=64))
    results = evaluate_cohort(load_cohort(str(lab_cohort)), models, settings, tmp_path / "out", progress=False)
    assert results["preprocessing"] == {"in_channels": 3, "input_size": 64, "resize": "squash",
                                        "intensity": "minmax11", "orient": True}
    assert results["skipped_criteria"] == {} and not results["failures"]
    rows = results["scorecard"]["rows"]
    assert {(r["method"], r["criterion"]) for r in rows} == {(m, c) for m in ("gradient", "gradcam", *results["controls"])
                                                             for c in
                                                             ("localization", "randomization", "repeatability",
                                                              "reproducibility")}
    # a gradient map is never constant, so every gradient number is defined (a GradCAM map of a
    # 2 x 2 feature map may be, and is then dropped as in the study)
    assert all(r["value"] is not None for r in rows if r["method"] == "gradient"), rows
    assert len(results["randomization"]["states"]) > 5                   # DenseNet121's blocks, top-down


@pytest.mark.parametrize("case", ["no_architecture", "missing_factory", "wrong_kwargs", "wrong_channels",
                                  "pickle_refused", "not_a_model", "missing_file"])
def test_a_bad_model_is_one_line_naming_the_file_and_the_fix_before_any_work(case, lab_cohort, lab_model_files,
                                                                           tmp_path, capsys):
    from SaliencyTrustLib.cli import main

    weights = str(lab_model_files["weights"])
    text_file = tmp_path / "notes.pt"
    text_file.write_text("not a model")
    model_args = {
        "no_architecture": ["--model", weights],
        "missing_factory": ["--model", weights, "--model-factory", "support.no_such_module:build"],
        "wrong_kwargs": ["--model", weights, "--model-factory", f"{LAB_FACTORY_FILE}:build_lab_net",
                         "--model-kwargs", '{"width": 4}'],
        "wrong_channels": ["--model", str(lab_model_files["torchscript"]), "--in-channels", "1"],
        "pickle_refused": ["--model", str(lab_model_files["pickle"])],
        "not_a_model": ["--model", str(text_file)],
        "missing_file": ["--model", str(tmp_path / "absent.pt")],
    }[case]
    code = main(["evaluate", "--cohort", str(lab_cohort), *model_args, "--input-size", str(SIZE),
                 "--methods", "gradient", "--out", str(tmp_path / "out"), "--no-progress"])
    error = capsys.readouterr().err.strip()
    assert code != 0
    assert len(error.splitlines()) == 1, error
    assert "Fix:" in error
    named = {"wrong_channels": "lab.ts", "pickle_refused": "lab_pickled.pt", "not_a_model": "notes.pt",
             "missing_file": "absent.pt", "missing_factory": "support.no_such_module"}.get(case, "lab.pt")
    assert named in error
    assert not (tmp_path / "out" / "results.json").exists()               # refused before any work
    expected = {"no_architecture": "--model-factory", "missing_factory": "cannot import",
                "wrong_kwargs": "do not fit", "wrong_channels": "channels", "pickle_refused": "--allow-pickle",
                "not_a_model": "not a PyTorch file", "missing_file": "no such model file"}[case]
    assert expected in error


def test_the_cli_prints_no_traceback_for_a_bad_model(lab_cohort, lab_model_files, tmp_path):
    done = subprocess.run([sys.executable, "-m", "SaliencyTrustLib", "evaluate", "--cohort", str(lab_cohort),
                           "--model", str(lab_model_files["weights"]), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr


def test_a_configuration_that_fails_every_study_exits_non_zero(lab_model_files, tmp_path, capsys):
    """Every image unreadable: the run records why, prints its summary, and exits 4."""
    from SaliencyTrustLib.cli import main

    (tmp_path / "broken.nii.gz").write_bytes(b"not an image")
    (tmp_path / "datalist.json").write_text(json.dumps({"test": [
        {"image": "broken.nii.gz", "label": 1, "mask": "broken.nii.gz", "case_id": "a"},
        {"image": "broken.nii.gz", "label": 1, "mask": "broken.nii.gz", "case_id": "b"}]}))
    code = main(["evaluate", "--cohort", str(tmp_path / "datalist.json"), "--model", str(lab_model_files["torchscript"]),
                 "--input-size", str(SIZE), "--methods", "gradient", "--criteria", "localization",
                 "--out", str(tmp_path / "out"), "--no-progress", "--no-report"])
    assert code == 4
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert sorted(results["failures"]) == ["a", "b"] and results["cohort"]["n_units_stored"] == 0
    assert "2 studies skipped" in capsys.readouterr().out


def test_localization_networks_that_do_not_take_the_classifier_input_are_refused_before_any_work(
        lab_cohort, lab_model_files, tmp_path):
    from SaliencyTrustLib.cohort import StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.model_spec import ModelError, ModelSpec

    bundle_models = REPO / "MonaiBundle" / "models"
    models = StudyModels(original=ModelSpec(path=str(lab_model_files["torchscript"])),
                         localizer=str(bundle_models / "localizer.pt"),
                         localizer_replicate=str(bundle_models / "localizer_replicate.pt"))
    with pytest.raises(ModelError, match="localization network does not accept the classifier's input"):
        evaluate_cohort(load_cohort(str(lab_cohort)), models, _settings(), tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "results.json").exists()


def test_a_model_no_requested_criterion_uses_is_not_loaded_and_refused_when_one_does(
        lab_cohort, lab_model_files, tmp_path):
    """The bundle's 1-channel label-randomized model beside the lab's 3-channel classifier: a
    localization-only run ignores it; a data-randomization run refuses it before any work."""
    from SaliencyTrustLib.cohort import StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.model_spec import ModelError, ModelSpec

    one_channel = str(REPO / "MonaiBundle" / "models" / "model_label_randomized.pt")
    models = StudyModels(original=ModelSpec(path=str(lab_model_files["torchscript"])), label_randomized=one_channel)
    results = evaluate_cohort(load_cohort(str(lab_cohort)), models, _settings(methods=("gradient",)),
                              tmp_path / "localization", progress=False)
    assert results["localization"]["auprc"]["gradient"] is not None
    assert "label_randomized" not in json.loads((tmp_path / "localization" / "run.json").read_text())["config"]["models"]
    with pytest.raises(ModelError, match="model_label_randomized.pt: the label_randomized model does not take "
                                         "the original model's input.*leave it out.*model_files#label_randomized"):
        evaluate_cohort(load_cohort(str(lab_cohort)), models,
                        _settings(methods=("gradient",), criteria=("localization", "data_randomization")),
                        tmp_path / "data_randomization", progress=False)
    assert not (tmp_path / "data_randomization" / "results.json").exists()

"""Adebayo et al. (NeurIPS 2018) on the bundle's trained classifier, through the study pipeline:
Guided Backprop's map barely changes when the top blocks are randomized (it follows the image,
not the model), while GradCAM and the gradient fall."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_guided_backprop_stays_above_half_at_the_top_states_while_gradcam_and_gradient_fall(tmp_path):
    from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.io import write_synthetic_cohort
    from SaliencyTrustLib.preprocessing import Preprocessing

    if not (REPO / "MonaiBundle" / "models" / "model.pt").exists():
        pytest.fail("MonaiBundle/models/model.pt is missing: train the bundle first")
    write_synthetic_cohort(tmp_path / "cohort", n=20, seed=9, write_seg=False)
    settings = EvaluationSettings(methods=("gradient", "gradcam", "guided_backprop"), criteria=("randomization",),
                                  sample_size=6, n_pairs=5, batch_size=6, controls=(),
                                  preprocessing=Preprocessing(in_channels=1, input_size=224))
    results = evaluate_cohort(load_cohort(str(tmp_path / "cohort")), StudyModels.from_bundle(str(REPO / "MonaiBundle")),
                              settings, tmp_path / "out", progress=False)
    ran = results["randomization"]
    assert ran["state_labels"][1] == "01_class_layers"                      # top-down: the logit layer first
    curve = {m: [state["mean"] for state in ran["curves"][m]["ssim"]] for m in settings.methods}
    top = range(4)                                                           # logit layer .. the last dense block
    assert all(curve["guided_backprop"][i] > 0.5 for i in top), curve
    assert all(curve["gradcam"][i] < 0.5 for i in range(len(curve["gradcam"]))), curve
    assert min(curve["gradient"][:4]) < 0.5, curve
    for i in top:
        assert curve["guided_backprop"][i] > max(curve["gradcam"][i], curve["gradient"][i]), (i, curve)
    assert curve["guided_backprop"][-1] < 0.5                                # only the bottom layers move it

"""Verdicts with their uncertainty, and the negative controls that a verdict must survive."""

from __future__ import annotations

import numpy as np
import pytest

from SaliencyTrustLib.criteria.verdicts import paired_verdict


def test_a_clear_margin_passes_and_a_clear_deficit_fails():
    rng = np.random.default_rng(0)
    baseline = rng.random(40)
    better = paired_verdict(baseline + 0.2 + 0.01 * rng.standard_normal(40), baseline)
    assert better.status == "pass" and better.passed is True and better.ci_low > 0
    worse = paired_verdict(baseline - 0.2, baseline)
    assert worse.status == "fail" and worse.passed is False and worse.ci_high < 0
    # lower is better (the randomization SSIM): the same numbers, the other way round
    assert paired_verdict(baseline - 0.2, baseline, higher_is_better=False).status == "pass"


def test_a_margin_inside_the_noise_or_too_few_images_is_undecided_with_the_reason():
    rng = np.random.default_rng(1)
    baseline = rng.random(60)
    noisy = baseline + 0.002 + 0.2 * rng.standard_normal(60)        # the "0.019 vs 0.021" case
    verdict = paired_verdict(noisy, baseline)
    assert verdict.status == "undecided" and verdict.passed is None
    assert verdict.ci_low < 0 < verdict.ci_high and "includes 0" in verdict.reason
    few = paired_verdict([0.9, 0.8, 0.95], [0.1, 0.2, 0.1])            # 2-3 images never say "trusted"
    assert few.status == "undecided" and "fewer than the minimum 20" in few.reason
    assert paired_verdict([0.9, 0.8, 0.95], [0.1, 0.2, 0.1], min_images=3).status == "pass"


def test_undefined_pairs_are_dropped_and_counted_and_the_interval_is_seeded():
    values = [0.5, None, float("nan")] + [0.9] * 25
    baseline = [0.1, 0.1, 0.1] + [0.2] * 25
    verdict = paired_verdict(values, baseline)
    assert verdict.n_images == 26 and verdict.n_dropped == 2
    again = paired_verdict(values, baseline)
    assert (again.ci_low, again.ci_high) == (verdict.ci_low, verdict.ci_high)
    with pytest.raises(ValueError, match="one of each per image"):
        paired_verdict([1.0, 2.0], [1.0])


@pytest.fixture(scope="module")
def controlled_run(tmp_path_factory):
    """24 positive synthetic radiographs (32 px), a random-weight classifier and its replicate,
    the gradient and the four negative controls through every criterion."""
    import torch

    from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.io import write_synthetic_cohort
    from SaliencyTrustLib.networks import build_classifier
    from SaliencyTrustLib.preprocessing import Preprocessing

    root = tmp_path_factory.mktemp("controls")
    write_synthetic_cohort(root / "cohort", n=80, seed=4, size=32, write_seg=False)   # 24 positive training images
    torch.manual_seed(0)
    model = build_classifier("densenet_small").eval()
    torch.manual_seed(1)
    replicate = build_classifier("densenet_small").eval()
    settings = EvaluationSettings(methods=("gradient",), criteria=("localization", "randomization", "repeatability"),
                                  sample_size=24, n_pairs=10, batch_size=12,
                                  preprocessing=Preprocessing(in_channels=1, input_size=32))
    return evaluate_cohort(load_cohort(str(root / "cohort"), split="training"),
                           StudyModels(original=model, replicate=replicate),
                           settings, root / "out", progress=False)


def _row(results, method, criterion):
    return next(r for r in results["scorecard"]["rows"] if (r["method"], r["criterion"]) == (method, criterion))


def test_the_negative_controls_never_pass_and_each_fails_where_it_should(controlled_run):
    results = controlled_run
    assert results["cohort"]["n_sample"] >= 20
    assert set(results["controls"]) == {"control_uniform", "control_single_pixel", "control_constant", "control_edge"}
    # uniform noise localizes no better than the average mask: not a pass
    assert _row(results, "control_uniform", "localization")["passed"] is not True
    # a map that ignores the model (the image's edges) cannot pass randomization: it fails it
    edge = _row(results, "control_edge", "randomization")
    assert edge["passed"] is False and edge["value"] == pytest.approx(1.0)
    # noise redrawn per model state is "sensitive" but meaningless: never a pass (Binder et al.)
    for control in ("control_uniform", "control_single_pixel"):
        assert _row(results, control, "randomization")["passed"] is not True, control
    # a constant map has no defined number: undecided, with the reason
    constant = _row(results, "control_constant", "localization")
    assert constant["passed"] is None and constant["details"]["reason"] == "no image has both numbers defined"
    # every row says whether it is a control; the trusted summary is about methods only
    assert all(r["details"]["control"] == r["method"].startswith("control_") for r in results["scorecard"]["rows"])
    assert set(results["scorecard"]["summary"]) >= {"gradient"}


def test_the_study_faithful_guided_gradcam_is_the_normalized_product_without_a_second_clip(tmp_path):
    """``method_postprocess={"guided_gradcam": "minmax"}``: the pipeline's map is the product of
    the two normalized maps, min-max scaled, not clipped again at its 99th percentile."""
    import torch

    from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.cohort.store import load_map, map_relpath
    from SaliencyTrustLib.cohort.units import ORIGINAL, Unit
    from SaliencyTrustLib.io import read_image, write_synthetic_cohort
    from SaliencyTrustLib.networks import build_classifier
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.saliency import compute_saliency

    write_synthetic_cohort(tmp_path / "cohort", n=10, seed=2, size=32, write_seg=False)
    torch.manual_seed(0)
    model = build_classifier("densenet_small").eval()
    pre = Preprocessing(in_channels=1, input_size=32)
    settings = EvaluationSettings(methods=("guided_gradcam",), criteria=("localization",), controls=(),
                                  method_postprocess={"guided_gradcam": "minmax"}, preprocessing=pre)
    cohort = load_cohort(str(tmp_path / "cohort"))
    results = evaluate_cohort(cohort, StudyModels(original=model), settings, tmp_path / "out", progress=False)
    study = next(s for s in cohort.studies if s.study_id == results["localization"]["study_ids"][0])
    x = torch.from_numpy(pre.image_to_model(read_image(study.image), 2)[0])[None]
    stored = load_map(tmp_path / "out", map_relpath(Unit(study.study_id, "guided_gradcam", ORIGINAL)))
    unclipped = compute_saliency(model, x, "guided_gradcam", postprocess="minmax")[0].numpy()
    clipped = compute_saliency(model, x, "guided_gradcam", postprocess="paper")[0].numpy()
    np.testing.assert_allclose(stored, unclipped, atol=1e-6)
    assert not np.allclose(unclipped, clipped)                       # the second clip is really gone
    assert results["settings"]["method_postprocess"] == {"guided_gradcam": "minmax"}

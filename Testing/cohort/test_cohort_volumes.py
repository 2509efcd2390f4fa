"""A cohort of CT volumes with a 3D model: studies prepared on an ``(S, S, S)`` grid, 3D maps, the
numbers of the volumes, and the gallery showing the lesion's slice; a 2D model is refused volumes
and a 3D model radiographs, each with the reason."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

from SaliencyTrustLib.preprocessing import Preprocessing

SIZE = 16          # model input edge, voxels


@pytest.fixture(scope="module")
def ct_run(tmp_path_factory):
    import torch

    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.io import write_synthetic_cohort
    from SaliencyTrustLib.networks import build_classifier, save_classifier
    from SaliencyTrustLib.report import write_report

    root = tmp_path_factory.mktemp("ct")
    write_synthetic_cohort(root / "cohort", n=16, seed=5, kind="ct", size=24, write_seg=False)
    torch.manual_seed(0)
    save_classifier(build_classifier("densenet_small", spatial_dims=3), root / "model3d.pt",
                    "densenet_small")
    settings = EvaluationSettings(methods=("gradient", "gradcam"),
                                  criteria=("localization", "randomization"), preprocessing=Preprocessing(input_size=SIZE),
                                  batch_size=4, sample_size=3, n_pairs=2, seed=0)
    out = root / "out"
    results = evaluate_cohort(load_cohort(str(root / "cohort")), StudyModels(str(root / "model3d.pt")),
                              settings, out, device="cpu", progress=False)
    return results, write_report(out, results), out, root


def test_volumes_are_evaluated_on_their_3d_grid_and_the_numbers_are_the_metrics(ct_run):
    from SaliencyTrustLib.metrics import auprc

    results, _, out, _ = ct_run
    assert results["failures"] == {}
    loc = results["localization"]
    values = [v for v in loc["auprc"]["gradient"] if v is not None]
    assert values and all(0.0 <= v <= 1.0 for v in values)
    assert results["gallery"], "the sample keeps inputs for the gallery"
    for item in results["gallery"]:
        mask = np.load(out / item["mask"]).astype(bool)
        assert np.load(out / item["image"]).shape == mask.shape == (SIZE,) * 3
        index = loc["study_ids"].index(item["study_id"])
        for method in ("gradient", "gradcam"):
            saliency = np.load(out / item["maps"][method])
            assert saliency.shape == (SIZE,) * 3
            # the stored number is metrics.auprc of the stored volume map and mask (None where
            # that is undefined: a constant GradCAM volume, see below)
            expected = float(auprc(saliency[None], mask[None])[0])
            recorded = loc["auprc"][method][index]
            assert (recorded is None and np.isnan(expected)) or recorded == pytest.approx(expected,
                                                                                          abs=1e-12)
    assert all(loc["auprc"]["gradient"][loc["study_ids"].index(item["study_id"])] is not None
               for item in results["gallery"])
    # (GradCAM of this small net on 16^3 voxels is upsampled from a 1-voxel feature map: constant)
    curve = results["randomization"]["curves"]["gradient"]["ssim"]
    assert curve and all(point["mean"] is not None and -1.0 <= point["mean"] <= 1.0 for point in curve)


def test_the_gallery_shows_the_slice_with_the_most_lesion(ct_run):
    from SaliencyTrustLib.report.figures import _shown_slice

    results, report, out, _ = ct_run
    item = results["gallery"][0]
    image, mask = np.load(out / item["image"]), np.load(out / item["mask"])
    index = _shown_slice(image, mask)
    assert mask[index].sum() == mask.sum(axis=(1, 2)).max() > 0
    page = Path(report).read_text()
    match = re.search(r'<img id="fig-gallery"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match and base64.b64decode(match.group(1))[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_2d_model_refuses_volumes_and_a_3d_model_radiographs_with_the_reason(ct_run, tiny_cohort,
                                                                               tmp_path):
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.cohort import load_cohort
    from SaliencyTrustLib.cohort.prepare import prepare_study

    _, _, _, root = ct_run
    volumes = load_cohort(str(root / "cohort"))
    with pytest.raises(ValueError, match="slice volume cannot enter a 2D model"):
        prepare_study(volumes.studies[0], volumes, Preprocessing(input_size=32), tmp_path, spatial_dims=2)
    radiographs = load_cohort(str(tiny_cohort["cohort"]))
    with pytest.raises(ValueError, match="single-slice image cannot enter a 3D model"):
        prepare_study(radiographs.studies[0], radiographs, Preprocessing(input_size=32), tmp_path, spatial_dims=3)


def test_the_model_weights_decide_its_dimensions_and_the_default_input_size(ct_run, tiny_cohort):
    from SaliencyTrustLib.networks import load_classifier, model_spatial_dims

    _, _, _, root = ct_run
    assert model_spatial_dims(load_classifier(root / "model3d.pt")) == 3       # no spatial_dims=
    assert Preprocessing().model_shape(model_spatial_dims(load_classifier(root / "model3d.pt"))) == (64, 64, 64)
    assert Preprocessing().model_shape(model_spatial_dims(load_classifier(tiny_cohort["models"] / "a.pt"))) == (224, 224)

"""train.json and evaluate.json run as MONAI ConfigWorkflows (the model-zoo test pattern)."""

from __future__ import annotations

import csv

import torch

from SaliencyTrustLib.networks import ARCH_KEY, load_classifier


def test_train_then_evaluate_writes_a_loadable_tagged_checkpoint_and_test_metrics(tiny_cohort, tmp_path, bundle_tools):
    override = {
        "dataset_dir": str(tiny_cohort),
        "ckpt_dir": str(tmp_path / "models"),
        "output_dir": str(tmp_path / "eval"),
        "model_name": "model_test.pt",
        "network_name": "resnet_small",
        "epochs": 1,
        "batch_size": 3,
        "image_size": bundle_tools.small,
        "train#dataset#cache_rate": 0.0,
        "validate#dataset#cache_rate": 0.0,
    }
    bundle_tools.run(bundle_tools.configs("train.json"), "train", **override)

    checkpoint_path = tmp_path / "models" / "model_test.pt"
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
    assert checkpoint[ARCH_KEY] == "resnet_small"          # tagged by the finalize step
    model = load_classifier(checkpoint_path)                 # no name needed
    assert model(torch.rand(2, 1, 64, 64)).shape == (2, 2)

    # evaluate.json overrides train.json (no property check: it is not a full train config)
    bundle_tools.run(bundle_tools.configs("train.json", "evaluate.json"), "eval", check=False, **override)
    metrics = dict(csv.reader(open(tmp_path / "eval" / "metrics.csv")))
    assert set(metrics) == {"val_auc", "val_accuracy"}
    assert 0.0 <= float(metrics["val_auc"]) <= 1.0
    predictions = list(csv.reader(open(tmp_path / "eval" / "model_test_predictions.csv")))
    assert len(predictions) == 2                             # the two test cases
    assert abs(sum(float(v) for v in predictions[0][1:]) - 1.0) < 1e-5   # softmax probabilities

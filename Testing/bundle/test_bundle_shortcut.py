"""The bundle's own training command learns a shortcut: on a ``saliency-trust synth --shortcut``
cohort, ``python -m monai.bundle run --config_file configs/train.json`` trains a densenet_small
that is accurate where the burned-in marker follows the label (validation) and falls to chance
where it does not (test), predicting the marker instead of the lesion."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from SaliencyTrustLib.io.synth import write_synthetic_cohort
from SaliencyTrustLib.synthetic_shortcut import ShortcutSettings
from SaliencyTrustLib.transforms import bundle_datalist

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "MonaiBundle"
MODEL_NAME = "model_shortcut.pt"


@pytest.fixture(scope="module")
def shortcut_run(tmp_path_factory):
    """A 64-px shortcut cohort (80 cases: 48 / 16 / 16) and the bundle's train command run on it."""
    root = tmp_path_factory.mktemp("bundle_shortcut")
    cohort = root / "cohort"
    write_synthetic_cohort(cohort, n=80, seed=0, size=64, write_seg=False, shortcut=ShortcutSettings())
    env = {**os.environ, "PYTHONWARNINGS": "ignore",
           "PYTHONPATH": os.pathsep.join([str(REPO / "SaliencyTrust"), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json",
               "--logging_file", "configs/logging.conf", "--dataset_dir", str(cohort),
               "--ckpt_dir", str(root / "models"), "--output_dir", str(root / "eval"),
               "--image_size", "[64, 64]", "--epochs", "6", "--batch_size", "8", "--model_name", MODEL_NAME]
    result = subprocess.run(command, cwd=BUNDLE, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert (root / "models" / MODEL_NAME).is_file()
    return root, cohort


def _evaluate(bundle_tools, root: Path, cohort: Path, section: str) -> tuple:
    """evaluate.json on one split: (accuracy, {case image path: predicted class})."""
    output = root / f"eval_{section}"
    bundle_tools.run(bundle_tools.configs("train.json", "evaluate.json"), "eval", check=False,
                     dataset_dir=str(cohort), ckpt_dir=str(root / "models"), output_dir=str(output),
                     model_name=MODEL_NAME, eval_section=section, image_size=bundle_tools.small,
                     batch_size=8)
    metrics = dict(csv.reader(open(output / "metrics.csv")))
    predicted = {row[0]: int(float(row[2]) > float(row[1]))
                 for row in csv.reader(open(output / MODEL_NAME.replace(".pt", "_predictions.csv")))}
    return float(metrics["val_accuracy"]), predicted


def test_bundle_trained_model_loses_accuracy_where_the_marker_stops_following_the_label(shortcut_run, bundle_tools):
    root, cohort = shortcut_run
    validation_accuracy, _ = _evaluate(bundle_tools, root, cohort, "validation")
    test_accuracy, predicted = _evaluate(bundle_tools, root, cohort, "test")
    assert validation_accuracy >= 0.9
    assert test_accuracy <= validation_accuracy - 0.2

    items = bundle_datalist(cohort / "datalist.json", "test")
    assert {item["image"] for item in items} == set(predicted)
    assert all(Path(item["shortcut"]).is_absolute() and Path(item["shortcut"]).is_file() for item in items)
    follows_marker = sum(predicted[item["image"]] == item["marker"] for item in items) / len(items)
    follows_label = sum(predicted[item["image"]] == item["label"] for item in items) / len(items)
    assert follows_marker >= 0.9 and follows_marker > follows_label

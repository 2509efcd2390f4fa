"""trust.json (the four criteria) in one process and under torchrun with 2 CPU processes (gloo):
the same numbers; multi_gpu_train.json under torchrun."""

from __future__ import annotations

import csv
import math

import torch

GRADCAM = {"gradcam": {"_target_": "SaliencyTrustLib.saliency.SaliencyMethod", "method": "gradcam"}}


def _trust_override(cohort, out, small):
    return {"dataset_dir": str(cohort), "output_dir": str(out), "image_size": small,
            "saliency_methods": GRADCAM, "settings#sample_size": 2, "settings#n_pairs": 2,
            "settings#batch_size": 1, "batch_size": 1, "write_report": False}


def _numbers(card: dict) -> dict:
    """Every number of the scorecard, keyed by its path (NaN kept as the string 'nan')."""
    flat = {}

    def walk(prefix, value):
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}/{key}", item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(f"{prefix}/{index}", item)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            flat[prefix] = "nan" if isinstance(value, float) and math.isnan(value) else float(value)

    walk("", card)
    return flat


def test_trust_one_process_and_torchrun_two_processes_give_the_same_scorecard(tiny_cohort, tmp_path, bundle_tools):
    single = tmp_path / "single"
    bundle_tools.run(bundle_tools.configs("trust.json"), "infer", **_trust_override(tiny_cohort, single, bundle_tools.small))
    card = bundle_tools.read_json(single / "scorecard.json")
    text = (single / "scorecard.json").read_text()
    for criterion in ("localization", "randomization", "repeatability", "reproducibility"):
        assert f'"{criterion}"' in text, criterion
    auc = dict(csv.reader(open(single / "classifier" / "metrics.csv")))
    assert float(auc["test_auc"]) == 1.0           # the shipped model separates the two test cases

    multi = tmp_path / "multi"
    bundle_tools.torchrun(bundle_tools.configs("trust.json", "multi_gpu_trust.json"),
                          _trust_override(tiny_cohort, multi, bundle_tools.small), tmp_path)
    one, two = _numbers(card), _numbers(bundle_tools.read_json(multi / "scorecard.json"))
    assert one.keys() == two.keys() and len(one) > 8
    for key in one:
        if one[key] == "nan" or two[key] == "nan":
            assert one[key] == two[key], key
        else:
            assert abs(one[key] - two[key]) <= 1e-6 * max(1.0, abs(one[key])), (key, one[key], two[key])
    assert dict(csv.reader(open(multi / "classifier" / "metrics.csv")))["test_auc"] == auc["test_auc"]


def test_multi_gpu_train_runs_under_torchrun_with_two_cpu_processes(tiny_cohort, tmp_path, bundle_tools):
    override = {"dataset_dir": str(tiny_cohort), "ckpt_dir": str(tmp_path / "models"), "output_dir": str(tmp_path / "eval"),
                "epochs": 1, "batch_size": 2, "image_size": bundle_tools.small, "model_name": "ddp.pt",
                "train#dataset#cache_rate": 0.0, "validate#dataset#cache_rate": 0.0}
    bundle_tools.torchrun(bundle_tools.configs("train.json", "multi_gpu_train.json"), override, tmp_path)
    checkpoint = torch.load(tmp_path / "models" / "ddp.pt", map_location="cpu", weights_only=True)
    assert checkpoint["network_name"] == "densenet_small"
    assert not any(key.startswith("module.") for key in checkpoint["model"])    # saved unwrapped, loadable alone

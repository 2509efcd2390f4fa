"""The data randomization model (Adebayo et al. 2018): ``permute_labels`` and the bundle's
``train_label_randomized.json`` override, which trains the same network on permuted training labels."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from SaliencyTrustLib.label_randomization import label_permutation, permute_labels
from SaliencyTrustLib.networks import ARCH_KEY, load_classifier
from SaliencyTrustLib.transforms import bundle_datalist


def _items(labels) -> list:
    return [{"case_id": f"c{i:03d}", "image": f"nifti/c{i:03d}.nii.gz", "label": value}
            for i, value in enumerate(labels)]


def test_permute_labels_keeps_the_counts_and_every_other_key_and_is_seeded():
    items = _items([i % 2 for i in range(240)])
    permuted = permute_labels(items, seed=0)
    assert [item["case_id"] for item in permuted] == [item["case_id"] for item in items]
    assert all(a["image"] == b["image"] for a, b in zip(items, permuted))
    assert Counter(item["label"] for item in permuted) == Counter(item["label"] for item in items)
    assert permute_labels(items, seed=0) == permuted
    assert permute_labels(items, seed=1) != permuted
    assert [item["label"] for item in items] == [i % 2 for i in range(240)]      # inputs untouched
    order = label_permutation([item["label"] for item in items], seed=0)
    assert sorted(order.tolist()) == list(range(240))                            # a real permutation
    assert [items[j]["label"] for j in order] == [item["label"] for item in permuted]


def test_balanced_permutation_carries_no_information_on_the_true_labels():
    labels = [i % 2 for i in range(240)]
    for seed in range(5):
        permuted = [item["label"] for item in permute_labels(_items(labels), seed=seed)]
        assert sum(a == b for a, b in zip(labels, permuted)) == 120            # exactly chance agreement
    plain = [[item["label"] for item in permute_labels(_items(labels), seed=seed, balanced=False)]
             for seed in range(5)]
    assert any(sum(a == b for a, b in zip(labels, p)) != 120 for p in plain)  # a plain one drifts
    three = [0] * 30 + [1] * 60 + [2] * 90                                     # any labels, any counts
    permuted = [item["label"] for item in permute_labels(_items(three), seed=0)]
    assert Counter(permuted) == Counter(three)
    table = Counter(zip(three, permuted))
    for true in (0, 1, 2):
        for new, count in ((0, 30), (1, 60), (2, 90)):
            assert abs(table[true, new] - three.count(true) * count / 180) <= 1


def test_permute_labels_refuses_an_item_without_a_label():
    with pytest.raises(ValueError, match="no 'label' key"):
        permute_labels([{"image": "a"}, {"image": "b", "label": 1}])


def test_bundle_override_trains_on_permuted_training_labels_and_saves_model_label_randomized(
        tiny_cohort, tmp_path, bundle_tools):
    from monai.bundle import ConfigParser

    configs = bundle_tools.configs("train.json", "train_label_randomized.json")
    override = {"dataset_dir": str(tiny_cohort), "ckpt_dir": str(tmp_path / "models"), "epochs": 1,
                "batch_size": 3, "image_size": bundle_tools.small,
                "train#dataset#cache_rate": 0.0, "validate#dataset#cache_rate": 0.0}
    workflow = bundle_tools.run(configs, "train", **override)

    true = bundle_datalist(tiny_cohort / "datalist.json", "training")
    trained = list(workflow.parser.get_parsed_content("train#dataset").data)
    assert [item["case_id"] for item in trained] == [item["case_id"] for item in true]
    true_labels, trained_labels = [item["label"] for item in true], [item["label"] for item in trained]
    assert Counter(trained_labels) == Counter(true_labels)                 # a permutation: counts kept
    assert trained_labels != true_labels                                   # ... that moved labels
    assert trained_labels == [item["label"] for item in permute_labels(true, seed=0)]   # seeded
    validation = bundle_datalist(tiny_cohort / "datalist.json", "validation")
    assert [item["label"] for item in workflow.parser.get_parsed_content("validate#dataset").data] == \
        [item["label"] for item in validation]                             # validated on the truth

    reseeded = ConfigParser()
    reseeded.read_config(configs)
    reseeded.update({"dataset_dir": str(tiny_cohort), "label_permutation_seed": 1})
    assert [item["label"] for item in reseeded.get_parsed_content("train#datalist")] == \
        [item["label"] for item in permute_labels(true, seed=1)]

    path = tmp_path / "models" / "model_label_randomized.pt"
    assert torch.load(path, map_location="cpu", weights_only=True)[ARCH_KEY] == "densenet_small"
    model = load_classifier(path)
    assert model(torch.rand(2, 1, *bundle_tools.small)).shape == (2, 2)

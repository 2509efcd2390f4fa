"""The localization networks: train_localization.json as a MONAI ConfigWorkflow, the checkpoint it
writes, the maps of SaliencyTrustLib.localizers, and the shipped localizers on synthetic lesions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from SaliencyTrustLib.localizers import (MaskToModeld, build_localizer, load_localizer, localization_maps,
                                         save_localizer)
from SaliencyTrustLib.metrics import auprc
from SaliencyTrustLib.networks import ARCH_KEY
from SaliencyTrustLib.preprocessing import Preprocessing
from SaliencyTrustLib.preprocessing_monai import Preprocessingd
from SaliencyTrustLib.transforms import bundle_datalist


def _positives(cohort, size: int):
    """Images ``(B, 1, size, size)`` and bool masks ``(B, size, size)`` of every positive case of a
    ``saliency-trust synth`` cohort, through the classifier's preprocessing."""
    preprocessing = Preprocessing(in_channels=1, input_size=size)
    steps = [MaskToModeld(keys="mask", preprocessing=preprocessing),
             Preprocessingd(keys="image", preprocessing=preprocessing)]
    items = []
    for section in ("training", "validation", "test"):
        for item in bundle_datalist(cohort / "datalist.json", section, require=("mask",), labels_only=1):
            for step in steps:
                item = step(item)
            items.append(item)
    images = torch.stack([d["image"] for d in items]).numpy()
    masks = np.stack([d["mask"][0].numpy() > 0.5 for d in items])
    return images, masks


def test_train_localization_writes_a_tagged_checkpoint_whose_maps_are_probabilities(tiny_cohort, tmp_path,
                                                                                   bundle_tools):
    override = {
        "dataset_dir": str(tiny_cohort),
        "ckpt_dir": str(tmp_path / "models"),
        "model_name": "localizer_test.pt",
        "epochs": 1,
        "batch_size": 3,
        "image_size": bundle_tools.small,
        "patch_size": [32, 32],
        "train#dataset#cache_rate": 0.0,
        "validate#dataset#cache_rate": 0.0,
    }
    bundle_tools.run(bundle_tools.configs("train_localization.json"), "train", **override)

    path = tmp_path / "models" / "localizer_test.pt"
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint[ARCH_KEY] == "unet_small"             # tagged by the finalize step
    assert (checkpoint["spatial_dims"], checkpoint["in_channels"]) == (2, 1)
    model = load_localizer(path)                              # no name needed
    images, _ = _positives(tiny_cohort, 64)
    maps = localization_maps(model, images, batch_size=2)
    assert maps.shape == (len(images), 64, 64) and maps.dtype == np.float32
    assert 0.0 <= maps.min() and maps.max() <= 1.0
    assert not model.training


def test_localization_maps_keep_the_input_grid_the_callers_tensor_and_the_models_mode():
    model = build_localizer("unet_small", spatial_dims=2, in_channels=3).train()
    images = torch.rand(5, 3, 40, 48)
    before = images.clone()
    maps = localization_maps(model, images, batch_size=2)
    assert maps.shape == (5, 40, 48) and maps.dtype == np.float32
    assert np.all((maps >= 0) & (maps <= 1))
    assert torch.equal(images, before) and model.training    # no side effects
    assert all(not m.inplace for m in model.modules() if isinstance(m, torch.nn.ReLU))
    volume_maps = localization_maps(build_localizer(spatial_dims=3), np.random.rand(1, 1, 16, 16, 16))
    assert volume_maps.shape == (1, 16, 16, 16)


def test_localization_maps_refuse_a_network_that_is_not_one_logit_channel():
    two_class = torch.nn.Conv2d(1, 2, 3, padding=1)
    with pytest.raises(ValueError, match="one logit channel"):
        localization_maps(two_class, torch.rand(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        localization_maps(build_localizer(), torch.rand(16, 16))


def test_a_localizer_round_trips_and_a_classifier_file_is_refused(tmp_path, bundle_root):
    model = build_localizer(in_channels=2)
    path = save_localizer(model, tmp_path / "mine.pt", "unet_small")
    loaded = load_localizer(path)
    images = torch.rand(2, 2, 32, 32)
    assert np.allclose(localization_maps(model, images), localization_maps(loaded, images), atol=1e-6)
    with pytest.raises(ValueError, match="not a localizer"):
        load_localizer(bundle_root / "models" / "model_replicate.pt")    # densenet_small: a classifier
    with pytest.raises(FileNotFoundError, match="train_localization.json"):
        load_localizer(tmp_path / "absent.pt")


def test_mask_to_model_gives_negatives_without_a_mask_an_empty_one():
    preprocessing = Preprocessing(in_channels=1, input_size=32)
    out = MaskToModeld(keys="mask", preprocessing=preprocessing)({"image": "x", "label": 0})
    assert out["mask"].shape == (1, 32, 32) and float(out["mask"].sum()) == 0.0
    with pytest.raises(KeyError, match="mask"):
        MaskToModeld(keys="mask", preprocessing=preprocessing, missing="error")({"image": "x"})


def test_the_shipped_localizers_find_the_synthetic_lesions_and_agree(tiny_cohort, bundle_root):
    from SaliencyTrustLib.metrics import ssim

    images, masks = _positives(tiny_cohort, 224)
    prevalence = masks.mean(axis=(1, 2))
    maps = {}
    for name in ("localizer.pt", "localizer_replicate.pt"):
        maps[name] = localization_maps(load_localizer(bundle_root / "models" / name), images)
        values = auprc(maps[name], masks)
        assert np.all(values > prevalence), (name, values, prevalence)   # better than chance on every image
        assert float(np.mean(values)) > 0.5, (name, values)
    similarity = ssim(maps["localizer.pt"], maps["localizer_replicate.pt"], data_range=2.0)
    assert float(np.nanmean(similarity)) > 0.8, similarity


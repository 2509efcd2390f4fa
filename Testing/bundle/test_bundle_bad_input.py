"""Bad input stops a bundle run with a clear error before any long work starts."""

from __future__ import annotations

import json
import shutil
import time

import nibabel
import numpy as np
import pytest
import torch

from monai.bundle import ConfigWorkflow

from SaliencyTrustLib.networks import build_classifier, load_classifier, load_weights, save_classifier
from SaliencyTrustLib.transforms import bundle_datalist


def _copy_cohort(cohort, tmp_path):
    target = tmp_path / "cohort"
    shutil.copytree(cohort, target)
    return target


def _initialize(config, tools, **override):
    workflow = ConfigWorkflow(config_file=tools.configs(config), meta_file=tools.meta, logging_file=tools.logging,
                              workflow_type="infer" if config != "train.json" else "train", **override)
    workflow.initialize()
    return workflow


def test_missing_datalist_entry_is_reported_with_its_path_before_training(tiny_cohort, tmp_path, bundle_tools, bundle_root):
    cohort = _copy_cohort(tiny_cohort, tmp_path)
    datalist = json.loads((cohort / "datalist.json").read_text())
    datalist["training"][1]["image"] = "nifti/no-such-case.nii.gz"
    (cohort / "datalist.json").write_text(json.dumps(datalist))
    workflow = _initialize("train.json", bundle_tools, bundle_root=str(bundle_root), dataset_dir=str(cohort),
                           ckpt_dir=str(tmp_path / "models"))
    start = time.perf_counter()
    with pytest.raises(RuntimeError) as caught:
        workflow.run()
    cause = caught.value.__cause__
    assert isinstance(cause, FileNotFoundError)
    assert "no-such-case.nii.gz" in str(cause) and "training" in str(cause)
    assert not (tmp_path / "models").exists()            # nothing trained, nothing written
    assert time.perf_counter() - start < 120             # generous: it fails while parsing, not after epochs


def test_three_d_image_for_the_2d_network_is_refused_naming_the_file(tiny_cohort, tmp_path):
    cohort = _copy_cohort(tiny_cohort, tmp_path)
    datalist = json.loads((cohort / "datalist.json").read_text())
    volume = nibabel.Nifti1Image(np.zeros((32, 32, 16), np.float32), np.eye(4))
    nibabel.save(volume, str(cohort / "nifti" / "ct.nii.gz"))
    datalist["test"][0]["image"] = "nifti/ct.nii.gz"
    (cohort / "datalist.json").write_text(json.dumps(datalist))
    with pytest.raises(ValueError, match=r"ct\.nii\.gz.*(32, 32, 16).*network is 2D"):
        bundle_datalist(cohort / "datalist.json", "test", spatial_dims=2)
    # the same check at the transform level, for images that bypass the datalist (e.g. Slicer)
    from SaliencyTrustLib.transforms import get_preprocessing

    with pytest.raises(RuntimeError) as caught:
        get_preprocessing()({"image": str(cohort / "nifti" / "ct.nii.gz")})
    assert "network is 2D" in str(caught.value.__cause__)


def test_weights_of_another_architecture_are_refused_with_the_file_and_the_fix(tmp_path, bundle_root, bundle_tools):
    with pytest.raises(ValueError, match=r"model_second_arch\.pt.*do not fit the network 'densenet_small'.*missing"):
        load_classifier(bundle_root / "models" / "model_second_arch.pt", name="densenet_small")
    with pytest.raises(ValueError, match=r"weights are of network 'resnet_small'.*--network_name resnet_small"):
        load_weights(build_classifier("densenet_small"), bundle_root / "models" / "model_second_arch.pt",
                     name="densenet_small")
    untagged = tmp_path / "untagged.pt"
    torch.save(build_classifier("resnet_small").state_dict(), untagged)
    with pytest.raises(ValueError, match=r"untagged\.pt.*do not fit"):
        load_weights(build_classifier("densenet_small"), untagged)
    # the inference config reports it while initializing, before reading any image
    with pytest.raises(RuntimeError) as caught:
        _initialize("inference.json", bundle_tools, bundle_root=str(bundle_root), dataset_dir=str(tmp_path),
                    datalist="$[]", ckpt_dir=str(tmp_path), model_name="untagged.pt")
    assert "untagged.pt" in str(caught.value.__cause__) and "do not fit" in str(caught.value.__cause__)


def test_single_channel_weights_do_not_load_into_a_three_channel_network(tmp_path):
    path = save_classifier(build_classifier("densenet_small"), tmp_path / "one.pt", "densenet_small")
    with pytest.raises(ValueError, match="another shape"):
        load_classifier(path, in_channels=3)

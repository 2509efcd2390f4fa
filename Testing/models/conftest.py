"""Fixtures of the "bring your own model" tests: a small synthetic cohort and a lab's models saved
in every form a lab has them (state dict + factory, TorchScript, a MONAI bundle, a pickle)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

_TESTING = str(Path(__file__).resolve().parents[1])
if _TESTING not in sys.path:  # the suite runs with --import-mode=importlib
    sys.path.append(_TESTING)   # last: never shadows an installed package

#: Edge of the synthetic images and of the lab model's input (small: every run takes seconds).
SIZE = 48


@pytest.fixture(scope="session")
def lab_cohort(tmp_path_factory) -> Path:
    from SaliencyTrustLib.io import write_synthetic_cohort

    root = tmp_path_factory.mktemp("lab-cohort")
    write_synthetic_cohort(root, n=12, seed=21, size=SIZE, write_seg=False)
    return root


@pytest.fixture(scope="session")
def lab_model_files(tmp_path_factory) -> dict:
    """The lab's 3-channel CNN (BatchNorm, in-place ReLU) as ``weights`` (a state dict under the
    lab's own checkpoint key), ``torchscript``, ``bundle`` (a MONAI bundle folder whose
    ``network_def`` is the lab's class) and ``pickle`` (``torch.save(model)``)."""
    import torch

    from support.lab_models import build_lab_net, trained_weights

    root = tmp_path_factory.mktemp("lab-models")
    model = trained_weights(build_lab_net(width=8), seed=3)
    torch.save({"epoch": 12, "net_state": model.state_dict()}, root / "lab.pt")
    torch.jit.script(model).save(str(root / "lab.ts"))
    torch.save(model, root / "lab_pickled.pt")
    bundle = root / "lab_bundle"
    (bundle / "configs").mkdir(parents=True)
    (bundle / "models").mkdir()
    torch.save(model.state_dict(), bundle / "models" / "model.pt")
    (bundle / "configs" / "inference.json").write_text(json.dumps({
        "imports": ["$import sys", f"$sys.path.append({_TESTING!r})", "$import support.lab_models"],
        "network_def": {"_target_": "support.lab_models.build_lab_net", "num_classes": 2, "width": 8}}))
    (bundle / "configs" / "metadata.json").write_text(json.dumps({
        "name": "lab classifier", "version": "0.1.0",
        "network_data_format": {"inputs": {"image": {"type": "image", "num_channels": 3,
                                                     "spatial_shape": [SIZE, SIZE], "value_range": [0, 1]}},
                                "outputs": {"pred": {"type": "probabilities", "num_channels": 2}}}}))
    return {"model": model, "weights": root / "lab.pt", "torchscript": root / "lab.ts",
            "pickle": root / "lab_pickled.pt", "bundle": bundle, "root": root}

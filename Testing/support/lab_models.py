"""Models a lab actually has, for the "bring your own model" tests: not built by SaliencyTrust.

* :class:`LabNet` - a small 3-channel CNN of the lab's own class: BatchNorm, in-place ReLU,
  trained on ImageNet-normalized inputs (``intensity="imagenet"``).
* :func:`densenet121_3ch` - MONAI's DenseNet121 with 3 input channels, as the study's second
  architecture.

Both are importable as ``support.lab_models:<name>`` and loadable by file path
(``Testing/support/lab_models.py:<name>``), as ``--model-factory`` takes them.
"""

from __future__ import annotations

import torch
from torch import nn


class LabNet(nn.Module):
    """``(B, 3, H, W)`` -> ``(B, num_classes)`` logits."""

    def __init__(self, num_classes: int = 2, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def build_lab_net(num_classes: int = 2, width: int = 8) -> LabNet:
    """The lab's factory (what ``--model-factory`` names)."""
    return LabNet(num_classes=num_classes, width=width)


def densenet121_3ch(num_classes: int = 2) -> nn.Module:
    """MONAI DenseNet121, 2D, 3 input channels (the study's DenseNet121)."""
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=2, in_channels=3, out_channels=num_classes)


def trained_weights(model: nn.Module, seed: int = 0) -> nn.Module:
    """Deterministic non-trivial weights and BatchNorm statistics (no training needed to test the
    plumbing: every number is still computed by the real pipeline)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return model.eval()

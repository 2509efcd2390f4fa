"""Tiny models for the saliency tests (fast on one CPU core)."""

import pytest
import torch
from torch import nn


class TinyConvNet(nn.Module):
    """conv-BN-ReLU(in place)-conv-ReLU(in place)-global pool-linear, 2D or 3D."""

    def __init__(self, spatial_dims: int = 2, in_channels: int = 1, num_classes: int = 3, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        norm = nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d
        pool = nn.AdaptiveAvgPool2d if spatial_dims == 2 else nn.AdaptiveAvgPool3d
        self.features = nn.Sequential(
            conv(in_channels, 6, 3, padding=1), norm(6), nn.ReLU(inplace=True),
            conv(6, 8, 3, padding=1, stride=2), nn.ReLU(inplace=True))
        self.pool = pool(1)
        self.fc = nn.Linear(8, num_classes)
        # Non-trivial BatchNorm running statistics, so eval vs train mode differ.
        self.features[1].running_mean.uniform_(-0.2, 0.2)
        self.features[1].running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.fixture
def tiny_net():
    """Factory: ``tiny_net(spatial_dims=2, in_channels=1, num_classes=3, seed=0)`` in train mode
    (the engine must switch to eval and back)."""
    return TinyConvNet


@pytest.fixture
def images_2d():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(3, 1, 16, 16, generator=generator)


@pytest.fixture
def images_3d():
    generator = torch.Generator().manual_seed(2)
    return torch.rand(3, 1, 8, 8, 8, generator=generator)

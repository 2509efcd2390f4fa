"""Small models and data for the criteria tests (built and trained in seconds, deterministic)."""

import numpy as np
import torch
from torch import nn


def blob_images(n: int, size: int = 32, seed: int = 0):
    """Images (n, 1, size, size) of textured noise; positives (odd index) carry a bright disc.

    Returns (images float32 tensor, labels int64 tensor, masks bool numpy (n, size, size)).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, 1, size, size), np.float32)
    masks = np.zeros((n, size, size), bool)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        img = 0.3 * rng.random((size, size))
        if i % 2:
            cy, cx = rng.integers(6, size - 6, 2)
            r = rng.uniform(3, 5)
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            img[disc] += 0.6
            masks[i] = disc
            labels[i] = 1
        images[i, 0] = img
    return torch.from_numpy(images), torch.from_numpy(labels), masks


class SmallCNN(nn.Module):
    """conv-relu x3, global average pooling, linear logits (B, 2)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def train_small_cnn(seed: int = 0, steps: int = 60, n: int = 64) -> SmallCNN:
    """A SmallCNN trained to tell blob images from blank ones (a few seconds on one CPU core)."""
    torch.manual_seed(seed)
    model = SmallCNN()
    images, labels, _ = blob_images(n, seed=100 + seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
    return model.eval()


class LesionReader(nn.Module):
    """Logit of class 1 = sum over pixels of relu(x - 0.75): it reads only bright lesion pixels."""

    def __init__(self):
        super().__init__()
        self.detect = nn.Conv2d(1, 1, 1)
        with torch.no_grad():
            self.detect.weight.fill_(1.0)
            self.detect.bias.fill_(-0.75)
        self.act = nn.ReLU()
        self.head = nn.Linear(1, 2, bias=False)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[-1.0], [1.0]]))

    def forward(self, x):
        return self.head(self.act(self.detect(x)).sum(dim=(2, 3)))

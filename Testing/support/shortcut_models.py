"""Small classifiers trained in seconds on a ``saliency-trust synth`` cohort, for pipeline tests:
a model that learned the burned-in marker of a ``--shortcut`` cohort, and a label-randomized one
(Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018, data randomization test).

The input is what the study feeds a model: the cohort's NIfTI image read with
:func:`SaliencyTrustLib.io.read_image` and preprocessed with
``Preprocessing(in_channels=1, input_size=size).image_to_model(volume, 2)[0]`` (min-max to [0, 1],
squash-resized to ``size x size``). Training is a plain torch loop (Adam, cross-entropy, no
augmentation) followed by BatchNorm recalibration on the training images, as the bundle's
``finalize`` step does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Tuple, Union

import numpy as np
import torch

PathLike = Union[str, os.PathLike]


def cohort_tensors(cohort_dir: PathLike, split: str = "training", size: Optional[int] = None
                   ) -> Tuple[torch.Tensor, torch.Tensor, List[dict]]:
    """The model inputs of one split of a synthetic cohort.

    Args:
        cohort_dir: folder holding ``datalist.json`` (``saliency-trust synth --out``).
        split: ``"training"``, ``"validation"`` or ``"test"``.
        size: network grid edge in pixels; None: the images' own edge.

    Returns:
        ``(images, labels, items)``: float32 ``(N, 1, size, size)`` in [0, 1] (rows, columns), int64
        ``(N,)``, and the datalist items in the same order.
    """
    from SaliencyTrustLib.io import read_image
    from SaliencyTrustLib.preprocessing import Preprocessing

    root = Path(cohort_dir)
    items = json.loads((root / "datalist.json").read_text())[split]
    images = []
    for item in items:
        volume = read_image(root / item["image"])
        edge = int(size) if size is not None else int(volume.shape[-1])
        images.append(Preprocessing(in_channels=1, input_size=edge).image_to_model(volume, 2)[0])
    labels = torch.tensor([int(item["label"]) for item in items], dtype=torch.int64)
    return torch.from_numpy(np.stack(images)), labels, items


def train_tiny_classifier(cohort_dir: PathLike, split: str = "training", size: Optional[int] = None,
                          epochs: int = 12, seed: int = 0, permute_labels: bool = False,
                          batch_size: int = 8, learning_rate: float = 2e-3) -> torch.nn.Module:
    """Train ``densenet_small`` (:func:`SaliencyTrustLib.networks.build_classifier`) on one split.

    Args:
        cohort_dir: a ``saliency-trust synth`` folder (use 32- or 64-pixel images for speed).
        split: the datalist section trained on.
        size: network input edge in pixels; None: the images' own edge.
        epochs: passes over the split.
        seed: decides the initial weights, the batch order and (with ``permute_labels``) the
            permutation; same seed, same cohort -> the same weights.
        permute_labels: train on the split's labels permuted
            (:func:`SaliencyTrustLib.label_randomization.permute_labels` with ``seed``): the data
            randomization model.
        batch_size: images per step.
        learning_rate: Adam's step size.

    Returns:
        The trained model in eval mode on the CPU, ``(B, 1, size, size)`` -> ``(B, 2)`` logits.
    """
    from SaliencyTrustLib.label_randomization import permute_labels as permuted
    from SaliencyTrustLib.networks import build_classifier, recalibrate_batchnorm

    images, labels, items = cohort_tensors(cohort_dir, split, size)
    if permute_labels:
        labels = torch.tensor([int(item["label"]) for item in permuted(items, seed)], dtype=torch.int64)
    torch.manual_seed(seed)
    model = build_classifier("densenet_small", spatial_dims=2, in_channels=1, num_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_function = torch.nn.CrossEntropyLoss()
    order_generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(int(epochs)):
        order = torch.randperm(len(labels), generator=order_generator)
        for start in range(0, len(order), batch_size):
            batch = order[start:start + batch_size]
            if len(batch) < 2:          # BatchNorm needs two samples
                continue
            optimizer.zero_grad()
            loss_function(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    return recalibrate_batchnorm(model, images, batch_size=batch_size)


def predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Predicted classes ``(N,)`` int64 of ``images`` ``(N, 1, H, W)``."""
    with torch.no_grad():
        return model(images).argmax(1)

"""The subject classifiers of SaliencyTrust: small MONAI networks built by name, and their weights.

The trust criteria need **two architectures** (reproducibility) and **two independently trained
models of one architecture** (repeatability). The MONAI bundle (``MonaiBundle/``) trains

* ``"densenet_small"``  - :class:`monai.networks.nets.DenseNet`, 3 dense blocks, 0.26 M parameters (1 MB);
  ``models/model.pt`` (seed 0) and ``models/model_replicate.pt`` (seed 1), and
  ``models/model_label_randomized.pt`` (seed 0, permuted training labels: the data randomization test);
* ``"resnet_small"``    - :class:`monai.networks.nets.ResNet`, basic blocks ``[1, 1, 1, 1]``,
  0.31 M parameters (1.2 MB); ``models/model_second_arch.pt`` (seed 0);

and ``"densenet121"`` (:class:`monai.networks.nets.DenseNet121`, the study's second architecture)
is available for users who bring their own weights.

Conventions: input ``(B, in_channels, *spatial)`` float32, intensities in [0, 1] as
:mod:`SaliencyTrustLib.transforms` scales them (2D: ``(B, 1, 224, 224)``, axes ``(rows, columns)``
= ``(J, I)``); output ``(B, num_classes)`` **logits** (no softmax: the study explains the pre-softmax
logit of the predicted class). Every ReLU is built with ``inplace=False`` so that gradient hooks
(captum, guided backprop, GradCAM) see unmodified activations. The final feature map of both small
networks is ``224 / 16 = 14`` pixels wide, which bounds GradCAM's resolution.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import nn

#: Relu without in-place modification (see the module docstring).
_ACT = ("relu", {"inplace": False})

#: Weight files of the bundle, relative to its root, and the network each one holds.
BUNDLE_WEIGHTS: Dict[str, str] = {
    "models/model.pt": "densenet_small",
    "models/model_replicate.pt": "densenet_small",
    "models/model_second_arch.pt": "resnet_small",
    "models/model_label_randomized.pt": "densenet_small",
}

#: Checkpoint key under which the bundle stores the architecture name beside the weights.
ARCH_KEY = "network_name"


def _densenet_small(spatial_dims: int, in_channels: int, num_classes: int) -> nn.Module:
    from monai.networks.nets import DenseNet

    return DenseNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes,
                    init_features=32, growth_rate=16, block_config=(4, 6, 6), bn_size=4, act=_ACT)


def _resnet_small(spatial_dims: int, in_channels: int, num_classes: int) -> nn.Module:
    from monai.networks.nets import ResNet

    return ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[16, 32, 64, 128],
                  spatial_dims=spatial_dims, n_input_channels=in_channels, conv1_t_size=7,
                  conv1_t_stride=2, no_max_pool=True, num_classes=num_classes, act=_ACT)


def _densenet121(spatial_dims: int, in_channels: int, num_classes: int) -> nn.Module:
    from monai.networks.nets import DenseNet121

    return DenseNet121(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=num_classes, act=_ACT)


#: name -> builder(spatial_dims, in_channels, num_classes).
ARCHITECTURES: Dict[str, Callable[[int, int, int], nn.Module]] = {
    "densenet_small": _densenet_small,
    "resnet_small": _resnet_small,
    "densenet121": _densenet121,
}


def available_classifiers() -> list:
    """Names accepted by :func:`build_classifier`."""
    return sorted(ARCHITECTURES)


def build_classifier(name: str, spatial_dims: int = 2, in_channels: int = 1, num_classes: int = 2) -> nn.Module:
    """Build an untrained classifier by name (usable from a bundle config with ``_target_``).

    Args:
        name: one of :func:`available_classifiers` (``"densenet_small"``, ``"resnet_small"``,
            ``"densenet121"``).
        spatial_dims: 2 for radiographs ``(B, C, H, W)``, 3 for volumes ``(B, C, D, H, W)``.
        in_channels: channels of the input image (1 for the bundle's grayscale inputs).
        num_classes: outputs; the bundle uses 2 (``0`` = no finding, ``1`` = lesion).

    Returns:
        A ``torch.nn.Module`` mapping ``(B, in_channels, *spatial)`` to ``(B, num_classes)`` logits.

    Raises:
        ValueError: unknown ``name`` or a ``spatial_dims`` other than 2 or 3.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"build_classifier: unknown network name {name!r}; choose one of {available_classifiers()}.")
    if spatial_dims not in (2, 3):
        raise ValueError(f"build_classifier: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"build_classifier: in_channels and num_classes must be >= 1, got {in_channels}, {num_classes}.")
    model = ARCHITECTURES[name](int(spatial_dims), int(in_channels), int(num_classes))
    for module in model.modules():  # MONAI's ResNet blocks ignore ``act``: switch every ReLU off in-place
        if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU)) and getattr(module, "inplace", False):
            module.inplace = False
    return model


def _state_dict_from_checkpoint(checkpoint: Any, path: Path) -> Tuple[Mapping[str, torch.Tensor], Optional[str]]:
    """Accept the forms MONAI bundles save: a plain state dict, ``{"model": state_dict}`` (bundle
    ``CheckpointSaver``), ``{"state_dict": ...}``; strip a DistributedDataParallel ``module.`` prefix."""
    name = None
    if isinstance(checkpoint, nn.Module):
        checkpoint = checkpoint.state_dict()
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path}: not a PyTorch state dict (got {type(checkpoint).__name__}); "
                         "save weights with torch.save(model.state_dict(), path).")
    if isinstance(checkpoint.get(ARCH_KEY), str):
        name = checkpoint[ARCH_KEY]
    for key in ("model", "state_dict", "network"):
        if isinstance(checkpoint.get(key), Mapping):
            checkpoint = checkpoint[key]
            break
    state = {k[len("module."):] if k.startswith("module.") else k: v
             for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise ValueError(f"{path}: holds no tensors; expected a state dict of a classifier.")
    return state, name


def _resolve_weights(path_or_bundle_dir: Union[str, os.PathLike]) -> Tuple[Path, Optional[str]]:
    path = Path(path_or_bundle_dir)
    if path.is_dir():
        candidate = path / "models" / "model.pt"
        if not candidate.is_file():
            raise FileNotFoundError(f"{path}: a bundle directory must hold models/model.pt; none found. "
                                    "Pass the weight file itself, or train it with the bundle's configs/train.json.")
        return candidate, BUNDLE_WEIGHTS["models/model.pt"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weight file or bundle directory.")
    known = {Path(k).name: v for k, v in BUNDLE_WEIGHTS.items()}
    return path, known.get(path.name) if path.parent.name == "models" else None


def weights_mismatch(model: nn.Module, state: Mapping[str, torch.Tensor]) -> list:
    """What keeps ``state`` from loading into ``model``, in words (empty when it fits): counts and
    examples of missing, unexpected and mis-shaped parameters."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    details = []
    if missing:
        details.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if unexpected:
        details.append(f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    if wrong_shape:
        k = wrong_shape[0]
        details.append(f"{len(wrong_shape)} of another shape (e.g. {k}: file {tuple(state[k].shape)} vs network "
                       f"{tuple(expected[k].shape)})")
    return details


def check_weights_fit(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "weights",
                      name: Optional[str] = None) -> None:
    """Raise a ``ValueError`` that lists what does not fit when ``state`` is not exactly ``model``'s.

    Args:
        model: the network the weights are meant for.
        state: a state dict (parameter name -> tensor).
        source: how to name the weights in the message (a path).
        name: the network's name, for the message.
    """
    details = weights_mismatch(model, state)
    if details:
        raise ValueError(
            f"{source}: the weights do not fit the network {name or type(model).__name__!r}: " + "; ".join(details)
            + f". Pass the architecture they were trained with (name=one of {available_classifiers()}, "
              "and the same spatial_dims / in_channels / num_classes).")


def spatial_dims_of_weights(state: Mapping[str, torch.Tensor]) -> int:
    """2 or 3: the rank of a state dict's convolution kernels (``(out, in, kH, kW)``: 2D,
    ``(out, in, kD, kH, kW)``: 3D); 2 when it holds no convolution."""
    return 3 if any(key.endswith("weight") and tensor.ndim == 5 for key, tensor in state.items()) else 2


def model_spatial_dims(model: nn.Module) -> int:
    """2 or 3: the image dimensionality ``model`` takes (from its convolution kernels)."""
    return spatial_dims_of_weights(model.state_dict())


def load_classifier(path_or_bundle_dir: Union[str, os.PathLike], name: Optional[str] = None,
                    spatial_dims: Optional[int] = None, in_channels: int = 1, num_classes: int = 2,
                    device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Build a classifier and load trained weights into it, in eval mode.

    Args:
        path_or_bundle_dir: a weight file (state dict, or a bundle checkpoint ``{"model": ...}``), or a
            bundle directory (then ``models/model.pt``).
        name: architecture (see :func:`build_classifier`). ``None``: the name stored in the checkpoint
            (``"network_name"``), else the bundle's record for its own files, else ``"densenet_small"``.
        spatial_dims: 2 or 3; ``None``: the rank of the weights' convolution kernels
            (:func:`spatial_dims_of_weights`).
        in_channels, num_classes: as in :func:`build_classifier`.
        device: where to put the model.

    Returns:
        The model in ``eval()`` mode, ``(B, in_channels, *spatial)`` -> ``(B, num_classes)`` logits.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a state dict, or its tensors do not fit the network (the message
            lists missing / unexpected / mis-shaped parameters and how to fix the call).
    """
    path, bundle_name = _resolve_weights(path_or_bundle_dir)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state, stored_name = _state_dict_from_checkpoint(checkpoint, path)
    arch = name or stored_name or bundle_name or "densenet_small"
    dims = spatial_dims or spatial_dims_of_weights(state)
    model = build_classifier(arch, spatial_dims=dims, in_channels=in_channels, num_classes=num_classes)
    check_weights_fit(model, state, source=str(path), name=arch)
    model.load_state_dict(state)
    return model.to(device).eval()


def save_classifier(model: nn.Module, path: Union[str, os.PathLike], name: str, record_name: bool = True) -> Path:
    """Save a classifier's weights, unwrapped from DistributedDataParallel.

    Args:
        model: the classifier (or a DistributedDataParallel wrapper).
        path: the file to write (folders are created).
        name: the architecture (see :func:`build_classifier`).
        record_name: True: ``{"model": state_dict, "network_name": name}``, a file that names its
            own network, so :func:`load_classifier` and ``ModelSpec(path=...)`` need no name (the
            bundle's ``model_replicate.pt`` / ``model_second_arch.pt``). False: the plain state dict,
            as the MONAI model zoo expects ``models/model.pt`` (``ckpt_export`` with default
            arguments loads it into the config's ``network_def``; that config names the network).

    Returns:
        ``path``. Both forms load with :func:`load_classifier` / :func:`load_weights` and MONAI's
        ``CheckpointLoader`` (``load_dict={"model": net}``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model
    torch.save({"model": module.state_dict(), ARCH_KEY: name} if record_name else module.state_dict(), path)
    return path


def load_weights(model: nn.Module, path: Union[str, os.PathLike], name: Optional[str] = None) -> nn.Module:
    """Load a weight file into an already built ``model`` (a bundle config's ``network``), after
    checking that every tensor fits (:func:`check_weights_fit`): a clear ``ValueError`` naming the
    file and the architecture instead of a long ``load_state_dict`` trace, before any work starts.

    Args:
        model: the network (may be wrapped in DistributedDataParallel).
        path: weight file (state dict or ``{"model": state_dict, "network_name": ...}``).
        name: the architecture name the config built, for the message; when the checkpoint records
            another name, that mismatch is reported first.

    Returns:
        ``model`` with the weights loaded (mode unchanged).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weight file not found. Train it with the bundle's configs/train.json "
                                "(see MonaiBundle/docs/README.md) or pass --checkpoint / --model_name.")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state, stored_name = _state_dict_from_checkpoint(checkpoint, path)
    target = model.module if hasattr(model, "module") else model
    if stored_name and name and stored_name != name:
        raise ValueError(f"{path}: the weights are of network {stored_name!r} but the configuration builds {name!r}; "
                         f"pass --network_name {stored_name} (or the weights of a {name}).")
    check_weights_fit(target, state, source=str(path), name=name or stored_name)
    target.load_state_dict(state)
    return model


def recalibrate_batchnorm(model: nn.Module, data: Any, batch_size: int = 16, image_key: str = "image",
                          device: Union[str, torch.device, None] = None) -> nn.Module:
    """Re-estimate every BatchNorm layer's running mean / variance on ``data`` ("precise BN").

    With a high learning rate and few iterations per epoch, the running averages (momentum 0.1)
    lag behind the weights; the model then ranks well (high AUC) but its eval-mode logits are
    shifted and it predicts one class for every image - fatal for saliency, which explains the
    *predicted* class. Recomputing the statistics as exact averages over the training images,
    with frozen weights, removes the shift (Wu & Johnson, "Rethinking Batch in BatchNorm", 2021).

    Args:
        model: the classifier (or a DistributedDataParallel wrapper); weights are not changed.
        data: a sequence of dictionaries with ``image_key`` ``(C, *spatial)`` tensors (e.g. a MONAI
            ``Dataset`` with the deterministic preprocessing) or a ``(N, C, *spatial)`` tensor.
        batch_size: images per forward pass.
        image_key: the dictionary key of the image.
        device: where to run (default: the model's device).

    Returns:
        ``model``, in eval mode.
    """
    module = model.module if hasattr(model, "module") else model
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return module.eval()
    device = device or next(module.parameters()).device
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative (equal-weight) average of the batch statistics
    module.train()
    with torch.no_grad():
        if isinstance(data, torch.Tensor):
            batches = [data[i:i + batch_size] for i in range(0, len(data), batch_size)]
        else:
            batches = []
            for start in range(0, len(data), batch_size):
                items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
                batches.append(torch.stack([torch.as_tensor(item[image_key]) for item in items]))
        for batch in batches:
            module(torch.as_tensor(batch).float().to(device))
    for m, momentum in zip(norms, saved):
        m.momentum = momentum
    return module.eval()


def finalize_checkpoint(path: Union[str, os.PathLike], network: nn.Module, name: str, data: Any = None,
                        batch_size: int = 16, record_name: bool = True) -> Optional[Path]:
    """The last step of the bundle's training (``train.json`` ``finalize``): load the best
    checkpoint that ``CheckpointSaver`` wrote into ``network``, recalibrate its BatchNorm statistics on
    ``data`` (:func:`recalibrate_batchnorm`; skipped when None), and save it (:func:`save_classifier`:
    with its architecture name when ``record_name``, else as the plain state dict that the model zoo
    expects of ``models/model.pt``). Returns the path, or None when no checkpoint was written."""
    path = Path(path)
    if not path.is_file():
        return None
    load_weights(network, path, name=name)
    if data is not None:
        recalibrate_batchnorm(network, data, batch_size=batch_size)
    return save_classifier(network, path, name, record_name=record_name)

"""Localization networks: the segmentation baseline that saliency maps are measured against.

Arun et al. (Radiology: AI 2021) compared every saliency method with a network trained *for*
localization on the same masks: its per-image AUPRC is the localization bar of criterion 1
(U-Net 0.404 on SIIM), and the SSIM between the maps of two such networks trained apart (U-Net
about 0.975) is the bar of repeatability and reproducibility (criteria 3 and 4). This module builds,
saves, loads and runs such networks:

* ``"unet_small"`` - :class:`monai.networks.nets.UNet`, channels 16-32-64-128, strides 2-2-2, no
  residual units, instance normalization, ReLU (never in-place), **one output channel** of logits
  whose bias starts at the lesion prior (:data:`PRIOR_PROBABILITY`); 0.16 M parameters (0.66 MB).
  The MONAI bundle trains two of them (``configs/train_localization.json``, seeds 0 and 1:
  ``models/localizer.pt`` and ``models/localizer_replicate.pt``).

Conventions: input ``(B, C, *spatial)`` float32 exactly as the classifier gets it (the same
:class:`SaliencyTrustLib.preprocessing.Preprocessing`; the bundle's: 1 channel, min-max [0, 1],
224 x 224, axes ``(rows, columns)`` = ``(J, I)``); output ``(B, 1, *spatial)`` logits on the same
grid. :func:`localization_maps` turns them into maps in [0, 1] (sigmoid), comparable pixel by pixel
with the saliency maps and ground-truth masks of that grid. Any ``torch.nn.Module`` with that
input / output contract can serve as a localizer (see ``docs/localizers.md``).

Instance normalization (MONAI's UNet default) keeps no running statistics, so a localizer behaves
the same in train and eval mode: no BatchNorm recalibration step is needed (unlike the classifiers,
:func:`SaliencyTrustLib.networks.recalibrate_batchnorm`).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable, Dict, Hashable, Mapping, Optional, Union

import numpy as np
import torch
from monai.transforms import MapTransform
from torch import nn

from .networks import ARCH_KEY, spatial_dims_of_weights

#: ReLU without in-place modification: gradient hooks must see unmodified activations.
_ACT = ("relu", {"inplace": False})

#: Checkpoint keys beside the weights (``ARCH_KEY`` holds the localizer's name).
SPATIAL_DIMS_KEY = "spatial_dims"
IN_CHANNELS_KEY = "in_channels"

#: Weight files of the bundle, relative to its root, and the localizer each one holds.
BUNDLE_LOCALIZERS: Dict[str, str] = {
    "models/localizer.pt": "unet_small",
    "models/localizer_replicate.pt": "unet_small",
}


#: Lesion probability the untrained output starts at (the bias of the last convolution is
#: ``log(p / (1 - p))``, the prior initialization of Lin et al., "Focal Loss for Dense Object
#: Detection", ICCV 2017): about the fraction of lesion pixels in a positive radiograph. Starting
#: at 0.5 everywhere, the few training steps a CPU allows went into lowering the background.
PRIOR_PROBABILITY = 0.02


def _unet_small(spatial_dims: int, in_channels: int) -> nn.Module:
    from monai.networks.nets import UNet

    model = UNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=1,
                 channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=0, act=_ACT, norm="instance")
    # the top up-sampling convolution, registered last, produces the logits
    convolutions = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    last = [m for m in model.modules() if isinstance(m, convolutions)][-1]
    nn.init.constant_(last.bias, math.log(PRIOR_PROBABILITY / (1.0 - PRIOR_PROBABILITY)))
    return model


#: name -> builder(spatial_dims, in_channels) of a network with one output logit channel.
LOCALIZERS: Dict[str, Callable[[int, int], nn.Module]] = {
    "unet_small": _unet_small,
}


def available_localizers() -> list:
    """Names accepted by :func:`build_localizer`."""
    return sorted(LOCALIZERS)


def build_localizer(name: str = "unet_small", spatial_dims: int = 2, in_channels: int = 1) -> nn.Module:
    """Build an untrained localization network by name (usable from a bundle config with ``_target_``).

    Args:
        name: one of :func:`available_localizers` (``"unet_small"``).
        spatial_dims: 2 for radiographs ``(B, C, H, W)``, 3 for volumes ``(B, C, D, H, W)``.
        in_channels: channels of the input image, as the classifier gets it (1 for the bundle).

    Returns:
        A ``torch.nn.Module`` mapping ``(B, in_channels, *spatial)`` to ``(B, 1, *spatial)`` logits
        (each spatial size a multiple of 8 for ``"unet_small"``: three stride-2 levels).

    Raises:
        ValueError: unknown ``name``, ``spatial_dims`` other than 2 or 3, ``in_channels`` < 1.
    """
    if name not in LOCALIZERS:
        raise ValueError(f"build_localizer: unknown localizer name {name!r}; choose one of {available_localizers()}.")
    if spatial_dims not in (2, 3):
        raise ValueError(f"build_localizer: spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    if int(in_channels) < 1:
        raise ValueError(f"build_localizer: in_channels must be >= 1, got {in_channels!r}.")
    model = LOCALIZERS[name](int(spatial_dims), int(in_channels))
    for module in model.modules():
        if isinstance(module, (nn.ReLU, nn.LeakyReLU, nn.ReLU6, nn.ELU)) and getattr(module, "inplace", False):
            module.inplace = False
    return model


def save_localizer(model: nn.Module, path: Union[str, os.PathLike], name: str,
                   spatial_dims: Optional[int] = None, in_channels: Optional[int] = None) -> Path:
    """Save ``{"model": state_dict, "network_name": name, "spatial_dims": ..., "in_channels": ...}``.

    Loadable by :func:`load_localizer` without arguments, and by MONAI's ``CheckpointLoader`` with
    ``load_dict={"model": net}``.

    Args:
        model: the localizer (a DistributedDataParallel wrapper is unwrapped).
        path: the file to write (folders are created).
        name: its architecture, one of :func:`available_localizers`.
        spatial_dims, in_channels: recorded beside the weights; ``None``: read from the weights
            (rank and input channels of the first convolution kernel).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from .model_spec import infer_in_channels

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model
    state = module.state_dict()
    torch.save({"model": state, ARCH_KEY: name,
                SPATIAL_DIMS_KEY: int(spatial_dims or spatial_dims_of_weights(state)),
                IN_CHANNELS_KEY: int(in_channels or infer_in_channels(state) or 1)}, path)
    return path


def _check_fit(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, name: str) -> None:
    from .networks import weights_mismatch

    details = weights_mismatch(model, state)
    if details:
        raise ValueError(f"{path}: the weights do not fit the localizer {name!r}: " + "; ".join(details)
                         + f". Pass the localizer they were trained with (name=one of {available_localizers()}, and "
                           "the same spatial_dims / in_channels), or load your own network with "
                           "SaliencyTrustLib.model_spec.load_model(ModelSpec(path, factory=...)).")


def load_localizer(path: Union[str, os.PathLike], name: Optional[str] = None, spatial_dims: Optional[int] = None,
                   in_channels: Optional[int] = None, device: Union[str, torch.device] = "cpu") -> nn.Module:
    """Build a localizer and load trained weights into it, in eval mode.

    Args:
        path: a checkpoint of :func:`save_localizer` / ``train_localization.json``, a bundle
            ``CheckpointSaver`` file ``{"model": state_dict}`` or a plain state dict; or a bundle
            folder (then its ``models/localizer.pt``).
        name: architecture; ``None``: the name recorded in the checkpoint, else ``"unet_small"``.
        spatial_dims: 2 or 3; ``None``: recorded, else the rank of the convolution kernels.
        in_channels: ``None``: recorded, else the first convolution kernel's input channels.
        device: where to put the model.

    Returns:
        The model in ``eval()`` mode, ``(B, in_channels, *spatial)`` -> ``(B, 1, *spatial)`` logits.

    Raises:
        FileNotFoundError: no such file (or the bundle folder has no ``models/localizer.pt``).
        ValueError: not a state dict, an unknown name, or weights that do not fit (the message
            lists missing / unexpected / mis-shaped parameters).
    """
    from .model_spec import infer_in_channels
    from .networks import _state_dict_from_checkpoint

    path = Path(path)
    if path.is_dir():
        path = path / "models" / "localizer.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: localizer weight file not found. Train it with the bundle's "
                                "configs/train_localization.json (see docs/localizers.md).")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state, stored_name = _state_dict_from_checkpoint(checkpoint, path)
    recorded = checkpoint if isinstance(checkpoint, Mapping) else {}
    arch = name or stored_name or "unet_small"
    if arch not in LOCALIZERS:
        raise ValueError(f"{path}: holds the weights of {arch!r}, which is not a localizer "
                         f"({available_localizers()}); a classifier's weights go to networks.load_classifier.")
    dims = int(spatial_dims or recorded.get(SPATIAL_DIMS_KEY) or spatial_dims_of_weights(state))
    channels = int(in_channels or recorded.get(IN_CHANNELS_KEY) or infer_in_channels(state) or 1)
    model = build_localizer(arch, spatial_dims=dims, in_channels=channels)
    _check_fit(model, state, path, arch)
    model.load_state_dict(state)
    return model.to(device).eval()


def finalize_localizer(path: Union[str, os.PathLike], network: nn.Module, name: str) -> Optional[Path]:
    """The last step of ``train_localization.json``: load the best checkpoint that ``CheckpointSaver``
    wrote (``{"model": state_dict}``) into ``network`` and save it again with its name, dimensions and
    channels (:func:`save_localizer`). Returns the path, or None when no checkpoint was written."""
    from .networks import _state_dict_from_checkpoint

    path = Path(path)
    if not path.is_file():
        return None
    state, _ = _state_dict_from_checkpoint(torch.load(path, map_location="cpu", weights_only=True), path)
    target = network.module if hasattr(network, "module") else network
    _check_fit(target, state, path, name)
    target.load_state_dict(state)
    return save_localizer(target, path, name)


def localization_maps(model: nn.Module, images: Any, batch_size: int = 8,
                      device: Union[str, torch.device, None] = None) -> np.ndarray:
    """The localizer's per-pixel lesion probability: ``sigmoid(model(images))``.

    Args:
        model: a localizer (:func:`load_localizer`) or any ``torch.nn.Module`` / TorchScript module
            mapping ``(B, C, *spatial)`` to ``(B, 1, *spatial)`` logits (one channel, same grid).
            Run in eval mode under ``torch.no_grad()``; its train / eval mode is restored after.
        images: ``(B, C, *spatial)`` numpy array or torch tensor, exactly the classifier's input
            (same :class:`~SaliencyTrustLib.preprocessing.Preprocessing`; the bundle: ``(B, 1, 224, 224)``
            in [0, 1]); not modified.
        batch_size: images per forward pass (bounds memory).
        device: where to run; default: the device of the model's first parameter (CPU without one).

    Returns:
        float32 ``(B, *spatial)`` in [0, 1], on the input's grid: higher = more likely lesion.

    Raises:
        ValueError: ``images`` not ``(B, C, H, W)`` / ``(B, C, D, H, W)``, ``batch_size`` < 1, or a
            model output that is not one logit channel on the input's grid (the message says what
            came back and how to adapt a multi-channel network).
    """
    tensor = torch.as_tensor(images)
    if tensor.ndim not in (4, 5):
        raise ValueError(f"localization_maps: images must be (B, C, H, W) or (B, C, D, H, W), got shape "
                         f"{tuple(tensor.shape)}; add the batch and channel axes.")
    if int(batch_size) < 1:
        raise ValueError(f"localization_maps: batch_size must be >= 1, got {batch_size!r}.")
    if device is None:
        parameter = next(iter(model.parameters()), None)
        device = parameter.device if parameter is not None else torch.device("cpu")
    spatial = tuple(tensor.shape[2:])
    was_training = model.training
    model.eval()
    maps = []
    try:
        with torch.no_grad():
            for start in range(0, tensor.shape[0], int(batch_size)):
                batch = tensor[start:start + int(batch_size)].to(device=device, dtype=torch.float32)
                logits = model(batch)
                if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (batch.shape[0], 1) + spatial:
                    got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                    raise ValueError(
                        f"localization_maps: the localizer returned {got} for an input of shape "
                        f"{tuple(batch.shape)}; expected one logit channel on the input's grid "
                        f"{(batch.shape[0], 1) + spatial}. For a 2-class softmax network, wrap it to return "
                        "logits[:, 1:] - logits[:, :1] (its sigmoid is the softmax probability of class 1).")
                maps.append(torch.sigmoid(logits[:, 0].float()).cpu())
    finally:
        model.train(was_training)
    if not maps:
        return np.zeros((0,) + spatial, np.float32)
    return torch.cat(maps).numpy().astype(np.float32, copy=False)


class MaskToModeld(MapTransform):
    """A ground-truth mask onto the classifier's grid, as a MONAI dictionary transform.

    Each key's value (a mask file path read with :func:`SaliencyTrustLib.io.read_image`, or an
    :class:`~SaliencyTrustLib.image.ImageVolume`) goes through the orientation and geometry steps
    of ``preprocessing`` (:meth:`~SaliencyTrustLib.preprocessing.Preprocessing.mask_to_model`,
    nearest neighbour), the path the study pipeline takes for its masks, so mask pixel ``(j, i)``
    matches the pixel of the classifier input that :class:`~SaliencyTrustLib.preprocessing_monai.Preprocessingd`
    gives. The mask file must lie on its image's grid with the same geometry (the datalist's
    contract; ``prepare_datalist.py`` and ``saliency-trust synth`` write them so).

    Args:
        keys: mask keys (the datalist's ``"mask"``).
        preprocessing: a :class:`~SaliencyTrustLib.preprocessing.Preprocessing` (or its keyword
            arguments as a dict); its ``input_size`` is the output grid.
        spatial_dims: 2 (radiographs) or 3 (volumes).
        missing: ``"zeros"`` (default): an item without the key, or with ``None``, gets an empty
            mask (the negatives of an RSNA / SIIM datalist list none); ``"error"``: ``KeyError``.

    Output: each key holds a float32 tensor ``(1, *model grid)`` of 0 / 1 (1 = lesion).
    """

    def __init__(self, keys: Any, preprocessing: Any = None, spatial_dims: int = 2, missing: str = "zeros") -> None:
        from .preprocessing import Preprocessing

        super().__init__(keys, allow_missing_keys=missing == "zeros")
        if missing not in ("zeros", "error"):
            raise ValueError(f"MaskToModeld: missing must be 'zeros' or 'error', got {missing!r}.")
        if isinstance(preprocessing, Mapping):
            preprocessing = Preprocessing(**preprocessing)
        self.preprocessing = preprocessing or Preprocessing()
        self.spatial_dims = int(spatial_dims)
        self.missing = missing

    def __call__(self, data: Mapping[Hashable, Any]) -> Dict[Hashable, Any]:
        from .image import ImageVolume
        from .io import read_image

        d = dict(data)
        for key in self.keys:
            value = d.get(key)
            if value is None or (isinstance(value, str) and not value):
                if self.missing == "error":
                    raise KeyError(f"MaskToModeld: item {d.get('case_id', '')!r} has no {key!r}.")
                mask = np.zeros(self.preprocessing.model_shape(self.spatial_dims), bool)
            else:
                volume = value if isinstance(value, ImageVolume) else read_image(value)
                geometry = self.preprocessing.geometry(volume, self.spatial_dims)
                mask = self.preprocessing.mask_to_model(np.asarray(volume.array) > 0, geometry)
            d[key] = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)[None])
        return d


__all__ = ["LOCALIZERS", "BUNDLE_LOCALIZERS", "PRIOR_PROBABILITY", "available_localizers", "build_localizer",
           "save_localizer", "load_localizer", "finalize_localizer", "localization_maps", "MaskToModeld"]

"""Command-line options shared by ``saliency-trust evaluate``, ``saliency`` and ``demo``: the one
model description (:class:`~SaliencyTrustLib.model_spec.ModelSpec`) and the one preprocessing
description (:class:`~SaliencyTrustLib.preprocessing.Preprocessing`). No torch import here.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Dict, Optional

#: The model roles of a study and their option prefixes.
ROLES = (("original", "model", "the trained classifier"),
         ("replicate", "replicate", "a second model of the same architecture trained apart (repeatability)"),
         ("second_arch", "second-arch", "a model of another architecture (reproducibility)"),
         ("label_randomized", "label-randomized",
          "the same architecture trained on permuted labels (the data_randomization criterion)"))


def add_model_arguments(parser: argparse.ArgumentParser, roles=ROLES, bundle: bool = True) -> None:
    group = parser.add_argument_group(
        "models (weights + --*-factory or --*-name, a TorchScript file, a MONAI bundle folder, or a pickled model "
        "with --allow-pickle)")
    if bundle:
        group.add_argument("--bundle", help="MONAI bundle folder: its network_def + models/model.pt "
                                            "(+ model_replicate.pt, model_second_arch.pt, "
                                            "model_label_randomized.pt)")
    for _, flag, meaning in roles:
        group.add_argument(f"--{flag}", help=f"{meaning}: weight file, TorchScript file or bundle folder")
        group.add_argument(f"--{flag}-name", help="its built-in architecture (densenet_small, resnet_small, "
                                                  "densenet121); default: recorded in the checkpoint")
        group.add_argument(f"--{flag}-factory", metavar="MODULE:CALLABLE",
                           help="builds its network: an importable module or a .py file, e.g. labnet.py:build")
        group.add_argument(f"--{flag}-kwargs", metavar="JSON", help="keyword arguments of the factory, a JSON object")
    group.add_argument("--allow-pickle", action="store_true",
                       help="accept fully pickled models (torch.save(model)); unpickling runs code from the file")


def add_preprocessing_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "preprocessing (default: the bundle's network_data_format, else 1 channel from the model, 224 px (64 voxels "
        "3D), squash, minmax01)")
    group.add_argument("--preprocessing", choices=("bundle", "study"),
                       help="preset: bundle (1 channel, 224, [0, 1]) or study (Arun et al.: 3 channels, 320, [-1, 1])")
    group.add_argument("--in-channels", type=int, help="input channels (grey repeated); default: the model's first conv")
    group.add_argument("--input-size", type=int, help="model input edge, pixels (voxels for a 3D model)")
    group.add_argument("--resize", choices=("squash", "pad", "crop"),
                       help="squash (default), pad keeping the aspect ratio, or centre crop")
    group.add_argument("--intensity", help="minmax01 (default), minmax11, imagenet, meanstd:M,S, window:C,W or none")
    group.add_argument("--no-orient", action="store_true", help="skip the orientation step (LPS display order)")


def _spec(args: argparse.Namespace, flag: str, fallback=None):
    from .model_spec import ModelSpec, parse_kwargs

    key = flag.replace("-", "_")
    path = getattr(args, key, None)
    if path is None:
        return None
    factory = getattr(args, f"{key}_factory", None)
    name = getattr(args, f"{key}_name", None)
    kwargs = getattr(args, f"{key}_kwargs", None)
    if fallback is not None and factory is None and name is None:   # the replicate: same architecture
        factory, name = fallback.factory, fallback.name
        kwargs = kwargs if kwargs is not None else fallback.kwargs
    return ModelSpec(path=path, name=name, factory=factory,
                     kwargs=parse_kwargs(kwargs) if isinstance(kwargs, str) else (kwargs or {}),
                     allow_pickle=bool(getattr(args, "allow_pickle", False)))


def models_from_args(args: argparse.Namespace):
    """:class:`~SaliencyTrustLib.cohort.StudyModels` from ``--bundle`` / ``--model`` and friends."""
    from .cohort.settings import StudyModels
    from .model_spec import ModelError

    original = _spec(args, "model")
    if original is None and getattr(args, "bundle", None):
        models = StudyModels.from_bundle(args.bundle)
    elif original is not None:
        models = StudyModels(original=original)
    else:
        raise ModelError(None, "no model given.", "pass --bundle BUNDLE_DIR or --model PATH.")
    replicate = _spec(args, "replicate", fallback=original)
    second = _spec(args, "second-arch")
    label_randomized = _spec(args, "label-randomized", fallback=original)
    models.replicate = replicate or models.replicate
    models.second_arch = second or models.second_arch
    models.label_randomized = label_randomized or models.label_randomized
    return models


def bundle_folder(args: argparse.Namespace) -> Optional[Path]:
    """The bundle folder the model comes from, if any (``--bundle``, or ``--model`` naming one)."""
    for value in (getattr(args, "model", None), getattr(args, "bundle", None)):
        if value and Path(value).is_dir():
            return Path(value)
    return None


def preprocessing_from_args(args: argparse.Namespace, default: Optional[Dict[str, Any]] = None):
    """The :class:`~SaliencyTrustLib.preprocessing.Preprocessing` the options give: the preset,
    else the bundle's ``network_data_format``, else ``default``; single options override."""
    from .model_spec import bundle_preprocessing
    from .preprocessing import PRESETS, Preprocessing

    if getattr(args, "preprocessing", None):
        base = dict(PRESETS[args.preprocessing])
    else:
        folder = bundle_folder(args)
        base = {**(default or {}), **(bundle_preprocessing(folder) if folder else {})}
    overrides = {"in_channels": args.in_channels, "input_size": args.input_size, "resize": args.resize,
                 "intensity": args.intensity}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if getattr(args, "no_orient", False):
        base["orient"] = False
    return Preprocessing(**base)

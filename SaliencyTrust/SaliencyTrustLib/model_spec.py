"""One description of a classifier, for every front end: what a lab has, loaded the same way.

A :class:`ModelSpec` names one of

* a **weight file** (a state dict, or a checkpoint holding one under any key) plus how to build the
  network: a built-in ``name`` (:func:`SaliencyTrustLib.networks.available_classifiers`), a
  ``factory`` ``"package.module:callable"`` or ``"path/to/file.py:callable"`` called with
  ``kwargs``; without either, the architecture recorded in the checkpoint (the bundle's
  ``network_name``);
* a **TorchScript** file (``torch.jit.save``; recognised by its archive content);
* a **MONAI bundle folder**: the network is built from its own ``configs/inference.json``
  ``network_def`` and the weights are its ``models/model.pt``; the bundle's
  ``network_data_format`` also gives the input channels and size (:func:`bundle_preprocessing`);
* a **fully pickled model** (``torch.save(model)``) - only with ``allow_pickle=True``, because
  unpickling runs code from the file.

:func:`load_model` returns the network in eval mode; every problem is one :class:`ModelError`
naming the file and the fix, raised before any long work. :func:`check_model_input` runs one
forward pass on an input of the preprocessing's shape, so a wrong channel count or size is caught
before the first map.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple

from .io.errors import InputError

#: Methods that need module hooks, which a TorchScript model does not offer.
HOOK_METHODS = ("gradcam", "gradcam_pp", "guided_backprop", "guided_gradcam")


class ModelError(InputError):
    """A model that cannot be used: the file (or factory) it came from, why, and the fix."""


@dataclass
class ModelSpec:
    """How to obtain one classifier (see the module docstring).

    Attributes:
        path: weight file, TorchScript file, pickled model or bundle folder.
        name: built-in architecture for a weight file.
        factory: ``"module:callable"`` or ``"file.py:callable"`` building the network.
        kwargs: keyword arguments of ``factory`` / the built-in builder (``in_channels``,
            ``num_classes``, ``spatial_dims`` for a built-in).
        allow_pickle: accept a fully pickled model (runs code from the file).
    """

    path: Optional[str] = None
    name: Optional[str] = None
    factory: Optional[str] = None
    kwargs: Dict[str, Any] = field(default_factory=dict)
    allow_pickle: bool = False

    def __post_init__(self) -> None:
        if self.path is not None:
            self.path = str(self.path)
        if isinstance(self.kwargs, str):
            self.kwargs = parse_kwargs(self.kwargs)
        self.kwargs = dict(self.kwargs or {})
        if self.name and self.factory:
            raise ModelError(self.path, f"both a built-in name ({self.name!r}) and a factory ({self.factory!r}) "
                             "were given.", "give one of them.")

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def parse_kwargs(text: Optional[str]) -> Dict[str, Any]:
    """``--model-kwargs`` JSON -> dict (a clear error for anything else)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ModelError(None, f"--model-kwargs {text!r} is not JSON ({error.msg}).",
                         'write a JSON object, e.g. \'{"num_classes": 2}\'.') from None
    if not isinstance(value, dict):
        raise ModelError(None, f"--model-kwargs {text!r} is not a JSON object.", 'write e.g. \'{"num_classes": 2}\'.')
    return value


def is_torchscript(path: Path) -> bool:
    """True for a ``torch.jit.save`` archive (it holds ``code/`` and ``constants.pkl``)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("/constants.pkl") for n in names) and any("/code/" in n for n in names)


def _import_factory(factory: str):
    module_name, _, attribute = factory.rpartition(":")
    if not module_name or not attribute:
        raise ModelError(None, f"--model-factory {factory!r} is not MODULE:CALLABLE.",
                         "write e.g. mypackage.models:build or path/to/models.py:build.")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise ModelError(path, "the factory's Python file does not exist.", "give an existing .py file.")
            spec = importlib.util.spec_from_file_location(f"_saliency_trust_factory_{path.stem}", path)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ModelError:
        raise
    except Exception as error:  # noqa: BLE001 - any import failure is the user's factory
        raise ModelError(module_name, f"cannot import the factory module ({type(error).__name__}: {error}).",
                         "check the module path (importable, or a .py file) and its imports.") from None
    builder = getattr(module, attribute, None)
    if not callable(builder):
        raise ModelError(module_name, f"has no callable {attribute!r}.", "name a function or class that builds the network.")
    return builder


def build_network(spec: ModelSpec, state: Optional[Mapping[str, Any]] = None, stored_name: Optional[str] = None):
    """The untrained network of ``spec`` (factory, built-in name, or the checkpoint's record)."""
    from torch import nn

    from .networks import ARCHITECTURES, build_classifier, spatial_dims_of_weights

    if spec.factory:
        builder = _import_factory(spec.factory)
        try:
            network = builder(**spec.kwargs)
        except Exception as error:  # noqa: BLE001 - the user's factory failed
            raise ModelError(spec.factory, f"the factory failed with {type(error).__name__}: {error}.",
                             "check --model-kwargs against the factory's arguments.") from None
        if not isinstance(network, nn.Module):
            raise ModelError(spec.factory, f"returned a {type(network).__name__}, not a torch.nn.Module.",
                             "return the network object.")
        return network, spec.factory
    name = spec.name or stored_name
    if name is None:
        raise ModelError(spec.path, "a weight file without an architecture.",
                         "pass --model-factory MODULE:CALLABLE (your network's builder, with --model-kwargs JSON), "
                         f"or --model-name one of {sorted(ARCHITECTURES)}.")
    kwargs = dict(spec.kwargs)
    if state is not None:
        kwargs.setdefault("spatial_dims", spatial_dims_of_weights(state))
        kwargs.setdefault("in_channels", infer_in_channels(state) or 1)
        kwargs.setdefault("num_classes", infer_num_classes(state) or 2)
    try:
        return build_classifier(name, **kwargs), name
    except (ValueError, TypeError) as error:
        raise ModelError(spec.path, str(error), f"use one of {sorted(ARCHITECTURES)} or --model-factory.") from None


def _load_checkpoint(path: Path, allow_pickle: bool):
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, TypeError) as error:
        # torch.save archives are zip files; anything else refused here is not a torch file
        if not zipfile.is_zipfile(path) or not isinstance(error, pickle.UnpicklingError):
            raise ModelError(path, f"not a PyTorch file ({type(error).__name__}: {str(error).splitlines()[0]}).",
                             "give a state dict, a TorchScript file, a bundle folder or a pickled model.") from None
        if not allow_pickle:
            raise ModelError(path, "holds a pickled Python object (a whole model), and unpickling runs code "
                             "from the file.", "pass --allow-pickle if you trust the file, or save "
                             "model.state_dict() and pass --model-factory.") from None
    except Exception as error:  # noqa: BLE001 - truncated / not a torch file
        raise ModelError(path, f"cannot be read by torch.load ({type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}).",
                         "give a state dict, a TorchScript file, a bundle folder or a pickled model.") from None
    return torch.load(path, map_location="cpu", weights_only=False)


def _state_dict(checkpoint: Any, path: Path) -> Tuple[Dict[str, Any], Optional[str]]:
    """A state dict from a checkpoint: a plain one, or one under any key (``model``,
    ``state_dict``, ``network``, a bundle's own key...); a ``module.`` prefix stripped."""
    import torch

    from .networks import ARCH_KEY

    if not isinstance(checkpoint, Mapping):
        raise ModelError(path, f"holds a {type(checkpoint).__name__}, not a state dict.",
                         "save torch.save(model.state_dict(), path) or pass a TorchScript / bundle.")
    name = checkpoint.get(ARCH_KEY) if isinstance(checkpoint.get(ARCH_KEY), str) else None
    candidates = [checkpoint] + [v for v in checkpoint.values() if isinstance(v, Mapping)]
    for candidate in candidates:
        tensors = {k: v for k, v in candidate.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return {k[len("module."):] if k.startswith("module.") else k: v for k, v in tensors.items()}, name
    raise ModelError(path, "holds no tensors.", "give the classifier's state dict.")


def infer_in_channels(state: Mapping[str, Any]) -> Optional[int]:
    """Input channels of the first convolution kernel in a state dict (None without one)."""
    for key, tensor in state.items():
        if key.endswith("weight") and getattr(tensor, "ndim", 0) in (4, 5):
            return int(tensor.shape[1])
    return None


def infer_num_classes(state: Mapping[str, Any]) -> Optional[int]:
    """Outputs of the last 2D weight (the classification layer) in a state dict."""
    last = None
    for key, tensor in state.items():
        if key.endswith("weight") and getattr(tensor, "ndim", 0) == 2:
            last = int(tensor.shape[0])
    return last


def bundle_preprocessing(bundle_dir: Path) -> Dict[str, Any]:
    """``in_channels``, ``input_size``, ``intensity`` from a bundle's ``network_data_format``
    (empty when the bundle does not say)."""
    metadata = Path(bundle_dir) / "configs" / "metadata.json"
    if not metadata.is_file():
        return {}
    try:
        image = json.loads(metadata.read_text())["network_data_format"]["inputs"]["image"]
    except (KeyError, TypeError, ValueError):
        return {}
    found: Dict[str, Any] = {}
    if isinstance(image.get("num_channels"), int):
        found["in_channels"] = image["num_channels"]
    shape = image.get("spatial_shape")
    if isinstance(shape, list) and shape and all(isinstance(n, int) for n in shape):
        found["input_size"] = shape[0] if len(set(shape)) == 1 else tuple(shape)
    value_range = image.get("value_range")
    if value_range == [0, 1]:
        found["intensity"] = "minmax01"
    elif value_range == [-1, 1]:
        found["intensity"] = "minmax11"
    return found


def _bundle_network(bundle_dir: Path):
    """``network_def`` of the bundle's inference config (its ``bundle_root`` set to the folder)."""
    from monai.bundle import ConfigParser

    for name in ("inference.json", "inference.yaml", "inference.yml"):
        config = bundle_dir / "configs" / name
        if config.is_file():
            break
    else:
        raise ModelError(bundle_dir, "a bundle folder without configs/inference.json.",
                         "give the bundle root (holding configs/ and models/) or its weight file.")
    parser = ConfigParser()
    parser.read_config(str(config))
    parser["bundle_root"] = str(bundle_dir)
    if "network_def" not in parser.config:
        raise ModelError(config, "has no network_def.", "give the weight file with --model-factory instead.")
    try:
        return parser.get_parsed_content("network_def", instantiate=True)
    except Exception as error:  # noqa: BLE001 - the bundle's own config failed
        raise ModelError(config, f"network_def could not be built ({type(error).__name__}: {error}).",
                         "check the bundle's configuration and its packages.") from None


def load_model(spec: ModelSpec, device: Any = "cpu"):
    """The classifier ``spec`` describes, on ``device``, in eval mode.

    Returns:
        A ``torch.nn.Module`` (or ``torch.jit.ScriptModule``) mapping ``(B, C, *spatial)`` to
        ``(B, classes)`` logits.

    Raises:
        ModelError: missing file, unknown kind, pickled model without ``allow_pickle``, a factory
            that fails, weights that do not fit (the message lists what does not fit).
    """
    import torch
    from torch import nn

    if spec.path is None:
        raise ModelError(None, "no model given.", "pass --model PATH (weights, TorchScript or a bundle folder).")
    path = Path(spec.path)
    if path.is_dir():
        weights = path / "models" / "model.pt"
        if not weights.is_file():
            raise ModelError(path, "the bundle holds no models/model.pt.", "train it, or give the weight file.")
        if not (path / "configs").is_dir() or spec.name or spec.factory:  # weights that name their network
            return load_model(ModelSpec(path=str(weights), name=spec.name, factory=spec.factory,
                                        kwargs=spec.kwargs), device)
        network = _bundle_network(path)
        state, _ = _state_dict(_load_checkpoint(weights, False), weights)
        return _load_into(network, state, weights, "the bundle's network_def").to(device).eval()
    if not path.is_file():
        raise ModelError(path, "no such model file or bundle folder.", "check the path.")
    if is_torchscript(path):
        try:
            return torch.jit.load(str(path), map_location=device).eval()
        except Exception as error:  # noqa: BLE001
            raise ModelError(path, f"a TorchScript archive torch.jit.load cannot read ({error}).",
                             "re-export it with torch.jit.save.") from None
    checkpoint = _load_checkpoint(path, spec.allow_pickle)
    if isinstance(checkpoint, nn.Module):
        return checkpoint.to(device).eval()
    state, stored_name = _state_dict(checkpoint, path)
    network, label = build_network(spec, state, stored_name)
    return _load_into(network, state, path, label).to(device).eval()


def _load_into(network, state: Mapping[str, Any], path: Path, label: str):
    """``network`` with ``state`` loaded, or a :class:`ModelError` listing what does not fit."""
    from .networks import weights_mismatch

    details = weights_mismatch(network, state)
    if details:
        raise ModelError(path, f"the weights do not fit the network {label!r}: " + "; ".join(details) + ".",
                         "pass the factory / architecture the weights were trained with "
                         "(--model-factory, --model-kwargs, --model-name).")
    network.load_state_dict(state)
    return network


def describe_model(spec_or_model: Any) -> Dict[str, Any]:
    """What identifies a model in the fingerprint: the spec and the sha256 of its weight file
    (a bundle: its ``models/model.pt``), or for an in-memory module the sha256 of its tensors."""
    import hashlib

    from .cohort.fingerprint import file_sha256

    if isinstance(spec_or_model, ModelSpec):
        path = Path(spec_or_model.path or "")
        weights = path / "models" / "model.pt" if path.is_dir() else path
        return {**spec_or_model.to_dict(), "sha256": file_sha256(weights) if weights.is_file() else None}
    digest = hashlib.sha256()
    for key, tensor in spec_or_model.state_dict().items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return {"in_memory": type(spec_or_model).__name__, "sha256": digest.hexdigest()}


def is_scripted(model: Any) -> bool:
    import torch

    return isinstance(model, torch.jit.ScriptModule)


def unsupported_methods(model: Any, methods) -> Dict[str, str]:
    """``{method: reason}`` for the methods this model cannot run (hooks on a TorchScript model)."""
    if not is_scripted(model):
        return {}
    return {m: "needs module hooks, which a TorchScript model does not offer; give the weights and a "
               "--model-factory to run it" for m in methods if m in HOOK_METHODS}


def check_model_input(model: Any, batch_shape: Tuple[int, ...], source: str) -> int:
    """Run one forward pass of zeros ``batch_shape`` = ``(1, C, *spatial)``; returns the number of
    classes.

    Raises:
        ModelError: the model refuses the input, or does not return ``(1, classes)`` logits.
    """
    import torch

    try:
        param = next(iter(model.parameters()))
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    try:
        with torch.no_grad():
            output = model(torch.zeros(batch_shape, device=device, dtype=dtype))
    except Exception as error:  # noqa: BLE001 - any failure here is a mismatch of model and input
        first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise ModelError(source, f"the model does not accept input of shape {tuple(batch_shape)} "
                         f"(batch, channels, *spatial): {first}",
                         "set --in-channels / --input-size to what the model was trained on "
                         "(or the bundle's network_data_format).") from None
    if not isinstance(output, torch.Tensor) or output.ndim != 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ModelError(source, f"the model returns {shape}, not (batch, classes) logits.",
                         "wrap it so that forward returns one logit per class.")
    return int(output.shape[1])

"""Model-weight randomization for the sensitivity criterion (Adebayo et al. 2018; Arun et al. 2021).

Cascading randomization re-initializes the model **from the top down**, cumulatively: first the
logit layer, then the block (or layer) below it, and so on down to the input stem; the
independent variant re-initializes one unit at a time on an otherwise trained model.

* **Order.** "Top-down" follows the order in which modules *run* in ``forward`` (found by tracing a
  forward pass with hooks on a dummy or given input), reversed - not the order in which they were
  registered in ``__init__``, which can differ (e.g. a classifier head declared first).
* **Granularity.** ``"layers"``: every module owning parameters (conv, linear, norm...).
  ``"blocks"``: the children of the model's feature extractor (``model.features`` when it exists,
  as in MONAI's and torchvision's DenseNet: stem conv/norm, ``denseblock*``, ``transition*``,
  ``norm5``) plus the model's other top-level children holding parameters (``class_layers``,
  ``fc``...); without a ``features`` attribute, the model's top-level children. ``blocks=[...]``
  names the units explicitly (qualified module names).
* **Re-initialization.** Each module's own initializer (``reset_parameters()``), under a seed
  derived from ``(seed, qualified module name)``, so a layer gets the same random weights in the
  cascading and the independent variants and in every run. Modules without ``reset_parameters``
  get Kaiming-uniform weights (``a = sqrt(5)``, PyTorch's conv/linear default) for parameters of
  2 or more dimensions and ``U(-1/sqrt(n), 1/sqrt(n))`` (``n`` elements) for the others.
* **Normalization layers** (BatchNorm/InstanceNorm with running statistics, GroupNorm, LayerNorm),
  ``bn_policy``: ``"reset"`` (default): running mean 0, running variance 1, weight 1, bias 0
  (their ``reset_parameters``, what a freshly built layer holds); ``"keep"``: left trained and not
  a unit of their own; ``"randomize_affine"``: running statistics kept, weight ~ U(0, 1) and bias ~
  U(-1, 1) under the layer's seed.
* The caller's model is **never modified**: every state is built on a deep copy.
"""

from __future__ import annotations

import copy
import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

__all__ = ["BN_POLICIES", "GRANULARITIES", "RandomizationUnit", "trace_forward_order",
           "randomization_units", "randomize_unit", "layer_seed", "CascadingRandomization",
           "IndependentRandomization", "cascading_randomization", "independent_randomization",
           "fully_randomized", "infer_example_input"]

BN_POLICIES = ("reset", "keep", "randomize_affine")
GRANULARITIES = ("layers", "blocks")

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


@dataclass
class RandomizationUnit:
    """One step of the cascade: the modules re-initialized together.

    Attributes:
        name: qualified name of the unit (a layer or a block), used as the state name.
        modules: qualified names of the parameterized modules inside it that are re-initialized.
        forward_index: position of the unit's first call in the traced forward pass (0 = first).
    """

    name: str
    modules: List[str] = field(default_factory=list)
    forward_index: int = -1

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "modules": list(self.modules), "forward_index": self.forward_index}


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES)


def _owns_parameters(module: nn.Module) -> bool:
    return any(True for _ in module.parameters(recurse=False)) or (
        _is_norm(module) and getattr(module, "running_mean", None) is not None)


def _randomizable(module: nn.Module, bn_policy: str) -> bool:
    if not _owns_parameters(module):
        return False
    return not (_is_norm(module) and bn_policy == "keep")


def infer_example_input(model: nn.Module) -> torch.Tensor:
    """A zero input for tracing, shaped from one of the model's conv or linear layers.

    Candidates, tried in registration order until one runs through ``model``:
    ``(1, in_channels, 64, 64)`` for a 2D conv (``32 ** 3`` for 3D, 64 for 1D),
    ``(1, in_features)`` for a linear layer.

    Raises:
        ValueError: when no candidate runs; pass ``example_input``.
    """
    candidates = []
    for module in model.modules():
        if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            dims = module.weight.dim() - 2
            size = 64 if dims <= 2 else 32
            candidates.append(torch.zeros((1, module.in_channels) + (size,) * dims,
                                          dtype=module.weight.dtype, device=module.weight.device))
        elif isinstance(module, nn.Linear):
            candidates.append(torch.zeros((1, module.in_features), dtype=module.weight.dtype,
                                          device=module.weight.device))
    was_training = model.training
    model.eval()
    try:
        for candidate in candidates:
            try:
                with torch.no_grad():
                    model(candidate)
                return candidate
            except Exception:  # noqa: BLE001 - a shape that does not fit: try the next one
                continue
    finally:
        model.train(was_training)
    raise ValueError("cannot infer the input shape of this model for tracing its forward order; "
                     "pass example_input=<a tensor (1, C, *spatial) the model accepts>")


def trace_forward_order(model: nn.Module, example_input: Optional[torch.Tensor] = None) -> List[str]:
    """Qualified names of the model's submodules in the order of their first call in ``forward``.

    Runs one forward pass of ``example_input`` (inferred when None, see
    :func:`infer_example_input`) on a deep copy in eval mode without gradients, with a forward
    pre-hook on every submodule. Modules never called are absent from the list.
    """
    work = copy.deepcopy(model).eval()            # the caller's model never runs nor changes
    if example_input is None:
        example_input = infer_example_input(work)
    order: List[str] = []
    seen = set()
    handles = []
    for name, module in work.named_modules():
        if not name:
            continue

        def hook(mod, args, _name=name):
            if _name not in seen:
                seen.add(_name)
                order.append(_name)
        handles.append(module.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            work(example_input)
    finally:
        for handle in handles:
            handle.remove()
    return order


def _feature_extractor(model: nn.Module) -> Tuple[str, nn.Module]:
    features = getattr(model, "features", None)
    if isinstance(features, nn.Module) and len(list(features.children())) > 0:
        return "features", features
    return "", model


def _candidate_units(model: nn.Module, granularity: str, bn_policy: str,
                     blocks: Optional[Sequence[str]]) -> List[str]:
    modules = dict(model.named_modules())
    if blocks is not None:
        missing = [b for b in blocks if b not in modules]
        if missing:
            raise ValueError(f"blocks: no module named {missing} in the model; names are qualified "
                             f"module names such as {list(modules)[1:6]}")
        return list(blocks)
    if granularity == "layers":
        return [name for name, module in model.named_modules()
                if name and _randomizable(module, bn_policy)]
    prefix, extractor = _feature_extractor(model)
    names = [f"{prefix}.{child}" if prefix else child for child, _ in extractor.named_children()]
    if prefix:
        names += [child for child, _ in model.named_children() if child != prefix]
    return names


def randomization_units(model: nn.Module, granularity: str = "blocks", *,
                        bn_policy: str = "reset", example_input: Optional[torch.Tensor] = None,
                        blocks: Optional[Sequence[str]] = None) -> List[RandomizationUnit]:
    """The units of the cascade, **top-down**: reverse forward-execution order.

    Args:
        model: any ``torch.nn.Module`` classifier (not modified).
        granularity: ``"blocks"`` or ``"layers"`` (see the module docstring).
        bn_policy: ``"reset"``, ``"keep"`` or ``"randomize_affine"``; with ``"keep"`` a unit made
            only of normalization layers has nothing to randomize and is left out.
        example_input: one input batch for tracing, e.g. ``images[:1]``; inferred when None.
        blocks: explicit unit names (qualified module names), overriding ``granularity``.

    Returns:
        list of :class:`RandomizationUnit`, first = the unit that runs last (the logit layer).
        Units with nothing to randomize, and units never called in the traced forward pass, are
        left out.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    if bn_policy not in BN_POLICIES:
        raise ValueError(f"bn_policy must be one of {BN_POLICIES}, got {bn_policy!r}")
    order = trace_forward_order(model, example_input)
    position = {name: i for i, name in enumerate(order)}
    modules = dict(model.named_modules())
    units = []
    for name in _candidate_units(model, granularity, bn_policy, blocks):
        inner = [qualified for qualified, module in modules.items()
                 if (qualified == name or qualified.startswith(name + "."))
                 and _randomizable(module, bn_policy)]
        called = [position[q] for q in [name] + inner if q in position]
        if not inner or not called:
            continue
        units.append(RandomizationUnit(name=name, modules=inner, forward_index=min(called)))
    units.sort(key=lambda unit: unit.forward_index, reverse=True)
    return units


def layer_seed(seed: int, name: str) -> int:
    """The seed of one module's re-initialization: a hash of ``(seed, qualified name)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode("utf-8"))])
    return int(state.generate_state(1, dtype=np.uint64)[0] % (2 ** 63 - 1))


def _fallback_init(module: nn.Module) -> None:
    for param in module.parameters(recurse=False):
        if param.dim() >= 2:
            nn.init.kaiming_uniform_(param, a=math.sqrt(5))
        else:
            bound = 1.0 / math.sqrt(max(param.numel(), 1))
            nn.init.uniform_(param, -bound, bound)


def _reinitialize(module: nn.Module, bn_policy: str) -> None:
    if _is_norm(module):
        if bn_policy == "randomize_affine":
            if getattr(module, "weight", None) is not None:
                nn.init.uniform_(module.weight, 0.0, 1.0)
            if getattr(module, "bias", None) is not None:
                nn.init.uniform_(module.bias, -1.0, 1.0)
            return
        if bn_policy == "keep":
            return
    if hasattr(module, "reset_parameters"):
        module.reset_parameters()
    else:
        _fallback_init(module)


def randomize_unit(model: nn.Module, unit: RandomizationUnit, seed: int, bn_policy: str) -> None:
    """Re-initialize, **in place on ``model``**, every module of ``unit`` (each with its own seed)."""
    modules = dict(model.named_modules())
    for name in unit.modules:
        module = modules[name]
        cuda = sorted({p.device.index or 0 for p in module.parameters(recurse=False)
                       if p.device.type == "cuda"})
        with torch.random.fork_rng(devices=cuda), torch.no_grad():
            torch.manual_seed(layer_seed(seed, name))
            _reinitialize(module, bn_policy)


class _Randomization:
    mode = ""

    def __init__(self, model: nn.Module, granularity: str = "blocks", seed: int = 0,
                 bn_policy: str = "reset", example_input: Optional[torch.Tensor] = None,
                 blocks: Optional[Sequence[str]] = None, include_original: bool = True,
                 copy_each: bool = False):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.granularity = granularity
        self.seed = int(seed)
        self.bn_policy = bn_policy
        self.include_original = include_original
        self.copy_each = copy_each
        self.units = randomization_units(model, granularity, bn_policy=bn_policy,
                                         example_input=example_input, blocks=blocks)
        if not self.units:
            raise ValueError("the model has no parameterized module to randomize")

    @property
    def state_names(self) -> List[str]:
        """Names of the states yielded, in order (``"original"`` first when included)."""
        return (["original"] if self.include_original else []) + [u.name for u in self.units]

    def __len__(self) -> int:
        return len(self.state_names)

    def settings(self) -> Dict[str, Any]:
        """Parameters that define the states (recorded in results)."""
        return {"mode": self.mode, "granularity": self.granularity, "seed": self.seed,
                "bn_policy": self.bn_policy, "units": [u.to_dict() for u in self.units]}


class CascadingRandomization(_Randomization):
    """Iterable of ``(state_name, model)``: ``"original"`` then the units randomized top-down,
    cumulatively. Built from keyword arguments (usable with ``_target_`` in a bundle config).

    The model yielded is one working deep copy randomized further at each step; keep
    ``copy.deepcopy(model)`` of a state you need later, or pass ``copy_each=True``.
    """

    mode = "cascading"

    def __iter__(self) -> Iterator[Tuple[str, nn.Module]]:
        work = copy.deepcopy(self.model)
        if self.include_original:
            yield "original", (copy.deepcopy(work) if self.copy_each else work)
        for unit in self.units:
            randomize_unit(work, unit, self.seed, self.bn_policy)
            yield unit.name, (copy.deepcopy(work) if self.copy_each else work)


class IndependentRandomization(_Randomization):
    """Iterable of ``(state_name, model)``: ``"original"`` then, for each unit top-down, a fresh
    copy of the trained model with only that unit re-initialized (same per-layer seeds as the
    cascade)."""

    mode = "independent"

    def __iter__(self) -> Iterator[Tuple[str, nn.Module]]:
        if self.include_original:
            yield "original", copy.deepcopy(self.model)
        for unit in self.units:
            work = copy.deepcopy(self.model)
            randomize_unit(work, unit, self.seed, self.bn_policy)
            yield unit.name, work


def cascading_randomization(model: nn.Module, granularity: str = "blocks", seed: int = 0,
                            bn_policy: str = "reset", **kwargs: Any) -> CascadingRandomization:
    """Cascading top-down randomization states of ``model``; see :class:`CascadingRandomization`.

    Args:
        model: the trained classifier (never modified).
        granularity: ``"blocks"`` (default) or ``"layers"``.
        seed: base seed; each module's seed is :func:`layer_seed` ``(seed, name)``.
        bn_policy: ``"reset"`` (default), ``"keep"`` or ``"randomize_affine"``.
        **kwargs: ``example_input``, ``blocks``, ``include_original``, ``copy_each``.

    Example:
        >>> for state, randomized in cascading_randomization(model, example_input=x[:1]):
        ...     maps = compute_saliency(randomized, x, "gradcam")
    """
    return CascadingRandomization(model, granularity, seed, bn_policy, **kwargs)


def independent_randomization(model: nn.Module, granularity: str = "blocks", seed: int = 0,
                              bn_policy: str = "reset", **kwargs: Any) -> IndependentRandomization:
    """Independent (one unit at a time) randomization states; see :class:`IndependentRandomization`."""
    return IndependentRandomization(model, granularity, seed, bn_policy, **kwargs)


def fully_randomized(model: nn.Module, seed: int = 0, bn_policy: str = "reset",
                     example_input: Optional[torch.Tensor] = None) -> nn.Module:
    """A deep copy of ``model`` with every parameterized layer re-initialized (the last cascade
    state at layer granularity): the "randomized model" baseline of the localization criterion."""
    cascade = CascadingRandomization(model, "layers", seed, bn_policy, example_input=example_input,
                                     include_original=False)
    last = None
    for _, last in cascade:
        pass
    return last

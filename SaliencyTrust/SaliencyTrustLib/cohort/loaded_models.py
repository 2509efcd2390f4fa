"""The study's models on one device, loaded from their descriptions and checked before any work."""

from __future__ import annotations

from typing import Any, Dict, Iterator, Optional, Sequence, Set, Tuple

from .settings import EvaluationSettings, StudyModels
from .units import LABEL_RANDOMIZED, ORIGINAL, PERTURBED, REPLICATE, SECOND_ARCH

#: The classifiers of a study (each explained by the saliency methods).
CLASSIFIERS = (ORIGINAL, REPLICATE, SECOND_ARCH, LABEL_RANDOMIZED)

#: The criteria that use each optional model (the original model is always used).
USED_BY = {
    REPLICATE: {"repeatability"},
    SECOND_ARCH: {"reproducibility"},
    LABEL_RANDOMIZED: {"data_randomization"},
    # the first network's AUPRC is criterion 1's baseline; the pair's SSIM is the bar of 3 and 4
    "localizer": {"localization", "repeatability", "reproducibility"},
}


def models_needed(criteria: Sequence[str]) -> Set[str]:
    """The model roles the requested criteria use: a model given but not used is neither loaded
    nor checked, so a bundle's optional model (say, a 1-channel label-randomized one) does not stop
    a run of a lab's 3-channel model that asks only for localization."""
    asked = set(criteria)
    return {ORIGINAL} | {role for role, users in USED_BY.items() if users & asked}


class LoadedModels:
    """The study's models on one device, its resolved preprocessing, and what cannot run.

    Every model the requested criteria use (:func:`models_needed`) is loaded and given one input
    of the preprocessing's shape before any long work, so a wrong file, factory, channel count or
    size fails at once with a :class:`ModelError`; the others are left as None.
    """

    def __init__(self, models: StudyModels, settings: EvaluationSettings, device: str):
        from ..model_spec import ModelSpec, describe_model, is_scripted, load_model
        from ..networks import model_spatial_dims

        self.device = device
        self.settings = settings
        self.described: Dict[str, Any] = {}
        needed = models_needed(settings.criteria)
        for state in CLASSIFIERS:
            given = getattr(models, state)
            if given is None or state not in needed:
                setattr(self, state, None)
                continue
            model = load_model(given, device) if isinstance(given, ModelSpec) else self._in_memory(given)
            setattr(self, state, model)
            self.described[state] = describe_model(given)
        self.localizer = self.localizer_replicate = None
        if "localizer" in needed and models.localizer is not None and models.localizer_replicate is not None:
            self.localizer = self._localizer(models.localizer)
            self.localizer_replicate = self._localizer(models.localizer_replicate)
            self.described["localizer"] = describe_model(models.localizer)
            self.described["localizer_replicate"] = describe_model(models.localizer_replicate)
        original = self.original
        self.spatial_dims = model_spatial_dims(original)
        self.preprocessing = settings.preprocessing.resolved(self.spatial_dims, _in_channels(original))
        shape = (1, self.preprocessing.in_channels, *self.preprocessing.model_shape(self.spatial_dims))
        self.num_classes = {}
        for state in CLASSIFIERS:
            model = getattr(self, state)
            if model is not None:
                self.num_classes[state] = _checked_input(model, state, getattr(models, state), shape)
        self.scripted = is_scripted(original)
        for role in ("localizer", "localizer_replicate"):
            if getattr(self, role) is not None:
                self._check_localizer(getattr(self, role), getattr(models, role), shape)

    def _localizer(self, given):
        """A segmentation network: a :mod:`~SaliencyTrustLib.localizers` checkpoint by path, a
        user's network by factory / TorchScript, or a module in memory."""
        from ..localizers import load_localizer
        from ..model_spec import ModelError, ModelSpec, load_model

        if not isinstance(given, ModelSpec):
            return self._in_memory(given)
        if given.factory or given.name:
            return load_model(given, self.device)
        try:
            return load_localizer(given.path, device=self.device)
        except (ValueError, FileNotFoundError) as error:
            raise ModelError(given.path, f"not a localization network ({error}).",
                             "give a localizers checkpoint, or the network's --factory.") from None

    @staticmethod
    def _check_localizer(model, given, shape) -> None:
        """A localization network takes the classifier's input: one forward pass of that shape."""
        import torch

        from ..model_spec import ModelError

        try:
            device = next(model.parameters()).device
            with torch.no_grad():
                model(torch.zeros(shape, device=device))
        except Exception as error:  # noqa: BLE001 - any failure is a mismatch of network and input
            first = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise ModelError(getattr(given, "path", None) or "the localization network",
                             f"the localization network does not accept the classifier's input {tuple(shape)}: {first}",
                             "give localization networks trained on this preprocessing, or none "
                             "(model_files#localizer: null).") from None

    def _in_memory(self, model):
        import copy

        import torch

        try:
            param = next(model.parameters())
        except StopIteration:
            return model.eval()
        if param.device != torch.device(self.device):  # never move the caller's module
            model = copy.deepcopy(model).to(self.device)
        return model.eval()

    def states(self, needed: Set[str], cascade_states: Sequence[str]) -> Iterator[Tuple[str, Any]]:
        """``(state, model)`` for the needed states, in computing order (original first)."""
        from ..criteria import cascading_randomization

        for name in CLASSIFIERS:
            if name in needed:
                yield name, getattr(self, name)
        for name in PERTURBED:                 # the original model; compute perturbs the input
            if name in needed:
                yield name, self.original
        if needed & set(cascade_states):
            last_needed = max(cascade_states.index(s) for s in needed if s in cascade_states)
            stream = iter(cascading_randomization(self.original, granularity=self.settings.cascade_granularity,
                                                  seed=self.settings.seed, bn_policy=self.settings.bn_policy,
                                                  example_input=self.example_input()))
            next(stream)  # "original"
            for index, (_, model) in enumerate(stream):
                state = cascade_states[index]
                if state in needed:
                    yield state, model.eval()
                if index >= last_needed:
                    break

    def example_input(self):
        import torch

        shape = (1, self.preprocessing.in_channels, *self.preprocessing.model_shape(self.spatial_dims))
        return torch.zeros(shape, device=self.device)


#: How a user leaves out each optional classifier (CLI flag; bundle override).
LEAVE_OUT = {REPLICATE: ("--replicate", "model_files#replicate"),
             SECOND_ARCH: ("--second-arch", "model_files#second_arch"),
             LABEL_RANDOMIZED: ("--label-randomized", "model_files#label_randomized")}


def _checked_input(model, state: str, given, shape) -> int:
    """:func:`~SaliencyTrustLib.model_spec.check_model_input`; for a model beside the original, the
    fix says that it must take the original's input, or be left out with its criterion."""
    from ..model_spec import ModelError, check_model_input

    source = getattr(given, "path", None) or f"the {state} model"
    try:
        return check_model_input(model, shape, source)
    except ModelError as error:
        if state == ORIGINAL:
            raise
        flag, override = LEAVE_OUT[state]
        users = ", ".join(sorted(USED_BY[state]))
        raise ModelError(source, f"the {state} model does not take the original model's input: {error.reason}",
                         f"give a {state} model trained on the original's input, or leave it out and its "
                         f"criterion ({users}) with it: no {flag} (trust.json: \"{override}\": null, or "
                         f"\"criteria\" without {users}).") from None


def _in_channels(model) -> Optional[int]:
    from ..model_spec import infer_in_channels

    return infer_in_channels(model.state_dict())

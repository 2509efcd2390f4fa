"""The plan of a study run: which studies, which sample, which model states, which batches, and
the fingerprinted configuration - decided before any map is computed, identical on every rank."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

import numpy as np

from .loaded_models import LoadedModels
from .settings import EvaluationSettings
from .sources import Cohort, StudyRef, select_positive
from .units import (CASCADE_PREFIX, LABEL_RANDOMIZED, LOCALIZER, NOISE, ORIGINAL, REPLICATE, SECOND_ARCH, SHIFT,
                    StudyGroup, Unit, derive_seed, make_groups)

#: Studies of the sample whose input and mask are kept for the report's gallery.
GALLERY_SIZE = 4


@dataclass
class RunPlan:
    """Everything decided before any map is computed (identical on every rank).

    Attributes:
        studies: evaluated studies by id (selected, sorted, capped by ``max_studies``).
        sample: ids in the randomization / repeatability / reproducibility sample.
        states: per study id (evaluated and reference), its model states in computing order.
        cascade_states: the cascade's state names, top-down (last = fully randomized).
        groups: the fixed batches (see :mod:`.units`).
        gallery: study ids whose inputs are kept for the report.
        config: the fingerprinted configuration.
        references: ids of the reference studies (different-image baseline only).
        skipped_criteria / skipped_methods: what cannot run, with the reason.
        methods: the methods that run; controls: the negative controls that run beside them.
        criteria: the criteria that run (the settings' less the skipped ones).
    """

    studies: Dict[str, StudyRef]
    sample: List[str]
    states: Dict[str, List[str]]
    cascade_states: List[str]
    groups: List[StudyGroup]
    gallery: List[str]
    config: Dict[str, Any]
    skipped_criteria: Dict[str, str] = field(default_factory=dict)
    references: Dict[str, StudyRef] = field(default_factory=dict)
    skipped_methods: Dict[str, str] = field(default_factory=dict)
    methods: List[str] = field(default_factory=list)
    controls: List[str] = field(default_factory=list)
    localizer: bool = False
    criteria: List[str] = field(default_factory=list)

    @property
    def scored(self) -> List[str]:
        """Methods, then controls: everything that gets maps and numbers."""
        return list(self.methods) + list(self.controls)

    def units_of(self, study_ids: Sequence[str], methods: Sequence[str]) -> List[Unit]:
        """The units of these studies: every method at every state, and the localization
        networks' unit of each evaluated study (when the study has them)."""
        units = [Unit(s, m, st) for s in study_ids for st in self.states[s] for m in methods]
        if self.localizer:
            units += [Unit(s, LOCALIZER, ORIGINAL) for s in study_ids if s in self.studies]
        return units

    def study(self, study_id: str) -> StudyRef:
        return self.studies.get(study_id) or self.references[study_id]


def _versions() -> Dict[str, str]:
    """Versions of the packages that change numbers, for the fingerprint and the report."""
    from importlib import metadata

    found = {}
    for package in ("saliency-trust", "torch", "monai", "captum", "numpy", "scipy", "scikit-image", "scikit-learn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def _faithfulness_definition(settings: EvaluationSettings) -> Dict[str, Any]:
    from .compute_beyond import deletion_insertion

    return deletion_insertion(settings).to_dict()


def _describe_source(value: Any) -> Any:
    """A fingerprintable description of a study's image or ground truth (a path as is; an array
    or in-memory volume by the sha256 of its voxels and geometry)."""
    import hashlib

    if value is None or isinstance(value, (str, int, float)):
        return value
    array = np.ascontiguousarray(getattr(value, "array", value))
    digest = hashlib.sha256(array.tobytes())
    digest.update(str((array.shape, str(array.dtype))).encode())
    for attribute in ("spacing", "origin"):
        digest.update(repr(tuple(getattr(value, attribute, ()))).encode())
    if hasattr(value, "direction"):
        digest.update(np.asarray(value.direction, dtype=float).tobytes())
    return f"in-memory sha256:{digest.hexdigest()}"


def make_plan(cohort: Cohort, settings: EvaluationSettings, loaded: LoadedModels, device_type: str) -> RunPlan:
    """Decide the studies, the sample, the model states and the batches; build the config."""
    from ..io.errors import InputError
    from ..io.dicomweb import mask_url
    from ..model_spec import unsupported_methods

    if settings.study_selection == "positive":
        chosen = select_positive(cohort.studies)
    else:
        chosen = list(cohort.studies)
    chosen = sorted(chosen, key=lambda s: s.study_id)
    if settings.max_studies:
        chosen = chosen[: settings.max_studies]
    if not chosen:
        raise InputError(cohort.source or None, "no positive study with ground truth to evaluate.",
                         "give labels (label 1 = abnormal) and ground truth (masks or boxes).")
    ids = [s.study_id for s in chosen]
    references = {s.study_id: s for s in cohort.reference_studies}
    if len(set(ids)) != len(ids) or set(ids) & set(references):
        raise InputError(cohort.source or None, "study ids repeat.", "give every study (and baseline image) its own id.")
    rng = np.random.default_rng(derive_seed(settings.seed, "sample") % (2 ** 63))
    sample = sorted(rng.choice(ids, size=min(settings.sample_size, len(ids)), replace=False).tolist())
    criteria = set(settings.criteria)
    skipped: Dict[str, str] = {}
    if "repeatability" in criteria and loaded.replicate is None:
        skipped["repeatability"] = "no replicate model (a second model of the same architecture trained apart)"
    if "reproducibility" in criteria and loaded.second_arch is None:
        skipped["reproducibility"] = "no second-architecture model"
    if loaded.scripted and "randomization" in criteria:
        skipped["randomization"] = ("a TorchScript model cannot be randomized layer by layer (no module hooks); "
                                    "give the weights and a --model-factory")
    if loaded.scripted and "localization" in criteria and settings.localization_baseline == "randomized_model":
        skipped["localization"] = "the randomized-model baseline needs a randomizable model, not TorchScript"
    if "data_randomization" in criteria and loaded.label_randomized is None:
        skipped["data_randomization"] = ("no label-randomized model (the same architecture trained on permuted "
                                         "labels: MonaiBundle/configs/train_label_randomized.json)")
    if "shortcut" in criteria and not any(s.shortcut is not None for s in chosen):
        skipped["shortcut"] = ("no study has a shortcut region (give datalist items a 'shortcut' mask of the "
                               "confounder, e.g. saliency-trust synth --shortcut)")
    elif "shortcut" in criteria and loaded.scripted:
        skipped["shortcut"] = ("its baseline is the same method on the fully randomized model, and a TorchScript "
                               "model cannot be randomized; give the weights and a --model-factory")
    if "robustness" in criteria and not settings.robustness_shift and settings.robustness_noise_sigma == 0:
        skipped["robustness"] = "no perturbation (robustness_shift 0 and robustness_noise_sigma 0)"
    criteria -= set(skipped)
    skipped_methods = unsupported_methods(loaded.original, settings.methods)
    methods = [m for m in settings.methods if m not in skipped_methods]
    if not methods:
        raise InputError(None, f"none of the methods {list(settings.methods)} can run on this model: "
                         + "; ".join(f"{m}: {r}" for m, r in skipped_methods.items()), "choose other methods.")
    cascade_states: List[str] = []
    if not loaded.scripted and criteria & {"randomization", "localization", "shortcut"}:
        from ..criteria import cascading_randomization

        names = cascading_randomization(loaded.original, granularity=settings.cascade_granularity, seed=settings.seed,
                                        bn_policy=settings.bn_policy, example_input=loaded.example_input()).state_names
        cascade_states = [f"{CASCADE_PREFIX}{i:02d}_{name}" for i, name in enumerate(names[1:], start=1)]
    sample_set = set(sample)
    with_shortcut = {s.study_id for s in chosen if s.shortcut is not None} if "shortcut" in criteria else set()
    perturbations = [state for state, on in ((NOISE, settings.robustness_noise_sigma != 0),
                                             (SHIFT, settings.robustness_shift > 0)) if on]
    states: Dict[str, List[str]] = {}
    for study_id in ids:
        states_of = [ORIGINAL]
        in_sample = study_id in sample_set
        for criterion, state in (("repeatability", REPLICATE), ("reproducibility", SECOND_ARCH),
                                 ("data_randomization", LABEL_RANDOMIZED)):
            if in_sample and criterion in criteria:
                states_of.append(state)
        if in_sample and "robustness" in criteria:
            states_of.extend(perturbations)
        if in_sample and "randomization" in criteria:
            states_of.extend(cascade_states)
        elif cascade_states and ("localization" in criteria or study_id in with_shortcut):
            states_of.append(cascade_states[-1])       # the randomized-model baselines
        states[study_id] = states_of
    for study_id in sorted(references):
        states[study_id] = [ORIGINAL]
    settings_dict = settings.to_dict()
    settings_dict["preprocessing"] = loaded.preprocessing.to_dict()
    config = {
        "settings": settings_dict,
        "models": loaded.described,
        "cohort": {"source": mask_url(cohort.source),
                   "studies": [[s.study_id, _describe_source(s.image), _describe_source(s.ground_truth), s.boxes,
                                s.label, _describe_source(s.shortcut)] for s in chosen],
                   "reference_studies": [[s.study_id, _describe_source(s.image)] for s in cohort.reference_studies],
                   "training_masks": list(cohort.training_masks)},
        "sample": sample,
        "cascade_states": cascade_states,
        "skipped_criteria": skipped,
        "skipped_methods": skipped_methods,
        "versions": _versions(),
        # the deletion / insertion definition (tie order included): a change of it is a new run
        "faithfulness": _faithfulness_definition(settings) if "faithfulness" in criteria else None,
        "device_type": device_type,
    }
    groups = make_groups(ids + sorted(references), settings.batch_size)
    return RunPlan({s.study_id: s for s in chosen}, sample, states, cascade_states, groups,
                   sample[:GALLERY_SIZE], config, skipped, references, skipped_methods, methods,
                   list(settings.controls), loaded.localizer is not None,
                   [c for c in settings.criteria if c in criteria])

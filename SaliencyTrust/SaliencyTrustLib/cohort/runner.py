"""The one study pipeline: plan the units, compute this rank's share, record each unit, assemble.

Every front end calls it: ``saliency-trust evaluate`` / ``saliency`` / ``demo``, the bundle's
``trust.json``, the Slicer module (one image, in memory) and the API (:func:`evaluate_cohort`, or
:func:`study_steps` to drive it step by step with progress and cancellation).

Per study (positive studies only, as in the study) the model states are:

* ``original`` (every study): localization utility (AUPRC) and the average-mask baseline;
* the cascade ``cascade/NN_<block>`` (the random *sample* of ``sample_size`` studies; its last
  state, the fully randomized model, for every study: the randomized-model AUPRC baseline);
* ``replicate`` and ``second_arch`` (the sample): repeatability and reproducibility.

Each unit's map is written to a file as soon as it is made and its numbers (AUPRC against the
mask, SSIM and Spearman against the original map) are committed to the rank's database; nothing
grows in memory with the cohort. Stochastic methods are seeded per ``(seed, group, method)``, so
the noise is the same for every model state of a study and identical when a batch is recomputed.
The explained output is the logit of the class the trained model predicts (for the replicate and
the second architecture their own prediction, or the original's: ``consistency_target``), or
``target_class`` for every model. The first map of each original unit is also written back on the
study's own grid (``native/<study>/<method>.nii.gz``).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Generator, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from .distributed import DistributedContext, init_distributed
from .fingerprint import ConfigurationChangedError
from .prepare import PreparedStudy, prepare_study, read_mask_only
from .settings import EvaluationSettings, StudyModels
from .sources import Cohort, StudyRef, select_positive
from .store import (RankStore, UnitRecord, _safe_name, done_unit_keys, load_map, map_relpath, prepare_run_folder)
from .units import (CASCADE_PREFIX, ORIGINAL, REPLICATE, SECOND_ARCH, StudyGroup, Unit, derive_seed,
                    make_groups, shard)

INPUTS_DIR = "inputs"
NATIVE_DIR = "native"
#: Studies of the sample whose input and mask are kept for the report's gallery.
GALLERY_SIZE = 4


@dataclass
class Progress:
    """One step of a study run: ``done`` of ``total`` maps, and what just happened."""

    done: int
    total: int
    message: str


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
        methods: the methods that run.
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

    def units_of(self, study_ids: Sequence[str], methods: Sequence[str]) -> List[Unit]:
        return [Unit(s, m, st) for s in study_ids for st in self.states[s] for m in methods]

    def study(self, study_id: str) -> StudyRef:
        return self.studies.get(study_id) or self.references[study_id]


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


class LoadedModels:
    """The study's models on one device, its resolved preprocessing, and what cannot run.

    Every model is loaded and given one input of the preprocessing's shape before any long work,
    so a wrong file, factory, channel count or size fails at once with a :class:`ModelError`.
    """

    def __init__(self, models: StudyModels, settings: EvaluationSettings, device: str):
        from ..model_spec import ModelSpec, describe_model, is_scripted, load_model
        from ..networks import model_spatial_dims

        self.device = device
        self.settings = settings
        self.described: Dict[str, Any] = {}
        for state in (ORIGINAL, REPLICATE, SECOND_ARCH):
            given = getattr(models, state)
            if given is None:
                setattr(self, state, None)
                continue
            model = load_model(given, device) if isinstance(given, ModelSpec) else self._in_memory(given)
            setattr(self, state, model)
            self.described[state] = describe_model(given)
        original = self.original
        self.spatial_dims = model_spatial_dims(original)
        self.preprocessing = settings.preprocessing.resolved(self.spatial_dims, _in_channels(original))
        shape = (1, self.preprocessing.in_channels, *self.preprocessing.model_shape(self.spatial_dims))
        self.num_classes = {}
        for state in (ORIGINAL, REPLICATE, SECOND_ARCH):
            model = getattr(self, state)
            if model is not None:
                source = getattr(models, state)
                from ..model_spec import check_model_input

                self.num_classes[state] = check_model_input(
                    model, shape, getattr(source, "path", None) or f"the {state} model")
        self.scripted = is_scripted(original)

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

        for name in (ORIGINAL, REPLICATE, SECOND_ARCH):
            if name in needed:
                yield name, getattr(self, name)
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


def _in_channels(model) -> Optional[int]:
    from ..model_spec import infer_in_channels

    return infer_in_channels(model.state_dict())


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
    criteria -= set(skipped)
    skipped_methods = unsupported_methods(loaded.original, settings.methods)
    methods = [m for m in settings.methods if m not in skipped_methods]
    if not methods:
        raise InputError(None, f"none of the methods {list(settings.methods)} can run on this model: "
                         + "; ".join(f"{m}: {r}" for m, r in skipped_methods.items()), "choose other methods.")
    cascade_states: List[str] = []
    if not loaded.scripted and criteria & {"randomization", "localization"}:
        from ..criteria import cascading_randomization

        names = cascading_randomization(loaded.original, granularity=settings.cascade_granularity, seed=settings.seed,
                                        bn_policy=settings.bn_policy, example_input=loaded.example_input()).state_names
        cascade_states = [f"{CASCADE_PREFIX}{i:02d}_{name}" for i, name in enumerate(names[1:], start=1)]
    sample_set = set(sample)
    states: Dict[str, List[str]] = {}
    for study_id in ids:
        states_of = [ORIGINAL]
        if study_id in sample_set and "repeatability" in criteria:
            states_of.append(REPLICATE)
        if study_id in sample_set and "reproducibility" in criteria:
            states_of.append(SECOND_ARCH)
        if study_id in sample_set and "randomization" in criteria:
            states_of.extend(cascade_states)
        elif "localization" in criteria and cascade_states:
            states_of.append(cascade_states[-1])
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
                                s.label] for s in chosen],
                   "reference_studies": [[s.study_id, _describe_source(s.image)] for s in cohort.reference_studies],
                   "training_masks": list(cohort.training_masks)},
        "sample": sample,
        "cascade_states": cascade_states,
        "skipped_criteria": skipped,
        "skipped_methods": skipped_methods,
        "versions": _versions(),
        "device_type": device_type,
    }
    groups = make_groups(ids + sorted(references), settings.batch_size)
    return RunPlan({s.study_id: s for s in chosen}, sample, states, cascade_states, groups,
                   sample[:GALLERY_SIZE], config, skipped, references, skipped_methods, methods)


class _MeanMask:
    """The average-mask baseline's map: the training positives' mean mask, or (no training split)
    the mean of the *other* evaluated masks (leave-one-out)."""

    def __init__(self, cohort: Cohort, plan: RunPlan, loaded: LoadedModels, cache_dir: Path,
                 progress: bool) -> None:
        from tqdm.auto import tqdm

        preprocessing = loaded.preprocessing
        self.leave_one_out = not cohort.training_masks
        self.total = np.zeros(preprocessing.model_shape(loaded.spatial_dims), np.float64)
        self.count = 0
        paths = cohort.training_masks
        if paths:
            for path in tqdm(paths, desc="average training mask", disable=not progress, leave=False):
                self.total += read_mask_only(path, preprocessing, loaded.spatial_dims)
                self.count += 1
        else:
            for study in tqdm(plan.studies.values(), desc="average mask", disable=not progress, leave=False):
                try:
                    prepared = prepare_study(study, cohort, preprocessing, cache_dir, loaded.spatial_dims)
                except Exception:  # noqa: BLE001 - reported by the main loop
                    continue
                if prepared.mask is not None:
                    self.total += prepared.mask
                    self.count += 1

    def for_study(self, mask: Optional[np.ndarray]) -> Optional[np.ndarray]:
        if self.leave_one_out and mask is not None:
            if self.count < 2:
                return None
            return ((self.total - mask) / (self.count - 1)).astype(np.float32)
        return (self.total / self.count).astype(np.float32) if self.count else None


def mean_mask_name(cohort: Cohort) -> str:
    """What the average-mask baseline is, in words (leave-one-out is not a training mask)."""
    if cohort.training_masks:
        return f"average training mask ({len(cohort.training_masks)} training masks)"
    return "average mask of the other evaluated images (leave-one-out; no training split given)"


def _metrics_for(state: str, plan: RunPlan, maps: np.ndarray, batch: List[PreparedStudy],
                 originals: Optional[np.ndarray], settings: EvaluationSettings,
                 mean_mask: Optional[_MeanMask]) -> List[Dict[str, float]]:
    """Numbers of each unit of a batch (one dict per study)."""
    from ..metrics import auprc, spearman, ssim

    out: List[Dict[str, float]] = [{} for _ in batch]
    masks = [p.mask for p in batch]
    final_state = plan.cascade_states[-1] if plan.cascade_states else None
    if state in (ORIGINAL, REPLICATE, SECOND_ARCH, final_state):
        usable = [i for i, m in enumerate(masks) if m is not None and m.any()]
        if usable:
            values = np.asarray(auprc(maps[usable], np.stack([masks[i] for i in usable])), np.float64).ravel()
            for i, v in zip(usable, values):
                out[i]["auprc"] = float(v)
        for i in range(len(batch)):
            out[i].setdefault("auprc", float("nan"))
    if state == ORIGINAL:
        baseline_maps = [mean_mask.for_study(m) if (mean_mask is not None and m is not None and m.any()) else None
                         for m in masks]
        usable = [i for i, b in enumerate(baseline_maps) if b is not None]
        if usable:
            values = np.asarray(auprc(np.stack([baseline_maps[i] for i in usable]),
                                      np.stack([masks[i] for i in usable])), np.float64).ravel()
            for i, v in zip(usable, values):
                out[i]["auprc_mean_mask"] = float(v)
        for i in range(len(batch)):
            out[i].setdefault("auprc_mean_mask", float("nan"))
    else:
        ssim_values = np.asarray(ssim(maps, originals, data_range=settings.ssim_data_range), np.float64).ravel()
        rho = np.asarray(spearman(maps, originals), np.float64).ravel()
        for i in range(len(batch)):
            out[i]["ssim_vs_original"] = float(ssim_values[i])
            out[i]["spearman_vs_original"] = float(rho[i])
    return out


def _save_gallery_inputs(root: Path, prepared: PreparedStudy) -> None:
    from .store import write_array_atomic

    target = root / INPUTS_DIR
    name = _safe_name(prepared.study_id)
    write_array_atomic(target / f"{name}.image.npy", prepared.image[0])
    if prepared.mask is not None:
        write_array_atomic(target / f"{name}.mask.npy", prepared.mask.astype(np.uint8))


def native_relpath(study_id: str, method: str) -> str:
    """Relative path (inside the results folder) of a map on its study's own grid."""
    return f"{NATIVE_DIR}/{_safe_name(study_id)}/{_safe_name(method)}.nii.gz"


def _write_native_map(root: Path, prepared: PreparedStudy, method: str, saliency_map: np.ndarray,
                      preprocessing) -> None:
    """The map back on the study's ``(K, J, I)`` grid, as NIfTI (LPS geometry of the image)."""
    import os

    from ..io.nifti_write import write_nifti

    native = preprocessing.map_to_native(saliency_map, prepared.geometry)
    header = prepared.header
    volume = type(header)(native, header.spacing, header.origin, header.direction,
                          {"saliency_method": method, "study_id": prepared.study_id})
    path = root / native_relpath(prepared.study_id, method)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{os.getpid()}.{path.name}")
    write_nifti(volume, tmp)
    tmp.replace(path)


def _run_batch(method, model, images, targets, study_ids: List[str]):
    """Maps of a batch; when the batch fails, each study alone (so one bad study is skipped)."""
    try:
        return _maps(method, model, images, targets), {}
    except Exception:  # noqa: BLE001 - isolate the study that fails
        if len(study_ids) == 1:
            raise
    maps, errors = [], {}
    for i, study_id in enumerate(study_ids):
        try:
            maps.append(_maps(method, model, images[i:i + 1], targets[i:i + 1])[0])
        except Exception as error:  # noqa: BLE001
            errors[study_id] = f"{type(error).__name__}: {error}"
            maps.append(None)
    return maps, errors


def _maps(method, model, images, targets) -> np.ndarray:
    """Maps ``(B, *spatial)`` float32 of ``images`` ``(B, C, *spatial)`` explaining ``targets``."""
    import torch

    maps = method(model, images, target=targets)
    if isinstance(maps, torch.Tensor):
        maps = maps.detach().cpu().numpy()
    return np.asarray(maps, dtype=np.float32).reshape((images.shape[0],) + tuple(images.shape[2:]))


def make_methods(settings: EvaluationSettings, methods: Sequence[str]) -> Dict[str, Any]:
    """The study's :class:`~SaliencyTrustLib.saliency.SaliencyMethod` objects by name."""
    from ..saliency import SaliencyMethod

    return {m: SaliencyMethod(m, preset=settings.preset, postprocess=settings.postprocess,
                              **settings.method_params.get(m, {})) for m in methods}


def _predict(model, images):
    """``(predicted class (B,), softmax (B, classes))`` of a batch."""
    import torch

    with torch.no_grad():
        logits = model(images)
    return logits.argmax(dim=1), torch.softmax(logits.float(), dim=1)


def compute_steps(plan: RunPlan, cohort: Cohort, loaded: LoadedModels, settings: EvaluationSettings,
                  root: Path, fingerprint: str, context: DistributedContext,
                  show_progress: bool = False) -> Generator[Progress, None, Dict[str, Any]]:
    """Compute every missing unit of this rank's groups, one :class:`Progress` per batch and
    method; returns counts for the log. Stopping the generator keeps every committed unit."""
    import torch

    done = done_unit_keys(root)
    mine = shard(plan.groups, context.rank, context.world_size)
    methods_run = plan.methods
    todo_units = [u for g in mine for u in plan.units_of(g.study_ids, methods_run) if u.key not in done]
    stats = {"rank": context.rank, "groups": len(mine), "units_todo": len(todo_units), "units_done_now": 0,
             "failed_studies": 0}
    if not todo_units:
        return stats
    total, finished = len(todo_units), 0
    cache_dir = root / "cache"
    device = loaded.device
    mean_mask = (_MeanMask(cohort, plan, loaded, cache_dir, show_progress and context.is_main)
                 if "localization" in settings.criteria and settings.localization_baseline == "average_mask"
                 else None)
    methods = make_methods(settings, methods_run)
    gallery = set(plan.gallery)
    with RankStore(root, context.rank, fingerprint) as store:
        for group in mine:
            missing = [u for u in plan.units_of(group.study_ids, methods_run) if u.key not in done]
            if not missing:
                continue
            prepared: Dict[str, PreparedStudy] = {}
            for study_id in group.study_ids:
                try:
                    prepared[study_id] = prepare_study(plan.study(study_id), cohort, loaded.preprocessing,
                                                       cache_dir, loaded.spatial_dims)
                except Exception as error:  # noqa: BLE001 - one bad study never ends the run
                    message = f"{type(error).__name__}: {error}"
                    store.record_failure(study_id, "read", message)
                    skipped_units = sum(1 for u in missing if u.study_id == study_id)
                    finished += skipped_units
                    stats["failed_studies"] += 1
                    yield Progress(finished, total, f"skipped {study_id}: {message}")
                    continue
                store.clear_failure(study_id)
                if study_id in gallery:
                    _save_gallery_inputs(root, prepared[study_id])
            if not prepared:
                continue
            ordered = [s for s in group.study_ids if s in prepared]
            images_all = torch.from_numpy(np.stack([prepared[s].image for s in ordered])).to(device)
            predicted, probabilities = _predict(loaded.original, images_all)
            if settings.target_class is not None and not 0 <= settings.target_class < probabilities.shape[1]:
                from ..io.errors import InputError

                raise InputError(None, f"target class {settings.target_class} is out of range: the model has "
                                 f"{probabilities.shape[1]} classes.", "choose a class index the model outputs.")
            explained = predicted if settings.target_class is None else torch.full_like(predicted, settings.target_class)
            original_targets = dict(zip(ordered, explained.tolist()))
            original_prediction = {s: (int(c), float(p)) for s, c, p in
                                   zip(ordered, predicted.tolist(), probabilities.max(dim=1).values.tolist())}
            needed = {u.model_state for u in missing}
            originals: Dict[Tuple[str, str], np.ndarray] = {}
            for state, model in loaded.states(needed, plan.cascade_states):
                batch_ids = [s for s in ordered if state in plan.states[s]]
                if not batch_ids:
                    continue
                index = [ordered.index(s) for s in batch_ids]
                images = images_all[index]
                prediction = None
                targets = torch.tensor([original_targets[s] for s in batch_ids], device=images.device)
                if state in (REPLICATE, SECOND_ARCH):
                    own, own_probabilities = _predict(model, images)
                    prediction = [(int(c), float(p)) for c, p in
                                  zip(own.tolist(), own_probabilities.max(dim=1).values.tolist())]
                    if settings.target_class is None and settings.consistency_target == "own_prediction":
                        targets = own
                elif state == ORIGINAL:
                    prediction = [original_prediction[s] for s in batch_ids]
                for method_name, method in methods.items():
                    units = [Unit(s, method_name, state) for s in batch_ids]
                    if all(u.key in done for u in units):
                        continue
                    _seed_everything(derive_seed(settings.seed, group.index, method_name))
                    started = time.perf_counter()
                    maps, errors = _run_batch(method, model, images, targets, batch_ids)
                    seconds = (time.perf_counter() - started) / len(batch_ids)
                    keep = [i for i, s in enumerate(batch_ids) if s not in errors]
                    for study_id, message in errors.items():
                        store.record_failure(study_id, f"saliency {method_name} / {state}", message)
                    if not keep:
                        finished += sum(1 for u in units if u.key not in done)
                        yield Progress(finished, total, f"{method_name} / {state}: failed ({next(iter(errors.values()))})")
                        continue
                    maps_kept = np.stack([maps[i] for i in keep]).astype(np.float32)
                    kept_ids = [batch_ids[i] for i in keep]
                    if state == ORIGINAL:
                        for study_id, saliency_map in zip(kept_ids, maps_kept):
                            originals[(study_id, method_name)] = saliency_map
                        reference = None
                    else:
                        reference = np.stack([
                            originals[(s, method_name)] if (s, method_name) in originals
                            else load_map(root, map_relpath(Unit(s, method_name, ORIGINAL))) for s in kept_ids])
                    numbers = _metrics_for(state, plan, maps_kept, [prepared[s] for s in kept_ids], reference,
                                           settings, mean_mask)
                    if prediction is not None:
                        for i, s in enumerate(kept_ids):
                            position = batch_ids.index(s)
                            numbers[i]["target"] = float(targets[position].item())
                            numbers[i]["predicted"], numbers[i]["probability"] = map(float, prediction[position])
                    for study_id, saliency_map, values in zip(kept_ids, maps_kept, numbers):
                        unit = Unit(study_id, method_name, state)
                        if unit.key in done:
                            continue
                        if state == ORIGINAL:
                            _write_native_map(root, prepared[study_id], method_name, saliency_map,
                                              loaded.preprocessing)
                        relpath = store.write_map(unit, saliency_map)
                        store.commit_unit(UnitRecord(unit, relpath, values, seconds, context.rank))
                        done.add(unit.key)
                        stats["units_done_now"] += 1
                        finished += 1
                    finished += sum(1 for u in units if u.key not in done and u.study_id in errors)
                    yield Progress(finished, total, f"{method_name} / {state}: {len(kept_ids)} map(s)")
    return stats


def study_steps(cohort: Cohort, models: StudyModels, settings: EvaluationSettings, out_dir,
                restart: bool = False, device: str = "auto", progress: bool = False,
                context: Optional[DistributedContext] = None,
                assemble: bool = True) -> Generator[Progress, None, Optional[Dict[str, Any]]]:
    """:func:`evaluate_cohort` as a generator: one :class:`Progress` per computed batch and method
    (the Slicer module shows them and stops iterating to cancel; every committed unit stays and a
    later call resumes), returning the assembled results (rank 0) or None."""
    own_context = context is None
    context = context or init_distributed(device)
    try:
        root = Path(out_dir)
        torch_device = context.device(device)
        loaded = LoadedModels(models, settings, torch_device)
        plan = make_plan(cohort, settings, loaded, torch_device.split(":")[0])
        error: Optional[BaseException] = None
        fingerprint = ""
        if context.is_main:
            try:
                fingerprint = prepare_run_folder(root, plan.config, restart=restart)
            except BaseException as caught:  # noqa: BLE001 - re-raised after telling the other ranks
                error = caught
        if not context.all_ok(error is None):
            if error is not None:
                raise error
            raise ConfigurationChangedError(f"rank 0 refused {root}; see its message.")
        if not context.is_main:
            from .fingerprint import config_fingerprint
            from .store import read_run_file

            fingerprint = config_fingerprint(plan.config)
            if read_run_file(root)["fingerprint"] != fingerprint:
                raise ConfigurationChangedError(f"rank {context.rank} computed another configuration than rank 0 "
                                                "(different files or versions on this node?).")
        started = time.perf_counter()
        stats = yield from compute_steps(plan, cohort, loaded, settings, root, fingerprint, context, progress)
        stats["seconds"] = time.perf_counter() - started
        context.barrier()
        if context.is_main and assemble:
            from .assemble import assemble_results

            return assemble_results(root, plan, settings, progress=progress, run_stats=stats,
                                    mean_mask_name=mean_mask_name(cohort))
        return None
    finally:
        if own_context:
            context.close()


def evaluate_cohort(cohort: Cohort, models: StudyModels, settings: EvaluationSettings, out_dir,
                    restart: bool = False, device: str = "auto", progress: Any = True,
                    context: Optional[DistributedContext] = None, assemble: bool = True) -> Optional[Dict[str, Any]]:
    """Run (or resume) the trust study of ``cohort`` into ``out_dir``.

    Works alone or under ``torchrun`` (each rank computes its share; rank 0 assembles after a
    barrier). Re-running the same call after a crash computes only the missing units.

    Args:
        cohort: the studies (:func:`SaliencyTrustLib.cohort.sources.load_cohort`, or
            :class:`~SaliencyTrustLib.cohort.sources.Cohort` of in-memory volumes).
        models: the models (:class:`StudyModels`: specs, paths or ``nn.Module`` objects).
        settings: what to compute (:class:`EvaluationSettings`).
        out_dir: the results folder (see :mod:`.store`).
        restart: delete results of another configuration instead of refusing them.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        progress: True for a tqdm bar, False for none, or a callable ``(done, total, message)``.
        context: the process group (default: from the torchrun environment).
        assemble: on rank 0, assemble ``results.json`` / CSVs after the barrier.

    Returns:
        On rank 0 the assembled results (see :func:`SaliencyTrustLib.cohort.assemble.assemble_results`);
        None on other ranks or when ``assemble`` is False.

    Raises:
        ConfigurationChangedError: ``out_dir`` holds results of another configuration.
        ModelError / InputError: a model or input that cannot be used (before any long work).
    """
    from tqdm.auto import tqdm

    callback = progress if callable(progress) else None
    steps = study_steps(cohort, models, settings, out_dir, restart=restart, device=device,
                        progress=bool(progress) and callback is None, context=context, assemble=assemble)
    bar = None
    try:
        while True:
            step = next(steps)
            if callback is not None:
                callback(step.done, step.total, step.message)
            elif progress:
                if bar is None:
                    bar = tqdm(total=step.total, desc="saliency maps + metrics", unit="map", dynamic_ncols=True)
                bar.n = step.done
                bar.set_postfix_str(step.message[:40], refresh=True)
                if step.message.startswith("skipped"):
                    bar.write(step.message, file=sys.stderr)
    except StopIteration as finished:
        return finished.value
    finally:
        if bar is not None:
            bar.close()

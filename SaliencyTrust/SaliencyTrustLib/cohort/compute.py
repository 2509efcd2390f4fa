"""Computing a rank's share of a study run: read and preprocess each batch of studies, compute the
maps of every method and model state, score them, write each map (and the original's back on
the image's own grid) and commit each unit as soon as it is made."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Generator, List, Optional, Sequence, Tuple

import numpy as np

from .compute_beyond import Faithfulness, perturbed_inputs, shift_offset
from .distributed import DistributedContext
from .loaded_models import LoadedModels
from .plan import RunPlan
from .prepare import PreparedStudy, prepare_study, read_mask_only
from .settings import EvaluationSettings
from .sources import Cohort
from .store import INPUTS_DIR, NATIVE_DIR, RankStore, UnitRecord, _safe_name, done_unit_keys, load_map, map_relpath
from .units import LABEL_RANDOMIZED, LOCALIZER, ORIGINAL, PERTURBED, REPLICATE, SECOND_ARCH, SHIFT, Unit, derive_seed, \
    shard


@dataclass
class Progress:
    """One step of a study run: ``done`` of ``total`` maps, and what just happened."""

    done: int
    total: int
    message: str


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


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
    if state in (ORIGINAL, final_state):
        for i, p in enumerate(batch):
            if p.shortcut is not None:
                out[i]["shortcut_present"] = float(p.shortcut.any())
        marked = [i for i, p in enumerate(batch) if p.shortcut is not None and p.shortcut.any()]
        if marked:
            values = np.asarray(auprc(maps[marked], np.stack([batch[i].shortcut for i in marked])), np.float64).ravel()
            for i, v in zip(marked, values):
                out[i]["auprc_shortcut"] = float(v)
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


def _localizer_units(store, root: Path, done, stats, rank: int, loaded: LoadedModels,
                     settings: EvaluationSettings, batch: List[PreparedStudy], images) -> int:
    """The localization networks' unit of each study: the first network's map, its AUPRC (and the
    second's) against the mask, and the SSIM / Spearman between the two networks' maps (the bar of
    repeatability and reproducibility). Returns the units committed."""
    from ..localizers import localization_maps
    from ..metrics import auprc, spearman, ssim

    started = time.perf_counter()
    first = localization_maps(loaded.localizer, images)
    second = localization_maps(loaded.localizer_replicate, images)
    numbers = [{} for _ in batch]
    usable = [i for i, p in enumerate(batch) if p.mask is not None and p.mask.any()]
    if usable:
        masks = np.stack([batch[i].mask for i in usable])
        for key, maps in (("auprc", first), ("auprc_localizer_replicate", second)):
            for i, value in zip(usable, np.asarray(auprc(maps[usable], masks), np.float64).ravel()):
                numbers[i][key] = float(value)
    similar = np.asarray(ssim(first, second, data_range=settings.ssim_data_range), np.float64).ravel()
    rho = np.asarray(spearman(first, second), np.float64).ravel()
    seconds = (time.perf_counter() - started) / len(batch)
    for i, prepared in enumerate(batch):
        numbers[i].setdefault("auprc", float("nan"))
        numbers[i]["ssim_localizers"], numbers[i]["spearman_vs_original"] = float(similar[i]), float(rho[i])
        unit = Unit(prepared.study_id, LOCALIZER, ORIGINAL)
        relpath = store.write_map(unit, first[i])
        store.commit_unit(UnitRecord(unit, relpath, numbers[i], seconds, rank))
        done.add(unit.key)
        stats["units_done_now"] += 1
    return len(batch)


def make_methods(settings: EvaluationSettings, methods: Sequence[str]) -> Dict[str, Any]:
    """The study's :class:`~SaliencyTrustLib.saliency.SaliencyMethod` objects by name."""
    from ..saliency import SaliencyMethod

    from ..saliency.registry import CONTROLS

    # a control is already a map in [0, 1]: the "paper" clip at the 99th percentile would erase a
    # single bright pixel
    return {m: SaliencyMethod(m, preset=None, postprocess="abs_sum") if m in CONTROLS else
            SaliencyMethod(m, preset=settings.preset, postprocess=settings.method_postprocess.get(m, settings.postprocess),
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
    methods_run = plan.scored
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
    sample = set(plan.sample)
    faithfulness = Faithfulness(settings) if "faithfulness" in plan.criteria else None
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
            located = [s for s in ordered if Unit(s, LOCALIZER, ORIGINAL).key not in done and s in plan.studies]
            if plan.localizer and located:
                finished += _localizer_units(store, root, done, stats, context.rank, loaded, settings,
                                             [prepared[s] for s in located],
                                             images_all[[ordered.index(s) for s in located]])
                yield Progress(finished, total, f"localization networks: {len(located)} map(s)")
            needed = {u.model_state for u in missing if u.method != LOCALIZER}
            originals: Dict[Tuple[str, str], np.ndarray] = {}
            if faithfulness is not None:
                faithfulness.random.clear()                # one random order per study, kept per group
            for state, model in loaded.states(needed, plan.cascade_states):
                batch_ids = [s for s in ordered if state in plan.states[s]]
                if not batch_ids:
                    continue
                index = [ordered.index(s) for s in batch_ids]
                images = images_all[index]
                prediction = None
                targets = torch.tensor([original_targets[s] for s in batch_ids], device=images.device)
                noise_sigmas: Dict[str, float] = {}
                if state in PERTURBED:
                    images = perturbed_inputs(state, images, batch_ids, prepared, settings, noise_sigmas)
                if state in (REPLICATE, SECOND_ARCH, LABEL_RANDOMIZED) + PERTURBED:
                    own, own_probabilities = _predict(model, images)
                    prediction = [(int(c), float(p)) for c, p in
                                  zip(own.tolist(), own_probabilities.max(dim=1).values.tolist())]
                    own_target = settings.target_class is None and (
                        (state in (REPLICATE, SECOND_ARCH) and settings.consistency_target == "own_prediction")
                        or (state == LABEL_RANDOMIZED and settings.randomization_target == "own_prediction"))
                    if own_target:
                        targets = own
                elif state == ORIGINAL:
                    prediction = [original_prediction[s] for s in batch_ids]
                elif settings.target_class is None and settings.randomization_target == "own_prediction":
                    targets = _predict(model, images)[0]          # a cascade state's own argmax
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
                    if state == SHIFT:                     # compared with the clean map on the same pixels
                        from ..metrics.perturbations import unshift_maps

                        maps_kept = unshift_maps(maps_kept, shift_offset(settings, maps_kept.ndim - 1))
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
                    for i, s in enumerate(kept_ids):
                        if s in noise_sigmas:
                            numbers[i]["noise_sigma"] = noise_sigmas[s]
                    if state == ORIGINAL and faithfulness is not None:
                        faithful = [i for i, s in enumerate(kept_ids) if s in sample]
                        if faithful:
                            rows = [batch_ids.index(kept_ids[i]) for i in faithful]
                            found = faithfulness.numbers(model, images[rows], maps_kept[faithful], targets[rows],
                                                         [kept_ids[i] for i in faithful])
                            for i, values in zip(faithful, found):
                                numbers[i].update(values)
                    for study_id, saliency_map, values in zip(kept_ids, maps_kept, numbers):
                        unit = Unit(study_id, method_name, state)
                        if unit.key in done:
                            continue
                        if state == ORIGINAL and method_name in plan.methods:
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

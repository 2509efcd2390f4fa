"""The cohort run: plan the units, compute this rank's share, record each unit, assemble on rank 0.

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
the second architecture, their own prediction).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from . import engines
from .distributed import DistributedContext, init_distributed
from .fingerprint import ConfigurationChangedError, file_sha256
from .prepare import PreparedStudy, prepare_study, read_mask_only
from .settings import EvaluationSettings, ModelFiles
from .sources import Cohort, StudyRef, select_positive
from .store import (RankStore, UnitRecord, done_unit_keys, load_map, map_relpath, prepare_run_folder)
from .units import (CASCADE_PREFIX, ORIGINAL, REPLICATE, SECOND_ARCH, StudyGroup, Unit, derive_seed,
                    make_groups, shard)

INPUTS_DIR = "inputs"
#: Studies of the sample whose input and mask are kept for the report's gallery.
GALLERY_SIZE = 4


@dataclass
class RunPlan:
    """Everything decided before any map is computed (identical on every rank).

    Attributes:
        studies: evaluated studies by id (positives, sorted, capped by ``max_studies``).
        sample: ids in the randomization / repeatability / reproducibility sample.
        states: per study id, its model states in computing order.
        cascade_states: the cascade's state names, top-down (last = fully randomized).
        groups: the fixed batches (see :mod:`.units`).
        gallery: study ids whose inputs are kept for the report.
        config: the fingerprinted configuration.
    """

    studies: Dict[str, StudyRef]
    sample: List[str]
    states: Dict[str, List[str]]
    cascade_states: List[str]
    groups: List[StudyGroup]
    gallery: List[str]
    config: Dict[str, Any]
    skipped_criteria: Dict[str, str] = field(default_factory=dict)

    def units_of(self, study_ids: Sequence[str], methods: Sequence[str]) -> List[Unit]:
        return [Unit(s, m, st) for s in study_ids for st in self.states[s] for m in methods]


def _seed_everything(seed: int) -> None:
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def make_plan(cohort: Cohort, models: ModelFiles, settings: EvaluationSettings, original_model,
              device_type: str) -> RunPlan:
    """Decide the studies, the sample, the model states and the batches; build the config."""
    positives = sorted(select_positive(cohort.studies), key=lambda s: s.study_id)
    if settings.max_studies:
        positives = positives[: settings.max_studies]
    if not positives:
        from ..io.errors import InputError

        raise InputError(cohort.source, "no positive study with ground truth to evaluate.",
                         "give labels (label 1 = abnormal) and ground truth (masks or boxes).")
    ids = [s.study_id for s in positives]
    rng = np.random.default_rng(derive_seed(settings.seed, "sample") % (2 ** 63))
    sample = sorted(rng.choice(ids, size=min(settings.sample_size, len(ids)), replace=False).tolist())
    criteria = set(settings.criteria)
    skipped: Dict[str, str] = {}
    if "repeatability" in criteria and not models.replicate:
        skipped["repeatability"] = "no replicate model (a second model of the same architecture trained apart)"
    if "reproducibility" in criteria and not models.second_arch:
        skipped["reproducibility"] = "no second-architecture model"
    criteria -= set(skipped)
    cascade_states: List[str] = []
    if criteria & {"randomization", "localization"}:
        names = engines.cascade_state_names(original_model, settings.cascade_granularity, settings.seed,
                                            settings.bn_policy)
        cascade_states = [f"{CASCADE_PREFIX}{i:02d}_{name}" for i, name in enumerate(names[1:], start=1)]
    sample_set = set(sample)
    states: Dict[str, List[str]] = {}
    for study_id in ids:
        chosen = [ORIGINAL]
        if study_id in sample_set and "repeatability" in criteria:
            chosen.append(REPLICATE)
        if study_id in sample_set and "reproducibility" in criteria:
            chosen.append(SECOND_ARCH)
        if study_id in sample_set and "randomization" in criteria:
            chosen.extend(cascade_states)
        elif "localization" in criteria and cascade_states:
            chosen.append(cascade_states[-1])
        states[study_id] = chosen
    from ..networks import weights_file

    model_config = {}
    for state in (ORIGINAL, REPLICATE, SECOND_ARCH):
        path = getattr(models, state)
        if path:
            weights = weights_file(path)
            model_config[state] = {"sha256": file_sha256(weights), "name": getattr(models, f"{state}_name")}
    config = {
        "settings": settings.to_dict(),
        "models": model_config,
        "cohort": {"source": cohort.source,
                   "studies": [[s.study_id, s.image, s.ground_truth, s.boxes, s.label] for s in positives],
                   "training_masks": list(cohort.training_masks)},
        "sample": sample,
        "cascade_states": cascade_states,
        "skipped_criteria": skipped,
        "versions": engines.versions(),
        "device_type": device_type,
    }
    groups = make_groups(ids, settings.batch_size)
    return RunPlan({s.study_id: s for s in positives}, sample, states, cascade_states, groups,
                   sample[:GALLERY_SIZE], config, skipped)


class _MeanMask:
    """The average-mask baseline's map: the training positives' mean mask, or (no training split)
    the mean of the *other* evaluated masks (leave-one-out)."""

    def __init__(self, cohort: Cohort, plan: RunPlan, input_size: int, spatial_dims: int,
                 cache_dir: Path, progress: bool) -> None:
        from tqdm.auto import tqdm

        self.leave_one_out = not cohort.training_masks
        self.total = np.zeros((input_size,) * spatial_dims, np.float64)
        self.count = 0
        paths = cohort.training_masks
        self.description = (f"mean of {len(paths)} training masks" if paths else
                            "mean of the other evaluated masks (leave-one-out; no training split given)")
        if paths:
            for path in tqdm(paths, desc="average training mask", disable=not progress, leave=False):
                self.total += read_mask_only(path, input_size, spatial_dims)
                self.count += 1
        else:
            for study in tqdm(plan.studies.values(), desc="average mask", disable=not progress, leave=False):
                try:
                    prepared = prepare_study(study, cohort, input_size, cache_dir, spatial_dims)
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


def _metrics_for(state: str, plan: RunPlan, maps: np.ndarray, batch: List[PreparedStudy],
                 originals: Optional[np.ndarray], settings: EvaluationSettings,
                 mean_mask: _MeanMask) -> List[Dict[str, float]]:
    """Numbers of each unit of a batch (one dict per study)."""
    out: List[Dict[str, float]] = [{} for _ in batch]
    masks = [p.mask for p in batch]
    final_state = plan.cascade_states[-1] if plan.cascade_states else None
    wants_auprc = state in (ORIGINAL, REPLICATE, SECOND_ARCH, final_state)
    if wants_auprc:
        usable = [i for i, m in enumerate(masks) if m is not None and m.any()]
        if usable:
            values = engines.auprc(maps[usable], np.stack([masks[i] for i in usable]))
            for i, v in zip(usable, values):
                out[i]["auprc"] = float(v)
        for i in range(len(batch)):
            out[i].setdefault("auprc", float("nan"))
    if state == ORIGINAL:
        baseline_maps = [mean_mask.for_study(m) if (m is not None and m.any()) else None for m in masks]
        usable = [i for i, b in enumerate(baseline_maps) if b is not None]
        if usable:
            values = engines.auprc(np.stack([baseline_maps[i] for i in usable]), np.stack([masks[i] for i in usable]))
            for i, v in zip(usable, values):
                out[i]["auprc_mean_mask"] = float(v)
        for i in range(len(batch)):
            out[i].setdefault("auprc_mean_mask", float("nan"))
    else:
        ssim = engines.ssim(maps, originals, settings.ssim_data_range)
        rho = engines.spearman(maps, originals)
        for i in range(len(batch)):
            out[i]["ssim_vs_original"] = float(ssim[i])
            out[i]["spearman_vs_original"] = float(rho[i])
    return out


class _Models:
    """The trained models of a run on this rank's device, and the cascade of the original."""

    def __init__(self, models: ModelFiles, settings: EvaluationSettings, plan_skipped: Dict[str, str], device: str):
        self.device = device
        self.settings = settings
        self.original = engines.load_model(models.original, models.original_name, device)
        self.replicate = (engines.load_model(models.replicate, models.replicate_name, device)
                          if models.replicate and "repeatability" not in plan_skipped else None)
        self.second_arch = (engines.load_model(models.second_arch, models.second_arch_name, device)
                            if models.second_arch and "reproducibility" not in plan_skipped else None)

    def states(self, needed: Set[str], cascade_states: Sequence[str]) -> Iterator[Tuple[str, Any]]:
        """``(state, model)`` for the needed states, in computing order (original first)."""
        for name in (ORIGINAL, REPLICATE, SECOND_ARCH):
            if name in needed:
                yield name, getattr(self, name)
        if needed & set(cascade_states):
            last_needed = max(cascade_states.index(s) for s in needed if s in cascade_states)
            stream = engines.cascade(self.original, self.settings.cascade_granularity, self.settings.seed,
                                     self.settings.bn_policy)
            next(stream)  # "original"
            for index, (_, model) in enumerate(stream):
                state = cascade_states[index]
                if state in needed:
                    yield state, model.eval()
                if index >= last_needed:
                    break


def _save_gallery_inputs(root: Path, prepared: PreparedStudy) -> None:
    from .store import write_array_atomic

    target = root / INPUTS_DIR
    write_array_atomic(target / f"{prepared.study_id}.image.npy", prepared.image[0])
    if prepared.mask is not None:
        write_array_atomic(target / f"{prepared.study_id}.mask.npy", prepared.mask.astype(np.uint8))


def _run_batch(method, model, images, targets, study_ids: List[str]):
    """Maps of a batch; when the batch fails, each study alone (so one bad study is skipped)."""
    try:
        return engines.compute_maps(method, model, images, targets), {}
    except Exception:  # noqa: BLE001 - isolate the study that fails
        if len(study_ids) == 1:
            raise
    maps, errors = [], {}
    for i, study_id in enumerate(study_ids):
        try:
            maps.append(engines.compute_maps(method, model, images[i:i + 1], targets[i:i + 1])[0])
        except Exception as error:  # noqa: BLE001
            errors[study_id] = f"{type(error).__name__}: {error}"
            maps.append(None)
    return maps, errors


def compute_share(plan: RunPlan, cohort: Cohort, models: ModelFiles, settings: EvaluationSettings,
                  root: Path, fingerprint: str, context: DistributedContext, device: str,
                  progress: bool = True) -> Dict[str, Any]:
    """Compute every missing unit of this rank's groups; returns counts for the log."""
    import torch
    from tqdm.auto import tqdm

    from ..networks import model_spatial_dims

    done = done_unit_keys(root)
    mine = shard(plan.groups, context.rank, context.world_size)
    todo_units = [u for g in mine for u in plan.units_of(g.study_ids, settings.methods) if u.key not in done]
    stats = {"rank": context.rank, "groups": len(mine), "units_todo": len(todo_units), "units_done_now": 0,
             "failed_studies": 0}
    if not todo_units:
        return stats
    cache_dir = root / "cache"
    loaded = _Models(models, settings, plan.skipped_criteria, device)
    spatial_dims = model_spatial_dims(loaded.original)          # radiographs (2) or volumes (3)
    mean_mask = _MeanMask(cohort, plan, settings.input_size, spatial_dims, cache_dir,
                          progress and context.is_main)
    methods = {m: engines.make_method(m, settings.preset, settings.method_params.get(m, {})) for m in settings.methods}
    gallery = set(plan.gallery)
    label = f"saliency maps + metrics (rank {context.rank}/{context.world_size})" if context.distributed \
        else "saliency maps + metrics"
    bar = tqdm(total=len(todo_units), desc=label, unit="map", disable=not progress, position=context.rank,
               dynamic_ncols=True)
    with RankStore(root, context.rank, fingerprint) as store:
        for group in mine:
            group_units = plan.units_of(group.study_ids, settings.methods)
            missing = [u for u in group_units if u.key not in done]
            if not missing:
                continue
            prepared: Dict[str, PreparedStudy] = {}
            for study_id in group.study_ids:
                try:
                    prepared[study_id] = prepare_study(plan.studies[study_id], cohort, settings.input_size,
                                                       cache_dir, spatial_dims)
                except Exception as error:  # noqa: BLE001 - one bad study never ends the run
                    store.record_failure(study_id, "read", f"{type(error).__name__}: {error}")
                    bar.write(f"skipped {study_id}: {type(error).__name__}: {error}", file=sys.stderr)
                    bar.update(sum(1 for u in missing if u.study_id == study_id))
                    stats["failed_studies"] += 1
                    continue
                store.clear_failure(study_id)
                if study_id in gallery:
                    _save_gallery_inputs(root, prepared[study_id])
            if not prepared:
                continue
            ordered = [s for s in group.study_ids if s in prepared]
            images_all = torch.from_numpy(np.stack([prepared[s].image for s in ordered])).to(device)
            original_targets = dict(zip(ordered, engines.predicted_class(loaded.original, images_all).tolist()))
            needed = {u.model_state for u in missing}
            originals: Dict[Tuple[str, str], np.ndarray] = {}
            for state, model in loaded.states(needed, plan.cascade_states):
                batch_ids = [s for s in ordered if state in plan.states[s]]
                if not batch_ids:
                    continue
                index = [ordered.index(s) for s in batch_ids]
                images = images_all[index]
                if state in (REPLICATE, SECOND_ARCH):
                    targets = engines.predicted_class(model, images)
                else:
                    targets = torch.tensor([original_targets[s] for s in batch_ids], device=images.device)
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
                        bar.write(f"skipped {study_id} ({method_name}, {state}): {message}", file=sys.stderr)
                    if not keep:
                        bar.update(sum(1 for u in units if u.key not in done))
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
                    if state in (REPLICATE, SECOND_ARCH) or state == ORIGINAL:
                        for i, s in enumerate(kept_ids):
                            numbers[i]["target"] = float(targets[batch_ids.index(s)].item())
                    for study_id, saliency_map, values in zip(kept_ids, maps_kept, numbers):
                        unit = Unit(study_id, method_name, state)
                        if unit.key in done:
                            continue
                        relpath = store.write_map(unit, saliency_map)
                        store.commit_unit(UnitRecord(unit, relpath, values, seconds, context.rank))
                        done.add(unit.key)
                        stats["units_done_now"] += 1
                        bar.update(1)
                    bar.update(sum(1 for u in units if u.key not in done and u.study_id in errors))
    bar.close()
    return stats


def evaluate_cohort(cohort: Cohort, models: ModelFiles, settings: EvaluationSettings, out_dir,
                    restart: bool = False, device: str = "auto", progress: bool = True,
                    context: Optional[DistributedContext] = None, assemble: bool = True) -> Optional[Dict[str, Any]]:
    """Run (or resume) the evaluation of ``cohort`` into ``out_dir``.

    Works alone or under ``torchrun`` (each rank computes its share; rank 0 assembles after a
    barrier). Re-running the same call after a crash computes only the missing units.

    Args:
        cohort: the studies (:func:`SaliencyTrustLib.cohort.sources.load_cohort`).
        models: the weight files of the model states.
        settings: what to compute (:class:`EvaluationSettings`).
        out_dir: the results folder (see :mod:`.store`).
        restart: delete results of another configuration instead of refusing them.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        progress: show tqdm progress bars.
        context: the process group (default: from the torchrun environment).
        assemble: on rank 0, assemble ``results.json`` / CSVs after the barrier.

    Returns:
        On rank 0 the assembled results (see :func:`SaliencyTrustLib.cohort.assemble.assemble_results`);
        None on other ranks or when ``assemble`` is False.

    Raises:
        ConfigurationChangedError: ``out_dir`` holds results of another configuration.
    """
    own_context = context is None
    context = context or init_distributed(device)
    try:
        root = Path(out_dir)
        torch_device = context.device(device)
        original = engines.load_model(models.original, models.original_name, "cpu")
        plan = make_plan(cohort, models, settings, original, torch_device.split(":")[0])
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

            fingerprint = config_fingerprint(plan.config)
            from .store import read_run_file

            if read_run_file(root)["fingerprint"] != fingerprint:
                raise ConfigurationChangedError(f"rank {context.rank} computed another configuration than rank 0 "
                                                "(different files or versions on this node?).")
        started = time.perf_counter()
        stats = compute_share(plan, cohort, models, settings, root, fingerprint, context, torch_device, progress)
        stats["seconds"] = time.perf_counter() - started
        context.barrier()
        if context.is_main and assemble:
            from .assemble import assemble_results

            return assemble_results(root, plan, settings, progress=progress, run_stats=stats)
        return None
    finally:
        if own_context:
            context.close()

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
from pathlib import Path
from typing import Any, Dict, Generator, Optional

from .compute import Progress, compute_steps
from .distributed import DistributedContext, init_distributed
from .fingerprint import ConfigurationChangedError
from .loaded_models import LoadedModels
from .plan import make_plan
from .settings import EvaluationSettings, StudyModels
from .sources import Cohort
from .store import prepare_run_folder


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
            from .compute import mean_mask_name

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

"""Assembly (rank 0, after every rank is done): the stored units -> the four criteria -> files.

Writes, in the results folder:

* ``results.json`` - everything the report shows (per-study values, summaries, verdicts, settings,
  versions, seeds); deterministic: an interrupted-and-resumed run writes the same file;
* ``units.csv`` - one row per unit (study, method, model state, its numbers, its map file);
* ``scorecard.json`` / ``scorecard.csv`` - the verdict table;
* ``timing.json`` - seconds per stage and method (the only file that differs between runs).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from . import engines
from .settings import EvaluationSettings
from .store import collect_records, load_map, read_failures, read_run_file, write_json_atomic
from .units import CASCADE_PREFIX, ORIGINAL, REPLICATE, SECOND_ARCH, Unit

#: Repeatability / reproducibility reference of the study: SSIM between two independently trained
#: localization networks (U-Net on masks, RetinaNet on boxes). A method "passes" when its mean SSIM
#: reaches the laxer of the two (we have no localization network of our own to compare with).
REFERENCE_SSIM = {"U-Net (study, masks)": 0.975, "RetinaNet (study, boxes)": 0.80}
REPEATABILITY_THRESHOLD = min(REFERENCE_SSIM.values())

METRIC_COLUMNS = ("auprc", "auprc_mean_mask", "ssim_vs_original", "spearman_vs_original", "target")


def _clean(value: Optional[float]) -> Optional[float]:
    """JSON-safe float: None for missing or NaN."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def summarize(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """Mean, standard deviation, median, quartiles and count of the defined values."""
    array = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return {"mean": None, "std": None, "median": None, "q1": None, "q3": None, "n": 0,
                "n_undefined": len(values)}
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
            "median": float(np.median(array)), "q1": float(np.percentile(array, 25)),
            "q3": float(np.percentile(array, 75)), "n": int(array.size),
            "n_undefined": int(len(values) - array.size)}


def assemble_results(root, plan, settings: EvaluationSettings, progress: bool = True,
                     run_stats: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Read every rank's units and write the files listed in the module docstring.

    Returns:
        The ``results.json`` content (a dict; see the module docstring of the report for its use).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    root = Path(root)
    records = collect_records(root)
    failures = read_failures(root)
    methods = list(settings.methods)
    studies = sorted(plan.studies)
    sample = list(plan.sample)

    def metric(study: str, method: str, state: str, name: str) -> Optional[float]:
        record = records.get(Unit(study, method, state).key)
        return None if record is None else _clean(record.metrics.get(name))

    criteria = [c for c in settings.criteria if c not in plan.skipped_criteria]
    final_state = plan.cascade_states[-1] if plan.cascade_states else None
    results: Dict[str, Any] = {
        "fingerprint": read_run_file(root)["fingerprint"],
        "settings": settings.to_dict(),
        "criteria": criteria,
        "skipped_criteria": dict(plan.skipped_criteria),
        "methods": methods,
        "versions": plan.config["versions"],
        "models": plan.config["models"],
        "cohort": {"source": plan.config["cohort"]["source"], "n_studies": len(studies), "study_ids": studies,
                   "sample": sample, "n_sample": len(sample),
                   "n_units_planned": sum(len(plan.states[s]) for s in studies) * len(methods),
                   "n_units_stored": len(records)},
        "failures": {k: failures[k] for k in sorted(failures)},
        "ssim_data_range": settings.ssim_data_range,
        "method_settings": {m: engines.method_settings(engines.make_method(m, settings.preset, settings.method_params.get(m, {})))
                            for m in methods},
        "seeds": {"seed": settings.seed, "sample": "numpy default_rng(sha256(seed, 'sample'))",
                  "stochastic methods": "torch/numpy seeded per (seed, batch group, method)",
                  "weight randomization": settings.seed, "different-image pairs": settings.seed},
    }

    if "localization" in criteria:
        per_method = {m: [metric(s, m, ORIGINAL, "auprc") for s in studies] for m in methods}
        randomized = {m: [metric(s, m, final_state, "auprc") for s in studies] for m in methods} if final_state else {}
        mean_mask = [next((v for v in (metric(s, m, ORIGINAL, "auprc_mean_mask") for m in methods) if v is not None), None)
                     for s in studies]
        results["localization"] = {
            "study_ids": studies,
            "auprc": per_method,
            "auprc_randomized_model": randomized,
            "auprc_mean_mask": mean_mask,
            "summary": {m: summarize(v) for m, v in per_method.items()},
            "baselines": {"mean_mask": summarize(mean_mask),
                          "randomized_model": {m: summarize(v) for m, v in randomized.items()},
                          "reference": {"U-Net (study, SIIM)": 0.404, "RetinaNet (study, RSNA)": 0.596}},
        }

    if "randomization" in criteria and plan.cascade_states:
        curves: Dict[str, Any] = {}
        baseline: Dict[str, Any] = {}
        for m in tqdm(methods, desc="different-image baseline", disable=not progress, leave=False):
            ssim_rows = [[metric(s, m, state, "ssim_vs_original") for s in sample] for state in plan.cascade_states]
            rho_rows = [[metric(s, m, state, "spearman_vs_original") for s in sample] for state in plan.cascade_states]
            curves[m] = {"ssim": [summarize(r) for r in ssim_rows], "spearman": [summarize(r) for r in rho_rows],
                         "ssim_final_per_study": ssim_rows[-1]}
            maps = [load_map(root, records[Unit(s, m, ORIGINAL).key].map_file) for s in sample
                    if Unit(s, m, ORIGINAL).key in records]
            baseline[m] = (engines.different_image_baseline(np.stack(maps), settings.n_pairs, settings.seed,
                                                            settings.ssim_data_range)
                           if len(maps) >= 2 else {"ssim": None})
            baseline[m] = {k: _clean(v) for k, v in baseline[m].items()}
        results["randomization"] = {
            "states": ["original"] + list(plan.cascade_states),
            "state_labels": ["original"] + [s[len(CASCADE_PREFIX):] for s in plan.cascade_states],
            "curves": curves, "different_image_baseline": baseline,
            "rule": "passes when the mean SSIM to the original map at the fully randomized state is below "
                    "the mean SSIM between maps of different images (trained model)",
            "note": "Binder et al. (CVPR 2023): top-down randomization can be passed by uninformative maps; "
                    "read the Spearman rank correlation beside SSIM.",
        }

    for criterion, state in (("repeatability", REPLICATE), ("reproducibility", SECOND_ARCH)):
        if criterion not in criteria:
            continue
        ssim = {m: [metric(s, m, state, "ssim_vs_original") for s in sample] for m in methods}
        rho = {m: [metric(s, m, state, "spearman_vs_original") for s in sample] for m in methods}
        auprc = {m: [metric(s, m, state, "auprc") for s in sample] for m in methods}
        results[criterion] = {"study_ids": sample, "ssim": ssim, "spearman": rho, "auprc_other_model": auprc,
                              "summary": {m: summarize(v) for m, v in ssim.items()},
                              "spearman_summary": {m: summarize(v) for m, v in rho.items()},
                              "reference": REFERENCE_SSIM, "threshold": REPEATABILITY_THRESHOLD}

    results["scorecard"] = build_scorecard(results)
    results["gallery"] = _gallery(root, plan, methods, records)
    _write_outputs(root, results, records, plan, settings)
    timing = _timing(records, run_stats, time.perf_counter() - started)
    write_json_atomic(root / "timing.json", timing)
    return results


def build_scorecard(results: Dict[str, Any]) -> Dict[str, Any]:
    """Per method and criterion: the value, the baseline it is judged against and the verdict.

    Rules (stated in the report): localization passes when the mean AUPRC beats both the
    average-mask and the randomized-model baselines; randomization as in ``results['randomization']
    ['rule']``; repeatability / reproducibility when the mean SSIM reaches :data:`REPEATABILITY_THRESHOLD`.
    """
    card: Dict[str, Any] = {"methods": {}, "rules": {
        "localization": "mean AUPRC > mean AUPRC of the average-mask baseline and of the same method on the fully randomized model",
        "randomization": "mean SSIM(fully randomized, original) < mean SSIM between different images",
        "repeatability": f"mean SSIM between two models of one architecture >= {REPEATABILITY_THRESHOLD} (study's RetinaNet baseline)",
        "reproducibility": f"mean SSIM between two architectures >= {REPEATABILITY_THRESHOLD} (study's RetinaNet baseline)"}}
    for m in results["methods"]:
        row: Dict[str, Any] = {}
        loc = results.get("localization")
        if loc:
            value = loc["summary"][m]["mean"]
            mean_mask = loc["baselines"]["mean_mask"]["mean"]
            randomized = loc["baselines"]["randomized_model"].get(m, {}).get("mean")
            defined = [b for b in (mean_mask, randomized) if b is not None]
            row["localization"] = {"value": value, "baseline": max(defined) if defined else None,
                                   "passes": None if value is None or not defined else bool(value > max(defined))}
        ran = results.get("randomization")
        if ran:
            final = ran["curves"][m]["ssim"][-1]["mean"]
            base = ran["different_image_baseline"][m].get("ssim")
            row["randomization"] = {"value": final, "baseline": base,
                                    "passes": None if final is None or base is None else bool(final < base)}
        for criterion in ("repeatability", "reproducibility"):
            block = results.get(criterion)
            if block:
                value = block["summary"][m]["mean"]
                row[criterion] = {"value": value, "baseline": block["threshold"],
                                  "passes": None if value is None else bool(value >= block["threshold"])}
        verdicts = [v["passes"] for v in row.values() if v["passes"] is not None]
        row["trusted"] = bool(verdicts) and all(verdicts)
        card["methods"][m] = row
    return card


def _gallery(root: Path, plan, methods: List[str], records) -> List[Dict[str, Any]]:
    items = []
    for study in plan.gallery:
        image = Path("inputs") / f"{study}.image.npy"
        if not (root / image).exists():
            continue
        mask = Path("inputs") / f"{study}.mask.npy"
        maps = {m: records[Unit(study, m, ORIGINAL).key].map_file for m in methods if Unit(study, m, ORIGINAL).key in records}
        final = plan.cascade_states[-1] if plan.cascade_states else None
        randomized = {m: records[Unit(study, m, final).key].map_file for m in methods
                      if final and Unit(study, m, final).key in records}
        items.append({"study_id": study, "image": str(image), "mask": str(mask) if (root / mask).exists() else None,
                      "maps": maps, "maps_randomized": randomized})
    return items


def _write_outputs(root: Path, results: Dict[str, Any], records, plan, settings) -> None:
    write_json_atomic(root / "results.json", results)
    rows = sorted(records.values(), key=lambda r: r.unit.key)
    tmp = root / ".units.csv.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_id", "method", "model_state", *METRIC_COLUMNS, "map_file"])
        for record in rows:
            values = [record.metrics.get(c) for c in METRIC_COLUMNS]
            writer.writerow([record.unit.study_id, record.unit.method, record.unit.model_state,
                             *["" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v)) for v in values],
                             record.map_file])
    tmp.replace(root / "units.csv")
    card = results["scorecard"]
    write_json_atomic(root / "scorecard.json", card)
    tmp = root / ".scorecard.csv.tmp"
    criteria = ("localization", "randomization", "repeatability", "reproducibility")
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["method", *[f"{c}_{k}" for c in criteria for k in ("value", "baseline", "passes")], "trusted"])
        for method, row in card["methods"].items():
            cells = []
            for c in criteria:
                entry = row.get(c, {})
                cells.extend(["" if entry.get(k) is None else entry.get(k) for k in ("value", "baseline", "passes")])
            writer.writerow([method, *cells, row["trusted"]])
    tmp.replace(root / "scorecard.csv")


def _timing(records, run_stats, assemble_seconds: float) -> Dict[str, Any]:
    per_state: Dict[str, float] = {}
    per_method: Dict[str, float] = {}
    for record in records.values():
        state = record.unit.model_state
        state = "cascade" if state.startswith(CASCADE_PREFIX) else state
        per_state[state] = per_state.get(state, 0.0) + record.seconds
        per_method[record.unit.method] = per_method.get(record.unit.method, 0.0) + record.seconds
    return {"map_seconds_by_state": per_state, "map_seconds_by_method": per_method,
            "assemble_seconds": assemble_seconds, "last_run": run_stats or {}}

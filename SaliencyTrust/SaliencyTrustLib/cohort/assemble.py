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

from .settings import EvaluationSettings
from .compute import make_methods, native_relpath
from .store import (_safe_name, iter_records_sorted, load_map, map_relpath, read_failures, read_run_file,
                    write_json_atomic)
from .units import CASCADE_PREFIX, ORIGINAL, REPLICATE, SECOND_ARCH, Unit

#: Repeatability / reproducibility references of the study: SSIM between two independently trained
#: localization networks (U-Net on masks, RetinaNet on boxes), shown for scale. Without localization
#: networks of our own, the verdict compares with the different-image baseline (criteria's rule).
REFERENCE_SSIM = {"U-Net (study, masks)": 0.975, "RetinaNet (study, boxes)": 0.80}


def rules(localization_baseline: str = "average_mask") -> Dict[str, str]:
    """The pass rules, worded by :mod:`SaliencyTrustLib.criteria` (one wording project-wide)."""
    from ..criteria.consistency import CONSISTENCY_RULES
    from ..criteria.localization import LOCALIZATION_RULE
    from ..criteria.sensitivity import SENSITIVITY_RULES

    baseline = "average mask" if localization_baseline == "average_mask" else "fully randomized model"
    return {"localization": LOCALIZATION_RULE.format(baseline=baseline),
            "randomization": SENSITIVITY_RULES["any"],
            "repeatability": CONSISTENCY_RULES["different_image"],
            "reproducibility": CONSISTENCY_RULES["different_image"]}


METRIC_COLUMNS = ("auprc", "auprc_mean_mask", "ssim_vs_original", "spearman_vs_original", "target", "predicted", "probability")


def _clean(value: Optional[float]) -> Optional[float]:
    """JSON-safe float: None for missing or NaN."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


class UnitIndex:
    """Every stored unit's numbers, compactly (one tuple of :data:`METRIC_COLUMNS` per unit key; map
    paths are derived, :func:`~SaliencyTrustLib.cohort.store.map_relpath`), filled in one streaming
    pass that also sums the seconds per model state and method."""

    def __init__(self, root: Path) -> None:
        self.values: Dict[str, tuple] = {}
        self.seconds_by_state: Dict[str, float] = {}
        self.seconds_by_method: Dict[str, float] = {}
        for record in iter_records_sorted(root):
            self.values[record.unit.key] = tuple(record.metrics.get(c) for c in METRIC_COLUMNS)
            state = record.unit.model_state
            state = "cascade" if state.startswith(CASCADE_PREFIX) else state
            self.seconds_by_state[state] = self.seconds_by_state.get(state, 0.0) + record.seconds
            self.seconds_by_method[record.unit.method] = self.seconds_by_method.get(record.unit.method, 0.0) + record.seconds

    def __contains__(self, unit: Unit) -> bool:
        return unit.key in self.values

    def __len__(self) -> int:
        return len(self.values)

    def metric(self, unit: Unit, name: str) -> Optional[float]:
        row = self.values.get(unit.key)
        return None if row is None else _clean(row[METRIC_COLUMNS.index(name)])


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
                     run_stats: Optional[Dict[str, Any]] = None,
                     mean_mask_name: str = "average training mask") -> Dict[str, Any]:
    """Read every rank's units and write the files listed in the module docstring.

    Returns:
        The ``results.json`` content (a dict; see the module docstring of the report for its use).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    root = Path(root)
    records = UnitIndex(root)
    failures = read_failures(root)
    methods = list(plan.methods)
    studies = sorted(plan.studies)
    sample = list(plan.sample)

    def metric(study: str, method: str, state: str, name: str) -> Optional[float]:
        return records.metric(Unit(study, method, state), name)

    criteria = [c for c in settings.criteria if c not in plan.skipped_criteria]
    final_state = plan.cascade_states[-1] if plan.cascade_states else None
    results: Dict[str, Any] = {
        "fingerprint": read_run_file(root)["fingerprint"],
        "settings": settings.to_dict(),
        "criteria": criteria,
        "skipped_criteria": dict(plan.skipped_criteria),
        "skipped_methods": dict(plan.skipped_methods),
        "methods": methods,
        "preprocessing": plan.config["settings"]["preprocessing"],
        "versions": plan.config["versions"],
        "models": plan.config["models"],
        "cohort": {"source": plan.config["cohort"]["source"], "n_studies": len(studies), "study_ids": studies,
                   "sample": sample, "n_sample": len(sample),
                   "n_units_planned": sum(len(plan.states[s]) for s in studies) * len(methods),
                   "n_units_stored": len(records)},
        "failures": {k: failures[k] for k in sorted(failures)},
        "ssim_data_range": settings.ssim_data_range,
        "method_settings": {m: _method_settings(method) for m, method in make_methods(settings, methods).items()},
        "predictions": {s: {key: metric(s, methods[0], ORIGINAL, key) for key in ("predicted", "probability", "target")}
                        for s in studies} if methods else {},
        "native_maps": {s: {m: native_relpath(s, m) for m in methods if (root / native_relpath(s, m)).is_file()}
                        for s in studies},
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
            "baseline": settings.localization_baseline,
            "mean_mask_name": mean_mask_name,
            "baselines": {"mean_mask": summarize(mean_mask),
                          "randomized_model": {m: summarize(v) for m, v in randomized.items()},
                          "reference": {"U-Net (study, SIIM)": 0.404, "RetinaNet (study, RSNA)": 0.596}},
        }

    baseline: Dict[str, Any] = {}
    if set(criteria) & {"randomization", "repeatability", "reproducibility"}:
        from ..criteria import different_image_baseline

        images = sample + sorted(plan.references)
        for m in tqdm(methods, desc="different-image baseline", disable=not progress, leave=False):
            maps = [load_map(root, map_relpath(Unit(s, m, ORIGINAL))) for s in images if Unit(s, m, ORIGINAL) in records]
            if len(maps) >= 2:
                value = different_image_baseline(np.stack(maps), n_pairs=settings.n_pairs, seed=settings.seed,
                                                 data_range=settings.ssim_data_range)
                numbers = {k: v for k, v in value.to_dict().items() if isinstance(v, (int, float))
                           and not isinstance(v, bool) and k not in ("mean", "seed")}
                baseline[m] = {"ssim": _clean(value.mean), **{k: _clean(v) for k, v in numbers.items()}}
            else:
                baseline[m] = {"ssim": None, "reason": "fewer than 2 images (add baseline images)"}
        results["different_image_baseline"] = baseline

    if "randomization" in criteria and plan.cascade_states:
        curves: Dict[str, Any] = {}
        for m in methods:
            ssim_rows = [[metric(s, m, state, "ssim_vs_original") for s in sample] for state in plan.cascade_states]
            rho_rows = [[metric(s, m, state, "spearman_vs_original") for s in sample] for state in plan.cascade_states]
            curves[m] = {"ssim": [summarize(r) for r in ssim_rows], "spearman": [summarize(r) for r in rho_rows],
                         "ssim_final_per_study": ssim_rows[-1]}
        results["randomization"] = {
            "states": ["original"] + list(plan.cascade_states),
            "state_labels": ["original"] + [s[len(CASCADE_PREFIX):] for s in plan.cascade_states],
            "curves": curves, "different_image_baseline": baseline,
            "rule": rules()["randomization"],
            "note": "Binder et al. (CVPR 2023): top-down randomization can be passed by uninformative maps; "
                    "read the Spearman rank correlation beside SSIM. Gaps in a curve: every map of that state "
                    "was constant (SSIM undefined, dropped as in the study).",
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
                              "reference": REFERENCE_SSIM, "different_image_baseline": baseline,
                              "rule": rules()[criterion]}

    card = build_scorecard(results)
    results["scorecard"] = card.to_dict()
    results["gallery"] = _gallery(root, plan, methods, records)
    _write_outputs(root, results, card)
    timing = _timing(records, run_stats, time.perf_counter() - started)
    write_json_atomic(root / "timing.json", timing)
    return results


def build_scorecard(results: Dict[str, Any]):
    """The :class:`SaliencyTrustLib.criteria.Scorecard` of a run (rules: :func:`rules`).

    * localization: mean AUPRC vs the named baseline's mean AUPRC (``localization_baseline``:
      the average mask, or the same method on the fully randomized model); the other baseline and
      the study's localization networks in ``details``;
    * randomization: the lowest mean SSIM over the cascade's states vs the different-image baseline;
    * repeatability / reproducibility: mean SSIM between the two models vs the different-image
      baseline (the study's localization-network SSIM in ``details``).
    """
    from ..criteria import Scorecard

    settings = results["settings"]
    rule_text = rules(settings["localization_baseline"])
    card = Scorecard(params={"settings": settings, "fingerprint": results["fingerprint"],
                             "ssim_data_range": results["ssim_data_range"],
                             "localization_baseline": settings["localization_baseline"],
                             "consistency_target": settings["consistency_target"],
                             "target_class": settings["target_class"],
                             "preprocessing": results["preprocessing"]}, versions=results["versions"])
    baseline = results.get("different_image_baseline", {})
    for m in results["methods"]:
        loc = results.get("localization")
        if loc:
            value = loc["summary"][m]["mean"]
            mean_mask = loc["baselines"]["mean_mask"]["mean"]
            randomized = loc["baselines"]["randomized_model"].get(m, {}).get("mean")
            if loc["baseline"] == "average_mask":
                reference, reference_name = mean_mask, loc["mean_mask_name"]
            else:
                reference, reference_name = randomized, "same method on the fully randomized model"
            card.add(m, "localization", value, reference,
                     None if value is None or reference is None else value > reference, rule_text["localization"],
                     value_name="mean AUPRC", baseline_name=reference_name,
                     mean_mask_auprc=mean_mask, randomized_model_auprc=randomized,
                     above_randomized_model=None if value is None or randomized is None else value > randomized,
                     study_localization_networks={"U-Net (study, SIIM)": 0.404, "RetinaNet (study, RSNA)": 0.596},
                     n_images=loc["summary"][m]["n"], n_undefined=loc["summary"][m]["n_undefined"])
        ran = results.get("randomization")
        if ran:
            curve = [s["mean"] for s in ran["curves"][m]["ssim"]]
            defined = [(v, i) for i, v in enumerate(curve) if v is not None]
            base = baseline.get(m, {}).get("ssim")
            lowest = min(defined)[0] if defined else None
            first = next((ran["states"][i + 1] for v, i in defined if base is not None and v < base), None)
            card.add(m, "randomization", lowest, base, None if lowest is None or base is None else lowest < base,
                     rule_text["randomization"], value_name="min over states of mean SSIM",
                     baseline_name="different-image mean SSIM", first_below=first,
                     final_state_ssim=curve[-1] if curve else None,
                     states=ran["state_labels"][1:], ssim_curve=curve,
                     spearman_curve=[s["mean"] for s in ran["curves"][m]["spearman"]])
        for criterion in ("repeatability", "reproducibility"):
            block = results.get(criterion)
            if block:
                value = block["summary"][m]["mean"]
                base = baseline.get(m, {}).get("ssim")
                card.add(m, criterion, value, base, None if value is None or base is None else value > base,
                         rule_text[criterion], value_name="mean SSIM",
                         baseline_name="different-image mean SSIM (localization baseline absent)",
                         study_localization_networks=REFERENCE_SSIM,
                         spearman_mean=block["spearman_summary"][m]["mean"])
    return card


def _gallery(root: Path, plan, methods: List[str], records) -> List[Dict[str, Any]]:
    items = []
    for study in plan.gallery:
        image = Path("inputs") / f"{_safe_name(study)}.image.npy"
        if not (root / image).exists():
            continue
        mask = Path("inputs") / f"{_safe_name(study)}.mask.npy"
        maps = {m: map_relpath(Unit(study, m, ORIGINAL)) for m in methods if Unit(study, m, ORIGINAL) in records}
        final = plan.cascade_states[-1] if plan.cascade_states else None
        randomized = {m: map_relpath(Unit(study, m, final)) for m in methods if final and Unit(study, m, final) in records}
        items.append({"study_id": study, "image": str(image), "mask": str(mask) if (root / mask).exists() else None,
                      "maps": maps, "maps_randomized": randomized})
    return items


def _method_settings(method) -> Dict[str, Any]:
    """The resolved settings of a method object (for the report and the fingerprint)."""
    for attribute in ("settings", "params"):
        value = getattr(method, attribute, None)
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if isinstance(v, (int, float, str, bool, type(None), list, tuple))}
    return {}


def _write_outputs(root: Path, results: Dict[str, Any], card) -> None:
    write_json_atomic(root / "results.json", results)
    tmp = root / ".units.csv.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_id", "method", "model_state", *METRIC_COLUMNS, "map_file"])
        for record in iter_records_sorted(root):
            values = [record.metrics.get(c) for c in METRIC_COLUMNS]
            writer.writerow([record.unit.study_id, record.unit.method, record.unit.model_state,
                             *["" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v)) for v in values],
                             record.map_file])
    tmp.replace(root / "units.csv")
    for name, text in (("scorecard.json", card.to_json()), ("scorecard.csv", card.to_csv())):
        tmp = root / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(root / name)


def _timing(records: UnitIndex, run_stats, assemble_seconds: float) -> Dict[str, Any]:
    return {"map_seconds_by_state": records.seconds_by_state, "map_seconds_by_method": records.seconds_by_method,
            "assemble_seconds": assemble_seconds, "last_run": run_stats or {}}
